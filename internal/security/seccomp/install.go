package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Install loads the filter with seccomp(SECCOMP_SET_MODE_FILTER).
//
// Without SECCOMP_FILTER_FLAG_TSYNC the filter binds to the calling thread
// only (and what it later creates or execs), so the caller must hold
// runtime.LockOSThread and exec on that thread. The kernel requires either
// no_new_privs or CAP_SYS_ADMIN in the caller's user namespace; Install does
// not set no_new_privs itself, that is the process spec's choice.
//
// When the profile uses SCMP_ACT_NOTIFY, Install returns the listener fd
// (close-on-exec, owned by the caller, normally handed to SendListener and
// closed); otherwise it returns -1.
func (f *Filter) Install() (listenerFd int, err error) {
	if f == nil || len(f.prog) == 0 {
		return -1, errors.New("seccomp: install: empty filter (use Compile)")
	}
	prog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		switch errno {
		case unix.EACCES:
			return -1, fmt.Errorf("seccomp: install filter: %w (the process needs no_new_privs or CAP_SYS_ADMIN)", errno)
		case unix.EINVAL:
			return -1, fmt.Errorf("seccomp: install filter (flags %#x, %d instructions): %w (a flag this kernel does not support?)", f.flags, len(f.prog), errno)
		case unix.ESRCH:
			return -1, fmt.Errorf("seccomp: install filter with TSYNC: %w (another thread has an incompatible filter)", errno)
		}
		return -1, fmt.Errorf("seccomp: install filter (flags %#x): %w", f.flags, errno)
	}
	if f.flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
		return int(r), nil
	}
	if f.flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 && r != 0 {
		return -1, fmt.Errorf("seccomp: install filter with TSYNC: thread %d has an incompatible filter", r)
	}
	return -1, nil
}

// SendListener connects to the unix socket at path (the profile's
// listenerPath) and sends the listener fd with SCM_RIGHTS, in one message
// whose payload is st as JSON, as the runtime spec describes. Empty
// st.Version and st.Fds are filled with specs.Version and ["seccompFd"]; the
// caller sets Metadata (the profile's listenerMetadata), Pid and State.
//
// The socket work runs on a new goroutine. While the caller holds
// LockOSThread, that goroutine cannot run on the caller's thread, and the Go
// runtime creates new threads from a clean template thread, so without TSYNC
// its syscalls are outside the filter: a profile may NOTIFY connect or sendmsg
// without deadlocking its own delivery.
func SendListener(path string, fd int, st specs.ContainerProcessState) error {
	if st.Version == "" {
		st.Version = specs.Version
	}
	if len(st.Fds) == 0 {
		st.Fds = []string{specs.SeccompFdName}
	}
	msg, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("seccomp: encoding container process state: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sendFd(path, fd, msg) }()
	return <-done
}

func sendFd(path string, fd int, msg []byte) error {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seccomp: socket for listener %s: %w", path, err)
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("seccomp: connect to listener socket %s: %w", path, err)
	}
	n, err := unix.SendmsgN(s, msg, unix.UnixRights(fd), nil, 0)
	if err != nil {
		return fmt.Errorf("seccomp: send listener fd to %s: %w", path, err)
	}
	// A stream socket may take the state in pieces; the fd rode on the first.
	for n < len(msg) {
		m, err := unix.Write(s, msg[n:])
		if err != nil {
			return fmt.Errorf("seccomp: send container state to %s: %w", path, err)
		}
		n += m
	}
	return nil
}
