package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-containers/berth/bench/harness"
	"golang.org/x/sys/unix"
)

// ociRuntime is a contender of sections 1 and 4: a runtime with runc's command line.
type ociRuntime struct {
	name   string
	path   string
	global []string // before the command, after --root
	root   string   // fresh state directory of this benchmark run
}

func (r *ociRuntime) cmd(args ...string) harness.Cmd {
	argv := append([]string{r.path, "--root", r.root}, r.global...)
	return harness.Cmd{Argv: append(argv, args...)}
}

// runtimeBench runs the lifecycle flows of section 1 and keeps every sample, which
// section 4 reads again for peak RSS.
type runtimeBench struct {
	rts         []*ociRuntime
	trueBundle  string
	sleepBundle string
	specDir     string
	prefix      string // of every container id, to find leftovers
	ops         map[string]*harness.Comparison
	order       []string
}

// The operations, in the order the tables list them.
var runtimeOps = []string{
	"run (create+start+wait+delete)", "create", "start", "container init (reaped)", "delete (stopped)",
	"delete --force (running)", "state", "list (1 container)", "kill KILL", "spec",
}

func newRuntimeBench(work string, rts []*ociRuntime) (*runtimeBench, error) {
	rootfs := filepath.Join(work, "rootfs")
	if err := makeRootfs(rootfs); err != nil {
		return nil, err
	}
	b := &runtimeBench{
		rts:         rts,
		trueBundle:  filepath.Join(work, "bundle-true"),
		sleepBundle: filepath.Join(work, "bundle-sleep"),
		specDir:     filepath.Join(work, "spec"),
		prefix:      fmt.Sprintf("bb%d-", os.Getpid()),
		ops:         map[string]*harness.Comparison{},
	}
	if err := makeBundle(b.trueBundle, rootfs, "/bin/true"); err != nil {
		return nil, err
	}
	if err := makeBundle(b.sleepBundle, rootfs, "/bin/sleep", "3600"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.specDir, 0o755); err != nil {
		return nil, err
	}
	names := make([]string, len(rts))
	for i, r := range rts {
		names[i] = r.name
		if err := os.MkdirAll(r.root, 0o700); err != nil {
			return nil, err
		}
	}
	for _, op := range runtimeOps {
		c := harness.NewComparison(op, names...)
		if op == "container init (reaped)" {
			c.Metrics = []harness.Metric{harness.CPU, harness.RSS}
		}
		b.ops[op] = c
		b.order = append(b.order, op)
	}
	return b, nil
}

