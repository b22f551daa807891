package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// withTerminal runs fn with a console socket of its own and attaches this process's
// terminal to the container's pty: raw mode, input and output copied, window size kept in
// step. It is what `run` and `exec` do for a process.terminal without --console-socket.
func withTerminal(fn func(consoleSocket string) (int, error)) (int, error) {
	// The copy from stdin blocks in read(2) holding a P; with the one P berth-runtime
	// starts with (package gostart/onep), the pty's output would wait for sysmon to take it back, up
	// to its 10 ms timer slack per keystroke. An interactive session gets the Ps the
	// runtime would have given it.
	var cpus unix.CPUSet
	if unix.SchedGetaffinity(0, &cpus) == nil && cpus.Count() > 1 {
		goruntime.GOMAXPROCS(cpus.Count())
	}
	dir, err := os.MkdirTemp("", "berth-console-")
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "console.sock")
	l, err := listenUnix(path)
	if err != nil {
		return -1, fmt.Errorf("console socket: %w", err)
	}
	defer l.Close()
	masters := make(chan *os.File, 1)
	go func() {
		master, err := receiveMaster(l)
		if err != nil {
			logMsg("warning", fmt.Sprintf("console: %v", err))
			close(masters)
			return
		}
		masters <- master
	}()
	var restore func()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		master, ok := <-masters
		if !ok {
			return
		}
		defer master.Close()
		in := int(os.Stdin.Fd())
		if term.IsTerminal(in) {
			if st, err := term.MakeRaw(in); err == nil {
				restore = func() { term.Restore(in, st) }
			}
			resize(in, master)
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, unix.SIGWINCH)
			go func() {
				for range winch {
					resize(in, master)
				}
			}()
		}
		go io.Copy(master, os.Stdin)
		io.Copy(os.Stdout, master) // ends with EIO once the last holder of the slave is gone
	}()
	code, err := fn(path)
	if err == nil {
		<-copied
	}
	if restore != nil {
		restore()
	}
	return code, err
}

func resize(from int, master *os.File) {
	if ws, err := unix.IoctlGetWinsize(from, unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// listenUnix listens on a unix socket at path. It is non-blocking, so that a goroutine
// waiting in accept parks in the netpoller and Close wakes it. (Package net would do the
// same at 0.1 MB more of binary, and so of peak RSS, for every command.)
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// receiveMaster accepts one connection on l and reads the pty master it carries.
func receiveMaster(l *os.File) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	conn := -1
	var aerr error
	if err := rc.Read(func(fd uintptr) bool {
		conn, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN && aerr != unix.EINTR
	}); err != nil {
		return nil, fmt.Errorf("accept on %s: %w", l.Name(), err)
	}
	if aerr != nil {
		return nil, fmt.Errorf("accept on %s: %w", l.Name(), aerr)
	}
	defer unix.Close(conn)
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	var oobn int
	for {
		_, oobn, _, _, err = unix.Recvmsg(conn, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read the console message: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no pty master in the console message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no pty master in the console message")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}
