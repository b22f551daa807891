package rootfs

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// MountOptions is an OCI mount's options as mount(2) takes them, for a runtime that
// compiles the mounts into a plan that another process carries out.
type MountOptions struct {
	Flags       uintptr   // MS_* flags to set (MS_REMOUNT included when asked for)
	Propagation []uintptr // MS_SHARED, MS_SLAVE, ... applied one by one after the mount
	Data        string    // filesystem-specific options, comma-joined
	Bind        bool      // a bind mount (type "bind", or the bind or rbind option)
	Recursive   bool      // rbind
}

// ParseMountOptions parses m's options exactly as Prepare does.
func ParseMountOptions(m specs.Mount) (MountOptions, error) {
	o, err := parseOptions(m.Options)
	if err != nil {
		return MountOptions{}, err
	}
	return MountOptions{
		Flags:       o.flags,
		Propagation: o.propagation,
		Data:        strings.Join(o.data, ","),
		Bind:        o.bind || m.Type == "bind",
		Recursive:   o.recursive,
	}, nil
}

// IsBind tells whether m is a bind mount.
func IsBind(m specs.Mount) bool { return isBind(m) }

// MountKind names m in errors: "bind <source>" or its type.
func MountKind(m specs.Mount) string { return mountKind(m) }

// PropagationName names a propagation flag set ("rslave", ...).
func PropagationName(p uintptr) string { return propName(p) }

// HierarchyDir is the directory a cgroup hierarchy of path is mounted under on the host
// ("memory", "cpu,cpuacct", "unified"), or "" when path is not under /sys/fs/cgroup.
func HierarchyDir(path string) string { return hierarchyDir(path) }

// DefaultDeviceLinks are the symlinks every container's /dev gets (target, link).
var DefaultDeviceLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"pts/ptmx", "/dev/ptmx"},
}

// DeviceMode returns the S_IF* kind of an OCI device type, or false for an unknown type.
func DeviceMode(typ string) (uint32, bool) {
	switch typ {
	case "c", "u":
		return unix.S_IFCHR, true
	case "b":
		return unix.S_IFBLK, true
	case "p":
		return unix.S_IFIFO, true
	}
	return 0, false
}
