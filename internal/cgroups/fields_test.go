package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// diskDev is the major:minor of a real disk, for per-device settings.
func diskDev(t *testing.T) (maj, min int64) {
	t.Helper()
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "ram") {
			continue
		}
		if b, err := os.ReadFile("/sys/block/" + n + "/dev"); err == nil {
			a, c, ok := parseDev(strings.TrimSpace(string(b)))
			if ok {
				return int64(a), int64(c)
			}
		}
	}
	t.Fatal("no disk in /sys/block (the v2 lane attaches one with V2VM_DISK)")
	return 0, 0
}

type fileWant struct {
	key, file string
	want      string // exact content, or "~substring"
}

func checkFiles(t *testing.T, m Manager, wants []fileWant) {
	t.Helper()
	for _, w := range wants {
		dir, ok := m.Paths()[w.key]
		if !ok {
			t.Errorf("no %s hierarchy for %s", hierName(w.key), w.file)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, w.file))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		got := strings.TrimSpace(string(b))
		if sub, ok := strings.CutPrefix(w.want, "~"); ok {
			if !strings.Contains(got, sub) {
				t.Errorf("%s/%s = %q, want it to contain %q", hierName(w.key), w.file, got, sub)
			}
		} else if got != w.want {
			t.Errorf("%s/%s = %q, want %q", hierName(w.key), w.file, got, w.want)
		}
	}
}

func allResources(maj, min int64) *specs.LinuxResources {
	dev := specs.LinuxBlockIODevice{Major: maj, Minor: min}
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 * mib)), Reservation: ptr(int64(32 * mib)), Swap: ptr(int64(128 * mib))},
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)),
			Burst: ptr(uint64(10000)), Idle: ptr(int64(0)), Cpus: "0", Mems: "0"},
		Pids: &specs.LinuxPids{Limit: ptr(int64(50))},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  ptr(uint16(500)),
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1048576}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 2097152}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 200}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 * mib}},
	}
}

// restoreUnifiedHugetlb undoes, on a hybrid host, the enabling of the unified mount's
// hugetlb controller that hugepage limits need, if it was not enabled before the test.
func restoreUnifiedHugetlb(t *testing.T, m Manager) {
	mm := m.(*manager)
	root := mm.v2mnt
	before, err := readFile(root, "cgroup.subtree_control")
	if err != nil || strings.Contains(before, "hugetlb") {
		return
	}
	parent := filepath.Dir(mm.v2dir)
	t.Cleanup(func() {
		// Only if no other cgroup under the berth parent still has hugetlb on.
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.IsDir() {
				return
			}
		}
		_ = writeFile(parent, "cgroup.subtree_control", "-hugetlb")
		_ = writeFile(root, "cgroup.subtree_control", "-hugetlb")
	})
}

