package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-containers/berth/bench/harness"
	"golang.org/x/sys/unix"
)

// engine is a contender of sections 2 and 3: a container engine driven through its command
// line, with a private store so that the benchmark neither sees nor touches the host's
// images and containers.
type engine interface {
	name() string
	// version is the engine's version line, for the report.
	version() string
	// unavailable says why the engine cannot be measured on this host, or "" if it can.
	// It may start what the engine needs (a daemon); cleanup stops it.
	unavailable() string
	// prepare makes the image ref available locally from a rootfs tarball, so that no run
	// pulls (there is no network here).
	prepare(ref, rootfsTar string) error
	// runRm is a one-shot `run --rm` of ref with args, no network, never pulling.
	runRm(ref string, args ...string) harness.Cmd
	// runDetached starts a detached container called name; it prints the container's id.
	runDetached(name, ref string, args ...string) harness.Cmd
	// inspectPids is a command printing "ID PID" for each named container.
	inspectPids(names ...string) harness.Cmd
	// helperNames are the names (comm) of the processes the engine keeps on the host for
	// each container besides the container itself: a monitor such as conmon, a shim.
	helperNames() []string
	// daemons are the long-running processes shared by all containers (none if daemonless).
	daemons() []int
	// remove removes the named containers, running or not, at once (SIGKILL).
	remove(names ...string) harness.Cmd
	// list is a command printing the ids of all the engine's containers.
	list() harness.Cmd
	// cleanup removes every container, the engine's private store and stops anything it
	// started.
	cleanup() error
}

func withEnv(extra ...string) []string { return append(append([]string{}, harness.Env...), extra...) }

// berthEngine is berth's own engine, `berth run`: daemonless, one berth-monitor per
// container.
type berthEngine struct {
	bin string
	dir string
}

func (e *berthEngine) name() string { return "berth" }

func (e *berthEngine) version() string { return gitDescribe() }

func (e *berthEngine) cmd(args ...string) harness.Cmd {
	env := withEnv("BERTH_ROOT="+filepath.Join(e.dir, "root"), "BERTH_RUNTIME_ROOT="+filepath.Join(e.dir, "run"))
	if t := os.Getenv("BERTH_TRACE"); t != "" {
		// berth's own timestamps of every step, appended to that file (docs/benchmarks.md,
		// "Where berth's engine time goes"); a few µs per step.
		env = append(env, "BERTH_TRACE="+t)
	}
	return harness.Cmd{Argv: append([]string{e.bin}, args...), Env: env}
}

func (e *berthEngine) unavailable() string {
	for _, b := range []string{e.bin, filepath.Join(filepath.Dir(e.bin), "berth-monitor")} {
		if _, err := os.Stat(b); err != nil {
			return b + " is not built (make build)"
		}
	}
	if err := exec.Command(e.bin, "run", "--help").Run(); err != nil {
		return "`berth run` does not exist in " + e.bin
	}
	return ""
}

// berth's engine takes Docker's command line, so the forms below are Docker's.

func (e *berthEngine) prepare(ref, rootfsTar string) error {
	_, err := harness.Output(e.cmd("import", rootfsTar, ref))
	return err
}

func (e *berthEngine) runRm(ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "--rm", "--network", "none", "--pull", "never", ref}, args...)...)
}

func (e *berthEngine) runDetached(name, ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "-d", "--name", name, "--network", "none", "--pull", "never", ref}, args...)...)
}

func (e *berthEngine) inspectPids(names ...string) harness.Cmd {
	return e.cmd(append([]string{"inspect", "--format", "{{.Id}} {{.State.Pid}}"}, names...)...)
}

func (e *berthEngine) helperNames() []string { return []string{"berth-monitor"} }
func (e *berthEngine) daemons() []int        { return nil }

func (e *berthEngine) remove(names ...string) harness.Cmd {
	return e.cmd(append([]string{"rm", "--force"}, names...)...)
}

func (e *berthEngine) list() harness.Cmd { return e.cmd("ps", "-aq", "--no-trunc") }

func (e *berthEngine) cleanup() error {
	removeAllContainers(e)
	return removeTree(e.dir)
}

// podmanEngine is Podman: daemonless, one conmon per container, crun as its runtime. Its
// store is private (--root, --runroot, --tmpdir in a short temporary directory: conmon's
// attach socket path must fit in sun_path).
type podmanEngine struct {
	bin string
	dir string
}

func (e *podmanEngine) name() string { return "podman" }

func (e *podmanEngine) version() string {
	return strings.TrimPrefix(firstLine(e.bin, "--version"), "podman version ")
}

func (e *podmanEngine) cmd(args ...string) harness.Cmd {
	g := []string{e.bin, "--root", filepath.Join(e.dir, "r"), "--runroot", filepath.Join(e.dir, "rr"),
		"--tmpdir", filepath.Join(e.dir, "t"), "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
		"--events-backend", "none"}
	return harness.Cmd{Argv: append(g, args...), Env: withEnv("CONTAINERS_CONF=" + filepath.Join(e.dir, "containers.conf"))}
}

