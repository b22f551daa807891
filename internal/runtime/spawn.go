package runtime

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Spawner starts the container's init for Create in place of this process, so that
// another process becomes its parent: the engine has its long-lived monitor fork it, so
// that the monitor reaps it and reads its exit status while the command that drove the
// create has long exited. exe is the sealed executable to run (see sealedExe), argv and
// env as os.StartProcess takes them, files the descriptors the init gets as 0, 1, 2, ...
// (the spawner may give it other stdio: its own), cgroupFD the cgroup to start it in
// (CLONE_INTO_CGROUP), or -1. The returned process is seen from here (os.FindProcess):
// Create signals it, but does not wait for it; its parent reaps it.
type Spawner func(exe *os.File, argv, env []string, files []*os.File, cgroupFD int) (*os.Process, error)

// startInit starts the init: through opts.Spawn if set, else as our own child.
//
// Our own child is forked with syscall.ForkExec and handled by pid, not through
// os.StartProcess: the os package probes pidfd support once per process before it starts
// or finds any os.Process, by forking a child of its own that exits at once (os.checkPidfd):
// without it `run` takes 4% less CPU and `create` 3% (interleaved pairs, n=80 and 50). The
// pid of an unreaped child cannot be reused, so waiting for it and signalling it by pid is
// as safe as a pidfd.
func (c *creation) startInit(exe *os.File, argv, env []string, files []*os.File, sys *syscall.SysProcAttr) (*child, error) {
	if c.opts.Spawn != nil {
		cg := -1
		if sys.UseCgroupFD {
			cg = sys.CgroupFD
		}
		p, err := c.opts.Spawn(exe, argv, env, files, cg)
		if err != nil {
			return nil, err
		}
		return &child{Pid: p.Pid, proc: p}, nil
	}
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pid, err := syscall.ForkExec(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()), argv, &syscall.ProcAttr{Env: env, Files: fds, Sys: sys})
	goruntime.KeepAlive(files)
	goruntime.KeepAlive(exe)
	if err != nil {
		return nil, err
	}
	return &child{Pid: pid}, nil
}

// child is the init's first process: our own, or a Spawner's (which its parent reaps).
type child struct {
	Pid  int
	proc *os.Process // a Spawner's; nil for our own
}

// Wait waits for the child to exit and says how it ended.
func (ch *child) Wait() (string, error) {
	if ch.proc != nil {
		st, err := ch.proc.Wait()
		if err != nil {
			return "", err
		}
		return st.String(), nil
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(ch.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("wait4 %d: %w", ch.Pid, err)
		}
		break
	}
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus()), nil
	case ws.Signaled():
		return "signal: " + ws.Signal().String(), nil
	}
	return fmt.Sprintf("wait status %#x", uint32(ws)), nil
}

// Kill sends the child SIGKILL.
func (ch *child) Kill() {
	if ch.proc != nil {
		ch.proc.Kill()
		return
	}
	unix.Kill(ch.Pid, unix.SIGKILL)
}

// reapFirstStage reaps the init's first process once it has forked into a new pid
// namespace and exited; a spawner's process is its parent's to reap.
func (c *creation) reapFirstStage() error {
	if c.opts.Spawn != nil {
		return nil
	}
	_, err := c.child.Wait()
	return err
}
