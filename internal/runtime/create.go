package runtime

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/namespaces"
	"github.com/berth-containers/berth/internal/security/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CreateOpts are the options of `create` (and `run`).
type CreateOpts struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	// PreserveFDs passes this many descriptors after stdio (3, 4, ...) to the container.
	PreserveFDs int
	// Stdio overrides the container's stdin, stdout and stderr (nil: this process's own).
	Stdio [3]*os.File
	// Spawn, if set, starts the init in place of this process (see Spawner).
	Spawn Spawner
	// Spec, if set, is the config to use in place of the bundle's config.json.
	Spec *specs.Spec
	// SpecJSON, with Spec, is what ReadSpec returned with it: the bundle's config, already
	// read and checked by a caller that needed to look at it first (`run`, for
	// process.terminal), so create neither reads, checks nor encodes it again.
	SpecJSON []byte
	// Cgroup is the container's cgroup made ahead (StartEarlyCgroup), which the create
	// adopts.
	Cgroup *EarlyCgroup
}

// initConfig is what the parent sends the init once its namespaces exist.
type initConfig struct {
	ID           string            `json:"id"`
	Spec         *specs.Spec       `json:"spec"`
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"`
	NoPivot      bool              `json:"noPivot"`
	NoNewKeyring bool              `json:"noNewKeyring"`
	PreserveFDs  int               `json:"preserveFds"`
	FifoFD       int               `json:"fifoFd"`
	ConsoleFD    int               `json:"consoleFd"`
	Creates      uintptr           `json:"creates"`
	UserNS       bool              `json:"userns"`
	CgroupPaths  map[string]string `json:"cgroupPaths"`
	Seccomp      *seccompProgram   `json:"seccomp,omitempty"`
	// IDMapped maps a mount's index to the descriptor of its prepared idmapped clone.
	IDMapped map[int]int `json:"idmapped,omitempty"`
	// Exec is set for a process exec'd into a running container: no rootfs, no fifo.
	Exec bool `json:"exec,omitempty"`
	// HostPid is the init's pid as the host sees it, for the seccomp listener's state.
	HostPid int `json:"hostPid"`
}

// initReply is the init's answer: ready, or why not. A reply with Listener set carries the
// seccomp listener fd and is followed by another reply.
type initReply struct {
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Listener bool     `json:"listener,omitempty"`
}

// Create sets the container up and leaves its init waiting for Start.
func (r *Runtime) Create(id string, o CreateOpts) (err error) {
	if err := ValidateID(id); err != nil {
		return err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return fmt.Errorf("container %s: bundle %s: %w", id, o.Bundle, err)
	}
	spec, rawSpec, pendingSpec, err := o.loadSpec(bundle)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	Trace("rt spec loaded")
	plan, err := namespaces.NewPlan(spec.Linux.Namespaces, spec.Linux.TimeOffsets)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" {
		return fmt.Errorf("container %s: process.terminal is true but no --console-socket was given", id)
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return fmt.Errorf("container %s: --console-socket given but process.terminal is false", id)
	}
	if o.PreserveFDs < 0 {
		return fmt.Errorf("container %s: --preserve-fds %d is negative", id, o.PreserveFDs)
	}
	if err := checkLSM(spec); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	filter, err := r.compileSeccomp(spec.Linux.Seccomp)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	Trace("rt seccomp compiled")
	cg, err := newCgroup(id, spec)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	late := lateCgroupJoin(plan, cg, spec)
	var tasks []string
	if late {
		tasks = cg.TasksFiles()
	}
	ip, why, err := compileInitPlan(&planInput{id: id, bundle: bundle, rootfs: rootfsPath(spec, bundle), spec: spec,
		noPivot: o.NoPivot, noNewKeyring: o.NoNewKeyring, consoleSocket: o.ConsoleSocket, preserveFDs: o.PreserveFDs,
		userNS: plan.Has(specs.UserNamespace), newNet: plan.Create&unix.CLONE_NEWNET != 0,
		newCgroup: plan.Create&unix.CLONE_NEWCGROUP != 0, cgroupPaths: cg.Paths(), seccomp: filter, lateCgroup: late,
		cgroupTasks: tasks})
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	late = late && ip != nil
	Trace("rt plan compiled")
	noteInit(r.Root, id, why)
	rec := &Record{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      rootfsPath(spec, bundle),
		Created:     time.Now().UTC(),
		Annotations: spec.Annotations,
		Creating:    true,
		Namespaces:  spec.Linux.Namespaces,
		CgroupPaths: cg.Paths(),
		Runtime:     "berth",
	}
	if spec.Hooks != nil {
		rec.Poststart, rec.Poststop = spec.Hooks.Poststart, spec.Hooks.Poststop
	}
	h, err := r.reserve(rec, rawSpec)
	if err != nil {
		return err
	}
	Trace("rt reserved")
	c := &creation{r: r, h: h, rec: rec, spec: spec, rawSpec: rawSpec, pendingSpec: pendingSpec, plan: plan, cg: cg, opts: o, seccomp: filter, initPlan: ip, lateCgroup: late}
	defer func() {
		if c.sock != nil {
			c.sock.Close()
		}
		if err != nil {
			c.abort()
			err = fmt.Errorf("container %s: %w", id, err)
		}
		h.unlock()
	}()
	return c.run()
}

