package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// runInit is `berth run --init`'s pid 1: it runs the user's program as its child, passes
// every catchable signal on to it, reaps every orphan the container's processes leave
// behind, and exits with the program's status (128+N when signal N killed it). A program
// run directly as pid 1 would get neither: the kernel drops signals pid 1 has no handler
// for, and nobody would wait for the zombies.
func runInit(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		os.Stderr.WriteString("berth-init: no program to run\n")
		return 127
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	path := args[0]
	if !containsSlash(path) {
		found, ok := lookPath(path)
		if !ok {
			os.Stderr.WriteString("berth-init: " + path + ": executable file not found in $PATH\n")
			return 127
		}
		path = found
	}
	p, err := os.StartProcess(path, args, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		// Its own process group, so that a terminal's job-control signals reach it and not us.
		Sys: &syscall.SysProcAttr{Setpgid: true, Foreground: isTerminal(0), Ctty: 0},
	})
	if err != nil {
		os.Stderr.WriteString("berth-init: " + err.Error() + "\n")
		if os.IsNotExist(err) {
			return 127
		}
		return 126
	}
	child := p.Pid
	for s := range sigs {
		sig, ok := s.(syscall.Signal)
		if !ok {
			continue
		}
		if sig != syscall.SIGCHLD {
			if sig != syscall.SIGURG && sig != syscall.SIGPIPE {
				unix.Kill(child, sig)
			}
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 {
				break
			}
			if pid == child {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 0
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func lookPath(name string) (string, bool) {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == ':' {
			dir := path[start:i]
			start = i + 1
			if dir == "" {
				dir = "."
			}
			p := dir + "/" + name
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
				return p, true
			}
		}
	}
	return "", false
}
