package seccomp

import (
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func uptr(v uint) *uint { return &v }

func mustCompile(t testing.TB, cfg *specs.LinuxSeccomp) *Filter {
	t.Helper()
	f, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return f
}

func run(t testing.TB, f *Filter, d seccompData) uint32 {
	t.Helper()
	r, err := interpret(f.Instructions(), d)
	if err != nil {
		t.Fatalf("interpret nr %#x arch %#x: %v", d.nr, d.arch, err)
	}
	return r
}

func nr64(t testing.TB, name string) uint32 {
	t.Helper()
	n, ok := sysX86_64.lookup(name)
	if !ok {
		t.Fatalf("no x86_64 syscall %q", name)
	}
	return n
}

// checkAgainstReference compares program and reference on every named
// syscall of every ABI, numbers around the edges, and random arguments.
func checkAgainstReference(t testing.TB, cfg *specs.LinuxSeccomp, f *Filter, rng *rand.Rand) {
	t.Helper()
	var cases []seccompData
	add := func(audit, nr uint32) {
		d := seccompData{nr: nr, arch: audit}
		for i := range d.args {
			switch rng.Intn(4) {
			case 0:
				d.args[i] = rng.Uint64()
			case 1:
				d.args[i] = uint64(rng.Intn(4))
			case 2:
				d.args[i] = uint64(rng.Uint32())
			}
		}
		// Reuse values the profile mentions, so conditions get hit.
		for _, sc := range cfg.Syscalls {
			for _, a := range sc.Args {
				if a.Index < 6 && rng.Intn(3) == 0 {
					d.args[a.Index] = a.Value + uint64(rng.Intn(3)) - 1
					if a.Op == specs.OpMaskedEqual && rng.Intn(2) == 0 {
						d.args[a.Index] = a.ValueTwo
					}
				}
			}
		}
		cases = append(cases, d)
	}
	for _, tab := range []struct {
		audit uint32
		t     sysTable
	}{{auditArchX86_64, sysX86_64}, {auditArchX86_64, sysX32}, {auditArchI386, sysI386}} {
		for _, e := range tab.t {
			add(tab.audit, e.nr)
			add(tab.audit, e.nr+1)
		}
	}
	for _, nr := range []uint32{0, 511, 512, 1000, x32Bit - 1, x32Bit, x32Bit | 511, x32Bit | 512, x32Bit | 600, 0xfffffffe, 0xffffffff} {
		add(auditArchX86_64, nr)
		add(auditArchI386, nr)
		add(0xc00000b7, nr) // aarch64
	}
	for _, d := range cases {
		got, err := interpret(f.Instructions(), d)
		if err != nil {
			t.Fatalf("interpret: %v", err)
		}
		if want := reference(cfg, d); got != want {
			t.Fatalf("arch %#x nr %#x args %#x: program returns %#x, reference %#x", d.arch, d.nr, d.args, got, want)
		}
	}
}

func TestDefaultProfileCompiles(t *testing.T) {
	p := DefaultProfile()
	start := time.Now()
	f := mustCompile(t, p)
	el := time.Since(start)
	t.Logf("default profile: %d BPF instructions, compiled in %v", len(f.Instructions()), el)
	if u := f.UnknownSyscalls(); len(u) != 0 {
		t.Errorf("default profile names syscalls unknown on x86: %v", u)
	}
	if f.Notify() || f.Flags() != 0 {
		t.Errorf("default profile: notify %v flags %#x, want none", f.Notify(), f.Flags())
	}
	checkAgainstReference(t, p, f, rand.New(rand.NewSource(1)))

	d := func(name string, args ...uint64) seccompData {
		s := seccompData{nr: nr64(t, name), arch: auditArchX86_64}
		copy(s.args[:], args)
		return s
	}
	eperm := retErrno | uint32(unix.EPERM)
	for _, c := range []struct {
		d    seccompData
		want uint32
	}{
		{d("read"), retAllow},
		{d("mount"), eperm},
		{d("unshare", unix.CLONE_NEWNS), eperm},
		{d("keyctl"), eperm},
		{d("reboot"), eperm},
		{d("clone", 17), retAllow},
		{d("clone", unix.CLONE_NEWUSER|17), eperm},
		{d("clone", 1<<32|17), retAllow}, // flags are an int: high half ignored by the mask
		{d("clone3"), retENOSYS},
		{d("personality", 0), retAllow},
		{d("personality", 0xffffffff), retAllow},
		{d("personality", 0x0400000), eperm},
		{d("socket", unix.AF_INET), retAllow},
		{d("socket", unix.AF_VSOCK), eperm},
		{d("chroot"), retAllow},
		{d("listns"), retENOSYS},
		{seccompData{nr: 1000, arch: auditArchX86_64}, retENOSYS},
		{seccompData{nr: x32Bit | 39, arch: auditArchX86_64}, retAllow},
		{seccompData{nr: x32Bit | 512, arch: auditArchX86_64}, retAllow}, // x32 rt_sigaction
		{seccompData{nr: x32Bit | 165, arch: auditArchX86_64}, eperm},    // x32 mount
		{seccompData{nr: 20, arch: auditArchI386}, retAllow},             // i386 getpid
		{seccompData{nr: 21, arch: auditArchI386}, eperm},                // i386 mount
		{seccompData{nr: 39, arch: 0xc00000b7}, retBadArch},
	} {
		if got := run(t, f, c.d); got != c.want {
			t.Errorf("nr %#x args %#x: got %#x, want %#x", c.d.nr, c.d.args[:2], got, c.want)
		}
	}
}

// TestLongJumps builds a profile whose argument chains are far longer than a
// conditional jump can reach, so the tree's jumps need trampolines.
func TestLongJumps(t *testing.T) {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for i := 0; i < 300; i++ {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
			Names:  []string{"personality", "ioctl"},
			Action: specs.ActAllow,
			Args:   []specs.LinuxSeccompArg{{Index: 1, Value: uint64(i) * 7, Op: specs.OpEqualTo}},
		})
	}
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"read", "write", "getpid", "exit_group"}, Action: specs.ActAllow})
	f := mustCompile(t, p)
	ja := 0
	for _, in := range f.Instructions() {
		if in.Code == bpfJa {
			ja++
		}
	}
	t.Logf("%d instructions, %d trampolines", len(f.Instructions()), ja)
	if len(f.Instructions()) < 600 || ja == 0 {
		t.Fatalf("expected a long program with trampolines, got %d instructions and %d ja", len(f.Instructions()), ja)
	}
	for _, name := range []string{"read", "exit_group", "getpid"} {
		if got := run(t, f, seccompData{nr: nr64(t, name), arch: auditArchX86_64}); got != retAllow {
			t.Errorf("%s: got %#x, want allow", name, got)
		}
	}
	for _, v := range []uint64{0, 7, 7 * 299, 5, 7*299 + 7} {
		want := uint32(retAllow)
		if v%7 != 0 || v > 7*299 {
			want = retErrno | 1
		}
		for _, name := range []string{"personality", "ioctl"} {
			if got := run(t, f, seccompData{nr: nr64(t, name), arch: auditArchX86_64, args: [6]uint64{0, v}}); got != want {
				t.Errorf("%s(_, %d): got %#x, want %#x", name, v, got, want)
			}
		}
	}
	checkAgainstReference(t, p, f, rand.New(rand.NewSource(2)))
}

