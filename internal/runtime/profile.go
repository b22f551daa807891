package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/berth-containers/berth/internal/security/landlock"
	"github.com/berth-containers/berth/internal/security/lsm"
	"github.com/berth-containers/berth/internal/security/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompProgram is a compiled linux.seccomp as the parent sends it to the init, so the
// profile is compiled (and its errors reported) once, before anything is made.
type seccompProgram struct {
	Program          []byte `json:"program"` // struct sock_filter array, native order
	Flags            uint   `json:"flags"`
	Notify           bool   `json:"notify,omitempty"`
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
}

func compileSeccomp(cfg *specs.LinuxSeccomp) (*seccompProgram, error) {
	if cfg == nil {
		return nil, nil
	}
	f, err := seccomp.Compile(firstRuleWins(cfg))
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	insns := f.Instructions()
	b := make([]byte, 0, 8*len(insns))
	for _, in := range insns {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return &seccompProgram{Program: b, Flags: f.Flags(), Notify: f.Notify(),
		ListenerPath: cfg.ListenerPath, ListenerMetadata: cfg.ListenerMetadata}, nil
}

// firstRuleWins removes from each unconditional rule the syscalls that an earlier
// unconditional rule already decides, as libseccomp does (it keeps the first rule for a
// syscall and ignores later ones), so profiles written for runc and crun mean the same here.
// Podman's default profile needs it: its long allow-list names setns, sethostname and others
// that a later rule denies again to containers without CAP_SYS_ADMIN, and runc and crun
// allow them. A rule with the default action decides nothing (libseccomp refuses to add it).
func firstRuleWins(cfg *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	errnoOf := func(a specs.LinuxSeccompAction, ret *uint) uint {
		if ret != nil {
			return *ret
		}
		if a == specs.ActErrno || a == specs.ActTrace {
			return uint(unix.EPERM)
		}
		return 0
	}
	def := errnoOf(cfg.DefaultAction, cfg.DefaultErrnoRet)
	decided := map[string]bool{}
	var out []specs.LinuxSyscall
	changed := false
	for _, sc := range cfg.Syscalls {
		if len(sc.Args) > 0 {
			out = append(out, sc)
			continue
		}
		var names []string
		for _, n := range sc.Names {
			if !decided[n] {
				names = append(names, n)
			}
		}
		if len(names) != len(sc.Names) {
			changed = true
			if len(names) == 0 {
				continue
			}
			sc.Names = names
		}
		out = append(out, sc)
		if sc.Action != cfg.DefaultAction || errnoOf(sc.Action, sc.ErrnoRet) != def {
			for _, n := range names {
				decided[n] = true
			}
		}
	}
	if !changed {
		return cfg
	}
	c := *cfg
	c.Syscalls = out
	return &c
}

func (p *seccompProgram) filter() (*seccomp.Filter, error) {
	if len(p.Program)%8 != 0 || len(p.Program) == 0 {
		return nil, errors.New("seccomp program of a bad length")
	}
	insns := make([]unix.SockFilter, len(p.Program)/8)
	for i := range insns {
		b := p.Program[8*i:]
		insns[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	return seccomp.FromProgram(insns, p.Flags, p.Notify), nil
}

// checkLSM refuses a label the host cannot apply, before anything is made.
func checkLSM(spec *specs.Spec) error {
	st := lsm.Detect()
	if p := spec.Process.ApparmorProfile; p != "" && !st.AppArmor {
		return fmt.Errorf("process.apparmorProfile %q: this host does not have AppArmor enabled", p)
	}
	if l := spec.Process.SelinuxLabel; l != "" && !st.SELinux {
		return fmt.Errorf("process.selinuxLabel %q: this host does not have SELinux enabled", l)
	}
	if l := spec.Linux.MountLabel; l != "" {
		if _, err := lsm.MountLabelOption(l); err != nil {
			return fmt.Errorf("linux.mountLabel: %w", err)
		}
	}
	if _, err := landlock.FromAnnotations(spec.Annotations); err != nil {
		return fmt.Errorf("annotation %s: %w", landlock.Annotation, err)
	}
	return nil
}
