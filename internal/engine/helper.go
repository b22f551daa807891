package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/engine/monitor"
	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/snapshot"
	"github.com/berth-containers/berth/internal/network"
	"github.com/berth-containers/berth/internal/runtime"
)

// IsHelper tells whether this process was started by berth-monitor as its helper; the
// berth binary's main calls RunHelper then, before anything else.
func IsHelper() bool { return os.Getenv(monitor.HelperEnv) != "" }

// RunHelper does the monitor's bidding (see package monitor) and returns the exit code.
// The engine root and runtime root come from $BERTH_ROOT and $BERTH_RUNTIME_ROOT, which
// the engine sets for the monitor.
func RunHelper() int {
	kind := os.Getenv(monitor.HelperEnv)
	os.Unsetenv(monitor.HelperEnv)
	if kind == helperHold {
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	if strings.HasPrefix(kind, usernsPrefix) {
		return runUserNSHelper(kind)
	}
	if len(os.Args) != 2 {
		fmt.Println("125 helper: want one argument, the container id")
		return 1
	}
	id := os.Args[1]
	e, err := Open(os.Getenv("BERTH_ROOT"), os.Getenv("BERTH_RUNTIME_ROOT"))
	if err != nil {
		fmt.Printf("125 %v\n", err)
		return 1
	}
	// Warnings go to the monitor's log (our stderr is the status pipe).
	e.Warn = func(msg string) {}
	switch kind {
	case monitor.HelperStart, monitor.HelperRestart:
		stdio := [3]*os.File{os.NewFile(3, "stdin"), os.NewFile(4, "stdout"), os.NewFile(5, "stderr")}
		for _, f := range stdio {
			unix.CloseOnExec(int(f.Fd()))
		}
		pid, stopped, err := e.helperStart(id, kind == monitor.HelperRestart, stdio)
		switch {
		case err != nil:
			fmt.Printf("%d %s\n", StartErrorCode(err), oneLine(err.Error()))
			return 1
		case stopped:
			fmt.Println("stopped")
		default:
			fmt.Printf("ok %d\n", pid)
		}
	case monitor.HelperExited:
		res, err := e.helperExited(id)
		if err != nil {
			fmt.Printf("error %s\n", oneLine(err.Error()))
			return 1
		}
		fmt.Println(res)
	default:
		fmt.Printf("125 helper: unknown kind %q\n", kind)
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// StartErrorCode is Docker's exit code for a container that could not start: 127 when
// the program was not found, 126 when it could not be run, 125 otherwise.
func StartErrorCode(err error) int {
	msg := err.Error()
	if !strings.Contains(msg, "process.args") && !strings.Contains(msg, "exec") {
		return 125
	}
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "is a directory"),
		strings.Contains(msg, "is not executable"), strings.Contains(msg, "exec format error"):
		return 126
	}
	return 125
}

// helperStart creates and starts the container for its monitor (which is our parent), and
// returns the init's pid. With restart, a container stopped by the user meanwhile is not
// started (stopped is true). A first start that the berth command driving it left
// halfway (it was killed) is finished if its init was created, else redone.
func (e *Engine) helperStart(id string, restart bool, stdio [3]*os.File) (pid int, stopped bool, err error) {
	l, err := e.lockID(id, false)
	if err != nil {
		return 0, false, err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return 0, false, err
	}
	if restart && st.ManualStop {
		return 0, true, nil
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return 0, false, err
	}
	if !restart {
		if b, ok := rt.(*builtinRuntime); ok {
			// A first start by the monitor with the built-in runtime takes over from a
			// berth that was killed, perhaps in the middle of the runtime's create.
			b.rt.RemoveAbandoned()
		}
		if pid, ok := e.resumeStart(l, c, st, rt); ok {
			return pid, false, nil
		}
	}
	pid, err = e.startLocked(l, c, st, rt, stdio, nil, os.Getppid())
	return pid, false, err
}

// startLocked starts the container, whose directory l is locked: whatever a run whose
// exit was never handled left is torn down first; a failure is torn down and recorded.
// link is the monitor's spawn socket when this process drives the create for the
// monitor monPid, nil in the monitor's helper (monPid is then our parent).
func (e *Engine) startLocked(l *lockedDir, c *Container, st *State, rt ociRuntime, stdio [3]*os.File, link *monitorLink, monPid int) (int, error) {
	if st.Pid > 0 && alive(st.Pid, st.PidStart) {
		return 0, fmt.Errorf("container %s is already running", short(c.ID))
	}
	// Whatever a run whose exit was never handled left (its monitor was killed).
	if e.leftovers(l, c, st) {
		e.teardown(l, c, st, rt)
	}
	os.Remove(l.path(monitor.ExitFile))

	pid, err := e.startRun(l, c, st, rt, stdio, link, monPid)
	if err != nil {
		e.teardown(l, c, st, rt)
		st.Error = err.Error()
		st.ExitCode = StartErrorCode(err)
		if st.Status != StatusCreated {
			st.Status = StatusExited
		}
		st.Pid, st.PidStart = 0, 0
		if werr := l.writeState(st); werr != nil {
			e.warn("%v", werr)
		}
		return 0, err
	}
	return pid, nil
}

func (e *Engine) startRun(l *lockedDir, c *Container, st *State, rt ociRuntime, stdio [3]*os.File, link *monitorLink, monPid int) (int, error) {
	trace("H start")
	// A cgroup made ahead that the runtime's create did not take (a start that failed
	// before it) goes now.
	defer e.releaseEarlyCgroup(c.ID)
	sn, err := e.snapshotter()
	if err != nil {
		return 0, err
	}
	snap, err := sn.Get(c.ID)
	if err != nil {
		return 0, err
	}
	// The snapshot is mounted beside the rest of the start's preparation: the record's
	// write, the network's set-up, the spec (which reads the image's users through the
	// snapshot's layers) and the runtime's create up to the init's fork, which waits for
	// it (the mount is about 0.2 ms of the kernel's). What needs the mounted tree waits
	// sooner; every return waits too, so that a teardown after a failure finds it mounted
	// or not, never being mounted.
	waitMounted := func() error { return nil }
	pending := false
	if !isMounted(snap.Rootfs) && !e.runtimeMountsRoot(snap) {
		mounted := make(chan error, 1)
		go func() {
			if c.UserNSMap != nil && snap.Driver == "overlay" {
				mounted <- e.mountIDMapped(snap.Lower, snap.Upper, snap.Work, snap.Rootfs, c.UserNSMap)
				return
			}
			// An --rm container's writes go with it: no sync of the upper filesystem.
			mounted <- snap.MountWith("", c.HostConfig.AutoRemove)
		}()
		waitMounted = sync.OnceValue(func() error {
			err := <-mounted
			trace("H mounted")
			return err
		})
		pending = true
	}
	defer waitMounted()
	// Recorded before anything else is made, so that a helper killed from here on leaves
	// a record that says what to undo (a teardown unmounts only what is mounted).
	st.Mounted = true
	st.Runtime = rt.name()
	if err := l.writeState(st); err != nil {
		return 0, err
	}
	in := specInputs{Rootfs: snap.Rootfs}
	if e.runtimeMountsRoot(snap) {
		if in.UserDB, err = e.userDBView(snap, l.path("userdb")); err != nil {
			return 0, err
		}
	}
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		if in.InitBinary, err = e.monitorExe(); err != nil {
			return 0, fmt.Errorf("--init: %w", err)
		}
	}
	if in.Modes, err = e.resolveNsModes(l, c); err != nil {
		return 0, err
	}
	var ns *NetworkState
	var hold *nsHolder
	if e.rootless {
		ns, hold, err = e.setupRootlessNetwork(l, c, &in)
		if hold != nil {
			defer hold.release()
		}
	} else {
		ns, err = e.setupNetwork(l, c, st, &in)
	}
	trace("H network")
	if err != nil {
		return 0, err
	}
	st.Network = ns
	if c.UserNSMap != nil || hasVolumeMounts(c) {
		// Permissions for the user namespace's root, an empty volume's copy of the
		// image's files: both on the mounted tree.
		if err := waitMounted(); err != nil {
			return 0, err
		}
	}
	if err := e.populateVolumesOf(c, snap); err != nil {
		return 0, err
	}
	if pending {
		in.ReadFile = func(p string) ([]byte, error) {
			b, err := snap.ReadFile(p)
			if errors.Is(err, snapshot.ErrSymlinkInPath) {
				// Resolved as the mounted tree resolves it.
				if err := waitMounted(); err != nil {
					return nil, err
				}
				return image.ReadInRoot(snap.Rootfs, p)
			}
			return b, err
		}
	}
	if c.UserNSMap != nil {
		paths := []string{snap.Rootfs}
		for _, f := range in.Files {
			paths = append(paths, f)
		}
		if in.Modes.shm != "" {
			paths = append(paths, in.Modes.shm)
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				paths = append(paths, m.Source)
			}
		}
		if err := e.allowTraversal(paths...); err != nil {
			return 0, err
		}
	}
	spec, err := e.buildSpec(c, in)
	if err != nil {
		return 0, err
	}
	if hold != nil {
		if err := rootlessSpec(spec, hold, in.HostNet, c.ID); err != nil {
			return 0, err
		}
		rootlessRootfsSpec(spec, snap)
	}
	if in.LoUp && rt.name() == "berth" {
		// The init sets lo up itself, as it sets up its namespaces; another runtime's
		// container gets it from here once created (loUpIn below).
		spec.Annotations[runtime.AnnotationLoopback] = "up"
	}
	if rt.name() != "berth" {
		// runc and crun check the version they were built for.
		spec.Version = "1.0.2"
	}
	if rt.name() != "berth" {
		// The built-in runtime takes the spec in memory, and keeps it in its state
		// directory (where Exec reads it); another runtime reads the bundle's.
		if err := writeJSON(l.path("config.json"), spec); err != nil {
			return 0, err
		}
	}
	console := ""
	if c.Config.Tty {
		// The helper runs in the container's directory; this process reaches it through
		// the lock's descriptor (a socket path has 108 bytes at most).
		console = monitor.ConsoleSocket
		if link != nil {
			console = fmt.Sprintf("/proc/self/fd/%d/%s", l.f.Fd(), monitor.ConsoleSocket)
		}
	}
	var spawn runtime.Spawner
	if link != nil {
		// The monitor is still starting (a Go program's start, 0.5-0.8 ms after the spec
		// is built): without a console, the runtime's create does its part up to the fork
		// meanwhile, and the spawn waits for it. With one, the runtime dials the monitor's
		// console socket before the fork.
		if console != "" {
			if err := link.waitReady(); err != nil {
				return 0, err
			}
		}
		spawn = link.spawn
	}
	if pending {
		// The init mounts and pivots into the tree: forked only once it is mounted. The
		// built-in runtime forks it through spawn; another runtime's create (runc's, say)
		// forks its own, so it waits before it.
		if rt.name() != "berth" || spawn == nil {
			if err := waitMounted(); err != nil {
				return 0, err
			}
		} else {
			fork := spawn
			spawn = func(exe *os.File, argv, env []string, files []*os.File, cgroupFD int) (*os.Process, error) {
				if err := waitMounted(); err != nil {
					return nil, err
				}
				return fork(exe, argv, env, files, cgroupFD)
			}
		}
	}
	trace("H spec")
	pid, err := rt.create(c.ID, l.dir, stdio, console, spawn, spec)
	trace("H created")
	if err != nil {
		return 0, err
	}
	if link != nil {
		if err := link.send(monitor.SpawnCreated, strconv.Itoa(pid)); err != nil {
			return 0, err
		}
	}
	if in.LoUp && rt.name() != "berth" {
		if err := loUpIn(pid); err != nil {
			return 0, err
		}
	}
	_, start, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("init %d vanished: %w", pid, err)
	}
	// Recorded running before the start, so that nothing is left to write between the
	// start and the monitor's taking over: a short-lived container may be exiting by
	// then. A berth killed before the start leaves an init that waits, which the
	// monitor's start helper starts (resumeStart).
	prev := *st
	st.Status = StatusRunning
	st.Pid, st.PidStart = pid, start
	st.MonitorPid = monPid
	if _, ms, err := procStat(st.MonitorPid); err == nil {
		st.MonitorStart = ms
	}
	st.StartedAt = time.Now().UTC()
	st.ExitCode, st.Error, st.OOMKilled = 0, "", false
	st.ManualStop = false
	if err := l.writeState(st); err != nil {
		return 0, err
	}
	if err := rt.start(c.ID); err != nil {
		st.Status, st.StartedAt = prev.Status, prev.StartedAt
		return 0, err
	}
	trace("H started")
	return pid, nil
}

