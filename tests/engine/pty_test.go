package engine

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// term is a berth command running on a real pseudo-terminal, as in a user's shell: what
// it prints is the screen, what we write is typed.
type term struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	screen bytes.Buffer
	done   chan struct{}
	err    error
}

func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	return m, s, nil
}

// startTerm runs berth on a new pty, as the controlling terminal of a new session.
func (h *harness) startTerm(args ...string) *term {
	h.t.Helper()
	return startOnPty(h.t, h.cmd(args...))
}

// startOnPty starts cmd on a new pty, as the controlling terminal of a new session, and
// collects what it shows; cmd is killed at the end of the test if it still runs.
func startOnPty(t *testing.T, cmd *exec.Cmd) *term {
	t.Helper()
	m, s, err := openPty()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	s.Close()
	tm := &term{t: t, master: m, cmd: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			if n > 0 {
				tm.mu.Lock()
				tm.screen.Write(buf[:n])
				tm.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		tm.err = cmd.Wait()
		close(tm.done)
	}()
	t.Cleanup(func() {
		select {
		case <-tm.done:
		default:
			cmd.Process.Kill()
			<-tm.done
		}
		m.Close()
	})
	return tm
}

func (tm *term) text() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.screen.String()
}

// expect waits until the screen shows s (after what was there when it was called).
func (tm *term) expect(s string, timeout time.Duration) {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(tm.text(), s) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("the screen never showed %q; it shows:\n%s", s, tm.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tm *term) typ(s string) {
	tm.t.Helper()
	if _, err := tm.master.Write([]byte(s)); err != nil {
		tm.t.Fatalf("type %q: %v", s, err)
	}
}

// wait waits for berth to exit and returns its exit code.
func (tm *term) wait(timeout time.Duration) int {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(timeout):
		tm.t.Fatalf("berth did not exit within %v; the screen shows:\n%s", timeout, tm.text())
	}
	if tm.err == nil {
		return 0
	}
	if ee, ok := tm.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	tm.t.Fatalf("berth: %v", tm.err)
	return -1
}

// exec -it detaches with ctrl-p ctrl-q as on Docker: berth exits 0 and the exec'd shell
// goes on running in the container, its terminal still open; what was typed before the
// keys reached it, and a lone ctrl-p is passed through.
func TestExecDetach(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
	tm := h.startTerm("exec", "-it", "box", "sh")
	tm.expect("# ", 10*time.Second)
	// A ctrl-p not followed by ctrl-q is the shell's (busybox sh ignores it).
	tm.typ("\x10echo $$ > /tmp/sh.pid; echo marked $((6*7))\r")
	tm.expect("marked 42", 5*time.Second)
	// Typed before the keys, in the same write: reaches the shell, which then runs it
	// with nobody attached.
	tm.typ("(sleep 0.3; echo after > /tmp/after) &\r\x10\x11")
	if code := tm.wait(5 * time.Second); code != 0 {
		t.Fatalf("detach from exec -it: berth exited %d; screen:\n%s", code, tm.text())
	}
	pid := strings.TrimSpace(h.ok("exec", "box", "cat", "/tmp/sh.pid"))
	eventually(t, 5*time.Second, "the detached shell's background job", func() bool {
		return h.run("exec", "box", "cat", "/tmp/after").stdout == "after\n"
	})
	if r := h.run("exec", "box", "cat", "/proc/"+pid+"/comm"); r.stdout != "sh\n" {
		t.Errorf("the detached shell %s is not running in the container: %s", pid, r)
	}
	// It is gone with the container, and so is what held its terminal.
	h.ok("rm", "-f", "box")
	eventually(t, 5*time.Second, "the terminal holder to exit", func() bool { return len(ptyHolders()) == 0 })
}

// ptyHolders lists the berth-pty-hold processes.
func ptyHolders() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); strings.HasPrefix(string(b), "berth-pty-hold\x00") {
			out = append(out, pid)
		}
	}
	return out
}
