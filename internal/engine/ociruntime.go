package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/runtime"
)

// ociRuntime is what the engine needs of an OCI runtime. The built-in one is the runtime
// library, called in-process; --runtime NAME runs a runc-compatible binary instead.
type ociRuntime interface {
	name() string
	// create sets the container up from bundle/config.json with the given stdio (or a
	// console socket) and returns its init's pid. spawn, if set, forks the init, and
	// spec is the config in memory (the built-in runtime only; another reads the bundle's).
	create(id, bundle string, stdio [3]*os.File, consoleSocket string, spawn runtime.Spawner, spec *specs.Spec) (int, error)
	start(id string) error
	kill(id string, sig unix.Signal, all bool) error
	// exec runs a process in the running container (see Engine.Exec).
	exec(id string, p *specs.Process, o ExecOptions) (int, error)
	// delete removes the runtime's record and the cgroup, killing what is left.
	delete(id string, force bool) error
	// cgroupPaths maps each hierarchy to the container's cgroup directory, as the
	// runtime recorded them (nil when it did not record them; the engine then reads
	// /proc/PID/cgroup).
	cgroupPaths(id string) map[string]string
}

func (e *Engine) ociRuntime(name string) (ociRuntime, error) {
	switch name {
	case "", "berth", "berth-runtime":
		rt, err := e.runtime()
		if err != nil {
			return nil, err
		}
		return &builtinRuntime{rt: rt, e: e}, nil
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("runtime %s: %w", name, err)
	}
	// Each runtime keeps its state in its own default root under the default berth root,
	// so `berth ns` and the runtime's own `list` see the containers; a non-default berth
	// runtime root (tests) gets a sibling directory per runtime.
	root := ""
	if e.RuntimeRoot != runtime.DefaultRoot {
		root = e.RuntimeRoot + "." + filepath.Base(name)
	}
	return &execRuntime{bin: bin, root: root}, nil
}

type builtinRuntime struct {
	rt *runtime.Runtime
	e  *Engine
}

func (b *builtinRuntime) name() string { return "berth" }

func (b *builtinRuntime) create(id, bundle string, stdio [3]*os.File, consoleSocket string, spawn runtime.Spawner, spec *specs.Spec) (int, error) {
	early := b.e.takeEarlyCgroup(id)
	o := runtime.CreateOpts{Bundle: bundle, Stdio: stdio, ConsoleSocket: consoleSocket, Spawn: spawn, Spec: spec, Cgroup: early}
	err := b.rt.Create(id, o)
	early.Release() // unless the create adopted it
	if err != nil {
		return 0, err
	}
	st, err := b.rt.State(id)
	if err != nil {
		return 0, err
	}
	return st.Pid, nil
}

func (b *builtinRuntime) start(id string) error { return b.rt.Start(id) }

func (b *builtinRuntime) kill(id string, sig unix.Signal, all bool) error {
	return b.rt.Kill(id, sig, all)
}

func (b *builtinRuntime) delete(id string, force bool) error {
	err := b.rt.Delete(id, force)
	if errors.Is(err, runtime.ErrNotExist) {
		// Never created, or its create failed: a cgroup made ahead for it may be left
		// if the process that made it died.
		b.rt.RemoveOrphanCgroup(id)
		return nil
	}
	return err
}

func (b *builtinRuntime) cgroupPaths(id string) map[string]string {
	var rec runtime.Record
	if readJSON(filepath.Join(b.rt.Root, id, "state.json"), &rec) != nil {
		return nil
	}
	return rec.CgroupPaths
}

// execRuntime runs a runc-compatible binary (runc, crun, berth-runtime).
type execRuntime struct {
	bin  string
	root string
}

func (x *execRuntime) name() string { return filepath.Base(x.bin) }

func (x *execRuntime) run(stdio [3]*os.File, args ...string) error {
	if x.root != "" {
		args = append([]string{"--root", x.root}, args...)
	}
	cmd := exec.Command(x.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if stdio[0] != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s %s: %s", x.name(), args[len(args)-2], msg)
	}
	return nil
}

func (x *execRuntime) create(id, bundle string, stdio [3]*os.File, consoleSocket string, _ runtime.Spawner, _ *specs.Spec) (int, error) {
	pidFile := filepath.Join(bundle, "init.pid")
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		abs, err := filepath.Abs(consoleSocket)
		if err != nil {
			return 0, err
		}
		args = append(args, "--console-socket", abs)
	}
	// The runtime's own errors go to a file: the container's stderr is its log.
	errFile, err := os.CreateTemp(bundle, "runtime-err-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(errFile.Name())
	defer errFile.Close()
	if x.root != "" {
		args = append([]string{"--root", x.root}, args...)
	}
	cmd := exec.Command(x.bin, append(args, id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	cmd.Args = append(cmd.Args[:1], append([]string{"--log", errFile.Name(), "--log-format", "text"}, cmd.Args[1:]...)...)
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(errFile.Name())
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = err.Error()
		}
		return 0, fmt.Errorf("%s create: %s", x.name(), msg)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s create: read --pid-file: %w", x.name(), err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (x *execRuntime) start(id string) error {
	return x.run([3]*os.File{}, "start", id)
}

func (x *execRuntime) kill(id string, sig unix.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	return x.run([3]*os.File{}, append(args, id, strconv.Itoa(int(sig)))...)
}

func (x *execRuntime) delete(id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	err := x.run([3]*os.File{}, append(args, id)...)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	return err
}

func (x *execRuntime) cgroupPaths(string) map[string]string { return nil }

// cgroupPathsOf reads a process's cgroups from /proc/PID/cgroup and finds each
// hierarchy's directory on the host, for runtimes that do not say where they put them.
func cgroupPathsOf(pid int) map[string]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	mounts := cgroupMounts()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, p := parts[1], parts[2]
		mnt, ok := mounts[ctrls]
		if !ok {
			continue
		}
		dir := filepath.Join(mnt, p)
		if ctrls == "" {
			out[""] = dir
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			out[c] = dir
		}
	}
	return out
}

// cgroupMounts maps each hierarchy's controller list ("cpu,cpuacct", "name=systemd", ""
// for cgroup2) to its mount point.
func cgroupMounts() map[string]string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, pf := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(pf) < 3 {
			continue
		}
		switch pf[0] {
		case "cgroup2":
			out[""] = f[4]
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(pf[2], ",") {
				switch o {
				case "rw", "ro", "nosuid", "nodev", "noexec", "relatime", "clone_children", "xattr", "cpuset_v2_mode":
				default:
					if !strings.HasPrefix(o, "release_agent=") {
						ctrls = append(ctrls, o)
					}
				}
			}
			key := strings.Join(ctrls, ",")
			if _, ok := out[key]; !ok {
				out[key] = f[4]
			}
		}
	}
	return out
}