// creation is one create in progress; abort undoes whatever it did.
type creation struct {
	r       *Runtime
	h       *handle
	rec     *Record
	spec    *specs.Spec
	rawSpec []byte // spec as read from the bundle; nil for exec
	// pendingSpec is the spec's JSON being encoded (a spec given in memory), which run
	// stores as config.json before the create is done.
	pendingSpec *pendingJSON
	plan        *namespaces.Plan
	cg          cgroups.Manager
	opts        CreateOpts
	child       *child
	sock        *os.File
	fifo        *os.File
	idmapped    map[int]*os.File
	seccomp     *seccompProgram
	// initPlan is the setup the C init executes; nil runs the Go init (InitMain).
	initPlan *initPlan
	// lateCgroup: the cgroup is made, and the init moved into it, beside the init's
	// start and its setup (lateCgroupJoin); cgroupMade delivers the making's result.
	lateCgroup bool
	cgroupMade chan error
}

// lateCgroupJoin tells whether the init may join its cgroup while it sets up its
// namespaces and mounts rather than be moved there before it starts. On cgroup v1 a move
// by pid (cgroup.procs) takes cgroup_threadgroup_rwsem for writing, which waits for an RCU
// grace period (5-12 ms in the benchmark's runs) unless another move came moments before.
// The init, single-threaded in its C stage, moves itself instead (opCgroupJoin: "0" into
// each v1 hierarchy's tasks file, which skips that lock) once the runtime has made the
// cgroup beside the init's start; on a hybrid layout the init is born in the cgroup2 part
// (clone3 CLONE_INTO_CGROUP, cgroups.Manager.UnifiedFD). The join comes before the first
// cgroup mount, and the cgroup namespace only after it, rooted at the container's cgroup.
// Not on v2 (the init is born in its cgroup), with a user namespace, a cgroup namespace
// joined by path, or hooks that run while the init waits (prestart, createRuntime: they
// may expect it in its cgroup).
func lateCgroupJoin(plan *namespaces.Plan, cg cgroups.Manager, spec *specs.Spec) bool {
	if cg.Layout() == cgroups.Unified || len(cg.Paths()) == 0 || plan.Has(specs.UserNamespace) {
		return false
	}
	for _, j := range plan.Join {
		if j.Type.Flag == unix.CLONE_NEWCGROUP {
			return false
		}
	}
	//lint:ignore SA1019 deprecated in the spec, but clients still send prestart hooks
	return spec.Hooks == nil || len(spec.Hooks.Prestart) == 0 && len(spec.Hooks.CreateRuntime) == 0
}

