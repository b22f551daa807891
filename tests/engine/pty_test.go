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
	m, s, err := openPty()
	if err != nil {
		h.t.Fatalf("open a pty: %v", err)
	}
	cmd := h.cmd(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start berth %v: %v", args, err)
	}
	s.Close()
	tm := &term{t: h.t, master: m, cmd: cmd, done: make(chan struct{})}
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
	h.t.Cleanup(func() {
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
