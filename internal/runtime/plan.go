package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berth-containers/berth/internal/rootfs"
	"github.com/berth-containers/berth/internal/security"
	"github.com/berth-containers/berth/internal/security/landlock"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// AnnotationLoopback "up" asks for the loopback interface of the network namespace the
// runtime makes for the container to be set up, as Docker's --network none gives it; the
// engine sets it rather than join the namespace itself after the create. A namespace joined
// by path is left as it is, and without the annotation lo stays down, as with runc.
const AnnotationLoopback = "org.berth.network.loopback"

// AnnotationInit chooses a container's init: "go" forces the Go init (InitMain), anything
// else (or nothing) lets the runtime use the C init whenever the config allows it.
const AnnotationInit = "org.berth.init"

// initLogEnv names a file to which create appends one line per container, "<root> <id> plan"
// or "<root> <id> go: <reason>", so tests and benchmarks can tell which init a container got.
const initLogEnv = "BERTH_INIT_LOG"

// Plan operations, as plan.c in package nsenter executes them (keep the numbers in step).
const (
	opMountHost   = 1  // ints: flags; strs: src, target, fstype, data (host paths)
	opOpenRoot    = 2  // strs: rootfs
	opMount       = 3  // ints: flags, target kind, opflags, alternative length; strs: src, dest, fstype, data
	opRemount     = 4  // ints: flags; strs: dest
	opPropagate   = 5  // ints: flags; strs: dest
	opMknod       = 6  // ints: mode, dev, uid, gid; strs: path
	opSymlink     = 7  // strs: target, path
	opMask        = 8  // strs: path
	opReadonly    = 9  // strs: path
	opPivot       = 10 //
	opKeyring     = 11 // strs: name
	opSysctl      = 12 // strs: path under /proc, value
	opHostname    = 13 // strs: name
	opDomainname  = 14 // strs: name
	opRlimit      = 15 // ints: resource, soft, hard
	opPersonality = 16 // ints: persona
	opLookPath    = 17 // strs: name, PATH
	opCloseRange  = 18 // ints: first
	opChdir       = 19 // ints: retry; strs: dir
	opSeccomp     = 20 // ints: flags; strs: program
	opCapBset     = 21 // ints: keep, last cap
	opSetUser     = 22 // ints: uid, gid, umask, groups...
	opCapSet      = 23 // ints: effective, permitted, inheritable
	opAmbient     = 24 // ints: mask, last cap
	opNNP         = 25 //
	opReady       = 26 //
	opWait        = 27 // ints: fd
	opExec        = 28 // ints: argc; strs: argv..., env...
	opCgroupJoin  = 29 // ints: unshare (1: a new cgroup namespace); strs: v1 tasks files
	opLoopbackUp  = 30
)

// opMount target kinds and flags.
const (
	targetDir  = 0 // create the destination as a directory
	targetFile = 1 // as an empty file
	targetSrc  = 2 // as what the (host) source is

	ofNoSymlinks  = 1 // refuse a destination with a symlink in it
	ofOrElse      = 2 // on failure run the next ints[3] operations, on success skip them
	ofOrElseEPERM = 4 // the same, only for EPERM
)

// bootstrapPlanRecord is nsenter.c's REC_PLAN.
const bootstrapPlanRecord = 4

// planOp is one operation; what names the spec field (and path) it carries out.
type planOp struct {
	code uint32
	ints []uint64
	strs []string
	what string
}

// initPlan is a container's setup compiled for the C init: every decision taken, every
// option parsed, so the init only executes.
type initPlan struct {
	ops      []planOp
	warnings []string // known before the init runs (capabilities this kernel lacks)
	args0    string
	path     string // the PATH the program is looked up on
	// cgroupJoined: opCgroupJoin is in the plan (planInput.lateCgroup).
	cgroupJoined bool
}