func (c *creation) run() error {
	if c.lateCgroup {
		c.cgroupMade = make(chan error, 1)
		go func() {
			c.opts.Cgroup.adopt(c.cg)
			c.cgroupMade <- c.cg.Create()
		}()
	} else {
		c.opts.Cgroup.adopt(c.cg)
		if err := c.cg.Create(); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		Trace("rt cgroup created")
	}
	fifo := c.h.path(fifoFile)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return fmt.Errorf("mkfifo %s: %w", fifo, err)
	}
	// Read-write, so that opening never blocks and the init never reads end of file.
	fifoFile, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", fifo, err)
	}
	defer fifoFile.Close()
	c.fifo = fifoFile
	if c.idmapped, err = c.r.idmappedMounts(c.spec, c.rec.Bundle); err != nil {
		return err
	}
	defer func() {
		for _, f := range c.idmapped {
			f.Close()
		}
	}()
	ic := &initConfig{
		ID: c.rec.ID, Spec: c.spec, Bundle: c.rec.Bundle, Rootfs: c.rec.Rootfs,
		NoPivot: c.opts.NoPivot, NoNewKeyring: c.opts.NoNewKeyring, PreserveFDs: c.opts.PreserveFDs,
		Creates: c.plan.Create, UserNS: c.plan.Has(specs.UserNamespace), CgroupPaths: c.cg.Paths(),
		Seccomp: c.seccomp,
	}
	if _, err := c.spawn(ic); err != nil {
		return err
	}
	Trace("rt spawned")
	// The state that the create ends with (config.json, the record as created) is written
	// while the init sets itself up, not after: two file writes that wait on the
	// filesystem, off the start's path. Nobody sees it early: the record stays locked until
	// the create returns, and a create that fails removes the state directory.
	stored := make(chan error, 1)
	created := *c.rec
	created.Creating = false
	go func() {
		err := c.storeSpec()
		if err == nil {
			err = c.h.write(&created)
		}
		stored <- err
	}()
	err = c.awaitReady()
	if serr := <-stored; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	c.rec.Creating = false
	if c.opts.PidFile != "" {
		if err := writeFileAtomic(c.opts.PidFile, []byte(strconv.Itoa(c.rec.Pid)), 0o644); err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
	}
	return nil
}

// awaitReady waits for the init's word that it is ready to start, or why it is not.
func (c *creation) awaitReady() error {
	var reply initReply
	var err error
	if c.initPlan != nil {
		if reply.Warnings, err = c.initPlan.awaitReady(c.sock); err != nil {
			return err
		}
	}
	for c.initPlan == nil { // the Go init's replies
		reply = initReply{}
		fds, err := readFrameFDs(c.sock, &reply)
		if err != nil {
			return fmt.Errorf("init did not report ready: %w", err)
		}
		if !reply.Listener {
			break
		}
		if err := c.forwardListener(fds); err != nil {
			return err
		}
	}
	for _, w := range reply.Warnings {
		c.r.warn("container %s: %s", c.rec.ID, w)
	}
	if reply.Error != "" {
		return errors.New(reply.Error)
	}
	Trace("rt ready")
	return nil
}

// joinCgroup waits for the cgroup and tells the init, which waits for that in its plan
// and then moves itself into the v1 hierarchies (opCgroupJoin); on a hybrid layout it was
// born in the cgroup2 part (UnifiedFD).
func (c *creation) joinCgroup() error {
	err := <-c.cgroupMade
	c.cgroupMade = nil
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	Trace("rt cgroup created")
	// An init that failed meanwhile (a refused mount, say) has exited with its report on
	// the socket, which the caller reads next: that, not this write, is the error.
	c.sock.Write([]byte{'a'})
	return nil
}

// storeSpec waits for the spec's JSON, if it is still being encoded, and writes it to the
// state directory as config.json.
func (c *creation) storeSpec() error {
	if c.pendingSpec == nil {
		return nil
	}
	b, err := c.pendingSpec.wait()
	if err != nil {
		return err
	}
	c.pendingSpec, c.rawSpec = nil, b
	return writeNew(c.h.path(configFile), b, 0o600)
}

