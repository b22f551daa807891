package seccomp

import (
	_ "embed"
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultJSON is berth's hardened default profile, with the effect of
// Docker's default profile on x86 for a container with Docker's default
// capability set:
//
//   - default SCMP_ACT_ERRNO with EPERM, over an allow list;
//   - personality only for PER_LINUX, PER_LINUX32, UNAME26 (and with
//     PER_LINUX32) and the 0xffffffff query;
//   - socket for every family but AF_VSOCK (40);
//   - clone only without namespace flags (CLONE_NEWNS, NEWCGROUP, NEWUTS,
//     NEWIPC, NEWUSER, NEWPID, NEWNET: mask 0x7e020000), and clone3 returns
//     ENOSYS because its flags live in memory BPF cannot read, so libc falls
//     back to clone;
//   - ptrace and process_vm_readv/writev allowed (Docker allows them on
//     kernels ≥ 4.8, whose seccomp re-checks after a tracer's changes).
//
// Docker keys some entries on capabilities the container holds; an OCI
// profile cannot, so they are resolved here for Docker's default capability
// set (CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
// SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE): chroot
// is allowed (SYS_CHROOT); everything gated on a capability outside that set
// is denied — mount, umount, unshare, setns, the new mount API, bpf,
// perf_event_open, syslog, sethostname, setdomainname, reboot, the module
// calls, acct, kcmp, pidfd_getfd, process_madvise, iopl, ioperm, the clock
// setters, vhangup, the NUMA policy calls, open_by_handle_at, fanotify_init,
// quotactl, lookup_dcookie. keyctl, add_key, request_key, userfaultfd and the
// other calls Docker never allows are denied too. A container given more
// capabilities needs a profile that allows the matching syscalls.
//
// Beyond Docker's list it allows syscalls newer libcs call and that need no
// privilege: fchmodat2, cachestat, map_shadow_stack and the futex2 calls
// (futex_wake, futex_wait, futex_requeue). It names nothing newer, so under
// the ENOSYS rule (see the package doc) statmount, listmount, mseal and
// everything after return ENOSYS and libc falls back.
//
//go:embed default.json
var defaultJSON []byte

// DefaultProfile returns a fresh copy of the default profile (see defaultJSON
// above), for the runtime's spec command to embed and callers to modify.
func DefaultProfile() *specs.LinuxSeccomp {
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(defaultJSON, &p); err != nil {
		// The file is embedded at build time and checked by tests.
		panic(fmt.Sprintf("seccomp: embedded default.json is invalid: %v", err))
	}
	return &p
}
