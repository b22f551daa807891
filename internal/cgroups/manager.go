package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1Dir is the container's directory in one v1 hierarchy.
type v1Dir struct {
	dir, mnt    string
	controllers []string
}

type manager struct {
	layout Layout
	paths  map[string]string
	v1     []v1Dir
	// v2dir is the directory on the cgroup2 mount ("" on Legacy); v2mnt is that mount.
	v2dir, v2mnt string
	res          *specs.LinuxResources
}

// v2Controllers are the cgroup2 controllers a container may use, in the order the kernel
// lists them.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}

// New works out where cfg's cgroup goes in every hierarchy of the host and checks that
// cfg.Resources can be applied there. It touches nothing; Create makes the directories.
func New(cfg Config) (Manager, error) {
	mt, err := readMounts()
	if err != nil {
		return nil, err
	}
	spec, err := parseCgroupPath(cfg)
	if err != nil {
		return nil, err
	}
	// The runtime's own cgroups are needed for a relative path, and to refuse a path that
	// would put the container over (or in) the runtime: Destroy would kill the runtime.
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	m := &manager{layout: mt.layout, paths: map[string]string{}, res: cfg.Resources}
	resolve := func(h *hierarchy, key string) (string, error) {
		o, ok := own[key]
		if !ok {
			if spec.rel != "" {
				return "", fmt.Errorf("cgroups: /proc/self/cgroup has no entry for the %s hierarchy mounted at %s", hierName(key), h.mountpoint)
			}
			o = "/"
		}
		o, err := h.mountRelative(o)
		if err != nil {
			if spec.rel != "" {
				return "", err
			}
			o = ""
		}
		cg, err := spec.resolve(o)
		if err != nil {
			return "", err
		}
		if o != "" && (o == cg || strings.HasPrefix(o, cg+"/")) {
			return "", fmt.Errorf("cgroups: linux.cgroupsPath %q resolves to %s in the %s hierarchy, which holds the runtime itself (its cgroup there is %s)", cfg.Path, cg, hierName(key), o)
		}
		return path.Join(h.mountpoint, cg), nil
	}
	for i := range mt.v1 {
		h := &mt.v1[i]
		dir, err := resolve(h, h.controllers[0])
		if err != nil {
			return nil, err
		}
		m.v1 = append(m.v1, v1Dir{dir: dir, mnt: h.mountpoint, controllers: h.controllers})
		for _, c := range h.controllers {
			m.paths[c] = dir
		}
	}
	if mt.v2 != nil {
		dir, err := resolve(mt.v2, "")
		if err != nil {
			return nil, err
		}
		m.v2dir, m.v2mnt = dir, mt.v2.mountpoint
		m.paths[""] = dir
	}
	if _, err := m.plan(cfg.Resources, false); err != nil {
		return nil, err
	}
	return m, nil
}

func hierName(key string) string {
	if key == "" {
		return "cgroup2"
	}
	return key
}

// Load rebuilds the manager of an existing cgroup from the map its Paths returned, so that
// another process (delete, pause, update, events) can work on it. Each path must lie inside
// the matching hierarchy mounted on this host; the directories need not exist any more.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		// Recorded without a cgroup (a rootless container where none is delegated).
		return None(), nil
	}
	mt, err := readMounts()
	if err != nil {
		return nil, err
	}
	m := &manager{layout: mt.layout, paths: map[string]string{}}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	inside := func(dir, mnt string) bool { return strings.HasPrefix(dir, mnt+"/") }
	v1dirs := map[string]bool{}
	for _, k := range keys {
		dir := paths[k]
		if !path.IsAbs(dir) || path.Clean(dir) != dir {
			return nil, fmt.Errorf("cgroups: load: %s path %q is not an absolute clean path", hierName(k), dir)
		}
		if k == "" {
			if mt.v2 == nil || !inside(dir, mt.v2.mountpoint) {
				return nil, fmt.Errorf("cgroups: load: %s is not inside a cgroup2 mount of this host (%s)", dir, mt.layout)
			}
			m.v2dir, m.v2mnt = dir, mt.v2.mountpoint
			m.paths[k] = dir
			continue
		}
		h := mt.v1Hierarchy(k)
		if h == nil || !inside(dir, h.mountpoint) {
			return nil, fmt.Errorf("cgroups: load: %s is not inside a mounted v1 %s hierarchy (%s)", dir, k, mt.layout)
		}
		m.paths[k] = dir
		v1dirs[dir] = true
	}
	for _, h := range mt.v1 {
		dir, ok := m.paths[h.controllers[0]]
		if ok && v1dirs[dir] {
			m.v1 = append(m.v1, v1Dir{dir: dir, mnt: h.mountpoint, controllers: h.controllers})
			delete(v1dirs, dir)
		}
	}
	switch {
	case mt.layout == Unified && len(m.v1) > 0:
		return nil, fmt.Errorf("cgroups: load: v1 paths given on a %s host", mt.layout)
	case mt.layout != Unified && len(m.v1) == 0:
		return nil, fmt.Errorf("cgroups: load: no v1 path given on a %s host", mt.layout)
	case mt.layout == Legacy && m.v2dir != "":
		return nil, fmt.Errorf("cgroups: load: a cgroup2 path given on a %s host", mt.layout)
	}
	return m, nil
}

