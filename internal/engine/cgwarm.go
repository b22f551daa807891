package engine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// On cgroup v1, moving a process into a cgroup by pid takes the kernel's
// cgroup_threadgroup_rwsem for writing, which first waits for an RCU grace period unless
// one passed moments ago: 5-12 ms here. The init of most containers avoids it (it joins
// its cgroup itself, runtime.lateCgroupJoin); the Go init (a terminal) and a user
// namespace's are still moved by pid. For those, a start begins the wait early: it moves
// this process into the cgroup it is already in (which changes nothing) on a thread of its
// own, while the image, snapshot, monitor, network and spec are made; the init's move then
// finds the grace period passed or under way. For the others a warm-up would only hold
// cgroup_mutex through a grace period, in the way of the container's mkdirs and of the
// init's own join. On cgroup v2 the init is born in its cgroup and nothing waits.
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
		if os.Geteuid() != 0 {
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

// movedByPid tells whether c's init will be moved into its cgroup by pid: the Go init of a
// terminal, or an init in a user namespace (runtime.lateCgroupJoin).
func movedByPid(c *Container) bool {
	return c.Config.Tty || c.UserNSMap != nil || c.HostConfig.UsernsMode != ""
}