func (e *podmanEngine) unavailable() string {
	if e.bin == "" {
		return "podman is not installed (hack/deps-bench.sh)"
	}
	// As root Podman gives every container RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 and
	// 4194304, above this host's hard limits, which root cannot raise here (no
	// CAP_SYS_RESOURCE): crun's setrlimit fails. Docker's and berth's defaults inherit the
	// caller's limits; this gives Podman limits it may set.
	conf := "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n"
	if err := os.WriteFile(filepath.Join(e.dir, "containers.conf"), []byte(conf), 0o644); err != nil {
		return err.Error()
	}
	if out, err := harness.Output(e.cmd("info", "--format", "{{.Host.OCIRuntime.Name}}")); err != nil {
		return "podman info failed: " + err.Error()
	} else if strings.TrimSpace(out) == "" {
		return "podman info names no OCI runtime"
	}
	return ""
}

func (e *podmanEngine) prepare(ref, rootfsTar string) error {
	_, err := harness.Output(e.cmd("import", "-q", rootfsTar, ref))
	return err
}

// --cgroups=no-conmon keeps conmon in the caller's cgroup (by default Podman moves it to
// libpod_parent/conmon), so that the harness's CPU group sees its CPU; the container's
// cgroup is made as usual.
func (e *podmanEngine) runRm(ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "--rm", "--network", "none", "--pull", "never", "--cgroups", "no-conmon", ref}, args...)...)
}

func (e *podmanEngine) runDetached(name, ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "-d", "--name", name, "--network", "none", "--pull", "never", "--cgroups", "no-conmon", ref}, args...)...)
}

func (e *podmanEngine) inspectPids(names ...string) harness.Cmd {
	return e.cmd(append([]string{"inspect", "--format", "{{.Id}} {{.State.Pid}}"}, names...)...)
}

func (e *podmanEngine) helperNames() []string { return []string{"conmon"} }
func (e *podmanEngine) daemons() []int        { return nil }

// -t 0: kill at once, as `docker rm -f` and `berth rm -f` do (Podman's rm -f otherwise
// sends SIGTERM and waits 10 s, which a sleep as pid 1 ignores).
func (e *podmanEngine) remove(names ...string) harness.Cmd {
	return e.cmd(append([]string{"rm", "-f", "-t", "0"}, names...)...)
}

func (e *podmanEngine) list() harness.Cmd { return e.cmd("ps", "-aq", "--no-trunc") }

func (e *podmanEngine) cleanup() error {
	removeAllContainers(e)
	return removeTree(e.dir)
}

// dockerEngine is Docker: dockerd and containerd, started here in a private data and exec
// root with no bridge and no iptables, and one containerd-shim-runc-v2 per container, runc
// as the runtime.
type dockerEngine struct {
	client, dockerd string
	dir             string
	proc            *os.Process
	why             string
	started         bool
}

func (e *dockerEngine) name() string { return "docker" }

func (e *dockerEngine) version() string {
	out, err := harness.Output(e.cmd("version", "--format", "{{.Server.Version}} (containerd {{range .Server.Components}}{{if eq .Name \"containerd\"}}{{.Version}}{{end}}{{end}})"))
	if err != nil {
		return "unknown"
	}
	return "dockerd " + strings.TrimSpace(out)
}

func (e *dockerEngine) sock() string { return filepath.Join(e.dir, "docker.sock") }

func (e *dockerEngine) cmd(args ...string) harness.Cmd {
	return harness.Cmd{Argv: append([]string{e.client, "-H", "unix://" + e.sock()}, args...),
		Env: withEnv("DOCKER_CONFIG=" + filepath.Join(e.dir, "client"))}
}

// unavailable starts dockerd (which starts its containerd) and waits until it answers.
func (e *dockerEngine) unavailable() string {
	if e.started || e.why != "" {
		return e.why
	}
	if e.client == "" || e.dockerd == "" {
		e.why = "docker.io (dockerd and the docker client) is not installed (hack/deps-bench.sh)"
		return e.why
	}
	log, err := os.Create(filepath.Join(e.dir, "dockerd.log"))
	if err != nil {
		e.why = err.Error()
		return e.why
	}
	defer log.Close()
	args := []string{"dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--userland-proxy=false", "--data-root", filepath.Join(e.dir, "data"), "--exec-root", filepath.Join(e.dir, "exec"),
		"-H", "unix://" + e.sock(), "--pidfile", filepath.Join(e.dir, "docker.pid"), "--log-level", "warn"}
	e.proc, err = os.StartProcess(e.dockerd, args, &os.ProcAttr{Env: harness.Env, Files: []*os.File{nil, log, log},
		Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		e.why = "dockerd could not be started: " + err.Error()
		return e.why
	}
	e.started = true
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := harness.Output(e.cmd("version", "--format", "{{.Server.Version}}")); err == nil {
			return ""
		}
		var ws unix.WaitStatus
		if pid, _ := unix.Wait4(e.proc.Pid, &ws, unix.WNOHANG, nil); pid == e.proc.Pid {
			e.started, e.proc = false, nil
			e.why = fmt.Sprintf("dockerd exited (%v) while starting: %s", ws.ExitStatus(), logTail(filepath.Join(e.dir, "dockerd.log")))
			return e.why
		}
		if time.Now().After(deadline) {
			e.why = "dockerd did not answer within 30 s: " + logTail(filepath.Join(e.dir, "dockerd.log"))
			e.stopDaemon()
			return e.why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

func (e *dockerEngine) prepare(ref, rootfsTar string) error {
	_, err := harness.Output(e.cmd("import", rootfsTar, ref))
	return err
}

func (e *dockerEngine) runRm(ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "--rm", "--network", "none", "--pull", "never", ref}, args...)...)
}

