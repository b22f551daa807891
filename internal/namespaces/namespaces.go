// Package namespaces knows the kernel's namespace types: their OCI names, clone flags and
// /proc/<pid>/ns file names, how to describe which ones a container creates or joins, and the
// bootstrap message that the pre-Go stage in package nsenter acts on.
package namespaces

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Type is one namespace type with its names and flag.
type Type struct {
	OCI   specs.LinuxNamespaceType // "pid", "network", "mount", ...
	Proc  string                   // file name under /proc/<pid>/ns
	Flag  uintptr                  // CLONE_NEW*
	Short string                   // lsns's TYPE column
}

// All lists every namespace type, in the order the kernel documents them.
var All = []Type{
	{specs.MountNamespace, "mnt", unix.CLONE_NEWNS, "mnt"},
	{specs.CgroupNamespace, "cgroup", unix.CLONE_NEWCGROUP, "cgroup"},
	{specs.UTSNamespace, "uts", unix.CLONE_NEWUTS, "uts"},
	{specs.IPCNamespace, "ipc", unix.CLONE_NEWIPC, "ipc"},
	{specs.UserNamespace, "user", unix.CLONE_NEWUSER, "user"},
	{specs.PIDNamespace, "pid", unix.CLONE_NEWPID, "pid"},
	{specs.NetworkNamespace, "net", unix.CLONE_NEWNET, "net"},
	{specs.TimeNamespace, "time", unix.CLONE_NEWTIME, "time"},
}

// ByOCI finds a type by its OCI name.
func ByOCI(t specs.LinuxNamespaceType) (Type, bool) {
	for _, n := range All {
		if n.OCI == t {
			return n, true
		}
	}
	return Type{}, false
}

// Plan is what the container's first process does with namespaces: join the ones that have
// a path, then create the others.
type Plan struct {
	Create  uintptr      // CLONE_NEW* flags to create
	Join    []JoinTarget // existing namespaces to enter
	Offsets string       // /proc/self/timens_offsets text for a new time namespace
}

// JoinTarget is one existing namespace to enter.
type JoinTarget struct {
	Type Type
	Path string
}

// Has tells whether the plan creates or joins a namespace of type t.
func (p *Plan) Has(t specs.LinuxNamespaceType) bool {
	n, _ := ByOCI(t)
	if p.Create&n.Flag != 0 {
		return true
	}
	for _, j := range p.Join {
		if j.Type.OCI == t {
			return true
		}
	}
	return false
}

// Creates tells whether the plan makes a new namespace of type t.
func (p *Plan) Creates(t specs.LinuxNamespaceType) bool {
	n, _ := ByOCI(t)
	return p.Create&n.Flag != 0
}

// NewPlan validates linux.namespaces and linux.timeOffsets and turns them into a Plan.
func NewPlan(nss []specs.LinuxNamespace, offsets map[string]specs.LinuxTimeOffset) (*Plan, error) {
	p := &Plan{}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range nss {
		t, ok := ByOCI(ns.Type)
		if !ok {
			return nil, fmt.Errorf("linux.namespaces: unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return nil, fmt.Errorf("linux.namespaces: namespace type %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path == "" {
			p.Create |= t.Flag
			continue
		}
		if !filepath.IsAbs(ns.Path) {
			return nil, fmt.Errorf("linux.namespaces: %s namespace path %q is not absolute", ns.Type, ns.Path)
		}
		if err := checkNsFile(ns.Path, t); err != nil {
			return nil, err
		}
		p.Join = append(p.Join, JoinTarget{Type: t, Path: ns.Path})
	}
	if len(offsets) > 0 {
		if p.Create&unix.CLONE_NEWTIME == 0 {
			return nil, fmt.Errorf("linux.timeOffsets: set, but no new time namespace is configured")
		}
		var b strings.Builder
		for clock, off := range offsets {
			switch clock {
			case "monotonic", "boottime":
			default:
				return nil, fmt.Errorf("linux.timeOffsets: unknown clock %q (monotonic or boottime)", clock)
			}
			if off.Nanosecs >= 1e9 {
				return nil, fmt.Errorf("linux.timeOffsets.%s: nanosecs %d is not below one second", clock, off.Nanosecs)
			}
			fmt.Fprintf(&b, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
		}
		p.Offsets = b.String()
	}
	return p, nil
}

// checkNsFile makes sure path is a namespace file of the right type, so a typo is reported
// at create time with the path, not as a bare EINVAL from setns.
func checkNsFile(path string, t Type) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.namespaces: %s namespace path %s: %w", t.OCI, path, err)
	}
	defer unix.Close(fd)
	got, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("linux.namespaces: %s namespace path %s is not a namespace file: %w", t.OCI, path, err)
	}
	if uintptr(got) != t.Flag {
		return fmt.Errorf("linux.namespaces: %s namespace path %s is a namespace of another type", t.OCI, path)
	}
	return nil
}

// Bootstrap record types, as nsenter.c reads them.
const (
	recCloneFlags    = 1
	recNsPath        = 2
	recTimensOffsets = 3
)

// Bootstrap encodes the plan as the message nsenter.c reads first from its socket.
func (p *Plan) Bootstrap() []byte {
	var body []byte
	add := func(typ uint32, data []byte) {
		body = binary.NativeEndian.AppendUint32(body, typ)
		body = binary.NativeEndian.AppendUint32(body, uint32(len(data)))
		body = append(body, data...)
	}
	add(recCloneFlags, binary.NativeEndian.AppendUint32(nil, uint32(p.Create)))
	for _, j := range p.Join {
		add(recNsPath, append(binary.NativeEndian.AppendUint32(nil, uint32(j.Type.Flag)), j.Path...))
	}
	if p.Offsets != "" {
		add(recTimensOffsets, []byte(p.Offsets))
	}
	return append(binary.NativeEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// Inode returns the inode number of /proc/<pid>/ns/<name>, which identifies a namespace.
func Inode(pid int, name string) (uint64, error) {
	var st unix.Stat_t
	p := fmt.Sprintf("/proc/%d/ns/%s", pid, name)
	if err := unix.Stat(p, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return st.Ino, nil
}