func isMounted(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// setupNetwork attaches the container before it is created: for bridge and none modes it
// makes the network namespace itself and holds it with a bind mount in the container's
// directory (the init joins it), so that the hosts, resolv.conf and hostname files exist
// before the runtime bind-mounts them. The bind mount is released by teardown.
func (e *Engine) setupNetwork(l *lockedDir, c *Container, st *State, in *specInputs) (*NetworkState, error) {
	if isNone(c) {
		return e.setupNone(l, c, in)
	}
	nets, err := e.networks()
	if err != nil {
		return nil, err
	}
	mode, target, err := network.ParseMode(c.Networks)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	a := network.Attachment{ContainerID: c.ID, Name: c.Name, Hostname: c.Config.Hostname,
		Networks: c.Networks, Aliases: c.NetworkAliases}
	switch mode {
	case network.ModeHost:
		in.HostNet = true
		a.Hostname = ""
	case network.ModeContainer:
		tc, tst, err := e.peer(target)
		if err != nil {
			return nil, fmt.Errorf("network container:%s: %w", target, err)
		}
		tid := tc.ID
		if !runningInit(tst) {
			return nil, fmt.Errorf("cannot join network of a non running container: %s", short(tid))
		}
		in.Hostname = tc.Config.Hostname
		if isNone(tc) {
			return joinNone(tc, tst, in)
		}
		a.Networks = []string{"container:" + tid}
		a.Hostname = ""
	default:
		path := l.path("netns")
		if err := newNetns(path, c.HostConfig.Sysctls); err != nil {
			return nil, err
		}
		a.NetnsPath = path
		in.NetnsPath, in.OwnNetns = path, true
	}
	if mode == network.ModeBridge {
		ports, err := portMappings(c)
		if err != nil {
			return nil, err
		}
		a.Ports = ports
	}
	var res *network.Result
	for i := 0; i < 5; i++ {
		// Retried for the same reason as detach.
		if res, err = nets.Attach(context.Background(), a); err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if mode == network.ModeContainer {
		in.NetnsPath = res.NetnsPath
	}
	in.Files = map[string]string{"/etc/hosts": res.HostsPath, "/etc/resolv.conf": res.ResolvConfPath}
	if mode != network.ModeContainer {
		in.Files["/etc/hostname"] = res.HostnamePath
	}
	if err := e.customizeNetFiles(c, res); err != nil {
		return nil, err
	}
	ns := &NetworkState{Mode: string(mode), HostsPath: res.HostsPath, ResolvPath: res.ResolvConfPath, HostnamePath: res.HostnamePath}
	for _, i := range res.Interfaces {
		ns.Interfaces = append(ns.Interfaces, NetworkInterface{Network: i.Network, NetworkID: i.NetworkID, IfName: i.IfName,
			Address: i.Address.String(), Gateway: gwString(i.Gateway.IsValid(), i.Gateway.String()), MAC: i.MAC})
	}
	for _, p := range res.Ports {
		hip := ""
		if p.HostIP.IsValid() {
			hip = p.HostIP.String()
		}
		ns.Ports = append(ns.Ports, PortMap{HostIP: hip, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	return ns, nil
}

// peer reads the record and the state of the container that a container:NAME mode
// names (--network, --pid, --ipc), under a shared lock.
func (e *Engine) peer(target string) (*Container, *State, error) {
	tid, err := e.Resolve(target)
	if err != nil {
		return nil, nil, err
	}
	tl, err := e.lockID(tid, true)
	if err != nil {
		return nil, nil, err
	}
	tc, terr := tl.readContainer()
	tst, serr := tl.readState()
	tl.unlock()
	if terr != nil || serr != nil {
		return nil, nil, errors.Join(terr, serr)
	}
	return tc, tst, nil
}

// runningInit tells whether the state's init is alive: a peer whose namespaces can be
// joined through /proc/PID/ns.
func runningInit(st *State) bool { return st.Pid > 0 && alive(st.Pid, st.PidStart) }

func gwString(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

// customizeNetFiles adds --add-host entries and --dns servers to the files the network
// manager wrote (in place: they are bind-mounted by inode).
func (e *Engine) customizeNetFiles(c *Container, res *network.Result) error {
	hc := &c.HostConfig
	if len(hc.ExtraHosts) > 0 && res.Mode != network.ModeContainer {
		var b strings.Builder
		for _, h := range hc.ExtraHosts {
			name, ip, ok := strings.Cut(h, ":")
			if !ok {
				name, ip, _ = strings.Cut(h, "=")
			}
			if ip == "host-gateway" {
				ip = ""
				for _, i := range res.Interfaces {
					if i.Gateway.IsValid() {
						ip = i.Gateway.String()
						break
					}
				}
				if ip == "" {
					ip = "127.0.0.1"
				}
			}
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
		if err := appendFile(res.HostsPath, b.String()); err != nil {
			return err
		}
	}
	if (len(hc.DNS) > 0 || len(hc.DNSSearch) > 0 || len(hc.DNSOptions) > 0) && res.Mode != network.ModeContainer {
		var b strings.Builder
		if len(hc.DNSSearch) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(hc.DNSSearch, " "))
		}
		for _, s := range hc.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
		if len(hc.DNSOptions) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(hc.DNSOptions, " "))
		}
		if len(hc.DNS) == 0 {
			old, _ := os.ReadFile(res.ResolvConfPath)
			for _, line := range strings.Split(string(old), "\n") {
				if strings.HasPrefix(line, "nameserver") {
					b.WriteString(line + "\n")
				}
			}
		}
		if err := rewriteInPlace(res.ResolvConfPath, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("--add-host: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		return fmt.Errorf("--add-host: write %s: %w", path, err)
	}
	return nil
}

func rewriteInPlace(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("--dns: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(s), 0); err != nil {
		return fmt.Errorf("--dns: write %s: %w", path, err)
	}
	return f.Truncate(int64(len(s)))
}

// newNetns makes a network namespace, writes the net.* sysctls into it, and bind-mounts it
// at path. The thread that made it is left locked, so the Go runtime retires it rather
// than reusing it in that namespace.
func newNetns(path string, sysctls map[string]string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("network namespace: create %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("network namespace: unshare: %w", err)
			return
		}
		// /proc/sys/net shows the network namespace of the thread that opens it.
		for k, v := range sysctls {
			if !strings.HasPrefix(k, "net.") {
				continue
			}
			if strings.Contains(k, "/") || strings.Contains(k, "..") {
				errc <- fmt.Errorf("--sysctl %s: invalid name", k)
				return
			}
			if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), []byte(v), 0); err != nil {
				errc <- fmt.Errorf("--sysctl %s=%s: %w", k, v, err)
				return
			}
		}
		src := "/proc/thread-self/ns/net"
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("network namespace: bind %s to %s: %w", src, path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// releaseNetns drops the engine's hold on the container's network namespace.
func releaseNetns(path string) {
	for unix.Unmount(path, unix.MNT_DETACH) == nil {
	}
	os.Remove(path)
}

// leftovers tells whether a previous run left something to tear down.
func (e *Engine) leftovers(l *lockedDir, c *Container, st *State) bool {
	if st.Mounted || st.Network != nil {
		return true
	}
	for _, p := range []string{l.path("netns"), l.path(shmDir), filepath.Join(e.RuntimeRoot, c.ID)} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return st.Runtime != "" && st.Runtime != "berth"
}

// detach detaches the container from its networks. A netlink dump that the kernel
// interrupts (links come and go while it is read: the veths of namespaces that just died)
// fails the network manager's repair pass, which comes first; it is retried, as such a
// dump is.
func detach(nets *network.Manager, id string) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = nets.Detach(id); err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// teardown undoes a run, whatever part of it was made: the runtime's container (and with
// it the cgroup and any process left), the network, the snapshot's mount. Each step is
// safe to repeat. The record is updated by the caller.
func (e *Engine) teardown(l *lockedDir, c *Container, st *State, rt ociRuntime) {
	e.teardownRemoving(l, c, st, rt, false)
}

// teardownRemoving is teardown; with removeSnapshot (a container whose removal follows at
// once) it also removes the snapshot, unmounting it first, alongside the runtime's delete
// and whatever the caller does next; the function it returns waits for that removal and
// gives its result.
func (e *Engine) teardownRemoving(l *lockedDir, c *Container, st *State, rt ociRuntime, removeSnapshot bool) (wait func() error) {
	if rt == nil {
		var err error
		if rt, err = e.ociRuntime(c.HostConfig.Runtime); err != nil {
			e.warn("container %s: %v", short(c.ID), err)
		}
	}
	// The snapshot's mount is independent of the rest and is undone alongside (the
	// container's mount namespace holds mounts of its own): the unmount waits for the
	// kernel (an RCU grace period), as do the cgroup and namespace removals.
	unmounted := make(chan error, 1)
	go func() {
		if removeSnapshot {
			// Remove unmounts first. The container's processes are gone (its init has
			// exited, which in a pid namespace of its own ends every process in it), so
			// nothing writes to the upper directory while it goes. Its files are moved
			// into the container's directory, whose monitor deletes them with it
			// (monitor.RemovedPfx); rootless, they may belong to the user namespace's
			// users, which only the store's own RemoveAll can delete.
			sn, err := e.snapshotter()
			if err == nil && (e.rootless || l.f == nil) {
				err = sn.Remove(c.ID)
			} else if err == nil {
				_, err = sn.RemoveTo(c.ID, int(l.f.Fd()), removedSnapshot)
			}
			unmounted <- err
			return
		}
		defer close(unmounted)
		if !st.Mounted {
			return
		}
		if sn, err := e.snapshotter(); err == nil {
			if snap, err := sn.Get(c.ID); err == nil && isMounted(snap.Rootfs) {
				if err := snap.Unmount(""); err != nil {
					e.warn("container %s: %v", short(c.ID), err)
				}
			}
		}
	}()
	if rt != nil {
		if err := rt.delete(c.ID, true); err != nil {
			e.warn("container %s: delete from runtime %s: %v", short(c.ID), rt.name(), err)
		}
		trace("teardown rt deleted")
	}
	if e.rootless {
		// slirp4netns; the namespaces went with the container's processes.
		e.teardownRootlessNet(c, st)
	} else {
		// The namespace goes after the init (which the runtime's delete killed): once it
		// is gone the veths go with it, and Detach only has to set them down.
		releaseNetns(l.path("netns"))
		trace("teardown netns released")
		releaseShm(l.path(shmDir))
		if isNone(c) {
			// The engine's own (setupNone): nothing of it is in the network manager.
		} else if nets, err := e.networks(); err == nil {
			if err := detach(nets, c.ID); err != nil {
				e.warn("container %s: %v", short(c.ID), err)
			}
		}
	}
	trace("teardown detached")
	st.Mounted = false
	st.Network = nil
	if removeSnapshot {
		return func() error { return <-unmounted }
	}
	<-unmounted
	return func() error { return nil }
}

// removedSnapshot is where an --rm container's snapshot files go in its directory.
const removedSnapshot = "snapshot"

// FinishRun does the monitor's exit helper's work in this process, for a client that was
// offered it (monitor.FrameExited); the result goes back with Session.Cleaned.
func (e *Engine) FinishRun(id string) (string, error) { return e.helperExited(id) }

// helperExited handles the end of a run for the monitor: it records the exit, tears the
// run down, and says whether the restart policy wants another one ("restart MS") or not
// ("done"); an --rm container is removed ("removed" when its files are left to the
// monitor).
func (e *Engine) helperExited(id string) (string, error) {
	l, err := e.lockID(id, false)
	if errors.Is(err, ErrNotFound) {
		return "done", nil
	}
	if err != nil {
		return "", err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return "", err
	}
	code, finished, ok := readExitFile(l.path(monitor.ExitFile))
	if !ok {
		code, finished = 255, time.Now().UTC()
	}
	trace("H2 begin")
	rt, _ := e.ociRuntime(c.HostConfig.Runtime)
	st.OOMKilled = e.oomKilled(c, rt)
	// An --rm container's snapshot goes during the teardown, not after it: its unmount and
	// removal (about 2 ms) overlap the runtime's delete and the removal of the container's
	// directory (about 1 ms each).
	// Only in a pid namespace of its own does the init's exit end every process of the
	// container; otherwise the runtime's delete kills the rest first.
	snapRemoved := e.teardownRemoving(l, c, st, rt, c.HostConfig.AutoRemove && c.HostConfig.PidMode == "")
	trace("H2 teardown")
	ranFor := finished.Sub(st.StartedAt)
	st.Status = StatusExited
	st.ExitCode, st.FinishedAt = code, finished
	st.Pid, st.PidStart = 0, 0
	if c.HostConfig.AutoRemove {
		// No record of the exit first: until the directory is renamed away below, the
		// monitor's exit file says it, and a teardown repeated after a crash is harmless.
		// The files are left for the monitor to delete (monitor.RemovedPfx): about 1 ms
		// of unlinks that wait on the filesystem, off the path of `run --rm`.
		left, err := e.removeLockedSnap(l, c, true, c.HostConfig.PidMode != "", !e.rootless)
		if err = errors.Join(err, snapRemoved()); err != nil {
			return "", err
		}
		trace("H2 removed")
		if left {
			return "removed", nil
		}
		return "done", nil
	}
	delay, restart := restartDecision(c.HostConfig.RestartPolicy, st, code, ranFor)
	if restart {
		st.Status = StatusRestarting
		st.RestartCount++
		st.RestartDelayMs = delay.Milliseconds()
	} else {
		st.RestartDelayMs = 0
	}
	if err := l.writeState(st); err != nil {
		return "", err
	}
	if restart {
		return "restart " + strconv.FormatInt(delay.Milliseconds(), 10), nil
	}
	return "done", nil
}

// restartDecision applies the restart policy. The delay doubles from 100 ms with each
// restart in a row, up to a minute, and starts again after a run of 10 s or more, as
// Docker's does.
func restartDecision(p RestartPolicy, st *State, code int, ranFor time.Duration) (time.Duration, bool) {
	if st.ManualStop {
		return 0, false
	}
	switch p.Name {
	case "always", "unless-stopped":
	case "on-failure":
		if code == 0 {
			return 0, false
		}
		if p.MaximumRetryCount > 0 && st.RestartCount >= p.MaximumRetryCount {
			return 0, false
		}
	default:
		return 0, false
	}
	delay := 100 * time.Millisecond
	if st.RestartDelayMs > 0 && ranFor < 10*time.Second {
		delay = time.Duration(math.Min(float64(2*st.RestartDelayMs), 60000)) * time.Millisecond
	}
	return delay, true
}

// readExitFile reads the monitor's record of the exit: "CODE UNIX-NANOSECONDS".
func readExitFile(path string) (int, time.Time, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, time.Time{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, time.Time{}, false
	}
	code, err1 := strconv.Atoi(f[0])
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return code, time.Unix(0, ns).UTC(), true
}

// oomKilled tells whether the kernel's OOM killer killed a process of the container.
func (e *Engine) oomKilled(c *Container, rt ociRuntime) bool {
	if rt == nil {
		return false
	}
	paths := rt.cgroupPaths(c.ID)
	if paths == nil {
		return false
	}
	cg, err := cgroups.Load(paths)
	if err != nil {
		return false
	}
	n, err := cg.OOMKillCount()
	return err == nil && n > 0
}
