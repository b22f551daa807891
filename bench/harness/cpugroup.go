package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CPUGroup is a cgroup v1 cpuacct group that holds the harness and, by inheritance, every
// process it starts: engine clients, monitors, daemons and shims (unless an engine moves
// them elsewhere). Reading its usage before and after a command gives the CPU of every
// host-side process of an engine, including those that no wait4 of ours would see (a
// detached monitor, a daemon doing the work for its client). A container's own processes
// leave it for the container's cgroup.
type CPUGroup struct {
	dir  string
	prev string // our cpuacct cgroup before, to go back to
}

// cpuacctRoot is the v1 cpuacct hierarchy; this host mounts cpu and cpuacct apart, others
// together as cpu,cpuacct.
func cpuacctRoot() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
			if _, err := os.Stat(filepath.Join(p, "cpuacct.usage")); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no cgroup v1 cpuacct hierarchy under /sys/fs/cgroup")
}

// ownCgroup is this process's path in the v1 hierarchy whose controller list has ctrl.
func ownCgroup(ctrl string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	return cgroupOf(b, ctrl)
}

func cgroupOf(procCgroup []byte, ctrl string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == ctrl {
				return f[2], nil
			}
		}
	}
	return "", fmt.Errorf("no %s line in /proc/<pid>/cgroup", ctrl)
}

// NewCPUGroup creates the cpuacct group name under our current one and moves this whole
// process (every thread) into it.
func NewCPUGroup(name string) (*CPUGroup, error) {
	root, err := cpuacctRoot()
	if err != nil {
		return nil, err
	}
	prev, err := ownCgroup("cpuacct")
	if err != nil {
		return nil, err
	}
	g := &CPUGroup{dir: filepath.Join(root, prev, name), prev: filepath.Join(root, prev)}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cpu group: %w", err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		unix.Rmdir(g.dir)
		return nil, fmt.Errorf("cpu group: move pid %d into %s: %w", os.Getpid(), g.dir, err)
	}
	return g, nil
}

// Usage is the group's CPU so far (user+system of every process that was in it).
func (g *CPUGroup) Usage() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
	if err != nil {
		return 0, fmt.Errorf("cpu group: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu group: %s/cpuacct.usage %q: %w", g.dir, b, err)
	}
	return time.Duration(n), nil
}

// Close moves this process back and removes the group. Processes still in it (a daemon
// that was not stopped) make that fail, and are named in the error.
func (g *CPUGroup) Close() error {
	if err := os.WriteFile(filepath.Join(g.prev, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("cpu group: move pid %d back to %s: %w", os.Getpid(), g.prev, err)
	}
	if err := unix.Rmdir(g.dir); err != nil {
		left, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		return fmt.Errorf("cpu group: rmdir %s: %w (processes left: %s)", g.dir, err, strings.Fields(string(left)))
	}
	return nil
}

// Measure runs c like Run and sets the sample's GroupCPU to what the whole group used
// meanwhile.
func (g *CPUGroup) Measure(c Cmd) (Sample, error) { return g.measure(c, func() {}) }

// measure runs c and sets GroupCPU to what the group used from before it until settled
// returns (called once c has exited).
func (g *CPUGroup) measure(c Cmd, settled func()) (Sample, error) {
	before, err := g.Usage()
	if err != nil {
		return Sample{}, err
	}
	s, err := Run(c)
	settled()
	after, uerr := g.Usage()
	if uerr != nil && err == nil {
		err = uerr
	}
	s.GroupCPU = after - before
	return s, err
}

// MeasureSettled is Measure, except that the group's usage is read once every process
// the command left behind has exited too, at most limit after the command returned:
// berth's monitor deletes an --rm container's files after the command, Podman's conmon
// runs its cleanup, and that CPU is the run's. Processes that were in the group before
// the command (the harness, daemons) are not waited for. Wall time is still the command's.
func (g *CPUGroup) MeasureSettled(c Cmd, limit time.Duration) (Sample, error) {
	there := map[string]bool{}
	for _, p := range g.procs() {
		there[p] = true
	}
	return g.measure(c, func() {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
			ReapOrphans()
			left := false
			for _, p := range g.procs() {
				if !there[p] {
					left = true
					break
				}
			}
			if !left {
				return
			}
		}
	})
}

func (g *CPUGroup) procs() []string {
	b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	return strings.Fields(string(b))
}

// ProcMem is what one process keeps resident, from /proc/<pid>/smaps_rollup.
type ProcMem struct {
	RSS, PSS int64 // bytes
}

// ReadProcMem reads pid's resident and proportional set sizes.
func ReadProcMem(pid int) (ProcMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return ProcMem{}, err
	}
	var m ProcMem
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			m.RSS = v * 1024
		case "Pss:":
			m.PSS = v * 1024
		}
	}
	return m, nil
}

// MemoryCharge is what the memory cgroup of pid is charged (memory.usage_in_bytes on v1,
// memory.current on v2), and that cgroup's path.
func MemoryCharge(pid int) (int64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, "", err
	}
	var file string
	if p, err := cgroupOf(b, "memory"); err == nil {
		file = filepath.Join("/sys/fs/cgroup/memory", p, "memory.usage_in_bytes")
	} else {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "0::") {
				file = filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(l, "0::"), "memory.current")
			}
		}
	}
	if file == "" {
		return 0, "", fmt.Errorf("pid %d: no memory cgroup in /proc/%d/cgroup", pid, pid)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, file, fmt.Errorf("pid %d: %w", pid, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, file, fmt.Errorf("pid %d: %s: %q: %w", pid, file, raw, err)
	}
	return n, filepath.Dir(file), nil
}

// FormatDuration and FormatBytes show a value as the tables do.
func FormatDuration(d time.Duration) string { return fmtDuration(float64(d)) }
func FormatBytes(n int64) string            { return fmtBytes(float64(n)) }