// planInput is what compileInitPlan needs besides the spec.
type planInput struct {
	id, bundle, rootfs string
	spec               *specs.Spec
	noPivot            bool
	noNewKeyring       bool
	consoleSocket      string
	preserveFDs        int
	userNS             bool
	newNet, newCgroup  bool
	cgroupPaths        map[string]string
	seccomp            *seccompProgram
	overlay            string // overlay mount data for the rootfs (AnnotationRootfsOverlay)
	// lateCgroup: the runtime moves the init into its cgroup while the init sets up its
	// mounts, and the plan waits for that (opCgroupJoin) before the first cgroup mount, or
	// before pivot_root; the cgroup namespace is made there too (see lateCgroupJoin).
	lateCgroup bool
	// cgroupTasks: with lateCgroup, the v1 "tasks" files the init writes "0" into.
	cgroupTasks []string
}

// planFallback tells why a container needs the Go init, or "" when the C init can do it all.
// Everything the plan cannot express is decided here, before anything is made.
func planFallback(in *planInput) string {
	spec := in.spec
	switch {
	case spec.Annotations[AnnotationInit] == "go":
		return "annotation " + AnnotationInit + "=go"
	case spec.Process.Terminal || in.consoleSocket != "":
		return "process.terminal (console socket)"
	case in.noPivot:
		return "--no-pivot"
	case spec.Process.ApparmorProfile != "" || spec.Process.SelinuxLabel != "" || spec.Linux.MountLabel != "":
		return "LSM labels"
	case spec.Annotations[landlock.Annotation] != "":
		return "annotation " + landlock.Annotation
	case spec.Hooks != nil && (len(spec.Hooks.CreateContainer) > 0 || len(spec.Hooks.StartContainer) > 0):
		return "createContainer or startContainer hooks"
	case in.seccomp != nil && in.seccomp.Notify:
		return "seccomp SCMP_ACT_NOTIFY"
	}
	for i, m := range spec.Mounts {
		if yes, _ := isIDMapped(m); yes {
			return fmt.Sprintf("mounts[%d] is idmapped", i)
		}
	}
	return ""
}

// compileInitPlan compiles the container's setup, in the order setupContainer and
// startProcess follow, or returns the reason the Go init must do it.
func compileInitPlan(in *planInput) (*initPlan, string, error) {
	// Checked whichever init runs: a bad value fails create before anything is made.
	overlay, err := rootfsOverlay(in.spec, true)
	if err != nil {
		return nil, "", err
	}
	in.overlay = overlay
	if why := planFallback(in); why != "" {
		return nil, why, nil
	}
	p := &initPlan{}
	spec := in.spec
	proc := spec.Process
	if !in.noNewKeyring {
		p.add(opKeyring, nil, []string{"_ses." + in.id}, "join a new session keyring")
	}
	// Through the host's /proc, before pivot_root (see writeSysctl).
	keys := make([]string, 0, len(spec.Linux.Sysctl))
	for k := range spec.Linux.Sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.add(opSysctl, nil, []string{"sys/" + strings.ReplaceAll(k, ".", "/"), spec.Linux.Sysctl[k]}, "linux.sysctl "+k)
	}
	if spec.Hostname != "" {
		p.add(opHostname, nil, []string{spec.Hostname}, fmt.Sprintf("sethostname %q", spec.Hostname))
	}
	if in.newNet && spec.Annotations[AnnotationLoopback] == "up" {
		p.add(opLoopbackUp, nil, nil, "set lo up ("+AnnotationLoopback+")")
	}
	if spec.Domainname != "" {
		p.add(opDomainname, nil, []string{spec.Domainname}, fmt.Sprintf("setdomainname %q", spec.Domainname))
	}
	if err := p.rootfs(in); err != nil {
		return nil, "", err
	}
	if err := p.process(in, proc); err != nil {
		return nil, "", err
	}
	// The C init takes strings NUL-terminated: one with a NUL inside would be cut short
	// there, where the Go init's syscalls refuse it (EINVAL). Refuse it here.
	for _, o := range p.ops {
		for _, s := range o.strs {
			if o.code != opSeccomp && strings.IndexByte(s, 0) >= 0 {
				return nil, "", fmt.Errorf("%s: %q contains a NUL byte", o.what, s)
			}
		}
	}
	return p, "", nil
}

