package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/cgroups"
)

// Rootless cgroups. On a cgroup v2 host an unprivileged user owns a subtree when the
// administrator (or systemd, for user@UID.service) delegated it: the directory and its
// cgroup.procs, cgroup.subtree_control and cgroup.threads belong to the user. Podman asks
// systemd for a transient scope there over D-Bus; berth has no D-Bus client and does what
// the cgroupfs driver of crun and runc does instead: it makes the cgroups itself with
// mkdir. The engine runs in a cgroup that holds processes (its own, its shell's), and
// cgroup v2 enables controllers only for the children of a cgroup without processes, so
// the containers do not go under the engine's own cgroup but under a sibling made for
// them at the top of the delegated subtree: <delegated root>/berth/<container id>.

// rootlessCgroupDir is the name of the containers' parent in the delegated subtree.
const rootlessCgroupDir = "berth"

// rootlessControllers are the controllers the flags need, enabled for the containers'
// parent where the delegated root offers them.
var rootlessControllers = []string{"cpu", "cpuset", "io", "memory", "pids"}

// delegation is the cgroup v2 subtree delegated to this user, or why there is none.
type delegation struct {
	// Mount is the cgroup2 mount point; Root is the delegated root, a directory under it.
	Mount, Root string
	// Controllers are those in Root's cgroup.controllers.
	Controllers []string
	// Why says why a container cannot get a cgroup here; "" when it can.
	Why string
}

// parent is the containers' parent cgroup directory on the host.
func (d *delegation) parent() string { return filepath.Join(d.Root, rootlessCgroupDir) }

// cgroupsPath is the container's linux.cgroupsPath: absolute from the hierarchy's root.
func (d *delegation) cgroupsPath(id string) string {
	return "/" + strings.TrimPrefix(filepath.Join(d.parent(), id), d.Mount+"/")
}

var (
	delegationOnce sync.Once
	delegationVal  *delegation
)

// rootlessDelegation finds this process's delegated subtree once per process.
func rootlessDelegation() *delegation {
	delegationOnce.Do(func() {
		delegationVal = detectDelegation()
	})
	return delegationVal
}

func detectDelegation() *delegation {
	const mnt = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if unix.Statfs(mnt, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		// The layout comes from the mount table the runtime reads (and caches) anyway.
		layout, err := cgroups.DetectLayout()
		if err != nil {
			return &delegation{Why: err.Error()}
		}
		return &delegation{Why: fmt.Sprintf("this host's cgroups are %s, and only cgroup v2 can delegate a cgroup to an unprivileged user", layout)}
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return &delegation{Why: err.Error()}
	}
	own := ""
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			own = p
		}
	}
	if own == "" {
		return &delegation{Why: "/proc/self/cgroup has no cgroup v2 entry (0::PATH)"}
	}
	return findDelegation(mnt, own, os.Geteuid())
}

// findDelegation finds the subtree of the cgroup2 hierarchy mounted at mnt delegated to
// uid, from the calling process's cgroup own (the path in /proc/self/cgroup): the topmost
// ancestor of own (or own itself) that uid owns, as do all the cgroups between it and own.
// The topmost, since that is the delegation boundary (user@UID.service under systemd),
// the one level whose children the user may arrange as it likes.
func findDelegation(mnt, own string, uid int) *delegation {
	d := &delegation{Mount: mnt}
	dir := filepath.Join(mnt, filepath.Clean("/"+own))
	if !delegatedTo(dir, uid) {
		d.Why = fmt.Sprintf("the user's cgroup %s is not delegated to uid %d (it, its cgroup.procs and cgroup.subtree_control must belong to the user, as systemd makes user@%d.service)", dir, uid, uid)
		return d
	}
	for dir != mnt {
		parent := filepath.Dir(dir)
		if parent == mnt || !strings.HasPrefix(parent, mnt+"/") || !delegatedTo(parent, uid) {
			break
		}
		dir = parent
	}
	d.Root = dir
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		d.Why = fmt.Sprintf("read the delegated cgroup's controllers: %v", err)
		return d
	}
	d.Controllers = strings.Fields(string(avail))
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		d.Why = fmt.Sprintf("read the delegated cgroup's processes: %v", err)
		return d
	}
	if len(strings.TrimSpace(string(procs))) > 0 {
		d.Why = fmt.Sprintf("the delegated cgroup %s holds processes (%s/cgroup.procs), and cgroup v2 gives controllers only to the children of a cgroup without processes: start berth from a child cgroup of it (as systemd does with user@%d.service/app.slice)", dir, dir, uid)
	}
	return d
}

