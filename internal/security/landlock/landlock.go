// Package landlock confines the calling thread with a Landlock ruleset
// (landlock_create_ruleset, landlock_add_rule, landlock_restrict_self), as
// the container init's last step before execve.
//
// # How an OCI config asks for it
//
// The annotation "org.berth.landlock" holds a JSON object:
//
//	{
//	  "readOnly":   ["/usr", "/etc/ssl"],  // read files, list dirs, execute
//	  "readWrite":  ["/tmp", "/data"],     // every filesystem right
//	  "bindTCP":    [8080],                // TCP ports bind(2) may use
//	  "connectTCP": [443, 5432],           // TCP ports connect(2) may reach
//	  "minABI":     4                      // refuse to run on an older Landlock
//	}
//
// Paths are absolute, resolved when the ruleset is applied (inside the
// container's root, just before exec), and must exist; each grants its
// rights to the whole hierarchy beneath it. Once a ruleset is applied,
// filesystem access outside the listed paths is denied, so a useful policy
// lists the program's own files too (for example "/" read-only). A file
// (not directory) path gets only the rights that apply to files.
//
// Without readOnly and readWrite the filesystem is not restricted at all.
//
// Network restriction is opt-in per direction: when "bindTCP" is present
// (even as []), binding TCP ports not listed is denied; likewise
// "connectTCP" for connecting. Without the key that direction is not
// restricted. Unknown keys are an error, so a typo cannot silently weaken a
// policy.
//
// # Older kernels
//
// Landlock's ABI grows with the kernel. Apply probes the ABI version and
// handles only the rights that version knows (REFER needs ABI 2, TRUNCATE 3,
// TCP ports 4, IOCTL_DEV 5); rights the kernel cannot enforce are left
// unrestricted rather than failing the container: best effort, as the
// Landlock documentation recommends. "minABI" turns that into a hard
// requirement.
package landlock

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Annotation is the OCI annotation carrying a Config as JSON.
const Annotation = "org.berth.landlock"

// Config is the parsed annotation. A nil BindTCP or ConnectTCP leaves that
// direction unrestricted; a non-nil empty one denies it entirely.
type Config struct {
	ReadOnly   []string `json:"readOnly,omitempty"`
	ReadWrite  []string `json:"readWrite,omitempty"`
	BindTCP    []uint16 `json:"bindTCP,omitempty"`
	ConnectTCP []uint16 `json:"connectTCP,omitempty"`
	MinABI     int      `json:"minABI,omitempty"`
}

// Parse decodes and checks an annotation value.
func Parse(value string) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s: trailing data after the JSON object", Annotation)
	}
	for _, set := range []struct {
		key   string
		paths []string
	}{{"readOnly", c.ReadOnly}, {"readWrite", c.ReadWrite}} {
		for _, p := range set.paths {
			if !filepath.IsAbs(p) {
				return nil, fmt.Errorf("annotation %s: %s path %q is not absolute", Annotation, set.key, p)
			}
		}
	}
	if c.MinABI < 0 {
		return nil, fmt.Errorf("annotation %s: minABI %d is negative", Annotation, c.MinABI)
	}
	if len(c.ReadOnly)+len(c.ReadWrite) == 0 && c.BindTCP == nil && c.ConnectTCP == nil {
		return nil, fmt.Errorf("annotation %s: no readOnly, readWrite, bindTCP or connectTCP given: nothing to restrict", Annotation)
	}
	return &c, nil
}

// FromAnnotations returns the Config an OCI spec's annotations ask for, or
// nil when they do not mention Landlock.
func FromAnnotations(ann map[string]string) (*Config, error) {
	v, ok := ann[Annotation]
	if !ok {
		return nil, nil
	}
	return Parse(v)
}

const (
	ruleTypePathBeneath = 1 // LANDLOCK_RULE_PATH_BENEATH
	ruleTypeNetPort     = 2 // LANDLOCK_RULE_NET_PORT

	fsExecute   = unix.LANDLOCK_ACCESS_FS_EXECUTE
	fsWriteFile = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	fsReadFile  = unix.LANDLOCK_ACCESS_FS_READ_FILE
	fsReadDir   = unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsTruncate  = unix.LANDLOCK_ACCESS_FS_TRUNCATE
	fsIoctlDev  = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	// fsFileRights are the rights the kernel accepts on a non-directory.
	fsFileRights = fsExecute | fsWriteFile | fsReadFile | fsTruncate | fsIoctlDev
	fsReadRights = fsExecute | fsReadFile | fsReadDir
)