func (p *initPlan) add(code uint32, ints []uint64, strs []string, what string) int {
	p.ops = append(p.ops, planOp{code: code, ints: ints, strs: strs, what: what})
	return len(p.ops) - 1
}

// rootfs compiles what rootfs.Prepare and Root.Finish do.
func (p *initPlan) rootfs(in *planInput) error {
	spec := in.spec
	prop, err := rootfs.Propagation(spec.Linux.RootfsPropagation)
	if err != nil {
		return err
	}
	// A shared root cannot be pivoted: keep everything slave until the switch is done.
	first := prop
	if prop&unix.MS_SHARED != 0 {
		first = unix.MS_SLAVE | unix.MS_REC
	}
	p.add(opMountHost, []uint64{uint64(first)}, []string{"", "/", "", ""},
		"make / "+rootfs.PropagationName(first)+" in the container's mount namespace")
	if in.overlay != "" {
		p.add(opMountHost, []uint64{0}, []string{"overlay", in.rootfs, "overlay", in.overlay},
			"annotation "+AnnotationRootfsOverlay+": mount overlay on "+in.rootfs)
	}
	p.add(opMountHost, []uint64{unix.MS_BIND | unix.MS_REC}, []string{in.rootfs, in.rootfs, "", ""},
		"bind rootfs "+in.rootfs+" onto itself")
	p.add(opOpenRoot, nil, []string{in.rootfs}, "open rootfs")
	devBound := false
	for i, m := range spec.Mounts {
		what := fmt.Sprintf("mounts[%d] (%s on %s)", i, rootfs.MountKind(m), m.Destination)
		if err := p.mount(in, m, what); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if filepath.Clean("/"+m.Destination) == "/dev" && rootfs.IsBind(m) {
			devBound = true
		}
	}
	if !devBound {
		for _, d := range rootfs.DefaultDevices {
			if err := p.device(in, d, "default device "+d.Path); err != nil {
				return fmt.Errorf("default device %s: %w", d.Path, err)
			}
		}
		for _, l := range rootfs.DefaultDeviceLinks {
			p.add(opSymlink, nil, []string{l[0], l[1]}, "symlink "+l[1]+" -> "+l[0])
		}
	}
	for i, d := range spec.Linux.Devices {
		what := fmt.Sprintf("linux.devices[%d] %s", i, d.Path)
		if err := p.device(in, d, what); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for _, path := range spec.Linux.MaskedPaths {
		p.add(opMask, nil, []string{filepath.Clean("/" + path)}, "linux.maskedPaths "+path)
	}
	for _, path := range spec.Linux.ReadonlyPaths {
		p.add(opReadonly, nil, []string{filepath.Clean("/" + path)}, "linux.readonlyPaths "+path)
	}
	if spec.Root.Readonly {
		p.add(opRemount, []uint64{unix.MS_RDONLY}, []string{"/"}, "make root read-only")
	}
	p.cgroupJoin(in)
	p.add(opPivot, nil, nil, "pivot_root into "+in.rootfs)
	if prop&unix.MS_SHARED != 0 {
		p.add(opMountHost, []uint64{uint64(prop)}, []string{"", "/", "", ""}, "make / "+rootfs.PropagationName(prop))
	}
	return nil
}

func (p *initPlan) mount(in *planInput, m specs.Mount, what string) error {
	opts, err := rootfs.ParseMountOptions(m)
	if err != nil {
		return err
	}
	dest := filepath.Clean("/" + m.Destination)
	if dest == "/" {
		return errors.New("cannot mount over the container's root")
	}
	if opts.Bind {
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(in.bundle, src)
		}
		p.bind(src, dest, opts, what, 0)
		return nil
	}
	of := uint64(0)
	switch m.Type {
	case "":
		return errors.New("mount has no type and is not a bind mount")
	case "cgroup", "cgroup2":
		p.cgroup(in, dest, opts.Flags, what)
		return nil
	case "proc", "sysfs":
		// procfs and sysfs must land on a real directory of that name: following an image's
		// symlink would leave the masked and read-only paths pointing elsewhere.
		of = ofNoSymlinks
		if m.Type == "sysfs" && in.userNS && !in.newNet {
			// The kernel only lets a user namespace mount sysfs for a netns it owns.
			p.bind("/sys", dest, rootfs.MountOptions{Bind: true, Recursive: true, Flags: opts.Flags | unix.MS_RDONLY}, what, ofNoSymlinks)
			return nil
		}
	case "mqueue":
		// Without an IPC namespace of its own, the container shares the host's queues.
		of = ofOrElseEPERM
	}
	i := p.add(opMount, []uint64{uint64(opts.Flags), targetDir, of, 0}, []string{m.Source, dest, m.Type, opts.Data}, what)
	if of == ofOrElseEPERM {
		n := len(p.ops)
		p.bind("/dev/mqueue", dest, rootfs.MountOptions{Bind: true, Flags: opts.Flags}, what+" (bind of the host's /dev/mqueue)", 0)
		p.ops[i].ints[3] = uint64(len(p.ops) - n)
	}
	p.propagate(dest, opts.Propagation, what)
	return nil
}

