package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/runtime"
	"github.com/berth-containers/berth/internal/security"
	"github.com/berth-containers/berth/internal/security/seccomp"
)

// InitPath is where --init's berth-init is bind-mounted in the container.
const InitPath = "/sbin/berth-init"

// specInputs is what a start knows besides the record: where the rootfs is mounted, how
// the network namespace is set up, and which files to bind-mount.
type specInputs struct {
	Rootfs string
	// UserDB, when set, is a directory whose etc/passwd and etc/group are the container's
	// (a rootless overlay is not mounted on the host: see userDBView).
	UserDB string
	// ReadFile, when set, reads a file of the container's (its users): the spec is then
	// built without the rootfs mounted yet.
	ReadFile func(path string) ([]byte, error)
	// NetnsPath is a network namespace to join (--network container:NAME); HostNet shares
	// the host's.
	NetnsPath string
	// OwnNetns says the engine made that network namespace for this container alone.
	OwnNetns bool
	HostNet  bool
	// Files maps a container path (/etc/hosts, ...) to the host file bind-mounted there.
	Files map[string]string
	// Hostname overrides Config.Hostname (the container whose network is shared).
	Hostname string
	// InitBinary is berth-init on the host, for --init.
	InitBinary string
	// LoUp asks for lo to be set up in the network namespace the runtime makes
	// (--network none, setupNone).
	LoUp bool
	// Modes are --pid, --ipc and --uts as this start resolved them (nsmodes.go).
	Modes nsModes
}

// securityOpts is --security-opt, parsed.
type securityOpts struct {
	seccomp         string // "", "unconfined" or a profile file
	noNewPrivileges bool
	apparmor        string
	label           []string
	labelDisable    bool
	systemPaths     bool // systempaths=unconfined: no masked or read-only paths
}

func parseSecurityOpt(so string) (*securityOpts, error) {
	o := &securityOpts{}
	return o, o.add(so)
}

func (o *securityOpts) add(so string) error {
	k, v, ok := strings.Cut(so, "=")
	if !ok {
		k, v, ok = strings.Cut(so, ":")
	}
	switch k {
	case "no-new-privileges":
		if !ok {
			o.noNewPrivileges = true
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("invalid --security-opt 2: %q", so)
		}
		o.noNewPrivileges = b
	case "seccomp":
		if v == "" {
			return usagef("invalid --security-opt: %q", so)
		}
		o.seccomp = v
	case "apparmor":
		o.apparmor = v
	case "label":
		if v == "disable" {
			o.labelDisable = true
		} else {
			o.label = append(o.label, v)
		}
	case "systempaths":
		if v != "unconfined" {
			return usagef("invalid --security-opt: %q (systempaths takes unconfined)", so)
		}
		o.systemPaths = true
	default:
		return usagef("invalid --security-opt: %q", so)
	}
	return nil
}

func parseSecurityOpts(list []string) (*securityOpts, error) {
	o := &securityOpts{}
	for _, so := range list {
		if err := o.add(so); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into "CAP_NET_ADMIN";
// "ALL" stays.
func normalizeCap(c string) (string, error) {
	u := strings.ToUpper(c)
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	for _, k := range security.KnownCaps() {
		if k == u {
			return u, nil
		}
	}
	return "", usagef("invalid capability: %q", c)
}

// capabilities computes the set: Docker's defaults, plus --cap-add, minus --cap-drop;
// "ALL" adds or drops everything; --privileged has everything. "Everything" is what this
// process holds: a container cannot get a capability the engine does not have (this host's
// root lacks CAP_SYS_RESOURCE, for one).
func capabilities(hc *HostConfig) []string {
	var all []string
	held := heldCaps()
	for i, name := range security.KnownCaps() {
		if i <= security.LastCap() && held&(1<<uint(i)) != 0 {
			all = append(all, name)
		}
	}
	if hc.Privileged {
		return all
	}
	set := map[string]bool{}
	for _, c := range runtime.DefaultCaps {
		set[c] = true
	}
	// As on Docker, --cap-drop ALL starts from nothing and --cap-add adds to that;
	// otherwise the drops apply after the adds.
	for _, c := range hc.CapDrop {
		if n, _ := normalizeCap(c); n == "ALL" {
			set = map[string]bool{}
		}
	}
	for _, c := range hc.CapAdd {
		n, _ := normalizeCap(c)
		if n == "ALL" {
			for _, a := range all {
				set[a] = true
			}
		} else {
			set[n] = true
		}
	}
	for _, c := range hc.CapDrop {
		if n, _ := normalizeCap(c); n != "ALL" {
			delete(set, n)
		}
	}
	var out []string
	for _, a := range all {
		if set[a] {
			out = append(out, a)
		}
	}
	return out
}

// heldCaps is this process's permitted capability set; for a rootless engine every
// capability, which its containers' root holds over their own user namespace.
func heldCaps() uint64 {
	if Rootless() {
		return ^uint64(0)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ^uint64(0)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				return n
			}
		}
	}
	return ^uint64(0)
}

