package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type execFlags struct {
	process, cwd, user, apparmor, label, pidFile, consoleSocket, cgroup string
	env, caps                                                           []string
	gids                                                                []string
	tty, detach, noNewPrivs, ignorePaused                               bool
	preserveFDs                                                         int
}

func execCmd() *command {
	var f execFlags
	cmd := &command{
		Use:   "exec [flags] CONTAINER_ID [COMMAND [ARG...]]",
		Short: "Run a new process inside a running container",
		Args:  minArgs(1),
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			p, err := f.build(r, args[0], args[1:])
			if err != nil {
				return err
			}
			if f.cgroup != "" {
				return fmt.Errorf("--cgroup: placing an exec'd process in a sub-cgroup is not supported yet")
			}
			o := runtime.ExecOpts{ConsoleSocket: f.consoleSocket, PidFile: f.pidFile, Detach: f.detach,
				PreserveFDs: f.preserveFDs, IgnorePaused: f.ignorePaused}
			var code int
			if p.Terminal && f.consoleSocket == "" && !f.detach {
				code, err = withTerminal(func(sock string) (int, error) {
					o.ConsoleSocket = sock
					return r.Exec(args[0], p, o)
				})
			} else {
				code, err = r.Exec(args[0], p, o)
			}
			if err != nil {
				return err
			}
			os.Exit(code)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVarP(&f.process, "process", "p", "", "path to a process.json (the OCI process object)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.StringVar(&f.cwd, "cwd", "", "working directory inside the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (NAME=value)")
	fl.StringVarP(&f.user, "user", "u", "", "UID[:GID] to run as")
	fl.StringArrayVarP(&f.gids, "additional-gids", "g", nil, "additional group ids")
	fl.StringArrayVarP(&f.caps, "cap", "c", nil, "add a capability")
	fl.BoolVar(&f.noNewPrivs, "no-new-privs", false, "set no_new_privs")
	fl.StringVar(&f.apparmor, "apparmor", "", "AppArmor profile for the process")
	fl.StringVar(&f.label, "process-label", "", "SELinux label for the process")
	fl.BoolVarP(&f.detach, "detach", "d", false, "do not wait for the process")
	fl.StringVar(&f.pidFile, "pid-file", "", "write the process's pid to this file")
	fl.StringVar(&f.consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	fl.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass this many extra descriptors (3, 4, ...)")
	fl.StringVar(&f.cgroup, "cgroup", "", "sub-cgroup to place the process in (not supported yet)")
	fl.BoolVar(&f.ignorePaused, "ignore-paused", false, "allow exec into a paused container")
	return cmd
}

// build makes the process: process.json as given, or the container's own process with the
// flags applied, as runc does.
func (f *execFlags) build(r *runtime.Runtime, id string, args []string) (*specs.Process, error) {
	if f.process != "" {
		b, err := os.ReadFile(f.process)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		p := &specs.Process{}
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("--process %s: not a valid OCI process object: %w", f.process, err)
		}
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("--process %s: args is empty", f.process)
		}
		if p.Cwd == "" {
			p.Cwd = "/"
		}
		return p, nil
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec: no command given (and no --process)")
	}
	spec, err := r.Spec(id)
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = f.tty
	p.ConsoleSize = nil
	p.Env = append(append([]string(nil), p.Env...), f.env...)
	if f.cwd != "" {
		p.Cwd = f.cwd
	}
	if f.user != "" {
		uid, gid, ok := strings.Cut(f.user, ":")
		u, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: a numeric UID[:GID]", f.user)
		}
		p.User.UID = uint32(u)
		if ok {
			g, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: a numeric UID[:GID]", f.user)
			}
			p.User.GID = uint32(g)
		}
	}
	for _, g := range f.gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--additional-gids %q: not a number", g)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
	}
	if len(f.caps) > 0 {
		c := &specs.LinuxCapabilities{}
		if p.Capabilities != nil {
			*c = *p.Capabilities
		}
		for _, name := range f.caps {
			c.Bounding = append(c.Bounding, name)
			c.Effective = append(c.Effective, name)
			c.Permitted = append(c.Permitted, name)
		}
		p.Capabilities = c
	}
	if f.noNewPrivs {
		p.NoNewPrivileges = true
	}
	if f.apparmor != "" {
		p.ApparmorProfile = f.apparmor
	}
	if f.label != "" {
		p.SelinuxLabel = f.label
	}
	return &p, nil
}
