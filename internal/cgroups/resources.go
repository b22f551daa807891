package cgroups

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A plan is linux.resources turned into file writes for this manager's layout. It is
// built (and so every field validated against the layout) before anything is written.
type plan struct {
	writes []write
	// devices are v1 devices.allow/devices.deny writes, made strictly in order.
	devices []write
	// bpf is the v2 device program's rules; bpfSet says whether to (re)attach one.
	bpf    []devRule
	bpfSet bool
	// v2ctrls are the cgroup2 controllers the writes need enabled in the parents.
	v2ctrls []v2need
	// memCheck is the limit checkBeforeUpdate wants compared with the current usage.
	memCheck int64
}

// write is one control file write. alts are tried in order until one's file exists; a
// value of nil means compute it with fn just before writing (it depends on what is there).
type write struct {
	field    string
	dir      string
	alts     []alt
	fn       func() (string, error)
	optional bool   // skip when no alternative exists
	hint     string // why the file could be missing
}

type alt struct{ file, value string }

func (p *plan) add(field, dir, file, value string) {
	p.writes = append(p.writes, write{field: field, dir: dir, alts: []alt{{file, value}}})
}

// v2need is a cgroup2 controller and the first field that needs it (for the error).
type v2need struct{ ctrl, field string }

func (p *plan) needV2(c, field string) {
	for _, x := range p.v2ctrls {
		if x.ctrl == c {
			return
		}
	}
	p.v2ctrls = append(p.v2ctrls, v2need{c, field})
}

