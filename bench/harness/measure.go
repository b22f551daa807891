// Package harness measures commands from outside their process and reports the figures:
// wall time around fork and wait4, user+sys CPU and peak RSS from wait4's rusage, taken by
// a small static helper (spawn/spawn.c) that forks the command, so that the harness's own
// size does not leak into the command's peak RSS. Each
// comparison runs its contenders in one process, interleaved, so that load from other users
// of the machine falls on all of them alike.
package harness

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is what one command cost, seen from its parent.
type Sample struct {
	Wall time.Duration
	// CPU is user+sys of the command and of every descendant it waited for.
	CPU time.Duration
	// MaxRSS is the largest resident set of the command or of a descendant it waited
	// for, in bytes (the kernel's ru_maxrss, which survives exec).
	MaxRSS int64
	// GroupCPU, when measured (CPUGroup.Measure), is the CPU of every process in the
	// harness's accounting group meanwhile: the command, and helpers and daemons it did not
	// wait for.
	GroupCPU time.Duration
}

// Cmd is one command to measure.
type Cmd struct {
	Argv []string
	Env  []string
	Dir  string
	// Stdout, when set, receives the command's standard output; /dev/null otherwise.
	Stdout *os.File
}

func (c Cmd) String() string { return strings.Join(c.Argv, " ") }

// Env is the environment every measured command gets, whatever the contender, so that no
// one of them reads a different configuration from it.
var Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}

//go:embed spawn/spawn.c
var spawnSource []byte

// spawner is the compiled berth-bench-spawn helper every measured command is run through.
var spawner string

// Setup compiles the spawn helper into dir (it needs gcc and a static libc, as Debian's
// gcc and libc6-dev provide). Run cannot be used before.
func Setup(dir string) error {
	src := filepath.Join(dir, "berth-bench-spawn.c")
	bin := filepath.Join(dir, "berth-bench-spawn")
	if err := os.WriteFile(src, spawnSource, 0o644); err != nil {
		return fmt.Errorf("spawn helper: %w", err)
	}
	out, err := exec.Command("gcc", "-O2", "-static", "-Wall", "-o", bin, src).CombinedOutput()
	if err != nil {
		return fmt.Errorf("spawn helper: gcc -static %s: %v: %s", src, err, out)
	}
	spawner = bin
	return nil
}

// Run runs c through the spawn helper and returns what it cost. A command that fails
// (non-zero exit or a signal) is an error that carries the tail of its standard error.
func Run(c Cmd) (Sample, error) {
	if spawner == "" {
		return Sample{}, errors.New("harness: Setup was not called")
	}
	prog := c.Argv[0]
	if !strings.Contains(prog, "/") {
		p, err := exec.LookPath(prog)
		if err != nil {
			return Sample{}, fmt.Errorf("%s: %w", c, err)
		}
		prog = p
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return Sample{}, err
	}
	defer null.Close()
	// Standard error goes to an unlinked file, not a pipe: a runtime's `create` leaves the
	// container holding its stdio, so a pipe would not see end of file until much later.
	errf, err := os.CreateTemp("", "berth-bench-stderr-")
	if err != nil {
		return Sample{}, err
	}
	os.Remove(errf.Name())
	defer errf.Close()
	rep, err := os.CreateTemp("", "berth-bench-report-")
	if err != nil {
		return Sample{}, err
	}
	os.Remove(rep.Name())
	defer rep.Close()
	out := null
	if c.Stdout != nil {
		out = c.Stdout
	}
	env := c.Env
	if env == nil {
		env = Env
	}
	argv := append([]string{"berth-bench-spawn", prog}, c.Argv...)
	attr := &syscall.ProcAttr{Dir: c.Dir, Env: env, Files: []uintptr{null.Fd(), out.Fd(), errf.Fd(), rep.Fd()}}
	pid, err := syscall.ForkExec(spawner, argv, attr)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", c, err)
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return Sample{}, fmt.Errorf("%s: wait4 %d: %w", c, pid, err)
	}
	if ws.Signaled() || ws.ExitStatus() != 0 {
		return Sample{}, fmt.Errorf("%s: spawn helper %s: %s", c, describe(ws), tail(errf))
	}
	raw, err := io.ReadAll(io.NewSectionReader(rep, 0, 1<<20))
	if err != nil {
		return Sample{}, err
	}
	var wall, utime, stime, maxrss int64
	var status uint32
	if _, err := fmt.Sscan(string(raw), &wall, &utime, &stime, &maxrss, &status); err != nil {
		return Sample{}, fmt.Errorf("%s: spawn helper report %q: %w", c, raw, err)
	}
	s := Sample{Wall: time.Duration(wall), CPU: time.Duration(utime+stime) * time.Microsecond, MaxRSS: maxrss * 1024}
	cws := unix.WaitStatus(status)
	if cws.Signaled() || cws.ExitStatus() != 0 {
		return s, fmt.Errorf("%s: %s: %s", c, describe(cws), tail(errf))
	}
	return s, nil
}

func cpu(ru *unix.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// tail returns the last lines of what f received, for an error message.
func tail(f *os.File) string {
	b := make([]byte, 2048)
	st, err := f.Stat()
	if err != nil {
		return "(stderr unreadable: " + err.Error() + ")"
	}
	off := st.Size() - int64(len(b))
	if off < 0 {
		off = 0
	}
	n, _ := f.ReadAt(b, off)
	s := strings.TrimSpace(string(b[:n]))
	if s == "" {
		return "(no stderr)"
	}
	return s
}

// RunOutput runs c like Run and also returns its standard output.
func RunOutput(c Cmd) (Sample, string, error) {
	f, err := os.CreateTemp("", "berth-bench-stdout-")
	if err != nil {
		return Sample{}, "", err
	}
	os.Remove(f.Name())
	defer f.Close()
	c.Stdout = f
	s, err := Run(c)
	b, rerr := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	if err == nil {
		err = rerr
	}
	return s, string(b), err
}

// Output runs c outside any measurement and returns its standard output.
func Output(c Cmd) (string, error) {
	f, err := os.CreateTemp("", "berth-bench-stdout-")
	if err != nil {
		return "", err
	}
	os.Remove(f.Name())
	defer f.Close()
	c.Stdout = f
	if _, err := Run(c); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	return string(b), err
}

// BecomeSubreaper makes this process the reaper of orphaned descendants, as a container
// shim is: a runtime's `create` exits and leaves the container's init to us, so that we can
// wait for it and read what it cost.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// WaitPid waits for pid, a child or an orphan reparented to us, for at most timeout, and
// returns the CPU and peak RSS it used over its whole life.
func WaitPid(pid int, timeout time.Duration) (Sample, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return Sample{}, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Sample{}, fmt.Errorf("process %d still runs after %v", pid, timeout)
		}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Sample{}, fmt.Errorf("poll pidfd of %d: %w", pid, err)
		}
		if n > 0 {
			break
		}
	}
	var ws unix.WaitStatus
	var ru unix.Rusage
	for {
		_, err = unix.Wait4(pid, &ws, 0, &ru)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return Sample{}, fmt.Errorf("wait4 %d: %w (not our child?)", pid, err)
	}
	return Sample{CPU: cpu(&ru), MaxRSS: ru.Maxrss * 1024}, nil
}

// ReapOrphans collects every exited child without blocking and returns how many it reaped.
func ReapOrphans() int {
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return n
		}
		n++
	}
}
