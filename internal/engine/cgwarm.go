package engine

import (
	"os"

	"golang.org/x/sys/unix"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// On cgroup v1, moving a process into a cgroup takes the kernel's cgroup_threadgroup_rwsem
// for writing, which first waits for an RCU grace period unless one passed moments ago:
// 7-15 ms here, the largest single wait of a container start (the runtime's move of the
// init into the container's cgroups). The wait is the same whoever causes it, so a start
// begins it early: it moves this process into the cgroup it is already in (which changes
// nothing) on a thread of its own, while the image, snapshot, monitor, network and spec
// are made; the init's move then finds the grace period passed or under way. On cgroup
// v2 the init is born in its cgroup (CLONE_INTO_CGROUP) and nothing waits.
var warmOnce sync.Once

// CgroupWarmed records that this process began that wait before the Go runtime started
// (package gostart): WarmCgroupAttach then does nothing. A second warm-up would hold
// cgroup_mutex through another grace period when the first has just ended, blocking the
// container's own cgroup.
func CgroupWarmed() { warmOnce.Do(func() {}) }

// WarmCgroupAttach starts that wait, once per process, when this process may move itself
// (root, and a cgroup v1 hierarchy with a controller).
func WarmCgroupAttach() {
	warmOnce.Do(func() {
		if os.Geteuid() != 0 || !hybridCgroups() {
			return
		}
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return
		}
		var ctrls, path string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 || f[1] == "" || strings.HasPrefix(f[1], "name=") {
				continue
			}
			ctrls, path = f[1], f[2]
			if f[1] == "pids" {
				break
			}
		}
		if ctrls == "" {
			return
		}
		// The hierarchy is mounted at /sys/fs/cgroup/<controllers> on every distribution;
		// mountinfo is read only where it is not.
		f, err := os.OpenFile(filepath.Join("/sys/fs/cgroup", ctrls, path, "cgroup.procs"), os.O_WRONLY, 0)
		if err != nil {
			mnt, ok := cgroupMounts()[ctrls]
			if !ok {
				return
			}
			if f, err = os.OpenFile(filepath.Join(mnt, path, "cgroup.procs"), os.O_WRONLY, 0); err != nil {
				return
			}
		}
		pid := []byte(strconv.Itoa(os.Getpid()))
		go func() {
			// Nothing waits for it: an error only means no head start.
			f.Write(pid)
			f.Close()
		}()
	})
}

// hybridCgroups tells whether a cgroup2 hierarchy is mounted beside the v1 ones
// (/sys/fs/cgroup/unified). Only there does a container's start still move its init by pid
// (into the cgroup2 part), so only there is the warm-up worth it; on pure v1 the init
// joins its cgroup itself without waiting (runtime.lateCgroupJoin), and a warm-up would
// only hold cgroup_mutex through a grace period, in the way of the container's own mkdirs
// and of that join.
func hybridCgroups() bool {
	var fs unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC
}