func unsupported(field string, l Layout, why string) error {
	return fmt.Errorf("cgroups: %s: %w (%s): %s", field, ErrUnsupported, l, why)
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// v2Max is a v2 limit: -1 (and, where noted, 0) mean "max".
func v2Max(v int64) string {
	if v < 0 {
		return "max"
	}
	return i64(v)
}

// validPagesize accepts what the kernel names hugetlb files with: a number without leading
// zeros, then KB, MB or GB ("2MB", "1GB"), as ^[1-9][0-9]*[KMG]B$ would. Not a regexp:
// package regexp is 0.2 MB of the runtime's binary, and so of every command's peak RSS.
func validPagesize(s string) bool {
	n := len(s)
	if n < 3 || s[n-1] != 'B' || (s[n-2] != 'K' && s[n-2] != 'M' && s[n-2] != 'G') || s[0] == '0' {
		return false
	}
	for _, c := range s[:n-2] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plan validates r for this manager's layout and lists its writes. update is true for
// Update (checkBeforeUpdate applies, and values may be read from the live cgroup).
func (m *manager) plan(r *specs.LinuxResources, update bool) (*plan, error) {
	p := &plan{memCheck: -1}
	if r == nil {
		return p, nil
	}
	var err error
	if m.layout == Unified {
		err = m.planV2(p, r)
	} else {
		err = m.planV1(p, r)
	}
	if err != nil {
		return nil, err
	}
	if r.Memory != nil && r.Memory.CheckBeforeUpdate != nil && *r.Memory.CheckBeforeUpdate && update &&
		r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		p.memCheck = *r.Memory.Limit
	}
	if len(r.Devices) > 0 {
		rules, err := compileDevices(r.Devices)
		if err != nil {
			return nil, err
		}
		if m.layout == Unified {
			p.bpf, p.bpfSet = rules, true
		} else {
			dir, ok := m.paths["devices"]
			if !ok {
				return nil, unsupported("linux.resources.devices", m.layout, "no v1 devices hierarchy is mounted")
			}
			for i, rule := range rules {
				file, line := rule.v1Line()
				p.devices = append(p.devices, write{field: fmt.Sprintf("linux.resources.devices[%d]", i), dir: dir, alts: []alt{{file, line}}})
			}
		}
	}
	if err := m.planUnified(p, r.Unified); err != nil {
		return nil, err
	}
	if len(p.v2ctrls) > 0 {
		// The root's controllers are all any cgroup can have; ancestors that do not pass
		// one on are caught when enabling it.
		avail, err := readFile(m.v2mnt, "cgroup.controllers")
		if err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		for _, n := range p.v2ctrls {
			if !slices.Contains(strings.Fields(avail), n.ctrl) {
				why := fmt.Sprintf("the kernel offers no %s controller (%s/cgroup.controllers: %q)", n.ctrl, m.v2mnt, strings.TrimSpace(avail))
				if m.layout == Hybrid {
					why = fmt.Sprintf("no v1 %s hierarchy is mounted and the unified mount at %s has no %s controller (it has %q)", n.ctrl, m.v2mnt, n.ctrl, strings.TrimSpace(avail))
					if _, ok := m.paths[n.ctrl]; ok {
						why = fmt.Sprintf("%s is a v1 hierarchy on this host (set it through the mapped fields); the unified mount at %s has only %q", n.ctrl, m.v2mnt, strings.TrimSpace(avail))
					}
				}
				return nil, unsupported(n.field, m.layout, why)
			}
		}
	}
	return p, nil
}

func (m *manager) planV1(p *plan, r *specs.LinuxResources) error {
	l := m.layout
	dirOf := func(ctrl, field string) (string, error) {
		if d, ok := m.paths[ctrl]; ok {
			return d, nil
		}
		return "", unsupported(field, l, "no v1 "+ctrl+" hierarchy is mounted")
	}
	if mem := r.Memory; mem != nil {
		const f = "linux.resources.memory"
		var dir string
		need := func() error {
			var err error
			if dir == "" {
				dir, err = dirOf("memory", f)
			}
			return err
		}
		if mem.Limit != nil || mem.Reservation != nil || mem.Swap != nil || mem.KernelTCP != nil ||
			kernelLimit(mem) != nil || mem.Swappiness != nil || mem.DisableOOMKiller != nil || mem.UseHierarchy != nil {
			if err := need(); err != nil {
				return err
			}
		}
		if mem.Swap != nil && mem.Limit != nil && *mem.Swap > 0 && *mem.Limit > 0 && *mem.Swap < *mem.Limit {
			return fmt.Errorf("cgroups: %s.swap %d (memory plus swap) is lower than %s.limit %d", f, *mem.Swap, f, *mem.Limit)
		}
		// A zero limit, reservation or swap means "not set", as in runc.
		if mem.Limit != nil && *mem.Limit != 0 {
			p.add(f+".limit", dir, "memory.limit_in_bytes", i64(*mem.Limit))
		}
		if mem.Swap != nil && *mem.Swap != 0 {
			p.writes = append(p.writes, write{field: f + ".swap", dir: dir, alts: []alt{{"memory.memsw.limit_in_bytes", i64(*mem.Swap)}},
				hint: " (the kernel does swap accounting only with CONFIG_MEMCG_SWAP and swapaccount=1)"})
		}
		if mem.Reservation != nil && *mem.Reservation != 0 {
			p.add(f+".reservation", dir, "memory.soft_limit_in_bytes", i64(*mem.Reservation))
		}
		if k := kernelLimit(mem); k != nil {
			// Deprecated by the spec; kernels since 5.16 accept and ignore the write, and
			// newer ones may drop the file, which is fine too.
			p.writes = append(p.writes, write{field: f + ".kernel", dir: dir, alts: []alt{{"memory.kmem.limit_in_bytes", i64(*k)}}, optional: true})
		}
		if mem.KernelTCP != nil {
			p.add(f+".kernelTCP", dir, "memory.kmem.tcp.limit_in_bytes", i64(*mem.KernelTCP))
		}
		if mem.Swappiness != nil && *mem.Swappiness != ^uint64(0) {
			p.add(f+".swappiness", dir, "memory.swappiness", u64(*mem.Swappiness))
		}
		if mem.DisableOOMKiller != nil {
			p.add(f+".disableOOMKiller", dir, "memory.oom_control", boolNum(*mem.DisableOOMKiller))
		}
		if mem.UseHierarchy != nil {
			p.add(f+".useHierarchy", dir, "memory.use_hierarchy", boolNum(*mem.UseHierarchy))
		}
	}
	if cpu := r.CPU; cpu != nil {
		const f = "linux.resources.cpu"
		if cpu.Shares != nil || cpu.Quota != nil || cpu.Period != nil || cpu.Burst != nil ||
			cpu.RealtimeRuntime != nil || cpu.RealtimePeriod != nil || cpu.Idle != nil {
			dir, err := dirOf("cpu", f)
			if err != nil {
				return err
			}
			if cpu.Shares != nil && *cpu.Shares != 0 {
				p.add(f+".shares", dir, "cpu.shares", u64(*cpu.Shares))
			}
			if cpu.Period != nil && *cpu.Period != 0 {
				p.add(f+".period", dir, "cpu.cfs_period_us", u64(*cpu.Period))
			}
			if cpu.Quota != nil && *cpu.Quota != 0 {
				p.add(f+".quota", dir, "cpu.cfs_quota_us", i64(*cpu.Quota))
			}
			if cpu.Burst != nil {
				p.add(f+".burst", dir, "cpu.cfs_burst_us", u64(*cpu.Burst))
			}
			rtHint := " (the kernel has realtime group scheduling only with CONFIG_RT_GROUP_SCHED)"
			if cpu.RealtimePeriod != nil && *cpu.RealtimePeriod != 0 {
				p.writes = append(p.writes, write{field: f + ".realtimePeriod", dir: dir, alts: []alt{{"cpu.rt_period_us", u64(*cpu.RealtimePeriod)}}, hint: rtHint})
			}
			if cpu.RealtimeRuntime != nil && *cpu.RealtimeRuntime != 0 {
				p.writes = append(p.writes, write{field: f + ".realtimeRuntime", dir: dir, alts: []alt{{"cpu.rt_runtime_us", i64(*cpu.RealtimeRuntime)}}, hint: rtHint})
			}
			if cpu.Idle != nil {
				p.add(f+".idle", dir, "cpu.idle", i64(*cpu.Idle))
			}
		}
		if cpu.Cpus != "" || cpu.Mems != "" {
			dir, err := dirOf("cpuset", f+".cpus/mems")
			if err != nil {
				return err
			}
			if cpu.Cpus != "" {
				p.add(f+".cpus", dir, "cpuset.cpus", cpu.Cpus)
			}
			if cpu.Mems != "" {
				p.add(f+".mems", dir, "cpuset.mems", cpu.Mems)
			}
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		dir, err := dirOf("pids", "linux.resources.pids.limit")
		if err != nil {
			return err
		}
		p.add("linux.resources.pids.limit", dir, "pids.max", pidsMax(*r.Pids.Limit))
	}
	if bio := r.BlockIO; bio != nil && blockIOSet(bio) {
		const f = "linux.resources.blockIO"
		dir, err := dirOf("blkio", f)
		if err != nil {
			return err
		}
		// CFQ's blkio.weight went with CFQ (Linux 5.0); BFQ offers blkio.bfq.weight.
		if bio.Weight != nil && *bio.Weight != 0 {
			w := u64(uint64(*bio.Weight))
			p.writes = append(p.writes, write{field: f + ".weight", dir: dir, alts: []alt{{"blkio.weight", w}, {"blkio.bfq.weight", w}}})
		}
		if bio.LeafWeight != nil && *bio.LeafWeight != 0 {
			p.writes = append(p.writes, write{field: f + ".leafWeight", dir: dir, alts: []alt{{"blkio.leaf_weight", u64(uint64(*bio.LeafWeight))}},
				hint: " (leaf weights were a feature of the CFQ I/O scheduler, removed in Linux 5.0)"})
		}
		for i, wd := range bio.WeightDevice {
			df := fmt.Sprintf("%s.weightDevice[%d]", f, i)
			dev := fmt.Sprintf("%d:%d", wd.Major, wd.Minor)
			if wd.Weight != nil {
				line := dev + " " + u64(uint64(*wd.Weight))
				p.writes = append(p.writes, write{field: df + ".weight", dir: dir, alts: []alt{{"blkio.weight_device", line}, {"blkio.bfq.weight_device", line}}})
			}
			if wd.LeafWeight != nil {
				p.writes = append(p.writes, write{field: df + ".leafWeight", dir: dir, alts: []alt{{"blkio.leaf_weight_device", dev + " " + u64(uint64(*wd.LeafWeight))}},
					hint: " (leaf weights were a feature of the CFQ I/O scheduler, removed in Linux 5.0)"})
			}
		}
		for _, t := range []struct {
			name, file string
			devs       []specs.LinuxThrottleDevice
		}{
			{"throttleReadBpsDevice", "blkio.throttle.read_bps_device", bio.ThrottleReadBpsDevice},
			{"throttleWriteBpsDevice", "blkio.throttle.write_bps_device", bio.ThrottleWriteBpsDevice},
			{"throttleReadIOPSDevice", "blkio.throttle.read_iops_device", bio.ThrottleReadIOPSDevice},
			{"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", bio.ThrottleWriteIOPSDevice},
		} {
			for i, d := range t.devs {
				p.add(fmt.Sprintf("%s.%s[%d]", f, t.name, i), dir, t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
			}
		}
	}
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		if !validPagesize(h.Pagesize) {
			return fmt.Errorf("cgroups: %s.pageSize %q is not of the form <number><K|M|G>B (e.g. 2MB)", field, h.Pagesize)
		}
		if dir, ok := m.paths["hugetlb"]; ok {
			p.add(field, dir, "hugetlb."+h.Pagesize+".limit_in_bytes", u64(h.Limit))
			p.writes = append(p.writes, write{field: field, dir: dir, alts: []alt{{"hugetlb." + h.Pagesize + ".rsvd.limit_in_bytes", u64(h.Limit)}}, optional: true})
			continue
		}
		if m.v2dir == "" {
			return unsupported(field, l, "no hugetlb hierarchy is mounted")
		}
		// Hybrid: the hugetlb controller may sit on the unified mount instead.
		p.needV2("hugetlb", field)
		p.writes = append(p.writes, write{field: field, dir: m.v2dir, alts: []alt{{"hugetlb." + h.Pagesize + ".max", u64(h.Limit)}},
			hint: " (no such huge page size on this machine?)"})
		p.writes = append(p.writes, write{field: field, dir: m.v2dir, alts: []alt{{"hugetlb." + h.Pagesize + ".rsvd.max", u64(h.Limit)}}, optional: true})
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			dir, err := dirOf("net_cls", "linux.resources.network.classID")
			if err != nil {
				return err
			}
			p.add("linux.resources.network.classID", dir, "net_cls.classid", u64(uint64(*n.ClassID)))
		}
		for i, pr := range n.Priorities {
			field := fmt.Sprintf("linux.resources.network.priorities[%d]", i)
			dir, err := dirOf("net_prio", field)
			if err != nil {
				return err
			}
			if pr.Name == "" || strings.ContainsAny(pr.Name, " \n/") {
				return fmt.Errorf("cgroups: %s.name %q is not an interface name", field, pr.Name)
			}
			p.add(field, dir, "net_prio.ifpriomap", pr.Name+" "+u64(uint64(pr.Priority)))
		}
	}
	if len(r.Rdma) > 0 {
		dir, err := dirOf("rdma", "linux.resources.rdma")
		if err != nil {
			return err
		}
		return planRdma(p, dir, r.Rdma)
	}
	return nil
}

func (m *manager) planV2(p *plan, r *specs.LinuxResources) error {
	l := m.layout
	dir := m.v2dir
	if mem := r.Memory; mem != nil {
		const f = "linux.resources.memory"
		if mem.Limit != nil && *mem.Limit != 0 {
			p.needV2("memory", f+".limit")
			p.add(f+".limit", dir, "memory.max", v2Max(*mem.Limit))
		}
		if mem.Reservation != nil && *mem.Reservation != 0 {
			p.needV2("memory", f+".reservation")
			p.add(f+".reservation", dir, "memory.low", v2Max(*mem.Reservation))
		}
		if mem.Swap != nil && *mem.Swap != 0 {
			p.needV2("memory", f+".swap")
			swap := *mem.Swap
			w := write{field: f + ".swap", dir: dir, alts: []alt{{"memory.swap.max", ""}},
				hint: " (the kernel does swap accounting only with CONFIG_MEMCG_SWAP and swapaccount=1)"}
			if mem.Limit != nil && *mem.Limit != 0 {
				v, err := SwapToV2(swap, *mem.Limit)
				if err != nil {
					return fmt.Errorf("cgroups: %s.swap: %w", f, err)
				}
				w.alts[0].value = v2Max(v)
				// Without swap accounting, "no swap beyond the memory limit" is what the
				// kernel does anyway.
				w.optional = v == 0
			} else {
				// Only swap given (an update): it is relative to the limit in force.
				w.fn = func() (string, error) {
					cur, err := readUint(dir, "memory.max")
					if err != nil {
						return "", err
					}
					limit := int64(-1)
					if cur != ^uint64(0) {
						limit = int64(cur)
					}
					v, err := SwapToV2(swap, limit)
					if err != nil {
						return "", err
					}
					return v2Max(v), nil
				}
			}
			p.writes = append(p.writes, w)
		}
		// memory.kmem.* has no v2 counterpart; the spec deprecates kernel and says runtimes
		// may ignore it, so it is ignored here rather than failing old configs.
		if mem.KernelTCP != nil {
			return unsupported(f+".kernelTCP", l, "cgroup v2 has no separate TCP memory limit (it is part of memory.max)")
		}
		if mem.Swappiness != nil && *mem.Swappiness != ^uint64(0) {
			return unsupported(f+".swappiness", l, "cgroup v2 has no per-cgroup swappiness")
		}
		if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
			return unsupported(f+".disableOOMKiller", l, "cgroup v2 cannot disable the OOM killer for a cgroup")
		}
		if mem.UseHierarchy != nil && !*mem.UseHierarchy {
			return unsupported(f+".useHierarchy", l, "cgroup v2 accounting is always hierarchical")
		}
	}
	if cpu := r.CPU; cpu != nil {
		const f = "linux.resources.cpu"
		if cpu.Shares != nil && *cpu.Shares != 0 {
			p.needV2("cpu", f+".shares")
			p.add(f+".shares", dir, "cpu.weight", u64(SharesToWeight(*cpu.Shares)))
		}
		quotaSet := cpu.Quota != nil && *cpu.Quota != 0
		periodSet := cpu.Period != nil && *cpu.Period != 0
		if quotaSet || periodSet {
			field := f + ".quota"
			if !quotaSet {
				field = f + ".period"
			}
			p.needV2("cpu", field)
			w := write{field: field, dir: dir, alts: []alt{{"cpu.max", ""}}}
			switch {
			case quotaSet && periodSet:
				w.alts[0].value = v2Max(*cpu.Quota) + " " + u64(*cpu.Period)
			case quotaSet:
				// cpu.max takes the quota alone and keeps the period.
				w.alts[0].value = v2Max(*cpu.Quota)
			default:
				period := *cpu.Period
				w.fn = func() (string, error) {
					cur, err := readFile(dir, "cpu.max")
					if err != nil {
						return "", err
					}
					q, _, _ := strings.Cut(strings.TrimSpace(cur), " ")
					return q + " " + u64(period), nil
				}
			}
			p.writes = append(p.writes, w)
		}
		if cpu.Burst != nil {
			p.needV2("cpu", f+".burst")
			p.add(f+".burst", dir, "cpu.max.burst", u64(*cpu.Burst))
		}
		if (cpu.RealtimeRuntime != nil && *cpu.RealtimeRuntime != 0) || (cpu.RealtimePeriod != nil && *cpu.RealtimePeriod != 0) {
			return unsupported(f+".realtimeRuntime/realtimePeriod", l, "cgroup v2 has no realtime group scheduling controls")
		}
		if cpu.Idle != nil {
			p.needV2("cpu", f+".idle")
			p.add(f+".idle", dir, "cpu.idle", i64(*cpu.Idle))
		}
		if cpu.Cpus != "" {
			p.needV2("cpuset", f+".cpus")
			p.add(f+".cpus", dir, "cpuset.cpus", cpu.Cpus)
		}
		if cpu.Mems != "" {
			p.needV2("cpuset", f+".mems")
			p.add(f+".mems", dir, "cpuset.mems", cpu.Mems)
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		p.needV2("pids", "linux.resources.pids.limit")
		p.add("linux.resources.pids.limit", dir, "pids.max", pidsMax(*r.Pids.Limit))
	}
	if bio := r.BlockIO; bio != nil && blockIOSet(bio) {
		const f = "linux.resources.blockIO"
		p.needV2("io", f)
		// io.bfq.weight (BFQ) takes blkio's 1..1000 scale as is; io.weight is 1..10000.
		if bio.Weight != nil && *bio.Weight != 0 {
			p.writes = append(p.writes, write{field: f + ".weight", dir: dir, alts: []alt{
				{"io.bfq.weight", u64(uint64(*bio.Weight))}, {"io.weight", u64(BlkioWeightToIOWeight(*bio.Weight))}}})
		}
		if bio.LeafWeight != nil && *bio.LeafWeight != 0 {
			return unsupported(f+".leafWeight", l, "cgroup v2 has no leaf weights")
		}
		for i, wd := range bio.WeightDevice {
			df := fmt.Sprintf("%s.weightDevice[%d]", f, i)
			if wd.LeafWeight != nil {
				return unsupported(df+".leafWeight", l, "cgroup v2 has no leaf weights")
			}
			if wd.Weight != nil {
				dev := fmt.Sprintf("%d:%d ", wd.Major, wd.Minor)
				p.writes = append(p.writes, write{field: df + ".weight", dir: dir, alts: []alt{
					{"io.bfq.weight", dev + u64(uint64(*wd.Weight))}, {"io.weight", dev + u64(BlkioWeightToIOWeight(*wd.Weight))}}})
			}
		}
		for _, t := range []struct {
			name, key string
			devs      []specs.LinuxThrottleDevice
		}{
			{"throttleReadBpsDevice", "rbps", bio.ThrottleReadBpsDevice},
			{"throttleWriteBpsDevice", "wbps", bio.ThrottleWriteBpsDevice},
			{"throttleReadIOPSDevice", "riops", bio.ThrottleReadIOPSDevice},
			{"throttleWriteIOPSDevice", "wiops", bio.ThrottleWriteIOPSDevice},
		} {
			for i, d := range t.devs {
				// v1 removes a throttle with a rate of 0; v2 says "max".
				rate := "max"
				if d.Rate != 0 {
					rate = u64(d.Rate)
				}
				p.add(fmt.Sprintf("%s.%s[%d]", f, t.name, i), dir, "io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate))
			}
		}
	}
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		if !validPagesize(h.Pagesize) {
			return fmt.Errorf("cgroups: %s.pageSize %q is not of the form <number><K|M|G>B (e.g. 2MB)", field, h.Pagesize)
		}
		p.needV2("hugetlb", field)
		p.writes = append(p.writes, write{field: field, dir: dir, alts: []alt{{"hugetlb." + h.Pagesize + ".max", u64(h.Limit)}},
			hint: " (no such huge page size on this machine?)"})
		p.writes = append(p.writes, write{field: field, dir: dir, alts: []alt{{"hugetlb." + h.Pagesize + ".rsvd.max", u64(h.Limit)}}, optional: true})
	}
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		field := "linux.resources.network.classID"
		if n.ClassID == nil {
			field = "linux.resources.network.priorities"
		}
		return unsupported(field, l, "cgroup v2 has no net_cls or net_prio controller (match the cgroup path in nftables/iptables, or use BPF, instead)")
	}
	if len(r.Rdma) > 0 {
		p.needV2("rdma", "linux.resources.rdma")
		return planRdma(p, dir, r.Rdma)
	}
	return nil
}

