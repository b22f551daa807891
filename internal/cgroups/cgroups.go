// Package cgroups places a container's processes in control groups, applies the OCI
// spec's linux.resources to them, and reads their statistics. cgroup v1, v2 and the hybrid
// layout (v1 controllers plus a v2 "unified" mount) sit behind one Manager interface.
package cgroups

import (
	"context"
	"errors"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrUnsupported is wrapped by every error about a resource field, or an operation, that
// the host's cgroup layout cannot honour; the message names the field and the layout.
var ErrUnsupported = errors.New("not supported on this cgroup layout")

// Layout is how the host mounts its cgroup hierarchies.
type Layout int

const (
	// Legacy: only cgroup v1 hierarchies.
	Legacy Layout = iota + 1
	// Hybrid: v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified.
	Hybrid
	// Unified: one cgroup2 hierarchy at /sys/fs/cgroup.
	Unified
)

func (l Layout) String() string {
	switch l {
	case Legacy:
		return "cgroup v1"
	case Hybrid:
		return "cgroup v1+v2 hybrid"
	case Unified:
		return "cgroup v2"
	}
	return "unknown cgroup layout"
}

// Config says where a container's cgroup goes and what limits it gets.
type Config struct {
	// ID is the container id; the default path is /berth/<ID>.
	ID string
	// Path is linux.cgroupsPath: absolute from each hierarchy's root, or relative to the
	// runtime's own cgroup. Empty means the default.
	Path string
	// Resources is linux.resources; nil means no limits. As in runc, a zero memory limit,
	// reservation or swap, cpu shares, quota, period or realtime value means "not set".
	// memory.kernel is deprecated by the spec: written on v1 where the kernel still has
	// memory.kmem.limit_in_bytes (it ignores it since 5.16), ignored on v2. A field the
	// layout cannot apply fails New (or Create/Update) with an error naming the field and
	// the layout and wrapping ErrUnsupported.
	Resources *specs.LinuxResources
}

// Manager is one container's cgroup in every hierarchy of the host.
type Manager interface {
	// Create makes the directories in every hierarchy and applies the resources. It may be
	// called again on a partly made cgroup.
	Create() error
	// AddProc moves pid into the cgroup in every hierarchy.
	AddProc(pid int) error
	// TasksFiles are the v1 hierarchies' "tasks" files of the cgroup. A single-threaded
	// process moves itself into the cgroup by writing "0" into each: the kernel then moves
	// only the calling thread and skips cgroup_threadgroup_rwsem, whose writer waits for an
	// RCU grace period when no other move came moments before (here 7 ms by pid against
	// 0.03 ms by "0", docs/benchmarks.md; TestTasksFilesSelfJoin checks the join). Empty
	// without v1 hierarchies.
	TasksFiles() []string
	// UnifiedFD makes, if need be, and opens the cgroup's directory in the cgroup2
	// hierarchy of a hybrid layout, for clone3(CLONE_INTO_CGROUP): a process born there
	// is in that part of the cgroup without a move by pid, and takes the v1 ones through
	// TasksFiles. ok is false on the other layouts.
	UnifiedFD() (fd int, ok bool, err error)
	// CgroupFD opens the v2 directory for clone3(CLONE_INTO_CGROUP). ok is false where the
	// layout has no v2 directory that holds the container's controllers (v1, hybrid).
	CgroupFD() (fd int, ok bool, err error)
	// Update applies new resources to a live cgroup.
	Update(r *specs.LinuxResources) error
	// Pids lists every process in the cgroup (and its descendants).
	Pids() ([]int, error)
	// Freeze stops every process in the cgroup and returns once they are frozen.
	Freeze() error
	// Thaw resumes a frozen cgroup.
	Thaw() error
	// Frozen tells whether the cgroup is frozen.
	Frozen() (bool, error)
	// Stats reads cpu, memory, pids and blkio statistics.
	Stats() (*Stats, error)
	// Destroy kills the processes still in the cgroup and removes its directories in every
	// hierarchy, retrying while the processes exit. Removing a cgroup that is gone is no error.
	Destroy() error
	// Paths maps each hierarchy (v1 subsystem name, "name=systemd", or "" for the cgroup2
	// mount) to the absolute directory. Co-mounted subsystems (cpu,cpuacct) share one.
	Paths() map[string]string
	// Layout is the host layout this manager works on.
	Layout() Layout

	// Kill sends sig to every process in the cgroup and its descendants. SIGKILL uses
	// cgroup.kill where the kernel has it (v2, Linux 5.14+); other signals go pid by pid.
	Kill(sig syscall.Signal) error
	// OOMKillCount is the number of processes the kernel's OOM killer killed in the cgroup
	// (memory.oom_control's oom_kill on v1, memory.events' oom_kill on v2).
	OOMKillCount() (uint64, error)
	// OOMEvents delivers one value per out-of-memory event the kernel reports for the
	// cgroup (v1: the memory.oom_control eventfd; v2: a rise of memory.events' oom or
	// oom_kill). Events that arrive while the receiver lags are coalesced. The channel is
	// closed when ctx is done or the cgroup is removed.
	OOMEvents(ctx context.Context) (<-chan struct{}, error)
}

// Stats are a cgroup's counters, shaped like runc's `events --stats` output.
type Stats struct {
	CPU    CPUStats    `json:"cpu"`
	Memory MemoryStats `json:"memory"`
	Pids   PidsStats   `json:"pids"`
	Blkio  BlkioStats  `json:"blkio"`
}

// CPUStats are in nanoseconds, with throttling counters from cpu.stat.
type CPUStats struct {
	Usage struct {
		Total  uint64 `json:"total"`
		Kernel uint64 `json:"kernel"`
		User   uint64 `json:"user"`
	} `json:"usage"`
	Throttling struct {
		Periods          uint64 `json:"periods,omitempty"`
		ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
		ThrottledTime    uint64 `json:"throttledTime,omitempty"`
	} `json:"throttling"`
}

// MemoryEntry is one memory counter with its limit and high-water mark, in bytes.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// MemoryStats are in bytes; Raw holds memory.stat as the kernel prints it. Swap is memory
// plus swap on every layout, as v1's memsw counters are (on v2 it is memory.current plus
// memory.swap.current, and memory.max plus memory.swap.max), so that one number means one
// thing. A limit of math.MaxUint64 means no limit; Max is zero where the kernel has no
// high-water mark (v2 before Linux 5.19).
type MemoryStats struct {
	Cache    uint64            `json:"cache,omitempty"`
	Usage    MemoryEntry       `json:"usage"`
	Swap     MemoryEntry       `json:"swap"`
	OOMKills uint64            `json:"oomKills"`
	Raw      map[string]uint64 `json:"raw,omitempty"`
}

// PidsStats is the number of tasks and the limit (0 for no limit).
type PidsStats struct {
	Current uint64 `json:"current"`
	Limit   uint64 `json:"limit,omitempty"`
}

// BlkioEntry is one per-device counter.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// BlkioStats holds the service bytes and operation counters per device.
type BlkioStats struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
}
