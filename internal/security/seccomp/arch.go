package seccomp

//go:generate go run ./internal/mksysnum -o zsysnum_linux.go

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// sysTable is a name-sorted syscall table (see zsysnum_linux.go).
type sysTable []struct {
	name string
	nr   uint32
}

func (t sysTable) lookup(name string) (uint32, bool) {
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t) && t[lo].name == name {
		return t[lo].nr, true
	}
	return 0, false
}

// Audit architecture values the kernel reports in seccomp_data.arch.
const (
	auditArchX86_64 = 0xc000003e // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
	auditArchI386   = 0x40000003 // EM_386 | __AUDIT_ARCH_LE

	// x32Bit marks an x32 syscall number; x32 shares AUDIT_ARCH_X86_64.
	x32Bit = 0x40000000
)

type arch struct {
	name  specs.Arch
	audit uint32
	table sysTable
}

var (
	archX86_64 = &arch{specs.ArchX86_64, auditArchX86_64, sysX86_64}
	archX86    = &arch{specs.ArchX86, auditArchI386, sysI386}
	archX32    = &arch{specs.ArchX32, auditArchX86_64, sysX32}

	// archs lists what the compiler supports, in the order filters test them.
	archs = []*arch{archX86_64, archX32, archX86}
)

func archByName(n specs.Arch) *arch {
	for _, a := range archs {
		if a.name == n {
			return a
		}
	}
	return nil
}

// nativeArch is the architecture this binary runs as, which every filter
// covers whether or not the profile lists it (as libseccomp-based runtimes
// do): a filter without it would kill the container's first syscall.
func nativeArch() *arch {
	switch runtime.GOARCH {
	case "amd64":
		return archX86_64
	case "386":
		return archX86
	}
	return nil
}
