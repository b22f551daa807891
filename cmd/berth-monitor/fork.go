package main

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// execArgs is a program, its arguments and environment as execve(2) takes them, made once
// so that starting it again allocates nothing (see forkExec).
type execArgs struct {
	path       *byte
	argv, envv []*byte
	keep       [][]byte // what the pointers point into
}

func newExecArgs(path string, argv, env []string) *execArgs {
	a := &execArgs{}
	cstr := func(s string) *byte {
		b := append([]byte(s), 0)
		a.keep = append(a.keep, b)
		return &b[0]
	}
	a.path = cstr(path)
	for _, s := range argv {
		a.argv = append(a.argv, cstr(s))
	}
	a.argv = append(a.argv, nil)
	for _, s := range env {
		a.envv = append(a.envv, cstr(s))
	}
	a.envv = append(a.envv, nil)
	return a
}

// forkExec starts a's program with stdin and stdout on devnull and our stderr, and
// returns its pid. Why not syscall.StartProcess: that converts the arguments and the
// environment to C strings on every call, about 2 KiB of garbage per health check. The
// monitor allocates nothing while idle and so never collects garbage; a collection would
// cost it 0.5 MiB of resident runtime bookkeeping (measured: 1.4 to 1.9 MiB), and without
// one the heap would grow towards the Go runtime's 4 MiB minimum goal. So this is a plain
// fork (not vfork: the child runs on a copy of our stack) whose child makes only raw
// system calls on values computed before it, with every signal blocked around the fork,
// as the syscall package does, and its mask restored before the exec.
func forkExec(a *execArgs, devnull int) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	all := ^uint64(0)
	var old uint64
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return 0, e
	}
	pid, e := forkChild(a, devnull, &old)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	if e != 0 {
		return 0, e
	}
	return pid, nil
}

// forkChild forks; the child puts devnull on descriptors 0 and 1, restores the signal
// mask and execs, or exits 127. Nothing in the child may allocate, take a lock, grow the
// stack or write a pointer.
//
//go:nosplit
//go:norace
func forkChild(a *execArgs, devnull int, mask *uint64) (int, unix.Errno) {
	path := uintptr(unsafe.Pointer(a.path))
	argv := uintptr(unsafe.Pointer(&a.argv[0]))
	envv := uintptr(unsafe.Pointer(&a.envv[0]))
	maskp := uintptr(unsafe.Pointer(mask))
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 || r != 0 {
		return int(r), e
	}
	// The child.
	if _, _, e := unix.RawSyscall(unix.SYS_DUP3, uintptr(devnull), 0, 0); e != 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_DUP3, uintptr(devnull), 1, 0); e != 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, maskp, 0, 8, 0, 0)
	unix.RawSyscall(unix.SYS_EXECVE, path, argv, envv)
	unix.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	return 0, 0
}
