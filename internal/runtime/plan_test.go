package runtime

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/security/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func testPlanInput(t *testing.T, mod func(*specs.Spec, *planInput)) *planInput {
	t.Helper()
	spec := DefaultSpec(false)
	spec.Linux.Seccomp = seccomp.DefaultProfile()
	spec.Process.Terminal = false
	in := &planInput{id: "c1", bundle: "/b", rootfs: "/b/rootfs", spec: spec, newCgroup: true,
		cgroupPaths: map[string]string{"memory": "/sys/fs/cgroup/memory/berth/c1", "name=systemd": "/sys/fs/cgroup/systemd/berth/c1"}}
	if mod != nil {
		mod(spec, in)
	}
	prog, err := compileSeccomp(spec.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	in.seccomp = prog
	return in
}

func codes(p *initPlan) []uint32 {
	var c []uint32
	for _, o := range p.ops {
		c = append(c, o.code)
	}
	return c
}

func index(p *initPlan, code uint32) int {
	for i, o := range p.ops {
		if o.code == code {
			return i
		}
	}
	return -1
}

// The default spec compiles in startProcess's order: the rootfs before pivot_root, the
// program looked up after it, seccomp (with no_new_privs) after ready and the fifo, right
// before exec, and the bounding set dropped before the switch of user.
func TestPlanOrder(t *testing.T) {
	p, why, err := compileInitPlan(testPlanInput(t, nil))
	if err != nil || why != "" {
		t.Fatalf("compile: %v, fallback %q", err, why)
	}
	order := []uint32{opKeyring, opHostname, opMountHost, opOpenRoot, opMount, opMknod, opSymlink, opMask, opReadonly,
		opRemount, opPivot, opRlimit, opLookPath, opCloseRange, opChdir, opCapBset, opSetUser, opChdir, opCapSet,
		opAmbient, opNNP, opReady, opWait, opSeccomp, opExec}
	last := -1
	for _, c := range order {
		i := -1
		for j := last + 1; j < len(p.ops); j++ {
			if p.ops[j].code == c {
				i = j
				break
			}
		}
		if i < 0 {
			t.Fatalf("operation %d missing after index %d in %v", c, last, codes(p))
		}
		last = i
	}
	if n := len(p.ops) - 1; p.ops[n].code != opExec || p.ops[n-1].code != opSeccomp {
		t.Errorf("the plan does not end with seccomp then exec: %v", codes(p))
	}
	if i := index(p, opCloseRange); p.ops[i].ints[0] != 3 {
		t.Errorf("close_range from %d, want 3", p.ops[i].ints[0])
	}
}

// Without no_new_privs the filter goes in before the capabilities are dropped, while
// CAP_SYS_ADMIN still allows it.
func TestPlanSeccompWithoutNoNewPrivs(t *testing.T) {
	p, why, err := compileInitPlan(testPlanInput(t, func(s *specs.Spec, _ *planInput) { s.Process.NoNewPrivileges = false }))
	if err != nil || p == nil {
		t.Fatalf("compile: %v, fallback %q", err, why)
	}
	if s, b := index(p, opSeccomp), index(p, opCapBset); s < 0 || s > b || index(p, opNNP) >= 0 {
		t.Errorf("seccomp at %d, bounding set at %d, nnp at %d: %v", s, b, index(p, opNNP), codes(p))
	}
}

func TestPlanFallbacks(t *testing.T) {
	for name, mod := range map[string]func(*specs.Spec, *planInput){
		"annotation":  func(s *specs.Spec, _ *planInput) { s.Annotations = map[string]string{AnnotationInit: "go"} },
		"terminal":    func(s *specs.Spec, _ *planInput) { s.Process.Terminal = true },
		"no-pivot":    func(_ *specs.Spec, in *planInput) { in.noPivot = true },
		"apparmor":    func(s *specs.Spec, _ *planInput) { s.Process.ApparmorProfile = "x" },
		"mount label": func(s *specs.Spec, _ *planInput) { s.Linux.MountLabel = "x" },
		"landlock":    func(s *specs.Spec, _ *planInput) { s.Annotations = map[string]string{"org.berth.landlock": "{}"} },
		"hooks":       func(s *specs.Spec, _ *planInput) { s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/x"}}} },
		"idmap": func(s *specs.Spec, _ *planInput) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: "/d", Options: []string{"idmap"}})
		},
		"notify": func(s *specs.Spec, _ *planInput) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/x",
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
		},
	} {
		p, why, err := compileInitPlan(testPlanInput(t, mod))
		if err != nil || p != nil || why == "" {
			t.Errorf("%s: plan %v, fallback %q, error %v; want the Go init with a reason", name, p != nil, why, err)
		}
	}
	// Hooks that run in the runtime's namespaces do not need the Go init.
	p, why, err := compileInitPlan(testPlanInput(t, func(s *specs.Spec, _ *planInput) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/x"}}, Poststart: []specs.Hook{{Path: "/x"}}}
	}))
	if p == nil || err != nil {
		t.Errorf("runtime-side hooks: fallback %q, error %v", why, err)
	}
}