// TestResourcesReadBack applies every mapped field the layout supports and reads the
// control files back, then changes some live.
func TestResourcesReadBack(t *testing.T) {
	needRoot(t)
	maj, min := diskDev(t)
	dev := i64(maj) + ":" + i64(min)
	r := allResources(maj, min)
	l := hostLayout(t)
	switch l {
	case Unified:
		r.Memory.Kernel = ptr(int64(64 * mib)) //lint:ignore SA1019 checking that v2 ignores it
		r.Unified = map[string]string{"memory.high": i64(96 * mib)}
	default:
		r.Memory.Swappiness = ptr(uint64(30))
		r.Memory.DisableOOMKiller = ptr(true)
		r.Memory.UseHierarchy = ptr(true)
		r.Memory.KernelTCP = ptr(int64(64 * mib))
		r.CPU.RealtimePeriod = ptr(uint64(500000))
		if l == Hybrid {
			// Applied after the mapped fields, so it overrides the reservation limit.
			r.Unified = map[string]string{"hugetlb.2MB.rsvd.max": i64(8 * mib)}
		}
	}
	m, err := New(Config{ID: testID(t), Resources: r})
	if err != nil {
		t.Fatal(err)
	}
	if l == Hybrid {
		restoreUnifiedHugetlb(t, m)
	}
	cleanupCgroup(t, m)
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	var wants []fileWant
	if m.Layout() == Unified {
		wants = []fileWant{
			{"", "memory.max", i64(64 * mib)}, {"", "memory.low", i64(32 * mib)}, {"", "memory.swap.max", i64(64 * mib)},
			{"", "memory.high", i64(96 * mib)},
			{"", "cpu.weight", u64(SharesToWeight(512))}, {"", "cpu.max", "50000 100000"}, {"", "cpu.max.burst", "10000"},
			{"", "cpu.idle", "0"}, {"", "cpuset.cpus", "0"}, {"", "cpuset.mems", "0"},
			{"", "pids.max", "50"},
			{"", "io.max", dev + " rbps=1048576 wbps=2097152 riops=100 wiops=200"},
			{"", "hugetlb.2MB.max", i64(4 * mib)},
		}
		if exists(m.Paths()[""] + "/io.bfq.weight") {
			wants = append(wants, fileWant{"", "io.bfq.weight", "~500"})
		} else {
			wants = append(wants, fileWant{"", "io.weight", "default " + u64(BlkioWeightToIOWeight(500))})
		}
	} else {
		wants = []fileWant{
			{"memory", "memory.limit_in_bytes", i64(64 * mib)}, {"memory", "memory.soft_limit_in_bytes", i64(32 * mib)},
			{"memory", "memory.memsw.limit_in_bytes", i64(128 * mib)}, {"memory", "memory.swappiness", "30"},
			{"memory", "memory.oom_control", "~oom_kill_disable 1"}, {"memory", "memory.use_hierarchy", "1"},
			{"memory", "memory.kmem.tcp.limit_in_bytes", i64(64 * mib)},
			{"cpu", "cpu.shares", "512"}, {"cpu", "cpu.cfs_quota_us", "50000"}, {"cpu", "cpu.cfs_period_us", "100000"},
			{"cpu", "cpu.cfs_burst_us", "10000"}, {"cpu", "cpu.idle", "0"}, {"cpu", "cpu.rt_period_us", "500000"},
			{"cpuset", "cpuset.cpus", "0"}, {"cpuset", "cpuset.mems", "0"},
			{"pids", "pids.max", "50"},
			{"blkio", "blkio.throttle.read_bps_device", dev + " 1048576"}, {"blkio", "blkio.throttle.write_bps_device", dev + " 2097152"},
			{"blkio", "blkio.throttle.read_iops_device", dev + " 100"}, {"blkio", "blkio.throttle.write_iops_device", dev + " 200"},
		}
		if exists(m.Paths()["blkio"] + "/blkio.weight") {
			wants = append(wants, fileWant{"blkio", "blkio.weight", "500"})
		} else {
			wants = append(wants, fileWant{"blkio", "blkio.bfq.weight", "~500"})
		}
		if _, ok := m.Paths()["hugetlb"]; ok {
			wants = append(wants, fileWant{"hugetlb", "hugetlb.2MB.limit_in_bytes", i64(4 * mib)})
		} else {
			wants = append(wants, fileWant{"", "hugetlb.2MB.max", i64(4 * mib)}, fileWant{"", "hugetlb.2MB.rsvd.max", i64(8 * mib)})
		}
	}
	checkFiles(t, m, wants)

	// Live changes, including the ones computed from what is in force.
	if m.Layout() == Unified {
		upd := []struct {
			r     *specs.LinuxResources
			wants []fileWant
		}{
			{&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(200000))}}, []fileWant{{"", "cpu.max", "50000 200000"}}},
			{&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-1))}}, []fileWant{{"", "cpu.max", "max 200000"}}},
			{&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(96 * mib))}}, []fileWant{{"", "memory.swap.max", i64(32 * mib)}}},
			{&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))}}, []fileWant{{"", "memory.max", "max"}, {"", "memory.swap.max", "max"}}},
			{&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}, Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, []fileWant{{"", "cpu.weight", "1"}, {"", "pids.max", "max"}}},
		}
		for _, u := range upd {
			if err := m.Update(u.r); err != nil {
				t.Fatalf("Update: %v", err)
			}
			checkFiles(t, m, u.wants)
		}
		return
	}
	// v1: lowering memory and memory+swap together needs the limit first.
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(16 * mib)), Swap: ptr(int64(16 * mib))},
		CPU: &specs.LinuxCPU{Quota: ptr(int64(-1))}, Pids: &specs.LinuxPids{Limit: ptr(int64(0))}}); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, m, []fileWant{{"memory", "memory.limit_in_bytes", i64(16 * mib)}, {"memory", "memory.memsw.limit_in_bytes", i64(16 * mib)},
		{"cpu", "cpu.cfs_quota_us", "-1"}, {"pids", "pids.max", "max"}})
}