var ulimitNames = map[string]string{
	"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
	"rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
	"sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

// buildSpec turns the record into the OCI config of one run.
func (e *Engine) buildSpec(c *Container, in specInputs) (*specs.Spec, error) {
	hc := &c.HostConfig
	sec, err := parseSecurityOpts(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	s := runtime.DefaultSpec(false)
	s.Root = &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs}
	p := s.Process
	p.Terminal = c.Config.Tty
	p.Args = append([]string{c.Path}, c.Args...)
	if hc.Init != nil && *hc.Init {
		p.Args = append([]string{InitPath, "--"}, p.Args...)
	}
	p.Cwd = c.Config.WorkingDir
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	hostname := c.Config.Hostname
	if in.Hostname != "" {
		hostname = in.Hostname
	}
	if in.HostNet {
		hostname, _ = os.Hostname()
	}
	env := append([]string{}, c.Config.Env...)
	if !hasEnv(env, "HOSTNAME") && hostname != "" {
		env = append(env, "HOSTNAME="+hostname)
	}
	if c.Config.Tty && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	p.Env = env
	userDB := in.Rootfs
	if in.UserDB != "" {
		userDB = in.UserDB
	}
	var user specs.User
	if in.ReadFile != nil {
		user, err = image.ResolveUserFrom(in.ReadFile, c.Config.User)
	} else {
		user, err = image.ResolveUser(userDB, c.Config.User)
	}
	if err != nil {
		return nil, err
	}
	p.User = user
	caps := capabilities(hc)
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	p.NoNewPrivileges = sec.noNewPrivileges
	// Limits not given are inherited (the monitor's, i.e. the engine's), as Docker's are
	// the daemon's.
	p.Rlimits = nil
	for _, u := range hc.Ulimits {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: ulimitNames[u.Name], Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	if sec.apparmor != "" && sec.apparmor != "unconfined" {
		p.ApparmorProfile = sec.apparmor
	}
	if len(sec.label) > 0 && !sec.labelDisable {
		p.SelinuxLabel = strings.Join(sec.label, ":")
	}

	s.Hostname = hostname
	s.Domainname = c.Config.Domainname
	if in.HostNet {
		s.Hostname, s.Domainname = "", ""
	}
	s.Annotations = map[string]string{"io.berth.container.name": c.Name}
	if c.Config.StopSignal != "" {
		s.Annotations[image.AnnotationStopSignal] = c.Config.StopSignal
	}
	for k, v := range c.Config.Labels {
		if _, ok := s.Annotations[k]; !ok {
			s.Annotations[k] = v
		}
	}

	// Mounts: the defaults, then the network files, the user's, and berth-init.
	for i := range s.Mounts {
		m := &s.Mounts[i]
		switch m.Destination {
		case "/dev/shm":
			m.Options = replaceOpt(m.Options, "size=", "size="+strconv.FormatInt(hc.ShmSize, 10))
		case "/sys", "/sys/fs/cgroup":
			if hc.Privileged {
				m.Options = removeOpt(m.Options, "ro")
			}
		}
	}
	userDests := map[string]bool{}
	for _, m := range c.Mounts {
		userDests[m.Destination] = true
	}
	files := make([]string, 0, len(in.Files))
	for dst := range in.Files {
		files = append(files, dst)
	}
	sort.Strings(files)
	for _, dst := range files {
		if userDests[dst] {
			continue
		}
		opts := []string{"rbind", "rprivate"}
		if hc.ReadonlyRootfs {
			opts = append(opts, "ro")
		}
		if c.UserNSMap != nil {
			// The host's root owns these files; through an idmapped mount the
			// container's root does.
			opts = append(opts, "idmap")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: in.Files[dst], Options: opts})
	}
	for _, m := range c.Mounts {
		switch m.Type {
		case "tmpfs":
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: m.Options})
		default:
			opts := []string{"rbind"}
			prop := m.Propagation
			if prop == "" {
				prop = "rprivate"
			}
			opts = append(opts, prop)
			if !m.RW {
				opts = append(opts, "ro")
			}
			if c.UserNSMap != nil {
				// Volumes and binds are shared with the host and other containers:
				// idmapped, root inside is root on them, as without --userns.
				opts = append(opts, "ridmap")
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		}
	}
	if hc.Init != nil && *hc.Init {
		if in.InitBinary == "" {
			return nil, errors.New("--init: berth-init (the berth-monitor binary) was not found")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: InitPath, Type: "bind", Source: in.InitBinary, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}

	l := s.Linux
	// Namespaces: the defaults (pid, net, ipc, uts, mount, cgroup), adjusted for the
	// network mode and --userns.
	var ns []specs.LinuxNamespace
	for _, n := range l.Namespaces {
		switch n.Type {
		case specs.NetworkNamespace:
			if in.HostNet {
				continue
			}
			n.Path = in.NetnsPath
		case specs.UTSNamespace:
			if in.HostNet {
				continue
			}
		}
		ns = append(ns, n)
	}
	if c.UserNSMap != nil {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
		m := specs.LinuxIDMapping{ContainerID: c.UserNSMap.ContainerID, HostID: c.UserNSMap.HostID, Size: c.UserNSMap.Size}
		l.UIDMappings = []specs.LinuxIDMapping{m}
		l.GIDMappings = []specs.LinuxIDMapping{m}
	}
	l.Namespaces = ns
	in.Modes.apply(s)
	if in.OwnNetns {
		// Joined by path, but the container's own: `berth ns` attributes it.
		s.Annotations[runtime.AnnotationOwnedNamespaces] = string(specs.NetworkNamespace)
	}
	// net.* sysctls of a namespace the engine made were written when it made it (the
	// runtime only writes those of namespaces it creates).
	l.Sysctl = map[string]string{}
	for k, v := range hc.Sysctls {
		if !(strings.HasPrefix(k, "net.") && in.NetnsPath != "") {
			l.Sysctl[k] = v
		}
	}

	res := l.Resources
	if hc.Memory > 0 {
		mem := &specs.LinuxMemory{Limit: &hc.Memory}
		if swapAccounting() {
			swap := hc.MemorySwap
			switch {
			case swap == 0:
				swap = 2 * hc.Memory
			case swap < 0:
				swap = -1
			}
			mem.Swap = &swap
		} else if hc.MemorySwap != 0 {
			e.warn("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
		}
		res.Memory = mem
	}
	if hc.NanoCpus > 0 || hc.CPUShares > 0 || hc.CpusetCpus != "" {
		cpu := &specs.LinuxCPU{Cpus: hc.CpusetCpus}
		if hc.NanoCpus > 0 {
			period := uint64(100000)
			quota := hc.NanoCpus * int64(period) / 1e9
			cpu.Period, cpu.Quota = &period, &quota
		}
		if hc.CPUShares > 0 {
			sh := uint64(hc.CPUShares)
			cpu.Shares = &sh
		}
		res.CPU = cpu
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		res.Pids = &specs.LinuxPids{Limit: hc.PidsLimit}
	}
	if hc.Privileged {
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		devs, err := hostDevices()
		if err != nil {
			return nil, err
		}
		l.Devices = devs
	}
	for _, d := range hc.Devices {
		dev, err := deviceFromHost(d.PathOnHost, d.PathInContainer)
		if err != nil {
			return nil, err
		}
		l.Devices = append(l.Devices, *dev)
		major, minor := dev.Major, dev.Minor
		perms := d.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
	}
	switch {
	case hc.Privileged || sec.seccomp == "unconfined":
		l.Seccomp = nil
	case sec.seccomp != "":
		prof, err := loadSeccompProfile(sec.seccomp)
		if err != nil {
			return nil, err
		}
		l.Seccomp = prof
	}
	if hc.Privileged || sec.systemPaths {
		l.MaskedPaths, l.ReadonlyPaths = nil, nil
	}
	return s, nil
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

func replaceOpt(opts []string, prefix, with string) []string {
	out := make([]string, 0, len(opts)+1)
	for _, o := range opts {
		if !strings.HasPrefix(o, prefix) {
			out = append(out, o)
		}
	}
	return append(out, with)
}

func removeOpt(opts []string, name string) []string {
	out := opts[:0:0]
	for _, o := range opts {
		if o != name {
			out = append(out, o)
		}
	}
	return out
}

// swapAccounting tells whether the memory controller limits swap (memsw on v1).
func swapAccounting() bool {
	for _, p := range []string{"/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// loadSeccompProfile reads --security-opt seccomp=FILE: the OCI form, or Docker's (which
// has the same field names and adds archMap, read here for the architectures).
func loadSeccompProfile(path string) (*specs.LinuxSeccomp, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening seccomp profile (%s) failed: %w", path, err)
	}
	var prof specs.LinuxSeccomp
	if err := json.Unmarshal(b, &prof); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile failed: %s: %w", path, err)
	}
	var docker struct {
		ArchMap []struct {
			Arch      specs.Arch   `json:"architecture"`
			SubArches []specs.Arch `json:"subArchitectures"`
		} `json:"archMap"`
	}
	if json.Unmarshal(b, &docker) == nil && len(prof.Architectures) == 0 {
		for _, a := range docker.ArchMap {
			prof.Architectures = append(prof.Architectures, a.Arch)
			prof.Architectures = append(prof.Architectures, a.SubArches...)
		}
	}
	if prof.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile %s: defaultAction is missing", path)
	}
	if _, err := seccomp.Compile(&prof); err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", path, err)
	}
	return &prof, nil
}

// deviceFromHost describes the host's device node for --device.
func deviceFromHost(hostPath, ctrPath string) (*specs.LinuxDevice, error) {
	if ctrPath == "" {
		ctrPath = hostPath
	}
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return nil, fmt.Errorf("error gathering device information while adding custom device %q: %w", hostPath, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return nil, fmt.Errorf("error gathering device information while adding custom device %q: not a device node", hostPath)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return &specs.LinuxDevice{Path: ctrPath, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid}, nil
}

// hostDevices lists the host's device nodes for --privileged, leaving out the ones every
// container gets anyway and the pty and console devices, which belong to the host.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	skip := map[string]bool{"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/console": true,
		"/dev/ptmx": true, "/dev/tty": true, "/dev/null": true, "/dev/zero": true, "/dev/full": true,
		"/dev/random": true, "/dev/urandom": true}
	err := filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if skip[p] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(os.ModeDevice|os.ModeCharDevice) == 0 {
			return nil
		}
		if dev, err := deviceFromHost(p, p); err == nil {
			out = append(out, *dev)
		}
		return nil
	})
	return out, err
}