// bind compiles a bind mount: the bind, then its flags (a bind takes them only by a
// remount) and its propagation. of holds the opMount flags of the bind itself.
func (p *initPlan) bind(src, dest string, opts rootfs.MountOptions, what string, of uint64) {
	flags := uint64(unix.MS_BIND)
	if opts.Recursive {
		flags |= unix.MS_REC
	}
	p.add(opMount, []uint64{flags, targetSrc, of, 0}, []string{src, dest, "", ""}, what)
	if f := opts.Flags &^ unix.MS_REMOUNT; f != 0 {
		p.add(opRemount, []uint64{uint64(f)}, []string{dest}, what)
	}
	p.propagate(dest, opts.Propagation, what)
}

func (p *initPlan) propagate(dest string, props []uintptr, what string) {
	for _, pr := range props {
		p.add(opPropagate, []uint64{uint64(pr)}, []string{dest}, what+": set propagation "+rootfs.PropagationName(pr))
	}
}

// cgroupJoin adds, once, the init's join of its cgroup: it waits for the runtime to have
// made the cgroup (and, on a hybrid layout, moved the init into its cgroup2 part), then
// moves itself into the v1 hierarchies (cgroups.Manager.TasksFiles), then makes its cgroup
// namespace if it has one of its own.
func (p *initPlan) cgroupJoin(in *planInput) {
	if !in.lateCgroup || p.cgroupJoined {
		return
	}
	p.cgroupJoined = true
	what := "wait for the container's cgroup; write 0 to " + strings.Join(in.cgroupTasks, ", ")
	if in.newCgroup {
		p.add(opCgroupJoin, []uint64{1}, in.cgroupTasks, what+"; unshare the cgroup namespace")
		return
	}
	p.add(opCgroupJoin, []uint64{0}, in.cgroupTasks, what)
}

// cgroup compiles rootfs's mountCgroup: with a cgroup namespace of its own the hierarchies
// are mounted afresh, otherwise (or if that fails) the container's directories are bound;
// on v1 the view is a tmpfs with one directory per hierarchy.
func (p *initPlan) cgroup(in *planInput, dest string, flags uintptr, what string) {
	p.cgroupJoin(in)
	paths := in.cgroupPaths
	if v2, ok := paths[""]; ok && len(paths) == 1 {
		if in.newCgroup {
			i := p.add(opMount, []uint64{uint64(flags), targetDir, ofOrElse, 0}, []string{"cgroup2", dest, "cgroup2", ""}, what)
			n := len(p.ops)
			p.bind(v2, dest, rootfs.MountOptions{Bind: true, Flags: flags}, what, 0)
			p.ops[i].ints[3] = uint64(len(p.ops) - n)
			return
		}
		p.bind(v2, dest, rootfs.MountOptions{Bind: true, Flags: flags}, what, 0)
		return
	}
	p.add(opMount, []uint64{uint64(flags &^ unix.MS_RDONLY), targetDir, 0, 0}, []string{"tmpfs", dest, "tmpfs", "mode=755"},
		what+": tmpfs for the cgroup hierarchies")
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		host := paths[k]
		name := rootfs.HierarchyDir(host)
		if name == "" {
			continue
		}
		sub := filepath.Join(dest, name)
		hwhat := what + ": cgroup hierarchy " + name
		if in.newCgroup {
			typ, data := "cgroup", k
			switch {
			case k == "":
				typ, data = "cgroup2", ""
			case strings.HasPrefix(k, "name="):
				data = "none," + k
			}
			i := p.add(opMount, []uint64{uint64(flags), targetDir, ofOrElse, 0}, []string{typ, sub, typ, data}, hwhat)
			n := len(p.ops)
			p.bind(host, sub, rootfs.MountOptions{Bind: true, Flags: flags}, hwhat, 0)
			p.ops[i].ints[3] = uint64(len(p.ops) - n)
			continue
		}
		p.bind(host, sub, rootfs.MountOptions{Bind: true, Flags: flags}, hwhat, 0)
	}
	if flags&unix.MS_RDONLY != 0 {
		p.add(opRemount, []uint64{uint64(flags)}, []string{dest}, what)
	}
}