func TestOperators(t *testing.T) {
	vals := []uint64{0, 1, 5, 0xffffffff, 0x100000000, 0x100000005, 0xffffffff00000000, ^uint64(0)}
	for _, op := range operators {
		for _, v := range vals {
			p := &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
				Syscalls: []specs.LinuxSyscall{{
					Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(38),
					Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, ValueTwo: v & 0xf0000000f, Op: op}},
				}},
			}
			f := mustCompile(t, p)
			for _, x := range vals {
				for _, dx := range []uint64{0, 1, ^uint64(0)} {
					d := seccompData{nr: nr64(t, "mkdirat"), arch: auditArchX86_64, args: [6]uint64{0, 0, x + dx}}
					if got, want := run(t, f, d), reference(p, d); got != want {
						t.Fatalf("%s value %#x arg %#x: got %#x, want %#x", op, v, x+dx, got, want)
					}
				}
			}
		}
	}
}

func TestRandomProfilesMatchReference(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	names := []string{"read", "write", "mkdir", "mkdirat", "personality", "clone", "rt_sigaction", "socketcall", "arch_prctl", "mmap2", "listns", "nosuchcall"}
	acts := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKillProcess, specs.ActLog, specs.ActTrap, specs.ActTrace}
	for iter := 0; iter < 200; iter++ {
		p := &specs.LinuxSeccomp{DefaultAction: acts[rng.Intn(len(acts))]}
		for _, a := range archs {
			if rng.Intn(2) == 0 {
				p.Architectures = append(p.Architectures, a.name)
			}
		}
		for i := rng.Intn(8); i > 0; i-- {
			sc := specs.LinuxSyscall{Names: []string{names[rng.Intn(len(names))]}, Action: acts[rng.Intn(len(acts))]}
			for j := rng.Intn(3); j > 0; j-- {
				sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: uint(rng.Intn(6)), Value: uint64(rng.Intn(3)) << (32 * uint(rng.Intn(2))), ValueTwo: uint64(rng.Intn(2)), Op: operators[rng.Intn(len(operators))]})
			}
			p.Syscalls = append(p.Syscalls, sc)
		}
		f, err := Compile(p)
		if err != nil {
			if strings.Contains(err.Error(), "two unconditional rules") {
				continue
			}
			t.Fatalf("Compile: %v", err)
		}
		checkAgainstReference(t, p, f, rng)
	}
}