// spawn starts this binary as the container's init (or an exec'd process): it passes the
// stdio, preserved fds, the socket, the fifo and the console, places the child in the
// cgroup, serves the C stage, and sends ic. It returns the pid that runs the user's program.
// c.sock stays open for the caller to read the replies.
func (c *creation) spawn(ic *initConfig) (int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socketpair: %w", err)
	}
	// The parent's end is non-blocking so that its waits for the init park in the Go
	// netpoller: a read blocked in the kernel keeps the runtime's sysmon thread polling every
	// 20 µs to take its P away (measured: 60 context switches per create).
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return 0, fmt.Errorf("socketpair: %w", err)
	}
	c.sock = os.NewFile(uintptr(fds[0]), "init-socket")
	childSock := os.NewFile(uintptr(fds[1]), "init-socket-child")
	defer childSock.Close()

	var console *os.File
	if c.opts.ConsoleSocket != "" {
		if console, err = dialConsole(c.opts.ConsoleSocket); err != nil {
			return 0, err
		}
		defer console.Close()
	}
	files := make([]*os.File, 0, 6+c.opts.PreserveFDs)
	for i, f := range c.opts.Stdio {
		if f == nil {
			f = []*os.File{os.Stdin, os.Stdout, os.Stderr}[i]
		}
		files = append(files, f)
	}
	for i := 0; i < c.opts.PreserveFDs; i++ {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return 0, fmt.Errorf("--preserve-fds %d: descriptor %d is not open", c.opts.PreserveFDs, fd)
		}
		files = append(files, os.NewFile(uintptr(fd), "preserved-"+strconv.Itoa(fd)))
	}
	sockFD := len(files)
	files = append(files, childSock)
	ic.FifoFD, ic.ConsoleFD = -1, -1
	if c.fifo != nil {
		ic.FifoFD = len(files)
		files = append(files, c.fifo)
	}
	if console != nil {
		ic.ConsoleFD = len(files)
		files = append(files, console)
	}
	for i, f := range c.idmapped {
		if ic.IDMapped == nil {
			ic.IDMapped = map[int]int{}
		}
		ic.IDMapped[i] = len(files)
		files = append(files, f)
	}

	sys := &syscall.SysProcAttr{}
	cgfd, useFD, err := c.cg.CgroupFD()
	if err == nil && !useFD && c.lateCgroup {
		// A hybrid layout: born in the cgroup2 part, the init joins the v1 ones itself.
		cgfd, useFD, err = c.cg.UnifiedFD()
	}
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	if useFD {
		defer unix.Close(cgfd)
		sys.UseCgroupFD, sys.CgroupFD = true, cgfd
	}
	exe, err := c.r.sealedExe()
	if err != nil {
		return 0, err
	}
	defer exe.Close()
	// execve of /proc/self/fd/N runs the sealed file itself (the descriptor closes on exec,
	// after the kernel has resolved it).
	c.child, err = c.startInit(exe, []string{"berth-runtime", "init"},
		[]string{"_BERTH_INITPIPE=" + strconv.Itoa(sockFD), "GOMAXPROCS=1", "GOGC=off"}, files, sys)
	if err != nil {
		return 0, fmt.Errorf("start init from %s: %w", c.r.exe(), err)
	}
	Trace("rt init started")
	childSock.Close()
	if !useFD && !c.lateCgroup {
		if err := c.cg.AddProc(c.child.Pid); err != nil {
			return 0, fmt.Errorf("cgroup: %w", err)
		}
		Trace("rt attached")
	}
	bplan := c.plan
	if c.lateCgroup && bplan.Create&unix.CLONE_NEWCGROUP != 0 {
		// The plan makes it, once the init is in its cgroup (opCgroupJoin).
		late := *bplan
		late.Create &^= unix.CLONE_NEWCGROUP
		bplan = &late
	}
	boot := bplan.Bootstrap()
	if c.initPlan != nil {
		boot = withPlanRecord(boot)
	}
	if _, err := c.sock.Write(boot); err != nil {
		return 0, c.childFailed(fmt.Errorf("send namespace plan to init: %w", err))
	}
	pid, err := c.namespaceStage()
	if err != nil {
		return 0, err
	}
	if pid != c.child.Pid {
		// The child forked into the new pid namespace and has exited; reap it.
		if err := c.reapFirstStage(); err != nil {
			return 0, fmt.Errorf("wait for init's first stage: %w", err)
		}
	}
	Trace("rt ns stage done")
	_, start, err := ProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("init %d vanished: %w", pid, err)
	}
	ic.HostPid = pid
	if c.h != nil {
		c.rec.Pid, c.rec.InitStartTime = pid, start
		// A delete after a crash from here on must kill the init. Its cgroup, already in the
		// record, leads delete to it; without one the pid has to be recorded now.
		if len(c.rec.CgroupPaths) == 0 {
			if err := c.h.write(c.rec); err != nil {
				return 0, err
			}
		}
	}
	if adj := c.spec.Process.OOMScoreAdj; adj != nil {
		p := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
		if err := os.WriteFile(p, []byte(strconv.Itoa(*adj)), 0); err != nil {
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				return 0, fmt.Errorf("process.oomScoreAdj %d: write %s: %w (lowering it needs CAP_SYS_RESOURCE)", *adj, p, err)
			}
			return 0, fmt.Errorf("process.oomScoreAdj %d: write %s: %w", *adj, p, err)
		}
	}
	if h := c.spec.Hooks; h != nil && !ic.Exec {
		// The namespaces exist and the init waits for its configuration: the point the
		// spec gives prestart and createRuntime hooks, in the runtime's namespaces.
		st := hookState(c.rec.ID, specs.StateCreating, pid, c.rec.Bundle, c.rec.Annotations)
		//lint:ignore SA1019 deprecated in the spec, but clients still send prestart hooks
		if err := runHooks("prestart", h.Prestart, st); err != nil {
			return 0, err
		}
		if err := runHooks("createRuntime", h.CreateRuntime, st); err != nil {
			return 0, err
		}
	}
	if c.initPlan != nil {
		if _, err := c.sock.Write(c.initPlan.encode(ic.FifoFD)); err != nil {
			return 0, fmt.Errorf("send the setup plan to init: %w", err)
		}
		if c.lateCgroup {
			if err := c.joinCgroup(); err != nil {
				return 0, err
			}
		}
	} else {
		wc, err := c.wireConfig(ic)
		if err != nil {
			return 0, err
		}
		if err := writeFrame(c.sock, wc); err != nil {
			return 0, fmt.Errorf("send configuration to init: %w", err)
		}
	}
	return pid, nil
}