func (m *manager) Layout() Layout { return m.layout }

func (m *manager) Paths() map[string]string {
	out := make(map[string]string, len(m.paths))
	for k, v := range m.paths {
		out[k] = v
	}
	return out
}

func (m *manager) Create() error {
	p, err := m.plan(m.res, false)
	if err != nil {
		return err
	}
	var created []string
	ok := false
	defer func() {
		if !ok {
			for i := len(created) - 1; i >= 0; i-- {
				_ = unix.Rmdir(created[i])
			}
		}
	}()
	for _, d := range m.v1 {
		cpuset := false
		for _, c := range d.controllers {
			cpuset = cpuset || c == "cpuset"
		}
		if err := mkdirs(d.mnt, d.dir, cpuset, &created); err != nil {
			return err
		}
	}
	if m.v2dir != "" {
		var want []string
		if m.layout == Unified {
			want = v2Controllers
		}
		if err := m.makeV2(want, p.v2ctrls, &created); err != nil {
			return err
		}
	}
	if err := m.apply(p, false); err != nil {
		return err
	}
	ok = true
	return nil
}

// mkdirs makes dir and its missing parents below the mount. v1 cpuset directories start
// with empty cpuset.cpus and cpuset.mems, and a process cannot join such a cgroup, so each
// level gets its parent's values when empty. The values read at one level are the parent
// values of the next, so each file is read at most once per level, and a directory made
// here is known to be empty and not read at all.
func mkdirs(mnt, dir string, cpuset bool, created *[]string) error {
	// Every container after the first finds the parents (/berth) in place: one mkdir, and
	// for cpuset the parent's values, unless they are empty too, when the walk below fills
	// every level from the top.
	if err := unix.Mkdir(dir, 0o755); err == nil {
		*created = append(*created, dir)
		if !cpuset {
			return nil
		}
		parentDir := path.Dir(dir)
		pv, err := readCpuset(parentDir)
		if err != nil {
			return err
		}
		if pv[0] != "" && pv[1] != "" {
			_, err := cpusetInherit(parentDir, dir, true, &pv)
			return err
		}
	} else if err != unix.ENOENT && err != unix.EEXIST {
		return fmt.Errorf("cgroups: mkdir %s: %w", dir, err)
	}
	rel := strings.TrimPrefix(dir, mnt)
	cur := mnt
	var parent *cpusetValues
	for _, c := range strings.Split(rel, "/") {
		if c == "" {
			continue
		}
		parentDir := cur
		cur += "/" + c
		made := false
		if err := os.Mkdir(cur, 0o755); err == nil {
			*created = append(*created, cur)
			made = true
		} else if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroups: %w", err)
		}
		if cpuset {
			v, err := cpusetInherit(parentDir, cur, made, parent)
			if err != nil {
				return err
			}
			parent = &v
		}
	}
	return nil
}

// cpusetValues are a v1 cpuset cgroup's cpuset.cpus and cpuset.mems.
type cpusetValues [2]string

var cpusetFiles = [2]string{"cpuset.cpus", "cpuset.mems"}

func readCpuset(dir string) (cpusetValues, error) {
	var v cpusetValues
	for i, f := range cpusetFiles {
		s, err := readFile(dir, f)
		if err != nil {
			return v, fmt.Errorf("cgroups: %w", err)
		}
		v[i] = strings.TrimSpace(s)
	}
	return v, nil
}

