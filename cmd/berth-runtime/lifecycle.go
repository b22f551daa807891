package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
	"golang.org/x/sys/unix"
)

type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (c *createFlags) register(cmd *command) {
	f := cmd.Flags()
	f.StringVarP(&c.bundle, "bundle", "b", ".", "path to the root of the bundle directory")
	f.StringVar(&c.pidFile, "pid-file", "", "write the container's init pid to this file")
	f.StringVar(&c.consoleSocket, "console-socket", "", "unix socket that receives the pty master when process.terminal is set")
	f.BoolVar(&c.noPivot, "no-pivot", false, "use chroot instead of pivot_root (for a rootfs on ramfs)")
	f.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	f.IntVar(&c.preserveFDs, "preserve-fds", 0, "pass this many extra descriptors (3, 4, ...) to the container")
}

func (c *createFlags) opts() runtime.CreateOpts {
	return runtime.CreateOpts{
		Bundle: c.bundle, PidFile: c.pidFile, ConsoleSocket: c.consoleSocket,
		NoPivot: c.noPivot, NoNewKeyring: c.noNewKeyring, PreserveFDs: c.preserveFDs,
	}
}

func createCmd() *command {
	var cf createFlags
	cmd := &command{
		Use:   "create [flags] CONTAINER_ID",
		Short: "Create a container and leave it waiting for start",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Create(args[0], cf.opts())
		},
	}
	cf.register(cmd)
	return cmd
}

func runCmd() *command {
	var cf createFlags
	var detach, keep bool
	cmd := &command{
		Use:   "run [flags] CONTAINER_ID",
		Short: "Create and start a container, and wait for it unless detached",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			if keep {
				return errors.New("--keep is not supported yet")
			}
			r.ExitAfterRun = true // main exits with the container's status
			o := cf.opts()
			// Read once, here, to know whether the process wants a terminal; create takes it
			// as read.
			if o.Spec, o.SpecJSON, err = runtime.ReadSpec(o.Bundle); err != nil {
				return fmt.Errorf("container %s: %w", args[0], err)
			}
			var code int
			if o.ConsoleSocket == "" && !detach && o.Spec.Process.Terminal {
				code, err = withTerminal(func(sock string) (int, error) {
					o.ConsoleSocket = sock
					return r.Run(args[0], o, false)
				})
			} else {
				code, err = r.Run(args[0], o, detach)
			}
			if err != nil {
				return err
			}
			os.Exit(code)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	cmd.Flags().BoolVar(&keep, "keep", false, "do not delete the container after it exits")
	return cmd
}

func startCmd() *command {
	return &command{
		Use:   "start CONTAINER_ID",
		Short: "Start the user's program of a created container",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Start(args[0])
		},
	}
}

func stateCmd() *command {
	return &command{
		Use:   "state CONTAINER_ID",
		Short: "Print the state of a container as JSON",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			st, err := r.State(args[0])
			if err != nil {
				return err
			}
			return printJSON(st)
		},
	}
}

func killCmd() *command {
	var all bool
	cmd := &command{
		Use:   "kill [flags] CONTAINER_ID [SIGNAL]",
		Short: "Send a signal (default SIGTERM) to a container's init",
		Args: func(cmd *command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("kill: expects a container id and an optional signal, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = parseSignal(args[1]); err != nil {
					return err
				}
			}
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Kill(args[0], sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process in the container")
	return cmd
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return unix.Signal(n), nil
	}
	if sig := unix.SignalNum("SIG" + trimSig(s)); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func deleteCmd() *command {
	var force bool
	cmd := &command{
		Use:   "delete [flags] CONTAINER_ID",
		Short: "Delete a container and everything it holds",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Delete(args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}

func listCmd() *command {
	var format string
	var quiet bool
	cmd := &command{
		Use:   "list [flags]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			states, err := r.List()
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, s := range states {
					fmt.Println(s.ID)
				}
			case format == "json":
				if states == nil {
					states = []*runtime.State{}
				}
				return printJSON(states)
			case format == "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
				for _, s := range states {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle,
						s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				return w.Flush()
			default:
				return fmt.Errorf("--format %q: must be table or json", format)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	cmd.Aliases = []string{"ls"}
	return cmd
}

func specCmd() *command {
	var bundle string
	var rootless bool
	cmd := &command{
		Use:   "spec [flags]",
		Short: "Write a hardened default config.json into the bundle",
		Args:  noArgs,
		RunE: func(cmd *command, args []string) error {
			path := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("spec: %s already exists; remove it first", path)
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("spec: %w", err)
			}
			defer f.Close()
			enc := newIndentEncoder(f)
			return enc.Encode(runtime.DefaultSpec(rootless))
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "write a config for an unprivileged user")
	return cmd
}