// fsRights returns the filesystem rights Landlock ABI v knows.
func fsRights(v int) uint64 {
	r := uint64(unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1) - 1 // v1: EXECUTE .. MAKE_SYM
	if v >= 2 {
		r |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if v >= 3 {
		r |= fsTruncate
	}
	if v >= 5 {
		r |= fsIoctlDev
	}
	return r
}

// ABIVersion returns the kernel's Landlock ABI version, or an error saying
// why Landlock is unavailable.
func ABIVersion() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch e {
	case 0:
		return int(v), nil
	case unix.ENOSYS:
		return 0, errors.New("landlock: the kernel lacks Landlock (landlock_create_ruleset: ENOSYS)")
	case unix.EOPNOTSUPP:
		return 0, errors.New("landlock: Landlock is built in but disabled (add landlock to the lsm= boot parameter)")
	}
	return 0, fmt.Errorf("landlock: probing the ABI version: %w", e)
}

type rulesetAttr struct {
	handledFS  uint64
	handledNet uint64
}

// pathBeneathAttr is struct landlock_path_beneath_attr, which the kernel
// declares packed (12 bytes).
type pathBeneathAttr [12]byte

func newPathBeneath(access uint64, fd int) *pathBeneathAttr {
	var a pathBeneathAttr
	binary.NativeEndian.PutUint64(a[0:], access)
	binary.NativeEndian.PutUint32(a[8:], uint32(int32(fd)))
	return &a
}

type netPortAttr struct {
	access uint64
	port   uint64
}

// Apply builds the ruleset and restricts the calling thread (and what it
// execs) with it; the caller must hold runtime.LockOSThread. The kernel
// requires no_new_privs or CAP_SYS_ADMIN. It returns the ABI version used,
// which tells what was enforced (see the package doc on older kernels).
func (c *Config) Apply() (abi int, err error) {
	abi, err = ABIVersion()
	if err != nil {
		return 0, err
	}
	if c.MinABI > abi {
		return abi, fmt.Errorf("landlock: the policy needs ABI %d, the kernel has %d", c.MinABI, abi)
	}
	attr := rulesetAttr{handledFS: fsRights(abi)}
	size := unsafe.Sizeof(attr.handledFS)
	if abi >= 4 && (c.BindTCP != nil || c.ConnectTCP != nil) {
		if c.BindTCP != nil {
			attr.handledNet |= unix.LANDLOCK_ACCESS_NET_BIND_TCP
		}
		if c.ConnectTCP != nil {
			attr.handledNet |= unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		}
		size = unsafe.Sizeof(attr)
	}
	if len(c.ReadOnly)+len(c.ReadWrite) == 0 {
		attr.handledFS = 0 // a network-only policy leaves the filesystem alone
	}
	if attr.handledFS == 0 && attr.handledNet == 0 {
		return abi, nil // only network rules, on a kernel that cannot enforce them
	}
	rfd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return abi, fmt.Errorf("landlock: landlock_create_ruleset (fs %#x, net %#x): %w", attr.handledFS, attr.handledNet, e)
	}
	defer unix.Close(int(rfd))
	if attr.handledFS != 0 {
		for _, p := range c.ReadOnly {
			if err := addPath(int(rfd), p, fsReadRights&attr.handledFS); err != nil {
				return abi, err
			}
		}
		for _, p := range c.ReadWrite {
			if err := addPath(int(rfd), p, attr.handledFS); err != nil {
				return abi, err
			}
		}
	}
	for _, n := range []struct {
		right uint64
		ports []uint16
	}{{unix.LANDLOCK_ACCESS_NET_BIND_TCP, c.BindTCP}, {unix.LANDLOCK_ACCESS_NET_CONNECT_TCP, c.ConnectTCP}} {
		if attr.handledNet&n.right == 0 {
			continue
		}
		for _, port := range n.ports {
			r := netPortAttr{access: n.right, port: uint64(port)}
			if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, rfd, ruleTypeNetPort, uintptr(unsafe.Pointer(&r)), 0, 0, 0); e != 0 {
				return abi, fmt.Errorf("landlock: landlock_add_rule for TCP port %d: %w", port, e)
			}
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rfd, 0, 0); e != 0 {
		if e == unix.EPERM {
			return abi, fmt.Errorf("landlock: landlock_restrict_self: %w (the process needs no_new_privs or CAP_SYS_ADMIN)", e)
		}
		return abi, fmt.Errorf("landlock: landlock_restrict_self: %w", e)
	}
	return abi, nil
}

func addPath(rfd int, path string, access uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("landlock: opening rule path %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("landlock: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= fsFileRights
	}
	a := newPathBeneath(access, fd)
	if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rfd), ruleTypePathBeneath, uintptr(unsafe.Pointer(a)), 0, 0, 0); e != 0 {
		return fmt.Errorf("landlock: landlock_add_rule for %s (access %#x): %w", path, access, e)
	}
	return nil
}