// TestFieldErrors: every field the layout cannot honour, and bad values, fail with an
// error naming the field (and the layout where it is the layout's fault), before or at
// Create, leaving nothing behind.
func TestFieldErrors(t *testing.T) {
	needRoot(t)
	l := hostLayout(t)
	mt, err := readMounts()
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name  string
		r     *specs.LinuxResources
		wants []string
		// unsupported: the error must wrap ErrUnsupported and name the layout.
		unsupported bool
	}
	cases := []tc{
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 * mib)), Swap: ptr(int64(32 * mib))}},
			[]string{"linux.resources.memory.swap", "lower than"}, false},
		{"bad pagesize", &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2mb", Limit: 1}}},
			[]string{"linux.resources.hugepageLimits[0].pageSize", `"2mb"`}, false},
		{"bad device type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "q"}}},
			[]string{"linux.resources.devices[0].type", `"q"`}, false},
		{"unified key with a slash", &specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}},
			[]string{`linux.resources.unified["../memory.max"]`}, l == Legacy},
		{"unified cgroup.procs", &specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}},
			[]string{`linux.resources.unified["cgroup.procs"]`}, l == Legacy},
		{"bad cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4000-4001"}},
			[]string{"linux.resources.cpu.cpus", "cpuset.cpus", `"4000-4001"`}, false},
	}
	if l == Unified {
		cases = append(cases,
			tc{"classID", &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr(uint32(7))}}, []string{"linux.resources.network.classID", "net_cls"}, true},
			tc{"priorities", &specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 1}}}}, []string{"linux.resources.network.priorities"}, true},
			tc{"realtime", &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}}, []string{"linux.resources.cpu.realtimeRuntime"}, true},
			tc{"swappiness", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(10))}}, []string{"linux.resources.memory.swappiness"}, true},
			tc{"kernelTCP", &specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr(int64(mib))}}, []string{"linux.resources.memory.kernelTCP"}, true},
			tc{"disableOOMKiller", &specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: ptr(true)}}, []string{"linux.resources.memory.disableOOMKiller"}, true},
			tc{"useHierarchy false", &specs.LinuxResources{Memory: &specs.LinuxMemory{UseHierarchy: ptr(false)}}, []string{"linux.resources.memory.useHierarchy"}, true},
			tc{"leafWeight", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: ptr(uint16(100))}}, []string{"linux.resources.blockIO.leafWeight"}, true},
			tc{"swap without a limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(64 * mib))}}, []string{"linux.resources.memory.swap", "needs a memory limit"}, false},
			tc{"rdma device that is not there", &specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"nonesuch0": {HcaHandles: ptr(uint32(3))}}},
				[]string{`linux.resources.rdma["nonesuch0"]`, "rdma.max"}, false},
			tc{"unknown unified file", &specs.LinuxResources{Unified: map[string]string{"memory.nonesuch": "1"}}, []string{`linux.resources.unified["memory.nonesuch"]`}, true},
		)
	} else {
		if mt.v1Hierarchy("net_cls") == nil {
			cases = append(cases, tc{"classID", &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr(uint32(7))}},
				[]string{"linux.resources.network.classID", "no v1 net_cls hierarchy"}, true})
		}
		if mt.v1Hierarchy("net_prio") == nil {
			cases = append(cases, tc{"priorities", &specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 1}}}},
				[]string{"linux.resources.network.priorities[0]", "no v1 net_prio hierarchy"}, true})
		}
		if mt.v1Hierarchy("rdma") == nil {
			cases = append(cases, tc{"rdma", &specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr(uint32(3))}}},
				[]string{"linux.resources.rdma"}, true})
		}
		cases = append(cases,
			tc{"leafWeight", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: ptr(uint16(100))}},
				[]string{"linux.resources.blockIO.leafWeight", "blkio.leaf_weight", "CFQ"}, true},
			// The parent /berth has no realtime budget, so the kernel refuses.
			tc{"realtime over budget", &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}},
				[]string{"linux.resources.cpu.realtimeRuntime", "cpu.rt_runtime_us"}, false},
			tc{"unified memory.high", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}},
				[]string{`linux.resources.unified["memory.high"]`, "memory is a v1 hierarchy"}, true},
		)
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			m, err := New(Config{ID: testID(t), Resources: c.r})
			if err == nil {
				err = m.Create()
				for k, d := range m.Paths() {
					if exists(d) {
						t.Errorf("failed Create left %s (%s)", d, hierName(k))
						_ = m.Destroy()
					}
				}
			}
			wantErr(t, err, c.wants...)
			if c.unsupported {
				wantErr(t, err, l.String())
				if !errors.Is(err, ErrUnsupported) {
					t.Errorf("error %q does not wrap ErrUnsupported", err)
				}
			}
			t.Logf("%v", err)
		})
	}
	if !slices.ContainsFunc(cases, func(c tc) bool { return c.unsupported }) {
		t.Fatalf("no unsupported-field case on %v", l)
	}
}
