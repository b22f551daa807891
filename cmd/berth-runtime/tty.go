package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// withTerminal runs fn with a console socket of its own and attaches this process's
// terminal to the container's pty: raw mode, input and output copied, window size kept in
// step. It is what `run` and `exec` do for a process.terminal without --console-socket.
func withTerminal(fn func(consoleSocket string) (int, error)) (int, error) {
	dir, err := os.MkdirTemp("", "berth-console-")
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
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

func receiveMaster(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
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
