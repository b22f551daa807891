package runtime

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOpts are the options of `exec` besides the process itself.
type ExecOpts struct {
	ConsoleSocket string
	PidFile       string
	Detach        bool
	PreserveFDs   int
	IgnorePaused  bool
	Stdio         [3]*os.File
}

// Exec starts p in a running container: in every one of its namespaces, in its cgroup,
// under its security profile (seccomp from the container's config; capabilities, user and
// no_new_privs from p). Unless detached it waits and returns the process's exit status.
func (r *Runtime) Exec(id string, p *specs.Process, o ExecOpts) (int, error) {
	if p == nil || len(p.Args) == 0 {
		return -1, fmt.Errorf("container %s: exec needs a command", id)
	}
	if p.Terminal && o.ConsoleSocket == "" {
		return -1, fmt.Errorf("container %s: a terminal needs --console-socket", id)
	}
	h, err := r.lock(id, true)
	if err != nil {
		return -1, err
	}
	rec, err := h.read()
	if err != nil {
		h.unlock()
		return -1, err
	}
	st := r.status(h, rec)
	spec, err := h.linuxSpec()
	h.unlock()
	if err != nil {
		return -1, err
	}
	switch {
	case st == StatusRunning, st == StatusCreated:
	case st == StatusPaused && o.IgnorePaused:
	default:
		return -1, fmt.Errorf("container %s: cannot exec in a container that is %s", id, st)
	}
	// Join every namespace of the init; the C stage orders them (user first, mount last).
	plan := &namespaces.Plan{}
	for _, t := range namespaces.All {
		self, err1 := namespaces.Inode(os.Getpid(), t.Proc)
		theirs, err2 := namespaces.Inode(rec.Pid, t.Proc)
		if err2 != nil {
			return -1, fmt.Errorf("container %s: %w", id, err2)
		}
		if err1 == nil && self == theirs {
			continue // shared with us: nothing to join
		}
		plan.Join = append(plan.Join, namespaces.JoinTarget{Type: t, Path: fmt.Sprintf("/proc/%d/ns/%s", rec.Pid, t.Proc)})
	}
	if !Alive(rec.Pid, rec.InitStartTime) {
		return -1, fmt.Errorf("container %s: its init exited while exec was starting", id)
	}
	filter, err := r.compileSeccomp(spec.Linux.Seccomp)
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", id, err)
	}
	ec := &creation{r: r, rec: rec, spec: &specs.Spec{Version: spec.Version, Process: p, Linux: spec.Linux,
		Root: spec.Root, Annotations: spec.Annotations}, plan: plan, seccomp: filter}
	ec.opts = CreateOpts{ConsoleSocket: o.ConsoleSocket, PreserveFDs: o.PreserveFDs, Stdio: o.Stdio}
	if !o.Detach {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return -1, fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
		}
	}
	pid, err := ec.startExec()
	if err != nil {
		return -1, fmt.Errorf("container %s: exec %s: %w", id, p.Args[0], err)
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return -1, fmt.Errorf("--pid-file: %w", err)
		}
	}
	if o.Detach {
		return 0, nil
	}
	return reap(pid), nil
}

// startExec runs the exec'd process's two stages and returns its pid once it has exec'd.
func (c *creation) startExec() (int, error) {
	cg, err := cgroups.Load(c.rec.CgroupPaths)
	if err != nil {
		return 0, err
	}
	c.cg = cg
	defer func() {
		if c.sock != nil {
			c.sock.Close()
		}
	}()
	ic := &initConfig{
		ID: c.rec.ID, Spec: c.spec, Exec: true, PreserveFDs: c.opts.PreserveFDs, ConsoleFD: -1, FifoFD: -1,
		UserNS: c.plan.Has(specs.UserNamespace), Seccomp: c.seccomp,
	}
	pid, err := c.spawn(ic)
	if err != nil {
		return 0, err
	}
	// The process reports an error, or exec closes its end of the socket: end of file
	// means the user's program is running.
	for {
		var reply initReply
		fds, err := readFrameFDs(c.sock, &reply)
		if errors.Is(err, errNoWord) {
			return pid, nil
		}
		if err != nil {
			return 0, err
		}
		if reply.Listener {
			if err := c.forwardListener(fds); err != nil {
				return 0, err
			}
			continue
		}
		for _, w := range reply.Warnings {
			c.r.warn("container %s: exec: %s", c.rec.ID, w)
		}
		if reply.Error != "" {
			return 0, errors.New(reply.Error)
		}
	}
}