// delegatedTo tells whether dir is a cgroup that uid may arrange: the directory, its
// cgroup.procs and its cgroup.subtree_control belong to uid (what delegation means in the
// kernel's cgroup-v2.rst, and what systemd's Delegate= does).
func delegatedTo(dir string, uid int) bool {
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.subtree_control")} {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || int(st.Uid) != uid {
			return false
		}
	}
	return true
}

// flagControllers names the controller each resource flag of hc needs.
func flagControllers(hc *HostConfig) [][2]string {
	var need [][2]string
	if hc.Memory > 0 {
		need = append(need, [2]string{"--memory", "memory"})
	}
	if hc.MemorySwap > 0 {
		need = append(need, [2]string{"--memory-swap", "memory"})
	}
	if hc.NanoCpus > 0 {
		need = append(need, [2]string{"--cpus", "cpu"})
	}
	if hc.CPUShares > 0 {
		need = append(need, [2]string{"--cpu-shares", "cpu"})
	}
	if hc.CpusetCpus != "" {
		need = append(need, [2]string{"--cpuset-cpus", "cpuset"})
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		need = append(need, [2]string{"--pids-limit", "pids"})
	}
	return need
}

// checkRootlessLimits refuses the resource flags a rootless container cannot have here:
// all of them where nothing is delegated, and each one whose controller the delegated
// subtree lacks.
func checkRootlessLimits(hc *HostConfig, d *delegation) error {
	need := flagControllers(hc)
	if len(need) == 0 {
		return nil
	}
	if d.Why != "" {
		return usagef("resource limits (--memory, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit) need a cgroup, and a rootless container gets none: %s. Run without them, or as root", d.Why)
	}
	for _, n := range need {
		if !slices.Contains(d.Controllers, n[1]) {
			return usagef("%s needs the %s controller, and it is not delegated to you: %s lists %q (systemd delegates it with Delegate=%s in user@.service). Run without %s, or as root",
				n[0], n[1], filepath.Join(d.Root, "cgroup.controllers"), strings.Join(d.Controllers, " "), n[1], n[0])
		}
	}
	return nil
}

// prepareRootlessCgroup makes the containers' parent in the delegated subtree and enables
// the controllers the delegated root offers in its and the parent's cgroup.subtree_control
// (neither holds processes), so that the runtime finds them enabled.
func prepareRootlessCgroup(d *delegation) error {
	var want []string
	for _, c := range rootlessControllers {
		if slices.Contains(d.Controllers, c) {
			want = append(want, c)
		}
	}
	parent := d.parent()
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("rootless cgroup: %w", err)
	}
	for _, dir := range []string{d.Root, parent} {
		if err := enableSubtree(dir, want); err != nil {
			return err
		}
	}
	return nil
}

func enableSubtree(dir string, want []string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("rootless cgroup: %w", err)
	}
	on := strings.Fields(string(b))
	var add []string
	for _, c := range want {
		if !slices.Contains(on, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(file, []byte(strings.Join(add, " ")), 0); err != nil {
		return fmt.Errorf("rootless cgroup: enable %s in %s: %w", strings.Join(add, " "), file, err)
	}
	return nil
}

// rootlessCgroupSpec gives the container its cgroup in the delegated subtree, with its
// resources minus the device rules (a user namespace cannot make device nodes, and the
// device controller of cgroup v2 is an eBPF program only a privileged process may
// attach). Without a delegated subtree the container gets no cgroup; limits then fail.
func rootlessCgroupSpec(l *specs.Linux, id string, d *delegation) error {
	if l.Resources != nil {
		l.Resources.Devices = nil
	}
	limited := l.Resources != nil && !reflect.DeepEqual(*l.Resources, specs.LinuxResources{})
	if d.Why == "" {
		err := prepareRootlessCgroup(d)
		if err == nil {
			l.CgroupsPath = d.cgroupsPath(id)
			return nil
		}
		if limited {
			return err
		}
	} else if limited {
		return fmt.Errorf("resource limits need a cgroup, and a rootless container gets none: %s", d.Why)
	}
	l.Resources = nil
	l.CgroupsPath = ""
	return nil
}