// device compiles rootfs's createDevice: a node, or in a user namespace (no mknod there) a
// bind of the host's node of the same path.
func (p *initPlan) device(in *planInput, d specs.LinuxDevice, what string) error {
	path := filepath.Clean("/" + d.Path)
	if !strings.HasPrefix(path, "/dev/") {
		return fmt.Errorf("device path %s is not under /dev", d.Path)
	}
	kind, ok := rootfs.DeviceMode(d.Type)
	if !ok {
		return fmt.Errorf("unknown device type %q (c, b, u or p)", d.Type)
	}
	if in.userNS {
		p.bind(path, path, rootfs.MountOptions{Bind: true}, what+": in a user namespace devices are bind-mounted from the host", 0)
		return nil
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	uid, gid := int64(-1), int64(-1)
	if d.UID != nil {
		uid = int64(*d.UID)
	}
	if d.GID != nil {
		gid = int64(*d.GID)
	}
	p.add(opMknod, []uint64{uint64(kind | mode), unix.Mkdev(uint32(d.Major), uint32(d.Minor)), uint64(uid), uint64(gid)},
		[]string{path}, what)
	return nil
}

// process compiles startProcess, in its order.
func (p *initPlan) process(in *planInput, proc *specs.Process) error {
	spec := in.spec
	for _, rl := range proc.Rlimits {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("process.rlimits: unknown type %q", rl.Type)
		}
		p.add(opRlimit, []uint64{uint64(res), rl.Soft, rl.Hard}, nil, "process.rlimits "+rl.Type)
	}
	if pe := spec.Linux.Personality; pe != nil {
		var dom uint64
		switch pe.Domain {
		case specs.PerLinux:
			dom = 0x0000
		case specs.PerLinux32:
			dom = 0x0008
		default:
			return fmt.Errorf("linux.personality.domain: unknown domain %q (LINUX or LINUX32)", pe.Domain)
		}
		if len(pe.Flags) > 0 {
			return fmt.Errorf("linux.personality.flags: no flags are defined, got %v", pe.Flags)
		}
		p.add(opPersonality, []uint64{dom}, nil, "personality "+string(pe.Domain))
	}
	caps, err := security.ParseCaps(proc.Capabilities)
	if err != nil {
		return err
	}
	p.warnings = append(p.warnings, caps.Warnings...)
	if len(proc.Args) == 0 {
		return errors.New("process.args is empty")
	}
	p.args0 = proc.Args[0]
	p.path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range proc.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			p.path = v
		}
	}
	p.add(opLookPath, nil, []string{p.args0, p.path}, "process.args[0]")
	// Every descriptor past stdio and the preserved ones closes at exec (CVE-2024-21626).
	p.add(opCloseRange, []uint64{uint64(3 + in.preserveFDs)}, nil, "close_range")
	p.add(opChdir, []uint64{0}, []string{proc.Cwd}, "process.cwd "+proc.Cwd)
	// seccomp as late as it can, as startProcess explains.
	var filter []byte
	var sflags uint64
	if in.seccomp != nil {
		filter, sflags = in.seccomp.Program, uint64(in.seccomp.Flags)
		if len(filter) == 0 || len(filter)%8 != 0 {
			return errors.New("linux.seccomp: compiled program of a bad length")
		}
	}
	if filter != nil && !proc.NoNewPrivileges {
		p.add(opSeccomp, []uint64{sflags}, []string{string(filter)}, "linux.seccomp")
	}
	last := uint64(security.LastCap())
	p.add(opCapBset, []uint64{caps.Bounding, last}, nil, "process.capabilities.bounding")
	umask := int64(-1)
	if proc.User.Umask != nil {
		umask = int64(*proc.User.Umask)
	}
	ids := []uint64{uint64(proc.User.UID), uint64(proc.User.GID), uint64(umask)}
	for _, g := range proc.User.AdditionalGids {
		ids = append(ids, uint64(g))
	}
	p.add(opSetUser, ids, nil, "process.user")
	p.add(opChdir, []uint64{1}, []string{proc.Cwd}, "process.cwd "+proc.Cwd)
	p.add(opCapSet, []uint64{caps.Effective, caps.Permitted, caps.Inheritable}, nil, "process.capabilities")
	p.add(opAmbient, []uint64{caps.Ambient, last}, nil, "process.capabilities.ambient")
	if proc.NoNewPrivileges {
		p.add(opNNP, nil, nil, "process.noNewPrivileges")
	}
	p.add(opReady, nil, nil, "report ready")
	p.add(opWait, []uint64{0}, nil, "wait for start on exec.fifo")
	if filter != nil && proc.NoNewPrivileges {
		p.add(opSeccomp, []uint64{sflags}, []string{string(filter)}, "linux.seccomp")
	}
	strs := append(append([]string{}, proc.Args...), proc.Env...)
	p.add(opExec, []uint64{uint64(len(proc.Args))}, strs, "exec "+p.args0)
	return nil
}