// cpusetInherit fills dir's empty cpuset values with its parent's and returns dir's values.
// parent holds the parent's values when the caller has them (nil: read them if needed). A
// directory just made is empty, unless cgroup.clone_children copied the parent's values,
// which writing them again does not change.
func cpusetInherit(parentDir, dir string, made bool, parent *cpusetValues) (cpusetValues, error) {
	var cur cpusetValues
	if !made {
		var err error
		if cur, err = readCpuset(dir); err != nil {
			return cur, err
		}
		if cur[0] != "" && cur[1] != "" {
			return cur, nil
		}
	}
	if parent == nil {
		v, err := readCpuset(parentDir)
		if err != nil {
			return cur, err
		}
		parent = &v
	}
	for i, f := range cpusetFiles {
		if cur[i] != "" {
			continue
		}
		if err := writeFile(dir, f, parent[i]); err != nil {
			return cur, fmt.Errorf("cgroups: copy %s from the parent cgroup (v1 leaves it empty): %w", f, err)
		}
		cur[i] = parent[i]
	}
	return cur, nil
}

// makeV2 makes the v2 directory level by level, enabling in each parent's
// cgroup.subtree_control the controllers in want (best effort: those the parent offers)
// and in need (an error if one cannot be had).
func (m *manager) makeV2(want []string, need []v2need, created *[]string) error {
	rel := strings.TrimPrefix(m.v2dir, m.v2mnt)
	cur := m.v2mnt
	for _, c := range strings.Split(rel, "/") {
		if c == "" {
			continue
		}
		if err := m.enableControllers(cur, want, need); err != nil {
			return err
		}
		cur += "/" + c
		if err := os.Mkdir(cur, 0o755); err == nil {
			*created = append(*created, cur)
		} else if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	return nil
}

func (m *manager) enableControllers(dir string, want []string, need []v2need) error {
	if len(want) == 0 && len(need) == 0 {
		return nil
	}
	availS, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	enabledS, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	avail := strings.Fields(availS)
	enabled := strings.Fields(enabledS)
	var add []string
	for _, n := range need {
		if !slices.Contains(avail, n.ctrl) {
			return unsupported(n.field, m.layout, fmt.Sprintf("the %s controller is not available in %s/cgroup.controllers", n.ctrl, dir))
		}
		if !slices.Contains(enabled, n.ctrl) && !slices.Contains(add, n.ctrl) {
			add = append(add, n.ctrl)
		}
	}
	for _, c := range want {
		if slices.Contains(avail, c) && !slices.Contains(enabled, c) && !slices.Contains(add, c) {
			add = append(add, c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if writeFile(dir, "cgroup.subtree_control", "+"+strings.Join(add, " +")) == nil {
		return nil
	}
	// One refused controller fails the whole write; retry one by one so that the rest
	// still get enabled, and fail only for those the resources need.
	for _, c := range add {
		err := writeFile(dir, "cgroup.subtree_control", "+"+c)
		if err == nil {
			continue
		}
		for _, n := range need {
			if n.ctrl == c {
				hint := ""
				if errors.Is(err, unix.EBUSY) {
					hint = " (the cgroup holds processes, and cgroup v2 puts controllers only on cgroups without them)"
				}
				return fmt.Errorf("cgroups: %s: enable the %s controller: %w%s", n.field, c, err, hint)
			}
		}
	}
	return nil
}

func (m *manager) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: add process: invalid pid %d", pid)
	}
	s := strconv.Itoa(pid)
	for _, d := range m.allDirs() {
		if err := writeFile(d, "cgroup.procs", s); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cgroups: add process %d to %s: no such process", pid, d)
			}
			return fmt.Errorf("cgroups: add process %d: %w", pid, err)
		}
	}
	return nil
}

func (m *manager) TasksFiles() []string {
	files := make([]string, 0, len(m.v1))
	for _, d := range m.v1 {
		files = append(files, d.dir+"/tasks")
	}
	return files
}