func (e *dockerEngine) runDetached(name, ref string, args ...string) harness.Cmd {
	return e.cmd(append([]string{"run", "-d", "--name", name, "--network", "none", "--pull", "never", ref}, args...)...)
}

func (e *dockerEngine) inspectPids(names ...string) harness.Cmd {
	return e.cmd(append([]string{"inspect", "--format", "{{.Id}} {{.State.Pid}}"}, names...)...)
}

// comm is truncated to 15 characters: containerd-shim-runc-v2 shows as containerd-shim.
func (e *dockerEngine) helperNames() []string { return []string{"containerd-shim"} }

func (e *dockerEngine) daemons() []int {
	if e.proc == nil {
		return nil
	}
	pids := []int{e.proc.Pid}
	// dockerd's own containerd is its child.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", e.proc.Pid, e.proc.Pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil && comm(p) == "containerd" {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

func (e *dockerEngine) remove(names ...string) harness.Cmd {
	return e.cmd(append([]string{"rm", "-f"}, names...)...)
}

func (e *dockerEngine) list() harness.Cmd { return e.cmd("ps", "-aq", "--no-trunc") }

func (e *dockerEngine) stopDaemon() {
	if e.proc == nil {
		return
	}
	e.proc.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		e.proc.Kill()
		<-done
	}
	e.proc, e.started = nil, false
}

func (e *dockerEngine) cleanup() error {
	if e.started {
		removeAllContainers(e)
	}
	e.stopDaemon()
	harness.ReapOrphans()
	return removeTree(e.dir)
}

// removeAllContainers removes whatever the engine still lists, in one command.
func removeAllContainers(e engine) {
	out, err := harness.Output(e.list())
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-bench: %s: list containers: %v\n", e.name(), err)
		return
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := harness.Run(e.remove(ids...)); err != nil {
			fmt.Fprintf(os.Stderr, "berth-bench: %s: remove %d containers: %v\n", e.name(), len(ids), err)
		}
	}
	harness.ReapOrphans()
}

// removeTree detaches every mount under dir (overlay roots, shm, the engines' own binds)
// and removes it.
func removeTree(dir string) error {
	if dir == "" {
		return nil
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		lines := strings.Split(string(b), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			f := strings.Fields(lines[i])
			if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// findHelpers maps each container id to the pids of the processes named one of names whose
// command line has that id as an argument (berth-monitor's, conmon's -c, the shim's -id).
func findHelpers(names []string, ids map[string]bool) map[string][]int {
	out := map[string][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		c := comm(pid)
		match := false
		for _, n := range names {
			match = match || c == n
		}
		if !match {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		for _, a := range strings.Split(string(raw), "\x00") {
			if ids[a] {
				out[a] = append(out[a], pid)
				break
			}
		}
	}
	return out
}

// engines are the contenders of sections 2 and 3, berth first, each with a private store.
func engines(cfg *config) ([]engine, error) {
	tmp := func(prefix string) (string, error) { return os.MkdirTemp("", prefix) }
	bd := filepath.Join(cfg.work, "engine-berth")
	if err := os.MkdirAll(bd, 0o700); err != nil {
		return nil, err
	}
	// Podman and Docker put sockets under their roots: short paths.
	pd, err := tmp("bbp-")
	if err != nil {
		return nil, err
	}
	dd, err := tmp("bbd-")
	if err != nil {
		os.RemoveAll(pd)
		return nil, err
	}
	client := ""
	// Debian's client (docker.io) speaks the daemon's API version; prefer it to any other
	// docker on $PATH.
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		client = "/usr/bin/docker"
	} else if p, err := exec.LookPath("docker"); err == nil {
		client = p
	}
	find := func(n string) string { p, _ := exec.LookPath(n); return p }
	return []engine{
		&berthEngine{bin: cfg.bin("berth"), dir: bd},
		&podmanEngine{bin: find("podman"), dir: pd},
		&dockerEngine{client: client, dockerd: find("dockerd"), dir: dd},
	}, nil
}
