package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var testSeq atomic.Int64

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("cgroup tests create real cgroups and must run as root (euid %d)", os.Geteuid())
	}
}

// testID is a container id unique to this test and process.
func testID(t *testing.T) string {
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t%d-%d-%s", os.Getpid(), testSeq.Add(1), strings.ToLower(name))
}

// newCgroup makes and creates a manager for a fresh default-path cgroup, removed (and
// checked gone) when the test ends.
func newCgroup(t *testing.T, r *specs.LinuxResources) Manager {
	t.Helper()
	needRoot(t)
	m, err := New(Config{ID: testID(t), Resources: r})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := m.Create(); err != nil {
		_ = m.Destroy()
		t.Fatalf("Create: %v", err)
	}
	cleanupCgroup(t, m)
	return m
}

func cleanupCgroup(t *testing.T, m Manager) {
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy in cleanup: %v", err)
		}
		for k, d := range m.Paths() {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s (%s) left behind", d, hierName(k))
			}
		}
	})
}

func busybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("busybox not found (hack/deps-cgroups.sh installs busybox-static)")
	return ""
}

// proc is a busybox shell started by a test; it waits on stdin until released, so that
// the test can put it in a cgroup before the script runs. Its output goes to a file, not
// a pipe: background children of the script would keep a pipe open and Wait with it.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    string
	done   chan struct{}
	status error
}

func startGated(t *testing.T, script string) *proc {
	t.Helper()
	cmd := exec.Command(busybox(t), "sh", "-c", "read _ || exit 99\n"+script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &proc{cmd: cmd, stdin: stdin, out: out.Name(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start busybox: %v", err)
	}
	go func() {
		p.status = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("release process %d: %v", p.pid(), err)
	}
	p.stdin.Close()
}

// wait returns the exit status, failing the test after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.status
	case <-time.After(timeout):
		t.Fatalf("process %d still running after %s; output: %s", p.pid(), timeout, p.output())
		return nil
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// killedBy reports the signal that ended the process, 0 if it exited.
func killedBy(err error) syscall.Signal {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// cgroupOf reads /proc/<pid>/cgroup into the same shape as ownCgroups.
func cgroupOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseProcCgroup(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func ptr[T any](v T) *T { return &v }

func hostLayout(t *testing.T) Layout {
	t.Helper()
	l, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error mentioning %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}
