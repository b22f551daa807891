package cgroups

import (
	"errors"
	"github.com/berth-containers/berth/internal/mountinfo"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const mountinfoHybrid = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const mountinfoLegacyComounted = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
34 31 0:31 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/other rw,relatime - cgroup cgroup rw,name=other
36 31 0:32 / /mnt/again\040here rw,relatime - cgroup cgroup rw,cpu,cpuacct
`

const mountinfoUnified = `25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
90 25 0:22 / /mnt/cg rw - cgroup2 cgroup2 rw
`

func TestParseMounts(t *testing.T) {
	m, err := parseMounts([]byte(mountinfoHybrid))
	if err != nil {
		t.Fatal(err)
	}
	if m.layout != Hybrid || m.v2 == nil || m.v2.mountpoint != "/sys/fs/cgroup/unified" || len(m.v1) != 5 {
		t.Fatalf("hybrid: layout %v v2 %+v v1 %+v", m.layout, m.v2, m.v1)
	}
	if h := m.v1Hierarchy("name=systemd"); h == nil || h.mountpoint != "/sys/fs/cgroup/systemd" {
		t.Fatalf("name=systemd hierarchy: %+v", h)
	}

	m, err = parseMounts([]byte(mountinfoLegacyComounted))
	if err != nil {
		t.Fatal(err)
	}
	if m.layout != Legacy || m.v2 != nil || len(m.v1) != 3 {
		t.Fatalf("legacy: layout %v v1 %+v", m.layout, m.v1)
	}
	cpu, acct := m.v1Hierarchy("cpu"), m.v1Hierarchy("cpuacct")
	if cpu == nil || cpu != acct || cpu.mountpoint != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Fatalf("co-mounted cpu,cpuacct: %+v %+v", cpu, acct)
	}
	if h := m.v1Hierarchy("memory"); h == nil || h.root != "/docker/abc" {
		t.Fatalf("memory root: %+v", h)
	}
	if m.v1Hierarchy("other") != nil || m.v1Hierarchy("name=other") != nil {
		t.Fatal("a foreign named hierarchy was taken")
	}

	m, err = parseMounts([]byte(mountinfoUnified))
	if err != nil {
		t.Fatal(err)
	}
	if m.layout != Unified || m.v2.mountpoint != "/sys/fs/cgroup" || len(m.v1) != 0 {
		t.Fatalf("unified: %+v", m)
	}
	if _, err := parseMounts([]byte("22 28 0:21 / /sys rw - sysfs sysfs rw\n")); err == nil {
		t.Fatal("no cgroup mounts: want an error")
	}
	if got := mountinfo.Unescape(`/mnt/again\040here`); got != "/mnt/again here" {
		t.Fatalf("unescape: %q", got)
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := parseProcCgroup("12:cpu,cpuacct:/a/b\n1:name=systemd:/user.slice\n0::/x:y\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/a/b", "cpuacct": "/a/b", "name=systemd": "/user.slice", "": "/x:y"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if _, err := parseProcCgroup("garbage\n"); err == nil {
		t.Fatal("malformed line: want an error")
	}
}

func TestMountRelative(t *testing.T) {
	h := hierarchy{mountpoint: "/sys/fs/cgroup/memory", root: "/docker/abc"}
	if got, err := h.mountRelative("/docker/abc/x"); err != nil || got != "/x" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := h.mountRelative("/docker/abc"); err != nil || got != "/" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := h.mountRelative("/docker/abcd"); err == nil {
		t.Fatal("a sibling of the mounted root: want an error")
	}
}

func TestCgroupPathParsing(t *testing.T) {
	for _, tc := range []struct {
		cfg      Config
		own      string
		want     string
		wantErrs []string
	}{
		{cfg: Config{ID: "c1"}, own: "/anything", want: "/berth/c1"},
		{cfg: Config{ID: "x", Path: "/a/b/../c"}, own: "/", want: "/a/c"},
		{cfg: Config{ID: "x", Path: "/a/../../etc"}, wantErrs: []string{`"/a/../../etc"`, "climbs above the hierarchy root"}},
		{cfg: Config{ID: "x", Path: "/"}, wantErrs: []string{"hierarchy root"}},
		{cfg: Config{ID: "x", Path: "sub/c"}, own: "/user/me", want: "/user/me/sub/c"},
		{cfg: Config{ID: "x", Path: "../c"}, own: "/user/me", want: "/user/c"},
		{cfg: Config{ID: "x", Path: "../../../c"}, own: "/user/me", wantErrs: []string{"relative to the runtime's cgroup /user/me", "climbs above"}},
		{cfg: Config{ID: "x", Path: "machine.slice:berth:c1"}, wantErrs: []string{"systemd", "not supported", "machine.slice:berth:c1"}},
		{cfg: Config{ID: "x", Path: "a\x00b"}, wantErrs: []string{"NUL"}},
		{cfg: Config{ID: ""}, wantErrs: []string{"empty container id"}},
		{cfg: Config{ID: "a/b"}, wantErrs: []string{`"a/b"`}},
		{cfg: Config{ID: ".."}, wantErrs: []string{`".."`}},
	} {
		spec, err := parseCgroupPath(tc.cfg)
		var got string
		if err == nil {
			got, err = spec.resolve(tc.own)
		}
		if tc.wantErrs != nil {
			if err == nil {
				t.Errorf("%+v: want an error, got %q", tc.cfg, got)
				continue
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%+v: error %q does not mention %q", tc.cfg, err, w)
				}
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v own %s: got %q, %v; want %q", tc.cfg, tc.own, got, err, tc.want)
		}
	}
	_, err := parseCgroupPath(Config{Path: "a:b:c"})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("systemd path error %v does not wrap ErrUnsupported", err)
	}
}

func TestSharesToWeight(t *testing.T) {
	for _, tc := range [][2]uint64{{0, 0}, {1, 1}, {2, 1}, {1024, 100}, {512, 59}, {2048, 174}, {262144, 10000}, {1 << 20, 10000}} {
		if got := SharesToWeight(tc[0]); got != tc[1] {
			t.Errorf("SharesToWeight(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := SharesToWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("SharesToWeight(%d) = %d after %d: not monotonic within [1, 10000]", s, w, prev)
		}
		prev = w
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for _, tc := range []struct {
		in   uint16
		want uint64
	}{{0, 0}, {10, 1}, {500, 4950}, {1000, 10000}, {5, 1}} {
		if got := BlkioWeightToIOWeight(tc.in); got != tc.want {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestSwapToV2(t *testing.T) {
	for _, tc := range []struct {
		swap, limit, want int64
		err               string
	}{
		{swap: 64 << 20, limit: 32 << 20, want: 32 << 20},
		{swap: 32 << 20, limit: 32 << 20, want: 0},
		{swap: -1, limit: 32 << 20, want: -1},
		{swap: -1, limit: -1, want: -1},
		{swap: 16 << 20, limit: 32 << 20, err: "lower than"},
		{swap: 64 << 20, limit: -1, err: "needs a memory limit"},
		{swap: -5, limit: 10, err: "negative"},
	} {
		got, err := SwapToV2(tc.swap, tc.limit)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("SwapToV2(%d, %d) = %d, %v; want error %q", tc.swap, tc.limit, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SwapToV2(%d, %d) = %d, %v; want %d", tc.swap, tc.limit, got, err, tc.want)
		}
	}
}

// runDeviceProgram interprets the few instructions devicesProgram emits, as the kernel
// would run them, for one device access.
func runDeviceProgram(t *testing.T, prog []uint64, typ, major, minor, access uint32) uint64 {
	ctx := [3]uint32{access<<16 | typ, major, minor}
	var r [11]uint64
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		code, dst, src := uint8(in), uint8(in>>8)&0xf, uint8(in>>12)&0xf
		off, imm := int16(uint16(in>>16)), int32(uint32(in>>32))
		switch code {
		case opLdxW:
			if src != 1 || off%4 != 0 || off < 0 || off > 8 {
				t.Fatalf("pc %d: ctx load at %d from r%d", pc, off, src)
			}
			r[dst] = uint64(ctx[off/4])
		case opMovK:
			r[dst] = uint64(int64(imm))
		case opMovX:
			r[dst] = r[src]
		case opAndK:
			r[dst] &= uint64(int64(imm))
		case opRshK:
			r[dst] >>= uint(imm)
		case opJneK:
			if r[dst] != uint64(int64(imm)) {
				pc += int(off)
			}
		case opJeqK:
			if r[dst] == uint64(int64(imm)) {
				pc += int(off)
			}
		case opExit:
			return r[0]
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

// checkReachable fails on an instruction no path reaches, which the kernel's verifier
// rejects ("unreachable insn"), and on a jump out of the program.
func checkReachable(t *testing.T, prog []uint64) {
	t.Helper()
	seen := make([]bool, len(prog))
	work := []int{0}
	for len(work) > 0 {
		pc := work[len(work)-1]
		work = work[:len(work)-1]
		if pc < 0 || pc >= len(prog) {
			t.Fatalf("jump to %d, outside the %d-instruction program", pc, len(prog))
		}
		if seen[pc] {
			continue
		}
		seen[pc] = true
		code, off := uint8(prog[pc]), int(int16(uint16(prog[pc]>>16)))
		switch code {
		case opExit:
		case opJneK, opJeqK:
			work = append(work, pc+1, pc+1+off)
		default:
			work = append(work, pc+1)
		}
	}
	for pc, ok := range seen {
		if !ok {
			t.Fatalf("instruction %d of %d is unreachable", pc, len(prog))
		}
	}
}

// v1Allowed is the reference: the v1 kernel's behaviour for a list of devices.allow and
// devices.deny writes, decided per access bit by the last rule naming it.
func v1Allowed(rules []devRule, typ byte, major, minor int64, access uint32) bool {
	for bit := uint32(1); bit <= 4; bit <<= 1 {
		if access&bit == 0 {
			continue
		}
		allowed := true
		for _, r := range rules {
			if (r.typ == 'a' || r.typ == typ) && (r.major < 0 || r.major == major) &&
				(r.minor < 0 || r.minor == minor) && r.access&bit != 0 {
				allowed = r.allow
			}
		}
		if !allowed {
			return false
		}
	}
	return true
}

func TestDevicesProgramMatchesV1Semantics(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	num := func() *int64 {
		if rnd.Intn(3) == 0 {
			return nil
		}
		return ptr(int64(rnd.Intn(3)))
	}
	types := []string{"", "a", "b", "c", "c", "b"}
	accs := []string{"", "r", "w", "m", "rw", "rm", "wm", "rwm"}
	for round := 0; round < 400; round++ {
		var devs []specs.LinuxDeviceCgroup
		if rnd.Intn(2) == 0 {
			devs = append(devs, specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"})
		}
		for n := rnd.Intn(6); n > 0; n-- {
			devs = append(devs, specs.LinuxDeviceCgroup{Allow: rnd.Intn(2) == 0, Type: types[rnd.Intn(len(types))],
				Major: num(), Minor: num(), Access: accs[rnd.Intn(len(accs))]})
		}
		rules, err := compileDevices(devs)
		if err != nil {
			t.Fatal(err)
		}
		prog := devicesProgram(rules)
		checkReachable(t, prog)
		for _, typ := range []byte{'b', 'c'} {
			bt := uint32(unix.BPF_DEVCG_DEV_BLOCK)
			if typ == 'c' {
				bt = unix.BPF_DEVCG_DEV_CHAR
			}
			for major := int64(0); major < 3; major++ {
				for minor := int64(0); minor < 3; minor++ {
					for acc := uint32(1); acc <= 7; acc++ {
						want := v1Allowed(rules, typ, major, minor, acc)
						got := runDeviceProgram(t, prog, bt, uint32(major), uint32(minor), acc) == 1
						if got != want {
							t.Fatalf("rules %+v: %c %d:%d access %03b: program says %v, v1 semantics %v", devs, typ, major, minor, acc, got, want)
						}
					}
				}
			}
		}
	}
}

func TestCompileDevicesErrorsAndV1Lines(t *testing.T) {
	for _, tc := range []struct {
		dev  specs.LinuxDeviceCgroup
		want string
	}{
		{specs.LinuxDeviceCgroup{Type: "x"}, "linux.resources.devices[0].type"},
		{specs.LinuxDeviceCgroup{Type: "c", Access: "rx"}, "linux.resources.devices[0].access"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: ptr(int64(-7))}, "linux.resources.devices[0].major -7"},
	} {
		_, err := compileDevices([]specs.LinuxDeviceCgroup{tc.dev})
		wantErr(t, err, tc.want)
	}
	rules, err := compileDevices([]specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
		{Allow: true, Type: "b", Major: ptr(int64(8)), Access: "r"},
		{Allow: true, Type: "a", Major: ptr(int64(5)), Access: "w"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		f, l := r.v1Line()
		got = append(got, f+" "+l)
	}
	want := []string{"devices.deny a", "devices.allow c 1:3 rwm", "devices.allow b 8:* r", "devices.allow b 5:* w", "devices.allow c 5:* w"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 lines:\n got %q\nwant %q", got, want)
	}
}
