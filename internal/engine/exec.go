package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/runtime"
)

// ExecOptions are `berth exec`'s.
type ExecOptions struct {
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
	Tty        bool
	Detach     bool
	Privileged bool
	// Stdio is the process's stdin, stdout and stderr (not used with Tty).
	Stdio [3]*os.File
	// ConsoleSocket receives the pty master when Tty is set.
	ConsoleSocket string
	// PidFile, if set, receives the process's pid once it runs (health checks use it).
	PidFile string
}

// ExecError is an exec that could not start; Code is Docker's (126, 127).
type ExecError struct {
	Code int
	Err  error
}

func (e *ExecError) Error() string { return e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode makes the CLI exit with Docker's code.
func (e *ExecError) ExitCode() int { return e.Code }

// Exec runs a process in a running container, through the runtime (in-process for the
// built-in one): every namespace, the cgroup, and the container's security profile, with
// its environment and capabilities. It returns the process's exit status unless detached.
func (e *Engine) Exec(ref string, o ExecOptions) (int, error) {
	if len(o.Cmd) == 0 {
		return -1, &UsageError{Msg: "exec needs a command"}
	}
	l, err := e.lock(ref, true)
	if err != nil {
		return -1, err
	}
	c, err := l.readContainer()
	if err != nil {
		l.unlock()
		return -1, err
	}
	st, err := l.readState()
	if err != nil {
		l.unlock()
		return -1, err
	}
	// The config of the running container: the built-in runtime keeps it in its state
	// directory, another runtime reads the bundle's (and so did berth before).
	var spec specs.Spec
	specErr := readJSON(filepath.Join(e.RuntimeRoot, c.ID, "config.json"), &spec)
	if specErr != nil {
		specErr = readJSON(l.path("config.json"), &spec)
	}
	l.unlock()
	if st.Pid == 0 || !alive(st.Pid, st.PidStart) {
		return -1, messagef("Container %s is not running", c.ID)
	}
	if specErr != nil || spec.Process == nil {
		return -1, fmt.Errorf("container %s: read its config: %v", short(c.ID), specErr)
	}
	if cg, err := e.cgroupOf(c, st); err == nil {
		if frozen, _ := cg.Frozen(); frozen {
			return -1, messagef("Container %s is paused, unpause the container before exec", c.ID)
		}
	}
	p := &specs.Process{
		Terminal:        o.Tty,
		Args:            o.Cmd,
		Env:             append(append([]string{}, spec.Process.Env...), o.Env...),
		Cwd:             spec.Process.Cwd,
		User:            spec.Process.User,
		Capabilities:    spec.Process.Capabilities,
		NoNewPrivileges: spec.Process.NoNewPrivileges,
		Rlimits:         spec.Process.Rlimits,
		ApparmorProfile: spec.Process.ApparmorProfile,
		SelinuxLabel:    spec.Process.SelinuxLabel,
	}
	if o.Tty && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	if o.User != "" {
		// Resolved in the container's view of its files.
		u, err := image.ResolveUser(fmt.Sprintf("/proc/%d/root", st.Pid), o.User)
		if err != nil {
			return -1, err
		}
		p.User = u
	}
	if o.Privileged {
		caps := capabilities(&HostConfig{Privileged: true})
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return -1, err
	}
	code, err := rt.exec(c.ID, p, o)
	if err != nil {
		return -1, &ExecError{Code: StartErrorCode(err), Err: err}
	}
	return code, nil
}

func (b *builtinRuntime) exec(id string, p *specs.Process, o ExecOptions) (int, error) {
	return b.rt.Exec(id, p, runtime.ExecOpts{Stdio: o.Stdio, ConsoleSocket: o.ConsoleSocket, Detach: o.Detach, PidFile: o.PidFile})
}

func (x *execRuntime) exec(id string, p *specs.Process, o ExecOptions) (int, error) {
	f, err := os.CreateTemp("", "berth-exec-*.json")
	if err != nil {
		return -1, err
	}
	defer os.Remove(f.Name())
	err = json.NewEncoder(f).Encode(p)
	f.Close()
	if err != nil {
		return -1, err
	}
	args := []string{}
	if x.root != "" {
		args = append(args, "--root", x.root)
	}
	args = append(args, "exec", "--process", f.Name())
	if o.Detach {
		args = append(args, "--detach")
	}
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.Tty {
		abs, err := filepath.Abs(o.ConsoleSocket)
		if err != nil {
			return -1, err
		}
		args = append(args, "--tty", "--console-socket", abs)
	}
	cmd := exec.Command(x.bin, append(args, id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdio[0], o.Stdio[1], o.Stdio[2]
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("%s exec: %w", x.name(), err)
	}
	return 0, nil
}

// Top lists the container's processes as the host's ps shows them (Docker's `top`):
// ps runs with psArgs (default -ef) and only the lines of the container's pids are kept.
func (e *Engine) Top(ref string, psArgs []string) (header string, lines []string, err error) {
	info, err := e.Inspect(ref)
	if err != nil {
		return "", nil, err
	}
	if !info.Running() {
		return "", nil, messagef("Container %s is not running", info.Container.ID)
	}
	cg, err := e.cgroupOf(info.Container, &info.State)
	if err != nil {
		return "", nil, err
	}
	pids, err := cg.Pids()
	if err != nil {
		return "", nil, fmt.Errorf("container %s: list processes: %w", short(info.Container.ID), err)
	}
	in := map[string]bool{}
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return "", nil, fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	all := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(all) == 0 {
		return "", nil, errors.New("ps printed nothing")
	}
	header = all[0]
	col := -1
	for i, f := range strings.Fields(header) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return "", nil, messagef("Couldn't find PID field in ps output")
	}
	for _, line := range all[1:] {
		f := strings.Fields(line)
		if len(f) > col && in[f[col]] {
			lines = append(lines, line)
		}
	}
	return header, lines, nil
}
