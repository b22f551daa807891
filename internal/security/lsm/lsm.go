// Package lsm applies the process labels of the major Linux security modules
// (AppArmor profile, SELinux context) to the calling thread before execve,
// and refuses clearly when the host lacks the module a spec asks for:
// silently running a container without its requested confinement would be
// worse than not running it.
package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Paths are variables so tests can point them at a fake tree.
var (
	apparmorParam  = "/sys/module/apparmor/parameters/enabled"
	apparmorFS     = "/sys/kernel/security/apparmor"
	selinuxMounts  = []string{"/sys/fs/selinux", "/selinux"}
	threadAttrDir  = "/proc/thread-self/attr"
	selinuxFSMagic = int64(0xf97cff8c) // SELINUX_MAGIC
)

// Status says which label-based LSMs the host enforces.
type Status struct {
	AppArmor bool
	SELinux  bool
	// SELinuxMount is where selinuxfs is mounted, when SELinux is enabled.
	SELinuxMount string
}

var detect = sync.OnceValue(probe)

// Detect reports the host's LSMs. The answer is computed once per process:
// LSMs are fixed at boot.
func Detect() Status { return detect() }

func probe() Status {
	var s Status
	// AppArmor is usable when the module says it is enabled; securityfs must
	// be mounted for its interface to exist at all.
	if b, err := os.ReadFile(apparmorParam); err == nil && bytes.HasPrefix(b, []byte("Y")) {
		if _, err := os.Stat(apparmorFS); err == nil {
			s.AppArmor = true
		}
	}
	// SELinux is enabled when selinuxfs is mounted: the kernel only allows
	// mounting it when SELinux was initialised at boot.
	for _, m := range selinuxMounts {
		var st unix.Statfs_t
		if err := unix.Statfs(m, &st); err == nil && int64(st.Type) == selinuxFSMagic {
			s.SELinux, s.SELinuxMount = true, m
			break
		}
	}
	return s
}

// ApplyProcessLabel arranges for the next execve of the calling thread to
// run under the given AppArmor profile and/or SELinux context, by writing
// the LSMs' exec attributes under /proc/thread-self. The caller must hold
// runtime.LockOSThread and exec on this thread. Empty strings leave that
// LSM alone; a non-empty one for an LSM the host lacks is an error.
func ApplyProcessLabel(apparmorProfile, selinuxLabel string) error {
	if apparmorProfile == "" && selinuxLabel == "" {
		return nil
	}
	st := detect()
	if apparmorProfile != "" {
		if !st.AppArmor {
			return fmt.Errorf("lsm: AppArmor profile %q requested, but this host does not have AppArmor enabled (%s is not Y, or securityfs lacks %s)", apparmorProfile, apparmorParam, apparmorFS)
		}
		if err := setAppArmorExec(apparmorProfile); err != nil {
			return err
		}
	}
	if selinuxLabel != "" {
		if !st.SELinux {
			return fmt.Errorf("lsm: SELinux process label %q requested, but this host does not have SELinux enabled (no selinuxfs at %s)", selinuxLabel, strings.Join(selinuxMounts, " or "))
		}
		if err := writeAttr(filepath.Join(threadAttrDir, "exec"), selinuxLabel); err != nil {
			return fmt.Errorf("lsm: setting SELinux exec label %q: %w", selinuxLabel, err)
		}
	}
	return nil
}

// setAppArmorExec uses AppArmor's own attr directory when the kernel has it
// (5.8+, so it works alongside other LSMs) and the shared attr/exec otherwise.
func setAppArmorExec(profile string) error {
	p := filepath.Join(threadAttrDir, "apparmor", "exec")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		p = filepath.Join(threadAttrDir, "exec")
	}
	if err := writeAttr(p, "exec "+profile); err != nil {
		return fmt.Errorf("lsm: setting AppArmor exec profile %q: %w", profile, err)
	}
	return nil
}

// writeAttr writes an LSM attribute in a single write(2), as the kernel
// requires for these files.
func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return cerr
}

// MountLabelOption checks an OCI linux.mountLabel against the host and
// returns the mount option that applies it (context="..."), or "" for an
// empty label. A label on a host without SELinux is an error.
func MountLabelOption(label string) (string, error) {
	if label == "" {
		return "", nil
	}
	if !detect().SELinux {
		return "", fmt.Errorf("lsm: SELinux mount label %q requested, but this host does not have SELinux enabled (no selinuxfs at %s)", label, strings.Join(selinuxMounts, " or "))
	}
	// MCS categories contain commas (s0:c1,c2); the quotes keep them out of
	// the mount option list, so only a quote or newline cannot be carried.
	if strings.ContainsAny(label, "\"\n") {
		return "", fmt.Errorf("lsm: SELinux mount label %q contains a quote or newline", label)
	}
	return `context="` + label + `"`, nil
}
