package runtime

import (
	"errors"
	"strconv"

	"github.com/berth-containers/berth/internal/namespaces"
	"github.com/berth-containers/berth/internal/rootfs"
	"github.com/berth-containers/berth/internal/security"
	"github.com/berth-containers/berth/internal/security/landlock"
	"github.com/berth-containers/berth/internal/security/lsm"
	"github.com/berth-containers/berth/internal/security/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// Features reports what this build supports on this host, in the shape of the runtime
// spec's features.md (containerd reads it to decide what it may ask for).
func Features() *features.Features {
	yes, no := true, false
	b := func(v bool) *bool {
		if v {
			return &yes
		}
		return &no
	}
	var nss []string
	for _, t := range namespaces.All {
		nss = append(nss, string(t.OCI))
	}
	var caps []string
	for i := 0; i <= security.LastCap() && i < len(security.KnownCaps()); i++ {
		caps = append(caps, security.CapName(i))
	}
	host := lsm.Detect()
	known := seccomp.SupportedFlags()
	var supported []string
	for _, f := range known {
		if seccompFlagSupported(f) {
			supported = append(supported, f)
		}
	}
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  rootfs.KnownOptions(),
		Linux: &features.Linux{
			Namespaces:   nss,
			Capabilities: caps,
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no, Rdma: &yes},
			Seccomp: &features.Seccomp{
				Enabled:        &yes,
				Actions:        seccomp.SupportedActions(),
				Operators:      seccomp.SupportedOperators(),
				Archs:          seccomp.SupportedArchitectures(),
				KnownFlags:     known,
				SupportedFlags: supported,
			},
			Apparmor:        &features.Apparmor{Enabled: b(host.AppArmor)},
			Selinux:         &features.Selinux{Enabled: b(host.SELinux)},
			IntelRdt:        &features.IntelRdt{Enabled: &no},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &yes}},
			NetDevices:      &features.NetDevices{Enabled: &no},
		},
		Annotations: map[string]string{
			"org.berth.runtime":      "berth-runtime",
			"org.berth.landlock.abi": landlockABI(),
		},
		// The rootfs overlay names host directories the container writes to (upperdir).
		PotentiallyUnsafeConfigAnnotations: []string{AnnotationRootfsOverlay},
	}
}

var seccompFlagBits = map[string]uintptr{
	"SECCOMP_FILTER_FLAG_TSYNC":      unix.SECCOMP_FILTER_FLAG_TSYNC,
	"SECCOMP_FILTER_FLAG_LOG":        unix.SECCOMP_FILTER_FLAG_LOG,
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW": unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	// The kernel takes WAIT_KILLABLE_RECV only together with NEW_LISTENER.
	"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1<<5 | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER,
}

// seccompFlagSupported asks the kernel without installing anything: a filter call with no
// program fails with EFAULT when the flag is known and with EINVAL when it is not.
func seccompFlagSupported(name string) bool {
	bit, ok := seccompFlagBits[name]
	if !ok {
		return false
	}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, bit, 0)
	return errors.Is(e, unix.EFAULT)
}

func landlockABI() string {
	v, err := landlock.ABIVersion()
	if err != nil || v <= 0 {
		return "0"
	}
	return strconv.Itoa(v)
}