func TestPlanCompileErrors(t *testing.T) {
	for name, c := range map[string]struct {
		mod  func(*specs.Spec, *planInput)
		want string
	}{
		"no type": {func(s *specs.Spec, _ *planInput) { s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x"}) }, "no type"},
		"over root": {func(s *specs.Spec, _ *planInput) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/", Type: "tmpfs"})
		}, "container's root"},
		"tmpcopyup":    {func(s *specs.Spec, _ *planInput) { s.Mounts[1].Options = append(s.Mounts[1].Options, "tmpcopyup") }, `mounts[1] (tmpfs on /dev): mount option "tmpcopyup"`},
		"propagation":  {func(s *specs.Spec, _ *planInput) { s.Linux.RootfsPropagation = "sideways" }, "linux.rootfsPropagation"},
		"device path":  {func(s *specs.Spec, _ *planInput) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/x", Type: "c"}} }, "linux.devices[0] /etc/x: device path"},
		"device type":  {func(s *specs.Spec, _ *planInput) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}} }, `unknown device type "z"`},
		"personality":  {func(s *specs.Spec, _ *planInput) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "BSD"} }, "linux.personality.domain"},
		"NUL":          {func(s *specs.Spec, _ *planInput) { s.Process.Env = append(s.Process.Env, "A=b\x00c") }, "NUL byte"},
		"capabilities": {func(s *specs.Spec, _ *planInput) { s.Process.Capabilities.Effective = []string{"CAP_BOGUS"} }, "process.capabilities.effective"},
	} {
		_, _, err := compileInitPlan(testPlanInput(t, c.mod))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", name, err, c.want)
		}
	}
}

// A cgroup mount in a cgroup namespace of its own tries each hierarchy afresh and falls back
// to a bind of the container's directory; the alternative's length is what the C init skips.
func TestPlanCgroupAlternatives(t *testing.T) {
	p, why, err := compileInitPlan(testPlanInput(t, nil))
	if err != nil || p == nil {
		t.Fatalf("compile: %v, fallback %q", err, why)
	}
	n := 0
	for i, o := range p.ops {
		if o.code != opMount || o.ints[2] != ofOrElse {
			continue
		}
		n++
		alt := int(o.ints[3])
		if alt < 1 || p.ops[i+1].code != opMount || p.ops[i+1].ints[0]&unix.MS_BIND == 0 {
			t.Errorf("op %d (%s): alternative of %d ops: %v", i, o.what, alt, p.ops[i+1])
		}
		if !strings.Contains(o.what, "cgroup hierarchy") {
			t.Errorf("op %d names %q", i, o.what)
		}
	}
	if n != 2 {
		t.Errorf("%d cgroup hierarchies with a fallback, want 2", n)
	}
}

func TestPlanEncoding(t *testing.T) {
	p, why, err := compileInitPlan(testPlanInput(t, nil))
	if err != nil || p == nil {
		t.Fatalf("compile: %v, fallback %q", err, why)
	}
	b := p.encode(7)
	if got := binary.NativeEndian.Uint32(b); int(got) != len(b)-4 {
		t.Fatalf("frame length %d, body %d", got, len(b)-4)
	}
	off, i := 4, 0
	for off < len(b) {
		code := binary.NativeEndian.Uint32(b[off:])
		l := int(binary.NativeEndian.Uint32(b[off+4:]))
		nint := binary.NativeEndian.Uint32(b[off+8:])
		if code != p.ops[i].code || int(nint) != len(p.ops[i].ints) {
			t.Fatalf("op %d: code %d with %d ints, want %d with %d", i, code, nint, p.ops[i].code, len(p.ops[i].ints))
		}
		if code == opWait && binary.NativeEndian.Uint64(b[off+16:]) != 7 {
			t.Errorf("exec.fifo descriptor not patched in")
		}
		off += 8 + l
		i++
	}
	if off != len(b) || i != len(p.ops) {
		t.Errorf("decoded %d of %d ops, %d of %d bytes", i, len(p.ops), off, len(b))
	}
	boot := withPlanRecord([]byte{4, 0, 0, 0, 1, 0, 0, 0})
	if binary.NativeEndian.Uint32(boot) != 12 || len(boot) != 16 || binary.NativeEndian.Uint32(boot[8:]) != bootstrapPlanRecord {
		t.Errorf("bootstrap with the plan record: %v", boot)
	}
}

// The C init's terse report becomes the error the Go init would give.
func TestPlanFailureMessages(t *testing.T) {
	p, _, err := compileInitPlan(testPlanInput(t, func(s *specs.Spec, _ *planInput) {
		s.Process.Args = []string{"nosuch"}
		s.Process.Cwd = "/work"
	}))
	if err != nil || p == nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code  uint32
		errno unix.Errno
		ctx   string
		want  string
	}{
		{opLookPath, unix.ENOENT, "not found in $PATH", `process.args[0] "nosuch": executable file not found in $PATH`},
		{opChdir, unix.EXDEV, "x", "process.cwd /work resolves outside the container's root"},
		{opChdir, unix.EACCES, "chdir /work", "process.cwd /work: permission denied"},
		{opMask, 0, "/proc/kcore goes through a symlink in the rootfs; refusing it", "linux.maskedPaths /proc/kcore: /proc/kcore goes through a symlink"},
		{opRlimit, unix.EINVAL, "setrlimit", "process.rlimits RLIMIT_NOFILE: setrlimit soft"},
	} {
		i := index(p, c.code)
		if c.code == opMask {
			for j, o := range p.ops {
				if o.code == opMask && o.strs[0] == "/proc/kcore" {
					i = j
				}
			}
		}
		err := p.failure(i, c.errno, c.ctx)
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("op %d: %q; want %q", c.code, err, c.want)
		}
		if c.errno != 0 && !errors.Is(err, c.errno) && c.code != opLookPath && c.code != opChdir {
			t.Errorf("op %d: %q does not wrap %v", c.code, err, c.errno)
		}
	}
	if err := p.failure(-1, unix.EINVAL, "plan: truncated"); !strings.Contains(err.Error(), "plan: truncated") {
		t.Errorf("a failure outside any operation: %v", err)
	}
}