func planRdma(p *plan, dir string, rdma map[string]specs.LinuxRdma) error {
	devs := make([]string, 0, len(rdma))
	for d := range rdma {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		field := fmt.Sprintf("linux.resources.rdma[%q]", d)
		if d == "" || strings.ContainsAny(d, " \n\t") {
			return fmt.Errorf("cgroups: %s: not an RDMA device name", field)
		}
		lim := rdma[d]
		if lim.HcaHandles == nil && lim.HcaObjects == nil {
			continue
		}
		val := func(v *uint32) string {
			if v == nil {
				return "max"
			}
			return u64(uint64(*v))
		}
		p.add(field, dir, "rdma.max", fmt.Sprintf("%s hca_handle=%s hca_object=%s", d, val(lim.HcaHandles), val(lim.HcaObjects)))
	}
	return nil
}

// planUnified handles linux.resources.unified: raw cgroup2 files, applied last so that
// they override the mapped fields, as runc does.
func (m *manager) planUnified(p *plan, u map[string]string) error {
	if len(u) == 0 {
		return nil
	}
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := fmt.Sprintf("linux.resources.unified[%q]", k)
		if m.v2dir == "" {
			return unsupported(field, m.layout, "there is no cgroup2 hierarchy")
		}
		ctrl, _, ok := strings.Cut(k, ".")
		if !ok || ctrl == "" || strings.ContainsAny(k, "/\x00") {
			return fmt.Errorf("cgroups: %s: not a cgroup2 interface file name (<controller>.<name>)", field)
		}
		switch k {
		case "cgroup.procs", "cgroup.threads", "cgroup.kill":
			return fmt.Errorf("cgroups: %s: moves or kills processes, not a resource setting", field)
		}
		if ctrl != "cgroup" {
			known := false
			for _, c := range v2Controllers {
				known = known || c == ctrl
			}
			if known {
				p.needV2(ctrl, field)
			}
		}
		w := write{field: field, dir: m.v2dir, alts: []alt{{k, u[k]}}}
		if m.layout == Hybrid {
			w.hint = " (on a hybrid host only the controllers of the unified mount are there: " + m.v2mnt + "/cgroup.controllers)"
		}
		p.writes = append(p.writes, w)
	}
	return nil
}

