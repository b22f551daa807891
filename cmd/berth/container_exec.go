package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine"
)

func registerExecCommands() {
	rootCmd.AddCommand(newExecCmd(), newTopCmd())
}

func newExecCmd() *cobra.Command {
	var o engine.ExecOptions
	var interactive bool
	var detachKeys string
	var env, envFile []string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  requireArgs(2, "Execute a command in a running container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			if o.Tty && interactive && !isTerminal(os.Stdin) {
				return errors.New("the input device is not a TTY")
			}
			keys, err := parseDetachKeys(detachKeys)
			if err != nil {
				return err
			}
			if o.Env, err = readEnv(envFile, env); err != nil {
				return err
			}
			o.Cmd = args[1:]
			devnull, err := os.Open(os.DevNull)
			if err != nil {
				return err
			}
			defer devnull.Close()
			o.Stdio = [3]*os.File{devnull, os.Stdout, os.Stderr}
			if interactive {
				o.Stdio[0] = os.Stdin
			}
			if o.Detach {
				o.Stdio = [3]*os.File{devnull, devnull, devnull}
			}
			var code int
			if o.Tty {
				code, err = execTTY(e, args[0], o, interactive, keys)
			} else {
				code, err = e.Exec(args[0], o)
			}
			if err != nil {
				return err
			}
			return &exitError{code: code}
		},
	}
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.BoolVarP(&o.Detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&o.Tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&envFile, "env-file", nil, "Read in a file of environment variables")
	fl.StringVarP(&o.User, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	fl.StringVarP(&o.WorkingDir, "workdir", "w", "", "Working directory inside the container")
	fl.BoolVar(&o.Privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Override the key sequence for detaching a container")
	return cmd
}

// execTTY runs the exec with a pty: the runtime sends the master to our console socket,
// and we copy between it and our terminal, in raw mode, passing window sizes on. Typing
// the detach keys leaves the process running: its terminal goes to a holder process
// (engine.HoldPty) and we exit 0, as Docker's exec does.
func execTTY(e *engine.Engine, ref string, o engine.ExecOptions, interactive bool, keys []byte) (int, error) {
	dir, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return -1, fmt.Errorf("console socket: %w", err)
	}
	defer l.Close()
	o.ConsoleSocket = sock
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := e.Exec(ref, o)
		done <- result{code, err}
		l.Close()
	}()
	masterc := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			masterc <- nil
			return
		}
		defer conn.Close()
		buf := make([]byte, 256)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			masterc <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) == 0 {
			masterc <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) == 0 {
			masterc <- nil
			return
		}
		masterc <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	var master *os.File
	select {
	case master = <-masterc:
	case r := <-done:
		if r.err != nil {
			return -1, r.err
		}
		master = <-masterc
	}
	if master == nil {
		r := <-done
		if r.err != nil {
			return -1, r.err
		}
		return r.code, nil
	}
	defer master.Close()
	if o.Detach {
		r := <-done
		return r.code, r.err
	}
	resize := func() {
		for _, f := range []*os.File{os.Stdout, os.Stdin} {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
				return
			}
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			resize()
		}
	}()
	detached := make(chan struct{})
	if interactive {
		if isTerminal(os.Stdin) {
			if restore, err := makeRaw(int(os.Stdin.Fd())); err == nil {
				defer restore()
			}
		}
		go func() {
			df := &detachFilter{keys: keys}
			buf := make([]byte, 32<<10)
			for {
				n, err := os.Stdin.Read(buf)
				if n > 0 {
					data, detach := df.feed(buf[:n])
					if len(data) > 0 {
						if _, err := master.Write(data); err != nil {
							return
						}
					}
					if detach {
						close(detached)
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	copied := make(chan struct{})
	go func() {
		// Ends with EIO once the process (and whatever shares its terminal) is gone.
		io.Copy(os.Stdout, master)
		close(copied)
	}()
	select {
	case r := <-done:
		<-copied
		return r.code, r.err
	case <-detached:
		if err := e.HoldPty(master); err != nil {
			return 125, err
		}
		return 0, nil
	}
}

func newTopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  requireArgs(1, "Display the running processes of a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			header, lines, err := e.Top(args[0], args[1:])
			if err != nil {
				return err
			}
			fmt.Println(header)
			for _, l := range lines {
				fmt.Println(l)
			}
			return nil
		},
	}
}