// iterate runs every flow once for every runtime, rotating which runtime goes first. With
// record false (warm-up) nothing is kept.
func (b *runtimeBench) iterate(i int, record bool) error {
	flows := []func(*ociRuntime, string, func(string, harness.Sample)) error{b.flowRun, b.flowLifecycle, b.flowForce, b.flowKill, b.flowSpec}
	for f, flow := range flows {
		for k := range b.rts {
			r := b.rts[(i+k)%len(b.rts)]
			id := fmt.Sprintf("%s%d-%d-%s", b.prefix, i, f, r.name)
			add := func(op string, s harness.Sample) {
				if record {
					b.ops[op].Add(r.name, s)
				}
			}
			if err := flow(r, id, add); err != nil {
				b.rescue(r, id)
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
	}
	return nil
}

func (b *runtimeBench) flowRun(r *ociRuntime, id string, add func(string, harness.Sample)) error {
	s, err := harness.Run(r.cmd("run", "--bundle", b.trueBundle, id))
	if err != nil {
		return err
	}
	add("run (create+start+wait+delete)", s)
	return nil
}

// created runs create with a pid file and returns the sample and the init's pid.
func (b *runtimeBench) created(r *ociRuntime, bundle, id string) (harness.Sample, int, error) {
	pidFile := filepath.Join(r.root, id+".pid")
	defer os.Remove(pidFile)
	s, err := harness.Run(r.cmd("create", "--bundle", bundle, "--pid-file", pidFile, id))
	if err != nil {
		return s, 0, err
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return s, 0, fmt.Errorf("create %s: pid file: %w", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return s, 0, fmt.Errorf("create %s: pid file %q: %w", id, raw, err)
	}
	return s, pid, nil
}

// flowLifecycle: create, start (the program exits at once), reap the container's init,
// delete the stopped container.
func (b *runtimeBench) flowLifecycle(r *ociRuntime, id string, add func(string, harness.Sample)) error {
	s, pid, err := b.created(r, b.trueBundle, id)
	if err != nil {
		return err
	}
	add("create", s)
	if s, err = harness.Run(r.cmd("start", id)); err != nil {
		return err
	}
	add("start", s)
	// The runtime left the init to us (we are the subreaper): its whole life's CPU, set-up
	// in the container included, is what wait4 tells us now.
	if s, err = harness.WaitPid(pid, 10*time.Second); err != nil {
		return fmt.Errorf("container init of %s: %w", id, err)
	}
	add("container init (reaped)", s)
	if s, err = harness.Run(r.cmd("delete", id)); err != nil {
		return err
	}
	add("delete (stopped)", s)
	return nil
}

// flowForce: a running sleep container, looked at with state and list, then removed with
// delete --force.
func (b *runtimeBench) flowForce(r *ociRuntime, id string, add func(string, harness.Sample)) error {
	_, pid, err := b.created(r, b.sleepBundle, id)
	if err != nil {
		return err
	}
	if _, err := harness.Run(r.cmd("start", id)); err != nil {
		return err
	}
	s, err := harness.Run(r.cmd("state", id))
	if err != nil {
		return err
	}
	add("state", s)
	if s, err = harness.Run(r.cmd("list")); err != nil {
		return err
	}
	add("list (1 container)", s)
	if s, err = harness.Run(r.cmd("delete", "--force", id)); err != nil {
		return err
	}
	add("delete --force (running)", s)
	if _, err := harness.WaitPid(pid, 10*time.Second); err != nil {
		return fmt.Errorf("container init of %s after delete --force: %w", id, err)
	}
	return nil
}

// flowKill: a running sleep container killed with SIGKILL, then deleted.
func (b *runtimeBench) flowKill(r *ociRuntime, id string, add func(string, harness.Sample)) error {
	_, pid, err := b.created(r, b.sleepBundle, id)
	if err != nil {
		return err
	}
	if _, err := harness.Run(r.cmd("start", id)); err != nil {
		return err
	}
	s, err := harness.Run(r.cmd("kill", id, "KILL"))
	if err != nil {
		return err
	}
	add("kill KILL", s)
	if _, err := harness.WaitPid(pid, 10*time.Second); err != nil {
		return fmt.Errorf("container init of %s after kill: %w", id, err)
	}
	_, err = harness.Run(r.cmd("delete", id))
	return err
}

func (b *runtimeBench) flowSpec(r *ociRuntime, _ string, add func(string, harness.Sample)) error {
	c := r.cmd("spec")
	c.Dir = b.specDir
	s, err := harness.Run(c)
	if err != nil {
		return err
	}
	add("spec", s)
	return os.Remove(filepath.Join(b.specDir, "config.json"))
}

// rescue removes what a failed flow may have left.
func (b *runtimeBench) rescue(r *ociRuntime, id string) {
	harness.Run(r.cmd("delete", "--force", id))
	harness.ReapOrphans()
}

// cleanupAll removes every container the runtimes still list and then any cgroup directory
// named after a benchmark id: a runtime whose create failed halfway may leave those behind
// without a record to delete.
func (b *runtimeBench) cleanupAll() {
	for _, r := range b.rts {
		if list, err := harness.Output(r.cmd("list", "-q")); err == nil {
			for _, id := range strings.Fields(list) {
				harness.Run(r.cmd("delete", "--force", id))
			}
		}
	}
	harness.ReapOrphans()
	dirs := cgroupDirsNamed(b.prefix)
	// Deepest first, so that a child goes before its parent.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			fmt.Fprintf(os.Stderr, "berth-bench: cleanup: rmdir %s: %v\n", dirs[i], err)
		}
	}
}

// leftovers lists what the benchmark's containers left on the host: records in a state
// root, cgroup directories named after them, mounts in our mount namespace.
func (b *runtimeBench) leftovers(mountsBefore int) []string {
	var out []string
	for _, r := range b.rts {
		list, err := harness.Output(r.cmd("list", "-q"))
		if err != nil {
			out = append(out, fmt.Sprintf("%s list: %v", r.name, err))
		} else if strings.TrimSpace(list) != "" {
			out = append(out, fmt.Sprintf("%s still lists: %s", r.name, strings.Join(strings.Fields(list), " ")))
		}
	}
	for _, d := range cgroupDirsNamed(b.prefix) {
		out = append(out, "cgroup left: "+d)
	}
	if n := mountCount(); n != mountsBefore {
		out = append(out, fmt.Sprintf("mounts: %d before, %d after", mountsBefore, n))
	}
	return out
}

// cgroupDirsNamed finds cgroup directories whose name starts with prefix, in every
// hierarchy, a few levels deep (every runtime puts a container at most two levels under
// its own or the root cgroup).
func cgroupDirsNamed(prefix string) []string {
	var out []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, root := range roots {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) != nil || (st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC) {
			continue // not a hierarchy (the v1 view's stand-in tmpfs)
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(strings.TrimPrefix(p, root), "/") > 4 {
				return filepath.SkipDir
			}
			if strings.HasPrefix(d.Name(), prefix) {
				out = append(out, p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return out
}

func mountCount() int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return -1
	}
	return strings.Count(string(b), "\n")
}

// runtimeSections runs section 1 and derives section 4 from the same samples.
func runtimeSections(cfg *config, rts []*ociRuntime) (*harness.Section, *harness.Section, error) {
	s1 := &harness.Section{Number: 1, Title: "Runtime lifecycle", Metrics: []harness.Metric{harness.Wall, harness.CPU}}
	s4 := &harness.Section{Number: 4, Title: "Memory: peak RSS of each runtime command", Metrics: []harness.Metric{harness.RSS}}
	work := filepath.Join(cfg.work, "runtime")
	b, err := newRuntimeBench(work, rts)
	if err != nil {
		return nil, nil, err
	}
	mounts := mountCount()
	harness.ReapOrphans()
	for i := -cfg.warmup; i < cfg.n; i++ {
		if err := b.iterate(i+cfg.warmup, i >= 0); err != nil {
			b.cleanupAll()
			return nil, nil, err
		}
		if i >= 0 && (i+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "berth-bench: section 1: %d/%d iterations\n", i+1, cfg.n)
		}
	}
	if n := harness.ReapOrphans(); n > 0 {
		s1.Notes = append(s1.Notes, fmt.Sprintf("%d stray processes were reaped after the flows", n))
	}
	if left := b.leftovers(mounts); len(left) > 0 {
		b.cleanupAll()
		return nil, nil, errors.New("cleanup check failed: " + strings.Join(left, "; "))
	}
	for _, op := range b.order {
		s1.Comparisons = append(s1.Comparisons, b.ops[op])
		s4.Comparisons = append(s4.Comparisons, b.ops[op])
	}
	names := make([]string, len(rts))
	for i, r := range rts {
		names[i] = r.name
		if err := os.RemoveAll(r.root); err != nil {
			return nil, nil, err
		}
	}
	s1.Setup = fmt.Sprintf("%s, interleaved and rotated each iteration (%d warm-up iterations not counted). "+
		"One busybox bundle for all (`/bin/true`, or `/bin/sleep 3600` for the running container), "+
		"a fresh state root per runtime (`--root`), the container ids unique per iteration. "+
		"Wall time is fork to wait4 of the command; CPU is its user+sys including the processes it waited for. "+
		"`container init (reaped)` is the container's own process, which `create` leaves behind and the harness reaps as a shim would: "+
		"its set-up inside the container plus `/bin/true`. No container, cgroup or mount was left after the run (checked).",
		strings.Join(names, " vs "), cfg.warmup)
	s4.Setup = "The peak resident set size (ru_maxrss from wait4) of each command of section 1, the largest of the command and " +
		"the processes it waited for; for `run` that includes the container's init before it executed `/bin/true`."
	return s1, s4, os.RemoveAll(work)
}
