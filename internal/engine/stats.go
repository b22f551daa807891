package engine

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Stats is one sample of a container's resource use, what `berth stats` shows.
type Stats struct {
	ID, Name string
	Read     time.Time
	// CPUTotal is the cgroup's CPU time in nanoseconds; SystemTotal the host's, as
	// /proc/stat counts it; OnlineCPUs the CPUs the host has.
	CPUTotal, SystemTotal uint64
	OnlineCPUs            int
	// MemUsage excludes the page cache that can be dropped (Docker's figure).
	MemUsage, MemLimit uint64
	NetRx, NetTx       uint64
	BlockRead          uint64
	BlockWrite         uint64
	Pids               uint64
}

// Stat samples a running container.
func (e *Engine) Stat(ref string) (*Stats, error) {
	info, err := e.Inspect(ref)
	if err != nil {
		return nil, err
	}
	c, st := info.Container, &info.State
	s := &Stats{ID: c.ID, Name: c.Name, Read: time.Now()}
	if !info.Running() {
		return s, nil
	}
	cg, err := e.cgroupOf(c, st)
	if err != nil {
		return nil, err
	}
	cs, err := cg.Stats()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", short(c.ID), err)
	}
	s.CPUTotal = cs.CPU.Usage.Total
	s.SystemTotal, s.OnlineCPUs = systemCPU()
	s.MemUsage = cs.Memory.Usage.Usage
	inactive := cs.Memory.Raw["total_inactive_file"]
	if v, ok := cs.Memory.Raw["inactive_file"]; ok && inactive == 0 {
		inactive = v
	}
	if inactive < s.MemUsage {
		s.MemUsage -= inactive
	}
	s.MemLimit = cs.Memory.Usage.Limit
	if total := hostMemory(); s.MemLimit == 0 || s.MemLimit > total {
		s.MemLimit = total
	}
	for _, b := range cs.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	s.Pids = cs.Pids.Current
	s.NetRx, s.NetTx = netDev(st.Pid)
	return s, nil
}

// CPUPercent is Docker's CPU %: the container's share of the host's CPU time between two
// samples, times the number of CPUs (so one busy CPU is 100%).
func CPUPercent(prev, cur *Stats) float64 {
	if prev == nil || cur.SystemTotal <= prev.SystemTotal || cur.CPUTotal < prev.CPUTotal {
		return 0
	}
	return float64(cur.CPUTotal-prev.CPUTotal) / float64(cur.SystemTotal-prev.SystemTotal) * float64(cur.OnlineCPUs) * 100
}

// systemCPU is the host's CPU time in nanoseconds (the first line of /proc/stat, in clock
// ticks of 1/100 s) and its number of CPUs.
func systemCPU() (uint64, int) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 1
	}
	defer f.Close()
	var total uint64
	cpus := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cpu ") {
			for _, v := range strings.Fields(line)[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
		} else if strings.HasPrefix(line, "cpu") {
			cpus++
		}
	}
	if cpus == 0 {
		cpus = 1
	}
	return total * 1e7, cpus
}

func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}

// netDev sums the received and sent bytes of the interfaces (but lo) in the network
// namespace of pid: /proc/PID/net/dev shows that process's namespace.
func netDev(pid int) (rx, tx uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}