// namespaceStage serves the C stage of the init: id mappings on request, then the pid of
// the process that goes on into Go.
func (c *creation) namespaceStage() (int, error) {
	var tag [1]byte
	for {
		if _, err := io.ReadFull(c.sock, tag[:]); err != nil {
			return 0, c.childFailed(fmt.Errorf("namespace stage: %w", err))
		}
		switch tag[0] {
		case 'U':
			if err := WriteIDMaps(c.child.Pid, c.spec.Linux.UIDMappings, c.spec.Linux.GIDMappings); err != nil {
				return 0, err
			}
			if _, err := c.sock.Write([]byte{'u'}); err != nil {
				return 0, c.childFailed(err)
			}
		case 'P':
			var pid int32
			if err := binary.Read(c.sock, binary.NativeEndian, &pid); err != nil {
				return 0, c.childFailed(err)
			}
			return int(pid), nil
		case 'E':
			var n uint32
			if err := binary.Read(c.sock, binary.NativeEndian, &n); err != nil {
				return 0, c.childFailed(err)
			}
			msg := make([]byte, n)
			io.ReadFull(c.sock, msg)
			return 0, fmt.Errorf("namespace stage: %s", msg)
		default:
			return 0, c.childFailed(fmt.Errorf("namespace stage sent unknown tag %q", tag[0]))
		}
	}
}

// childFailed adds how the first child ended to err.
func (c *creation) childFailed(err error) error {
	if c.child == nil {
		return err
	}
	st, werr := c.child.Wait()
	if werr == nil {
		return fmt.Errorf("%w (init exited: %v)", err, st)
	}
	return err
}

// forwardListener sends the seccomp listener fd, which the init installed its filter with
// before reporting ready, to linux.seccomp.listenerPath (the init can no longer reach host
// paths).
func (c *creation) forwardListener(fds []int) error {
	for _, fd := range fds {
		defer unix.Close(fd)
	}
	if len(fds) != 1 || c.seccomp == nil {
		return fmt.Errorf("init sent %d descriptors for the seccomp listener, want 1", len(fds))
	}
	st := specs.ContainerProcessState{
		Metadata: c.seccomp.ListenerMetadata,
		State: specs.State{Version: specs.Version, ID: c.rec.ID, Status: specs.StateCreating,
			Pid: c.rec.Pid, Bundle: c.rec.Bundle, Annotations: c.rec.Annotations},
		Pid: c.rec.Pid,
	}
	if err := seccomp.SendListener(c.seccomp.ListenerPath, fds[0], st); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: %w", c.seccomp.ListenerPath, err)
	}
	return nil
}