// encode returns the plan frame, with fifoFD as the descriptor of exec.fifo in the init.
func (p *initPlan) encode(fifoFD int) []byte {
	body := make([]byte, 4, 4096)
	for _, o := range p.ops {
		if o.code == opWait {
			o.ints = []uint64{uint64(fifoFD)}
		}
		start := len(body)
		body = binary.NativeEndian.AppendUint32(body, o.code)
		body = binary.NativeEndian.AppendUint32(body, 0) // length, set below
		body = binary.NativeEndian.AppendUint32(body, uint32(len(o.ints)))
		body = binary.NativeEndian.AppendUint32(body, uint32(len(o.strs)))
		for _, v := range o.ints {
			body = binary.NativeEndian.AppendUint64(body, v)
		}
		for _, s := range o.strs {
			body = binary.NativeEndian.AppendUint32(body, uint32(len(s)))
			body = append(body, s...)
			body = append(body, 0)
		}
		binary.NativeEndian.PutUint32(body[start+4:], uint32(len(body)-start-8))
	}
	binary.NativeEndian.PutUint32(body, uint32(len(body)-4))
	return body
}

// withPlanRecord adds to a namespace bootstrap message the record that makes the C stage
// run a plan instead of returning into Go.
func withPlanRecord(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	out = append(out, b...)
	out = binary.NativeEndian.AppendUint32(out, bootstrapPlanRecord)
	out = binary.NativeEndian.AppendUint32(out, 0)
	binary.NativeEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// awaitReady reads the C init's answer: ready (with the ambient capabilities it could not
// raise, as warnings), or which operation failed and why.
func (p *initPlan) awaitReady(r io.Reader) ([]string, error) {
	var tag [1]byte
	if _, err := io.ReadFull(r, tag[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = errNoWord
		}
		return nil, fmt.Errorf("init did not report ready: %w", err)
	}
	switch tag[0] {
	case 'R':
		var missing uint64
		if err := binary.Read(r, binary.NativeEndian, &missing); err != nil {
			return nil, fmt.Errorf("init did not report ready: %w", err)
		}
		warnings := p.warnings
		for i := 0; i < 64; i++ {
			if missing&(1<<uint(i)) != 0 {
				warnings = append(warnings, fmt.Sprintf("process.capabilities.ambient: %s not raised (it must be permitted and inheritable too)", security.CapName(i)))
			}
		}
		return warnings, nil
	case 'F':
		var hdr struct {
			Op, Errno int32
			Len       uint32
		}
		if err := binary.Read(r, binary.NativeEndian, &hdr); err != nil || hdr.Len > 4096 {
			return nil, fmt.Errorf("init failed and its report is unreadable: %v", err)
		}
		ctx := make([]byte, hdr.Len)
		if _, err := io.ReadFull(r, ctx); err != nil {
			return nil, fmt.Errorf("init failed and its report is unreadable: %w", err)
		}
		return nil, p.failure(int(hdr.Op), unix.Errno(hdr.Errno), string(ctx))
	}
	return nil, fmt.Errorf("init sent unknown reply %q", tag[0])
}

// failure turns the C init's report into an error naming the spec field, as the Go init's
// errors do.
func (p *initPlan) failure(idx int, errno unix.Errno, ctx string) error {
	if idx < 0 || idx >= len(p.ops) {
		return fmt.Errorf("init: %s: %w", ctx, errno)
	}
	o := p.ops[idx]
	if errno == 0 {
		return fmt.Errorf("%s: %s", o.what, ctx)
	}
	switch o.code {
	case opMountHost:
		if o.strs[2] == "overlay" {
			return rootfs.OverlayError(o.strs[1], o.strs[3], errno)
		}
		if errno == unix.EACCES && strings.HasPrefix(o.what, "bind rootfs") {
			return fmt.Errorf("%s: %w (in a user namespace, the container's root must be able to search every directory above the rootfs)", o.what, errno)
		}
	case opRlimit:
		var cur unix.Rlimit
		if errno == unix.EPERM && unix.Getrlimit(int(o.ints[0]), &cur) == nil && o.ints[2] > cur.Max {
			return fmt.Errorf("%s: hard limit %d is above the runtime's own (%d), and raising it needs CAP_SYS_RESOURCE, which this runtime does not have: %w",
				o.what, o.ints[2], cur.Max, errno)
		}
		return fmt.Errorf("%s: setrlimit soft %d hard %d: %w", o.what, o.ints[1], o.ints[2], errno)
	case opLookPath:
		if strings.Contains(p.args0, "/") {
			switch errno {
			case unix.EISDIR:
				return fmt.Errorf("process.args[0] %s: is a directory", p.args0)
			case unix.EACCES:
				return fmt.Errorf("process.args[0] %s: is not executable", p.args0)
			}
			return fmt.Errorf("process.args[0] %s: stat %s: %w", p.args0, p.args0, errno)
		}
		return fmt.Errorf("process.args[0] %q: executable file not found in $PATH (%s) inside the container", p.args0, p.path)
	case opChdir:
		if errno == unix.EXDEV {
			return fmt.Errorf("%s resolves outside the container's root", o.what)
		}
		return fmt.Errorf("%s: %w", o.what, errno)
	case opSeccomp:
		hint := ""
		switch errno {
		case unix.EACCES:
			hint = " (the process needs no_new_privs or CAP_SYS_ADMIN)"
		case unix.EINVAL:
			hint = " (a flag this kernel does not support?)"
		}
		return fmt.Errorf("%s: seccomp: %s: %w%s", o.what, ctx, errno, hint)
	case opSetUser:
		return fmt.Errorf("%s: %s: %w", o.what, ctx, errno)
	}
	return fmt.Errorf("%s: %s: %w", o.what, ctx, errno)
}

// noteInit records which init a container got, when initLogEnv asks for it.
func noteInit(root, id, why string) {
	path := os.Getenv(initLogEnv)
	if path == "" {
		return
	}
	line := root + " " + id + " plan\n"
	if why != "" {
		line = root + " " + id + " go: " + why + "\n"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	f.WriteString(line)
	f.Close()
}
