package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func (m *manager) Stats() (*Stats, error) {
	if !exists(m.procsDir()) {
		return nil, fmt.Errorf("cgroups: stats: cgroup %s: %w", m.procsDir(), os.ErrNotExist)
	}
	s := &Stats{}
	var err error
	if m.layout == Unified {
		err = statsV2(m.v2dir, s)
	} else {
		err = m.statsV1(s)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroups: stats: %w", err)
	}
	return s, nil
}

// optional turns "no such file" into a zero: counters a kernel lacks read as zero.
func optional(v uint64, err error) (uint64, error) {
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return v, err
}

func optionalKeyed(dir, file string) (map[string]uint64, error) {
	kv, err := readKeyed(dir, file)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	return kv, err
}

// firstErr collects the first error of a series of reads.
type firstErr struct{ err error }

func (f *firstErr) u(v uint64, err error) uint64 {
	if err != nil && f.err == nil {
		f.err = err
	}
	return v
}

func (f *firstErr) kv(v map[string]uint64, err error) map[string]uint64 {
	if err != nil && f.err == nil {
		f.err = err
	}
	if v == nil {
		v = map[string]uint64{}
	}
	return v
}

func (m *manager) statsV1(s *Stats) error {
	var e firstErr
	if d, ok := m.paths["cpuacct"]; ok {
		s.CPU.Usage.Total = e.u(readUint(d, "cpuacct.usage"))
		s.CPU.Usage.User = e.u(optional(readUint(d, "cpuacct.usage_user")))
		s.CPU.Usage.Kernel = e.u(optional(readUint(d, "cpuacct.usage_sys")))
	}
	if d, ok := m.paths["cpu"]; ok {
		cs := e.kv(optionalKeyed(d, "cpu.stat"))
		s.CPU.Throttling.Periods = cs["nr_periods"]
		s.CPU.Throttling.ThrottledPeriods = cs["nr_throttled"]
		s.CPU.Throttling.ThrottledTime = cs["throttled_time"]
	}
	if d, ok := m.paths["memory"]; ok {
		mem := &s.Memory
		mem.Usage = MemoryEntry{
			Usage:   e.u(readUint(d, "memory.usage_in_bytes")),
			Max:     e.u(readUint(d, "memory.max_usage_in_bytes")),
			Failcnt: e.u(readUint(d, "memory.failcnt")),
			Limit:   e.u(readUint(d, "memory.limit_in_bytes")),
		}
		mem.Swap = MemoryEntry{
			Usage:   e.u(optional(readUint(d, "memory.memsw.usage_in_bytes"))),
			Max:     e.u(optional(readUint(d, "memory.memsw.max_usage_in_bytes"))),
			Failcnt: e.u(optional(readUint(d, "memory.memsw.failcnt"))),
			Limit:   e.u(optional(readUint(d, "memory.memsw.limit_in_bytes"))),
		}
		mem.Raw = e.kv(readKeyed(d, "memory.stat"))
		mem.Cache = mem.Raw["total_cache"]
		mem.OOMKills = e.kv(readKeyed(d, "memory.oom_control"))["oom_kill"]
	}
	if d, ok := m.paths["pids"]; ok {
		s.Pids.Current = e.u(readUint(d, "pids.current"))
		s.Pids.Limit = noLimitZero(e.u(readUint(d, "pids.max")))
	}
	if d, ok := m.paths["blkio"]; ok {
		// CFQ's counters went with CFQ; BFQ's are empty unless BFQ drives a disk; the
		// throttle layer counts every bio.
		for _, pre := range []string{"blkio.", "blkio.bfq.", "blkio.throttle."} {
			b, err := readBlkio(d, pre+"io_service_bytes_recursive")
			if err != nil {
				return err
			}
			if len(b) == 0 {
				continue
			}
			s.Blkio.IoServiceBytesRecursive = b
			if s.Blkio.IoServicedRecursive, err = readBlkio(d, pre+"io_serviced_recursive"); err != nil {
				return err
			}
			break
		}
	}
	return e.err
}

func noLimitZero(v uint64) uint64 {
	if v == ^uint64(0) {
		return 0
	}
	return v
}