func TestCompileErrors(t *testing.T) {
	ok := func() *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}
	}
	for _, c := range []struct {
		name string
		mod  func(p *specs.LinuxSeccomp)
		want string
	}{
		{"nil", nil, "no profile"},
		{"no default", func(p *specs.LinuxSeccomp) { p.DefaultAction = "" }, "action is missing"},
		{"bad default", func(p *specs.LinuxSeccomp) { p.DefaultAction = "SCMP_ACT_NOPE" }, `unknown action "SCMP_ACT_NOPE"`},
		{"notify default", func(p *specs.LinuxSeccomp) { p.DefaultAction = specs.ActNotify }, "defaultAction SCMP_ACT_NOTIFY is not allowed"},
		{"errno on allow", func(p *specs.LinuxSeccomp) { p.DefaultAction = specs.ActAllow; p.DefaultErrnoRet = uptr(5) }, "errnoRet is only valid"},
		{"errno range", func(p *specs.LinuxSeccomp) { p.DefaultErrnoRet = uptr(5000) }, "errnoRet 5000 is out of range"},
		{"arch", func(p *specs.LinuxSeccomp) { p.Architectures = []specs.Arch{specs.ArchAARCH64} }, `architecture "SCMP_ARCH_AARCH64" is not supported`},
		{"flag", func(p *specs.LinuxSeccomp) { p.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"} }, `unknown flag "SECCOMP_FILTER_FLAG_BOGUS"`},
		{"no names", func(p *specs.LinuxSeccomp) { p.Syscalls[0].Names = nil }, "syscalls[0]: names is empty"},
		{"empty name", func(p *specs.LinuxSeccomp) { p.Syscalls[0].Names = []string{""} }, "empty syscall name"},
		{"arg index", func(p *specs.LinuxSeccomp) {
			p.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}
		}, "args[0]: index 6 is out of range"},
		{"arg op", func(p *specs.LinuxSeccomp) {
			p.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_WAT"}}
		}, `unknown op "SCMP_CMP_WAT"`},
		{"conflict", func(p *specs.LinuxSeccomp) {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActKillProcess})
		}, `syscall "read" on SCMP_ARCH_X86_64 has two unconditional rules`},
		{"notify without listener", func(p *specs.LinuxSeccomp) { p.Syscalls[0].Action = specs.ActNotify }, "listenerPath is empty"},
		{"killable without notify", func(p *specs.LinuxSeccomp) {
			p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
		}, "needs a rule with SCMP_ACT_NOTIFY"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p *specs.LinuxSeccomp
			if c.mod != nil {
				p = ok()
				c.mod(p)
			}
			_, err := Compile(p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Compile: got error %v, want one containing %q", err, c.want)
			}
		})
	}
	// A name no x86 ABI knows is skipped, not fatal, and reported.
	p := ok()
	p.Syscalls[0].Names = append(p.Syscalls[0].Names, "arm_fadvise64_64")
	f := mustCompile(t, p)
	if u := f.UnknownSyscalls(); len(u) != 1 || u[0] != "arm_fadvise64_64" {
		t.Fatalf("UnknownSyscalls = %v, want [arm_fadvise64_64]", u)
	}
}

func TestFlags(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  "/x",
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}},
	}
	f := mustCompile(t, p)
	want := uint(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW |
		unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
	if f.Flags() != want || !f.Notify() {
		t.Fatalf("flags %#x notify %v, want %#x true", f.Flags(), f.Notify(), want)
	}
}

func TestFeatureLists(t *testing.T) {
	if got := strings.Join(SupportedArchitectures(), ","); got != "SCMP_ARCH_X86_64,SCMP_ARCH_X32,SCMP_ARCH_X86" {
		t.Errorf("SupportedArchitectures = %s", got)
	}
	if len(SupportedActions()) != 9 || len(SupportedOperators()) != 7 || len(SupportedFlags()) != 4 {
		t.Errorf("actions %v operators %v flags %v", SupportedActions(), SupportedOperators(), SupportedFlags())
	}
	// The default profile must round-trip through JSON as the spec command
	// will embed it.
	b, err := json.Marshal(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	var back specs.LinuxSeccomp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	mustCompile(t, &back)
}

func BenchmarkCompileDefault(b *testing.B) {
	p := DefaultProfile()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDefaultProfilePathLength measures how many BPF instructions a syscall
// runs through under the default profile: the interval tree keeps it near
// log2 of the interval count instead of the allow list's length.
func TestDefaultProfilePathLength(t *testing.T) {
	f := mustCompile(t, DefaultProfile())
	maxSteps, total, n := 0, 0, 0
	for _, e := range sysX86_64 {
		_, steps, err := interpretSteps(f.Instructions(), seccompData{nr: e.nr, arch: auditArchX86_64})
		if err != nil {
			t.Fatal(err)
		}
		total += steps
		n++
		maxSteps = max(maxSteps, steps)
	}
	t.Logf("x86_64 syscalls: %d BPF instructions run on average, %d at most (program %d)", total/n, maxSteps, len(f.Instructions()))
	if maxSteps > 40 {
		t.Fatalf("a syscall runs %d instructions; the search tree should keep it under 40", maxSteps)
	}
}
