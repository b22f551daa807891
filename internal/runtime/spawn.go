package runtime

import (
	"fmt"
	"os"
	"syscall"
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
func (c *creation) startInit(exe *os.File, argv, env []string, files []*os.File, sys *syscall.SysProcAttr) (*os.Process, error) {
	if c.opts.Spawn != nil {
		cg := -1
		if sys.UseCgroupFD {
			cg = sys.CgroupFD
		}
		return c.opts.Spawn(exe, argv, env, files, cg)
	}
	return os.StartProcess(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()), argv, &os.ProcAttr{Env: env, Files: files, Sys: sys})
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