// readBlkio parses "8:0 Read 4096" lines; the "Total N" line is left out, and a missing
// file reads as no entries.
func readBlkio(dir, file string) ([]BlkioEntry, error) {
	f, err := os.Open(dir + "/" + file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []BlkioEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 3 {
			continue
		}
		maj, min, ok := parseDev(fl[0])
		v, err := strconv.ParseUint(fl[2], 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("parse %q in %s/%s", sc.Text(), dir, file)
		}
		out = append(out, BlkioEntry{Major: maj, Minor: min, Op: fl[1], Value: v})
	}
	return out, sc.Err()
}

func parseDev(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

func statsV2(d string, s *Stats) error {
	var e firstErr
	cs := e.kv(readKeyed(d, "cpu.stat"))
	s.CPU.Usage.Total = cs["usage_usec"] * 1000
	s.CPU.Usage.User = cs["user_usec"] * 1000
	s.CPU.Usage.Kernel = cs["system_usec"] * 1000
	s.CPU.Throttling.Periods = cs["nr_periods"]
	s.CPU.Throttling.ThrottledPeriods = cs["nr_throttled"]
	s.CPU.Throttling.ThrottledTime = cs["throttled_usec"] * 1000

	if exists(d + "/memory.current") {
		mem := &s.Memory
		ev := e.kv(readKeyed(d, "memory.events"))
		mem.Usage = MemoryEntry{
			Usage:   e.u(readUint(d, "memory.current")),
			Max:     e.u(optional(readUint(d, "memory.peak"))),
			Failcnt: ev["max"],
			Limit:   e.u(readUint(d, "memory.max")),
		}
		swapCur := e.u(optional(readUint(d, "memory.swap.current")))
		swapMax, err := readUint(d, "memory.swap.max")
		if errors.Is(err, os.ErrNotExist) {
			swapMax, err = 0, nil
		}
		e.u(0, err)
		swEv := e.kv(optionalKeyed(d, "memory.swap.events"))
		mem.Swap = MemoryEntry{
			Usage:   mem.Usage.Usage + swapCur,
			Limit:   satAdd(mem.Usage.Limit, swapMax),
			Failcnt: swEv["fail"],
		}
		mem.Raw = e.kv(readKeyed(d, "memory.stat"))
		mem.Cache = mem.Raw["file"]
		mem.OOMKills = ev["oom_kill"]
	}
	if exists(d + "/pids.current") {
		s.Pids.Current = e.u(readUint(d, "pids.current"))
		s.Pids.Limit = noLimitZero(e.u(readUint(d, "pids.max")))
	}
	if exists(d + "/io.stat") {
		b, ios, err := readIOStat(d)
		if err != nil {
			return err
		}
		s.Blkio.IoServiceBytesRecursive, s.Blkio.IoServicedRecursive = b, ios
	}
	return e.err
}

// readIOStat parses io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"), which
// counts the whole sub-tree, into v1-shaped Read/Write/Discard entries.
func readIOStat(d string) (bytes, ios []BlkioEntry, err error) {
	s, err := readFile(d, "io.stat")
	if err != nil {
		return nil, nil, err
	}
	ops := map[string]struct {
		op    string
		bytes bool
	}{
		"rbytes": {"Read", true}, "wbytes": {"Write", true}, "dbytes": {"Discard", true},
		"rios": {"Read", false}, "wios": {"Write", false}, "dios": {"Discard", false},
	}
	for _, line := range strings.Split(s, "\n") {
		fl := strings.Fields(line)
		if len(fl) < 2 {
			continue
		}
		maj, min, ok := parseDev(fl[0])
		if !ok {
			continue
		}
		for _, kv := range fl[1:] {
			k, v, _ := strings.Cut(kv, "=")
			o, ok := ops[k]
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("parse %q in %s/io.stat", kv, d)
			}
			e := BlkioEntry{Major: maj, Minor: min, Op: o.op, Value: n}
			if o.bytes {
				bytes = append(bytes, e)
			} else {
				ios = append(ios, e)
			}
		}
	}
	return bytes, ios, nil
}