// WriteIDMaps writes the maps of process pid's new user namespace (errors name them as the
// OCI config does, linux.uidMappings and linux.gidMappings). Root writes them directly. An
// unprivileged user may map only its own ids that way (after denying setgroups, as the
// kernel requires); anything wider goes through the setuid helpers newuidmap/newgidmap and
// /etc/subuid, /etc/subgid, as Podman does. The rootless engine maps its helpers' user
// namespaces with it too.
func WriteIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	euid, egid := os.Geteuid(), os.Getegid()
	own := func(ms []specs.LinuxIDMapping, id int) bool {
		return len(ms) == 1 && ms[0].Size == 1 && int(ms[0].HostID) == id
	}
	direct := euid == 0 || (own(uids, euid) && own(gids, egid))
	if direct && euid != 0 {
		p := fmt.Sprintf("/proc/%d/setgroups", pid)
		if err := os.WriteFile(p, []byte("deny"), 0); err != nil {
			return fmt.Errorf("write deny to %s: %w", p, err)
		}
	}
	for _, m := range []struct {
		file, helper string
		maps         []specs.LinuxIDMapping
	}{{"uid_map", "newuidmap", uids}, {"gid_map", "newgidmap", gids}} {
		field := "linux." + strings.Replace(m.file, "_map", "Mappings", 1)
		if !direct {
			args := []string{strconv.Itoa(pid)}
			for _, e := range m.maps {
				args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
			}
			out, err := exec.Command(m.helper, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: %s %s (mapping more than your own id needs Debian's uidmap and a range for you in /etc/subuid and /etc/subgid): %w: %s",
					field, m.helper, strings.Join(args, " "), err, bytes.TrimSpace(out))
			}
			continue
		}
		var b strings.Builder
		for _, e := range m.maps {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		p := fmt.Sprintf("/proc/%d/%s", pid, m.file)
		if err := os.WriteFile(p, []byte(b.String()), 0); err != nil {
			return fmt.Errorf("%s: write %q to %s: %w", field, b.String(), p, err)
		}
	}
	return nil
}

// dialConsole connects to the --console-socket. (With unix calls, not package net, which is
// 0.1 MB of the binary and so of every command's peak RSS.)
func dialConsole(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("--console-socket %s: socket: %w", path, err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("--console-socket %s: connect: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "console-socket"), nil
}

// abort undoes a failed create: the processes, the cgroup and the record.
func (c *creation) abort() {
	if c.cgroupMade != nil {
		<-c.cgroupMade // still being made: then removed below
	}
	if c.rec.Pid > 0 {
		if fd, err := pidfd(c.rec.Pid, c.rec.InitStartTime); err == nil {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		}
	}
	if c.child != nil {
		c.child.Kill()
		c.child.Wait()
	}
	if err := c.cg.Destroy(); err != nil {
		c.r.warn("container %s: cleanup after failed create: %v", c.rec.ID, err)
	}
	if err := c.h.remove(); err != nil {
		c.r.warn("%v", err)
	}
}

// errNoWord is end of file on the init's socket: the init died, or (for exec) its program
// started, since the socket closes on exec.
var errNoWord = errors.New("init exited without a word")

// writeFrame and readFrame carry one JSON value with a length prefix.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := binary.NativeEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readFrameFDs reads one frame from a unix socket, with the descriptors sent along with it.
// The header is read through the socket's RawConn, so a non-blocking socket waits in the
// netpoller (sock.Fd() would switch it back to blocking).
func readFrameFDs(sock *os.File, v any) ([]int, error) {
	var hdr [4]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), hdr[:], oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for i := range msgs {
			if got, err := unix.ParseUnixRights(&msgs[i]); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if n == 0 {
		return fds, errNoWord
	}
	if n < 4 {
		if _, err := io.ReadFull(sock, hdr[n:]); err != nil {
			return fds, err
		}
	}
	size := binary.NativeEndian.Uint32(hdr[:])
	if size > 64<<20 {
		return fds, fmt.Errorf("frame of %d bytes is too large", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(sock, b); err != nil {
		return fds, err
	}
	return fds, json.Unmarshal(b, v)
}

func readFrame(rd io.Reader, v any) error {
	var n uint32
	if err := binary.Read(rd, binary.NativeEndian, &n); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errNoWord
		}
		return err
	}
	if n > 64<<20 {
		return fmt.Errorf("frame of %d bytes is too large", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