func (m *manager) UnifiedFD() (int, bool, error) {
	if m.layout != Hybrid || m.v2dir == "" {
		return -1, false, nil
	}
	fd, err := openRetry(m.v2dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err == unix.ENOENT {
		// Not made ahead (runtime.EarlyCgroup): the directories only. Create, which may
		// come later, enables what the resources need and applies them (a hybrid layout's
		// cgroup2 part holds no controller a process needs to join it).
		var created []string
		if err := m.makeV2(nil, nil, &created); err != nil {
			return -1, false, err
		}
		fd, err = openRetry(m.v2dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	}
	if err != nil {
		return -1, false, fmt.Errorf("cgroups: open %s for CLONE_INTO_CGROUP: %w", m.v2dir, err)
	}
	return fd, true, nil
}

func (m *manager) allDirs() []string {
	dirs := make([]string, 0, len(m.v1)+1)
	for _, d := range m.v1 {
		dirs = append(dirs, d.dir)
	}
	if m.v2dir != "" {
		dirs = append(dirs, m.v2dir)
	}
	return dirs
}

func (m *manager) CgroupFD() (int, bool, error) {
	if m.layout != Unified {
		return -1, false, nil
	}
	fd, err := openRetry(m.v2dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1, false, fmt.Errorf("cgroups: open %s for CLONE_INTO_CGROUP: %w", m.v2dir, err)
	}
	return fd, true, nil
}

// procsDir is the directory whose tree lists the container's processes: the v2 one where
// it holds them (Unified), else the first of the v1 hierarchies every runtime joins.
func (m *manager) procsDir() string {
	if m.layout == Unified {
		return m.v2dir
	}
	for _, c := range []string{"pids", "freezer", "memory", "cpu", "devices"} {
		if d, ok := m.paths[c]; ok {
			return d
		}
	}
	return m.v1[0].dir
}

func (m *manager) Pids() ([]int, error) {
	dir := m.procsDir()
	if !exists(dir) {
		return nil, fmt.Errorf("cgroups: list processes: %s: %w", dir, os.ErrNotExist)
	}
	return walkProcs(dir)
}

func (m *manager) Kill(sig syscall.Signal) error {
	if sig == unix.SIGKILL && m.v2dir != "" && exists(m.v2dir+"/cgroup.kill") {
		// cgroup.kill reaches every process, including those forked while it runs.
		if err := writeFile(m.v2dir, "cgroup.kill", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cgroups: kill: %w", err)
		}
		// A task frozen by the v1 freezer sits on a SIGKILL until thawed (the v2 freezer
		// lets fatal signals through).
		if d, ok := m.paths["freezer"]; ok {
			if err := writeFile(d, "freezer.state", "THAWED"); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cgroups: thaw after kill: %w", err)
			}
		}
		return nil
	}
	if sig == unix.SIGKILL {
		return m.killFrozen()
	}
	return m.signalAll(sig)
}

func (m *manager) signalAll(sig syscall.Signal) error {
	pids, err := m.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("cgroups: kill(%d, %s): %w", pid, sig, err)
		}
	}
	return nil
}

// killFrozen SIGKILLs every process with the cgroup frozen, so that nothing forks between
// reading the list and the signals landing; a frozen process dies once thawed.
func (m *manager) killFrozen() error {
	froze := m.freezeDir() != "" && m.Freeze() == nil
	err := m.signalAll(unix.SIGKILL)
	if froze {
		if terr := m.Thaw(); err == nil {
			err = terr
		}
	}
	return err
}

// rmdirTimeout bounds how long Destroy waits for killed processes to leave.
const rmdirTimeout = 5 * time.Second

func (m *manager) Destroy() error {
	// A container whose processes have all exited (the usual delete) leaves empty
	// directories: removing them at once spares the freeze, the listing, the kill and the
	// thaw. rmdir fails with EBUSY on a cgroup that still holds processes or children.
	busy := false
	for _, d := range m.allDirs() {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
			busy = true
		}
	}
	if !busy {
		return nil
	}
	if exists(m.procsDir()) || (m.v2dir != "" && exists(m.v2dir)) {
		if err := m.Kill(unix.SIGKILL); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	deadline := time.Now().Add(rmdirTimeout)
	var errs []error
	for _, d := range m.allDirs() {
		// Most containers have no sub-cgroups: try the directory alone before listing it
		// (a cgroup directory lists dozens of control files).
		if err := unix.Rmdir(d); err == nil || err == unix.ENOENT {
			continue
		}
		for _, sub := range subdirsBottomUp(d) {
			if err := rmdirWait(sub, deadline); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirWait removes one cgroup directory, waiting while its processes exit: a killed
// process leaves its cgroup only when it has finished exiting. Stragglers are killed again
// (a process that was being moved in while the kill ran escapes it).
func rmdirWait(dir string, deadline time.Time) error {
	delay := 200 * time.Microsecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			return fmt.Errorf("cgroups: rmdir %s: %w", dir, err)
		}
		pids, _ := readProcs(dir)
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: rmdir %s: %w: processes %v still in it after %s", dir, err, pids, rmdirTimeout)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
