// Package security applies a container process's privileges: capabilities, user and groups,
// no_new_privs and personality. Everything here acts on the calling thread only: the
// container init runs on one locked OS thread and execs from it, so the user's program
// inherits exactly that thread's credentials (Go's all-threads set*id calls are avoided).
package security

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames is every capability this build knows, by kernel number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// KnownCaps lists every capability name this build knows.
func KnownCaps() []string { return append([]string(nil), capNames...) }

var lastCap = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(capNames) - 1
})

// LastCap is the highest capability number the running kernel knows.
func LastCap() int { return lastCap() }

// CapSets are the five capability sets as bit masks.
type CapSets struct {
	Bounding, Effective, Inheritable, Permitted, Ambient uint64
	// Warnings name capabilities skipped because the kernel is older than them.
	Warnings []string
}

// ParseCaps turns process.capabilities into masks. An unknown name is an error; a name this
// build knows but the kernel doesn't is skipped with a warning, as runc does.
func ParseCaps(c *specs.LinuxCapabilities) (*CapSets, error) {
	s := &CapSets{}
	if c == nil {
		return s, nil
	}
	for _, set := range []struct {
		name  string
		names []string
		mask  *uint64
	}{
		{"bounding", c.Bounding, &s.Bounding}, {"effective", c.Effective, &s.Effective},
		{"inheritable", c.Inheritable, &s.Inheritable}, {"permitted", c.Permitted, &s.Permitted},
		{"ambient", c.Ambient, &s.Ambient},
	} {
		for _, n := range set.names {
			bit, err := capBit(n)
			if err != nil {
				return nil, fmt.Errorf("process.capabilities.%s: %w", set.name, err)
			}
			if bit > LastCap() {
				s.Warnings = append(s.Warnings, fmt.Sprintf("process.capabilities.%s: %s is unknown to this kernel; skipped", set.name, n))
				continue
			}
			*set.mask |= 1 << uint(bit)
		}
	}
	return s, nil
}

func capBit(name string) (int, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// CapName returns the name of capability bit i.
func CapName(i int) string {
	if i >= 0 && i < len(capNames) {
		return capNames[i]
	}
	return fmt.Sprintf("CAP_%d", i)
}

// DropBounding removes from the bounding set every capability not in s.Bounding. It needs
// CAP_SETPCAP, so it runs before the switch to the container's user.
func (s *CapSets) DropBounding() error {
	for i := 0; i <= LastCap(); i++ {
		if s.Bounding&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s from the bounding set: %w", CapName(i), err)
		}
	}
	return nil
}

// Apply sets the effective, permitted and inheritable sets and raises the ambient ones.
// An ambient capability the kernel refuses (it must also be permitted and inheritable) is
// skipped with a warning in s.Warnings, as runc does: runc's own default spec asks for
// ambient capabilities without inheritable ones.
func (s *CapSets) Apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	have := uint64(cur[0].Permitted) | uint64(cur[1].Permitted)<<32
	if missing := (s.Permitted | s.Effective | s.Inheritable) &^ have &^ s.Inheritable; missing != 0 {
		return fmt.Errorf("capabilities %s are not held by the runtime (its permitted set is %#x), so the container cannot get them",
			maskNames(missing), have)
	}
	data := [2]unix.CapUserData{
		{Effective: uint32(s.Effective), Permitted: uint32(s.Permitted), Inheritable: uint32(s.Inheritable)},
		{Effective: uint32(s.Effective >> 32), Permitted: uint32(s.Permitted >> 32), Inheritable: uint32(s.Inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset (effective %s, permitted %s, inheritable %s): %w",
			maskNames(s.Effective), maskNames(s.Permitted), maskNames(s.Inheritable), err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i <= LastCap(); i++ {
		if s.Ambient&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("process.capabilities.ambient: %s not raised (it must be permitted and inheritable too): %v", CapName(i), err))
		}
	}
	return nil
}

func maskNames(m uint64) string {
	var names []string
	for i := 0; i < 64; i++ {
		if m&(1<<uint(i)) != 0 {
			names = append(names, CapName(i))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// SetUser switches the calling thread to the container's uid, gid and supplementary groups,
// keeping its permitted capabilities for Apply.
func SetUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_KEEPCAPS: %w", err)
	}
	gids := make([]uint32, 0, len(u.AdditionalGids))
	gids = append(gids, u.AdditionalGids...)
	var e unix.Errno
	if len(gids) > 0 {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(unsafe.Pointer(&gids[0])), 0)
	} else {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
	}
	if e != 0 && !(e == unix.EPERM && len(gids) == 0 && setgroupsDenied()) {
		return fmt.Errorf("setgroups %v: %w", u.AdditionalGids, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setresgid %d (is it mapped in the user namespace?): %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setresuid %d (is it mapped in the user namespace?): %w", u.UID, e)
	}
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	return nil
}

// setgroupsDenied tells whether this user namespace forbids setgroups, as an unprivileged
// user's single-id mapping must; with no groups to set, that is no error.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// NoNewPrivs sets no_new_privs, after which execve can't grant privileges (setuid bits, file caps).
func NoNewPrivs() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	return nil
}

// Personality domains from <linux/personality.h>.
const (
	perLinux   = 0x0000
	perLinux32 = 0x0008
)

// Personality applies linux.personality.
func Personality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	var dom uintptr
	switch p.Domain {
	case specs.PerLinux:
		dom = perLinux
	case specs.PerLinux32:
		dom = perLinux32
	default:
		return fmt.Errorf("linux.personality.domain: unknown domain %q (LINUX or LINUX32)", p.Domain)
	}
	if len(p.Flags) > 0 {
		return fmt.Errorf("linux.personality.flags: no flags are defined, got %v", p.Flags)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, dom, 0, 0); e != 0 {
		return fmt.Errorf("personality %s: %w", p.Domain, e)
	}
	return nil
}