// kernelLimit reads the deprecated linux.resources.memory.kernel in one place.
func kernelLimit(m *specs.LinuxMemory) *int64 {
	//lint:ignore SA1019 honoured on v1 where the kernel still has the file, for old configs
	return m.Kernel
}

func boolNum(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// pidsMax: the spec says -1 is no limit; 0 cannot be a working limit either.
func pidsMax(v int64) string {
	if v <= 0 {
		return "max"
	}
	return i64(v)
}

func blockIOSet(b *specs.LinuxBlockIO) bool {
	return b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 || len(b.ThrottleReadBpsDevice) > 0 ||
		len(b.ThrottleWriteBpsDevice) > 0 || len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0
}

// do makes one write, trying each alternative file in turn.
func (m *manager) do(w write) error {
	for _, a := range w.alts {
		v := a.value
		if w.fn != nil {
			var err error
			if v, err = w.fn(); err != nil {
				return fmt.Errorf("cgroups: %s: %w", w.field, err)
			}
		}
		err := writeFile(w.dir, a.file, v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("cgroups: %s: %w", w.field, err)
		}
	}
	if w.optional {
		return nil
	}
	if !exists(w.dir) {
		return fmt.Errorf("cgroups: %s: cgroup %s: %w", w.field, w.dir, os.ErrNotExist)
	}
	files := make([]string, len(w.alts))
	for i, a := range w.alts {
		files[i] = a.file
	}
	return fmt.Errorf("cgroups: %s: %w (%s): %s has no %s%s", w.field, ErrUnsupported, m.layout, w.dir, strings.Join(files, " or "), w.hint)
}

// apply makes the plan's writes. Some values constrain each other (memory.limit_in_bytes
// <= memory.memsw.limit_in_bytes, cfs burst <= quota, rt runtime <= period), so which
// order works depends on the values already there: writes that fail are retried after
// the others until a round makes no progress. A missing file is final at once.
// ensure is for Update: the controllers the new values need may not be enabled yet
// (Create enables them itself).
func (m *manager) apply(p *plan, ensure bool) error {
	if ensure && len(p.v2ctrls) > 0 && m.v2dir != "" {
		var created []string
		if err := m.makeV2(nil, p.v2ctrls, &created); err != nil {
			return err
		}
	}
	pending := p.writes
	for len(pending) > 0 {
		var failed []write
		var first error
		for _, w := range pending {
			if err := m.do(w); err != nil {
				if errors.Is(err, ErrUnsupported) || errors.Is(err, os.ErrNotExist) {
					return err
				}
				failed = append(failed, w)
				if first == nil {
					first = err
				}
			}
		}
		if len(failed) == len(pending) {
			return first
		}
		pending = failed
	}
	if err := applyDevicesV1(p.devices); err != nil {
		return err
	}
	if p.bpfSet {
		if err := setDeviceFilter(m.v2dir, p.bpf); err != nil {
			return fmt.Errorf("cgroups: linux.resources.devices: %w", err)
		}
	}
	return nil
}

// applyDevicesV1 writes the v1 device rules in order. The kernel takes each write(2) as
// one rule, so devices.allow and devices.deny are opened once each for the whole list
// (some twenty rules for a default container).
func applyDevicesV1(ws []write) error {
	fds := map[string]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, w := range ws {
		a := w.alts[0]
		fd, ok := fds[a.file]
		if !ok {
			var err error
			if fd, err = openRetry(w.dir+"/"+a.file, unix.O_WRONLY|unix.O_CLOEXEC); err != nil {
				return fmt.Errorf("cgroups: %s: %w", w.field, &os.PathError{Op: "open", Path: w.dir + "/" + a.file, Err: err})
			}
			fds[a.file] = fd
		}
		for {
			_, err := unix.Write(fd, []byte(a.value))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("cgroups: %s: write %q to %s/%s: %w", w.field, a.value, w.dir, a.file, err)
			}
			break
		}
	}
	return nil
}

func (m *manager) Update(r *specs.LinuxResources) error {
	p, err := m.plan(r, true)
	if err != nil {
		return err
	}
	if p.memCheck > 0 {
		dir, file := m.paths["memory"], "memory.usage_in_bytes"
		if m.layout == Unified {
			dir, file = m.v2dir, "memory.current"
		}
		usage, err := readUint(dir, file)
		if err != nil {
			return fmt.Errorf("cgroups: linux.resources.memory.checkBeforeUpdate: %w", err)
		}
		if uint64(p.memCheck) < usage {
			return fmt.Errorf("cgroups: linux.resources.memory.limit %d is below the current usage %d (%s/%s) and checkBeforeUpdate is set", p.memCheck, usage, dir, file)
		}
	}
	if !exists(m.procsDir()) {
		return fmt.Errorf("cgroups: update: cgroup %s: %w", m.procsDir(), os.ErrNotExist)
	}
	if err := m.apply(p, true); err != nil {
		return err
	}
	m.res = r
	return nil
}
