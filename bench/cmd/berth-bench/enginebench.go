package main

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-containers/berth/bench/harness"
	"golang.org/x/sys/unix"
)

const engineRef = "bench-busybox:1"

// densityResults are section 3's figures, for the headline ratios.
var densityResults []*densityResult

// engineBench holds what sections 2 and 3 share: the engines that run here, the image
// imported into each, and the CPU group that holds the harness and every engine process.
type engineBench struct {
	all     []engine
	live    []engine
	skipped []string // "docker: why"
	cpu     *harness.CPUGroup
	cgroups map[string]bool // engine parent cgroup dirs that existed before
}

// engineSections runs sections 2 and/or 3 and returns them (nil for one not asked for).
func engineSections(cfg *config) (s2, s3 *harness.Section, err error) {
	if cfg.sections[2] {
		s2 = &harness.Section{Number: 2, Title: "Engine: run --rm busybox true",
			Metrics: []harness.Metric{harness.Wall, harness.GroupCPU, harness.RSS}}
	}
	if cfg.sections[3] {
		s3 = &harness.Section{Number: 3, Title: fmt.Sprintf("Density: %d detached sleep containers", cfg.density)}
	}
	notMeasured := func(why string) {
		for _, s := range []*harness.Section{s2, s3} {
			if s != nil {
				s.NotMeasured = why
			}
		}
	}
	b, err := newEngineBench(cfg)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if cerr := b.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if len(b.live) == 0 || b.live[0].name() != "berth" {
		notMeasured(strings.Join(b.skipped, "; "))
		return s2, s3, nil
	}
	if len(b.live) == 1 {
		notMeasured("no baseline engine runs here: " + strings.Join(b.skipped, "; "))
		return s2, s3, nil
	}
	if s2 != nil {
		fmt.Fprintf(os.Stderr, "berth-bench: section 2: %d runs of run --rm per engine\n", cfg.engineN)
		if err := b.runRm(cfg, s2); err != nil {
			return nil, nil, fmt.Errorf("section 2: %w", err)
		}
	}
	if s3 != nil {
		fmt.Fprintf(os.Stderr, "berth-bench: section 3: %d detached containers per engine\n", cfg.density)
		if err := b.density(cfg, s3); err != nil {
			return nil, nil, fmt.Errorf("section 3: %w", err)
		}
	}
	return s2, s3, nil
}

// engineParents are where the engines put their containers' cgroups (cgroupfs drivers).
var engineParents = []string{"berth", "docker", "libpod_parent"}

func newEngineBench(cfg *config) (*engineBench, error) {
	b := &engineBench{cgroups: map[string]bool{}}
	for _, d := range engineCgroupDirs() {
		b.cgroups[d] = true
	}
	var err error
	// Before any engine starts, so that daemons and their shims are in it too.
	if b.cpu, err = harness.NewCPUGroup(fmt.Sprintf("berth-bench-%d", os.Getpid())); err != nil {
		return nil, err
	}
	if b.all, err = engines(cfg); err != nil {
		b.close()
		return nil, err
	}
	imgDir := filepath.Join(cfg.work, "engine-image")
	rootfs := filepath.Join(imgDir, "rootfs")
	if err := makeRootfs(rootfs); err != nil {
		b.close()
		return nil, err
	}
	tarball := filepath.Join(imgDir, "busybox.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		b.close()
		return nil, fmt.Errorf("tar of the busybox rootfs: %v: %s", err, out)
	}
	for _, e := range b.all {
		if why := e.unavailable(); why != "" {
			b.skipped = append(b.skipped, e.name()+": "+why)
			continue
		}
		if err := e.prepare(engineRef, tarball); err != nil {
			b.skipped = append(b.skipped, e.name()+": import of the busybox image failed: "+err.Error())
			continue
		}
		b.live = append(b.live, e)
	}
	return b, os.RemoveAll(imgDir)
}

// startedIDs are the ids of the containers this run started: close removes only their
// cgroups (and parents this run made), never another user's that appeared meanwhile.
var startedIDs = map[string]bool{}

func ownCgroup(dir string) bool {
	for id := range startedIDs {
		if strings.Contains(filepath.Base(dir), id) {
			return true
		}
	}
	return false
}

// engineCgroupDirs lists the directories under the engines' parent cgroups, two levels
// deep, in every v1 hierarchy.
func engineCgroupDirs() []string {
	var out []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, root := range roots {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			continue
		}
		for _, p := range engineParents {
			top := filepath.Join(root, p)
			filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				if strings.Count(strings.TrimPrefix(path, top), "/") > 2 {
					return filepath.SkipDir
				}
				out = append(out, path)
				return nil
			})
		}
	}
	return out
}

// close removes every container and store, stops the daemons, removes the engine cgroups
// this run made (deepest first; a live one, another user's, refuses with EBUSY and is
// kept) and the CPU group.
func (b *engineBench) close() error {
	var errs []string
	for _, e := range b.all {
		if err := e.cleanup(); err != nil {
			errs = append(errs, e.name()+": "+err.Error())
		}
	}
	harness.ReapOrphans()
	dirs := engineCgroupDirs()
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		parent := false
		for _, p := range engineParents {
			parent = parent || strings.HasSuffix(d, "/"+p)
		}
		if !b.cgroups[d] && (ownCgroup(d) || parent) {
			if err := unix.Rmdir(d); err != nil && err != unix.ENOENT && !(parent && err == unix.EBUSY) {
				errs = append(errs, fmt.Sprintf("cgroup left: rmdir %s: %v", d, err))
			}
		}
	}
	if b.cpu != nil {
		if err := b.cpu.Close(); err != nil {
			errs = append(errs, err.Error())
		}
		b.cpu = nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("engine cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (b *engineBench) names() []string {
	var n []string
	for _, e := range b.live {
		n = append(n, e.name())
	}
	return n
}

func (b *engineBench) versions() string {
	var v []string
	for _, e := range b.live {
		v = append(v, e.name()+" "+e.version())
	}
	return strings.Join(v, "; ")
}

// runRm is section 2: `run --rm IMAGE true` of every engine, interleaved, rotated.
func (b *engineBench) runRm(cfg *config, s *harness.Section) error {
	c := harness.NewComparison("run --rm busybox true", b.names()...)
	for i := -cfg.warmup; i < cfg.engineN; i++ {
		for k := range b.live {
			e := b.live[(i+cfg.warmup+k)%len(b.live)]
			smp, err := b.cpu.MeasureSettled(e.runRm(engineRef, "true"), 2*time.Second)
			harness.ReapOrphans()
			if err != nil {
				return fmt.Errorf("%s: %w", e.name(), err)
			}
			if i >= 0 {
				c.Add(e.name(), smp)
			}
		}
	}
	for _, e := range b.live {
		if out, err := harness.Output(e.list()); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("%s lists containers after run --rm (%q, %v)", e.name(), strings.TrimSpace(out), err)
		}
	}
	s.Comparisons = []*harness.Comparison{c}
	s.Setup = fmt.Sprintf("%s (%s), interleaved and rotated each run (%d warm-up runs not counted). "+
		"The same image in each: a busybox rootfs (the static /usr/bin/busybox) made into a tarball and imported with "+
		"`berth import`, `podman import`, `docker import`; `run --rm --network none --pull never bench-busybox:1 true`. "+
		"Each engine has a private store (berth `--root`; Podman `--root/--runroot/--tmpdir`, overlay, cgroupfs; "+
		"dockerd started by the harness with its own `--data-root`/`--exec-root`, no bridge, no iptables). "+
		"**wall** is fork to exit of the client command; **cpu, all engine processes** is the cpuacct usage of a cgroup "+
		"holding the harness and everything it starts (client, berth-monitor and its helpers, conmon, podman's cleanup, "+
		"dockerd, containerd and the shim) over the command and until every process it left behind has exited (berth's monitor "+
		"deletes an --rm container's files after the command returns; at most 2 s): the container's own process is charged to the container's "+
		"cgroup and not counted; **peak rss** is the client's (and what it waited for).",
		strings.Join(b.names(), " vs "), b.versions(), cfg.warmup)
	s.Notes = append(s.Notes,
		"Podman runs with `default_ulimits` lowered to nofile=1024, nproc=4096 (containers.conf): its root defaults "+
			"(1048576) are above this host's hard limits and root has no CAP_SYS_RESOURCE here, so crun's setrlimit fails otherwise. "+
			"It runs with `--cgroups=no-conmon` so that conmon stays in the measured group (the container still gets its cgroup). "+
			"Its OCI runtime is crun, Docker's is runc, berth's is its own library (no runtime process).")
	for _, sk := range b.skipped {
		s.Notes = append(s.Notes, "not measured: "+sk)
	}
	return nil
}

// containerMem is what one running container costs the host.
type containerMem struct {
	cgroup     int64 // the container cgroup's memory charge
	rss, pss   int64 // of the engine's helper processes for it
	helpers    int
	helperName string
}

type densityResult struct {
	name      string
	start     []harness.Sample // run -d of each container
	mem       []containerMem
	remove    harness.Sample
	daemonRSS [2]int64 // shared daemons' RSS before the first and after the last start
	memAvail  [2]int64
}

// density is section 3: each engine in turn starts N sleep containers one after another,
// then the memory of each is read, then all are removed with one command.
func (b *engineBench) density(cfg *config, s *harness.Section) error {
	var res []*densityResult
	for _, e := range b.live {
		r, err := b.densityOne(cfg, e)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name(), err)
		}
		res = append(res, r)
	}
	tab := harness.Table{
		Caption: "Each cell: median over the containers (min–max) unless it says otherwise.",
		Header: []string{"engine", "run -d wall", "run -d cpu, all engine processes", "container cgroup memory",
			"helper RSS", "helper PSS", "host memory per container (cgroup + helper PSS)", "shared daemons' RSS growth per container",
			"remove all (one command)"},
	}
	med := func(v []float64, f func(float64) string) string {
		sm := summarize(v)
		return fmt.Sprintf("%s (%s–%s)", f(sm.Median), f(sm.Min), f(sm.Max))
	}
	dur := func(v float64) string { return harness.FormatDuration(time.Duration(v)) }
	byt := func(v float64) string { return harness.FormatBytes(int64(v)) }
	for _, r := range res {
		var wall, cpu, cg, rss, pss, host []float64
		for _, smp := range r.start {
			wall = append(wall, float64(smp.Wall))
			cpu = append(cpu, float64(smp.GroupCPU))
		}
		helper := "none"
		for _, m := range r.mem {
			cg = append(cg, float64(m.cgroup))
			rss = append(rss, float64(m.rss))
			pss = append(pss, float64(m.pss))
			host = append(host, float64(m.cgroup+m.pss))
			if m.helperName != "" {
				helper = fmt.Sprintf("%d× %s", m.helpers, m.helperName)
			}
		}
		daemons := "none (daemonless)"
		if r.daemonRSS[0] > 0 {
			daemons = fmt.Sprintf("%s (%s → %s)", harness.FormatBytes((r.daemonRSS[1]-r.daemonRSS[0])/int64(len(r.start))),
				harness.FormatBytes(r.daemonRSS[0]), harness.FormatBytes(r.daemonRSS[1]))
		}
		tab.Rows = append(tab.Rows, []string{r.name, med(wall, dur), med(cpu, dur), med(cg, byt),
			med(rss, byt) + " [" + helper + "]", med(pss, byt), med(host, byt), daemons,
			fmt.Sprintf("%s total, %s per container", dur(float64(r.remove.Wall)), dur(float64(r.remove.Wall)/float64(len(r.start))))})
	}
	s.Extra = append(s.Extra, tab)
	var mavail harness.Table
	mavail.Header = []string{"engine", "MemAvailable drop per container (whole host, noisy)"}
	for _, r := range res {
		mavail.Rows = append(mavail.Rows, []string{r.name, harness.FormatBytes((r.memAvail[0] - r.memAvail[1]) / int64(len(r.start)))})
	}
	mavail.Caption = "The whole host's view: the drop of MemAvailable from before the first start to after the last, per container. " +
		"It includes kernel memory (namespaces, mounts, cgroups, page tables) that neither column above sees, and whatever " +
		"the machine's other users did meanwhile."
	s.Extra = append(s.Extra, mavail)
	s.Setup = fmt.Sprintf("Each engine in turn (%s) starts %d containers `run -d --network none busybox sleep 3600` one after "+
		"another; with all of them running the harness reads, for each container, its memory cgroup's charge "+
		"(memory.usage_in_bytes: the sleep, its page tables and kernel objects, and page cache first touched from it) and the "+
		"RSS and PSS (/proc/<pid>/smaps_rollup) of every helper process the engine keeps for it (berth-monitor for berth, "+
		"conmon for Podman, containerd-shim-runc-v2 for Docker, found by the container id in their arguments), then removes "+
		"them all with one `rm -f` (Podman: `rm -f -t 0`). Docker's daemons are shared by all containers; their RSS growth "+
		"is shown apart.", strings.Join(b.names(), ", "), cfg.density)
	densityResults = res
	return nil
}

func (b *engineBench) densityOne(cfg *config, e engine) (*densityResult, error) {
	r := &densityResult{name: e.name()}
	prefix := fmt.Sprintf("bbd%d-%s-", os.Getpid(), e.name())
	r.daemonRSS[0] = rssOf(e.daemons())
	r.memAvail[0] = memAvailable()
	var names []string
	ids := map[string]bool{}
	for i := 0; i < cfg.density; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		before, err := b.cpu.Usage()
		if err != nil {
			return nil, err
		}
		smp, out, err := harness.RunOutput(e.runDetached(name, engineRef, "sleep", "3600"))
		after, _ := b.cpu.Usage()
		smp.GroupCPU = after - before
		harness.ReapOrphans()
		if err != nil {
			return nil, err
		}
		names = append(names, name)
		ids[strings.TrimSpace(out)] = true
		startedIDs[strings.TrimSpace(out)] = true
		r.start = append(r.start, smp)
		if (i+1)%50 == 0 {
			fmt.Fprintf(os.Stderr, "berth-bench: section 3: %s: %d/%d containers\n", e.name(), i+1, cfg.density)
		}
	}
	r.daemonRSS[1] = rssOf(e.daemons())
	r.memAvail[1] = memAvailable()
	out, err := harness.Output(e.inspectPids(names...))
	if err != nil {
		return nil, err
	}
	pids := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("inspect: unexpected line %q", l)
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("inspect: no pid in %q", l)
		}
		pids[f[0]] = pid
	}
	helpers := findHelpers(e.helperNames(), ids)
	for id := range ids {
		pid, ok := pids[id]
		if !ok {
			return nil, fmt.Errorf("inspect did not list container %s", id)
		}
		var m containerMem
		if m.cgroup, _, err = harness.MemoryCharge(pid); err != nil {
			return nil, err
		}
		for _, h := range helpers[id] {
			pm, err := harness.ReadProcMem(h)
			if err != nil {
				return nil, fmt.Errorf("helper %d of %s: %w", h, id, err)
			}
			m.rss += pm.RSS
			m.pss += pm.PSS
			m.helpers++
			m.helperName = comm(h)
		}
		r.mem = append(r.mem, m)
	}
	smp, err := b.cpu.Measure(e.remove(names...))
	harness.ReapOrphans()
	if err != nil {
		return nil, err
	}
	r.remove = smp
	if out, err := harness.Output(e.list()); err != nil || strings.TrimSpace(out) != "" {
		return nil, fmt.Errorf("still lists containers after rm -f (%q, %v)", strings.TrimSpace(out), err)
	}
	// Helpers exit on their own after the container; give them a moment before checking.
	deadline := time.Now().Add(10 * time.Second)
	for len(findHelpers(e.helperNames(), ids)) > 0 {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("helper processes still run 10 s after rm -f: %v", findHelpers(e.helperNames(), ids))
		}
		harness.ReapOrphans()
		time.Sleep(50 * time.Millisecond)
	}
	return r, nil
}

func rssOf(pids []int) int64 {
	var n int64
	for _, p := range pids {
		if m, err := harness.ReadProcMem(p); err == nil {
			n += m.RSS
		}
	}
	return n
}

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemAvailable:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

type summary struct{ Median, Min, Max float64 }

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{math.NaN(), math.NaN(), math.NaN()}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{m, s[0], s[len(s)-1]}
}

func helperLabel(r *densityResult) string {
	for _, m := range r.mem {
		if m.helperName != "" {
			if m.helperName == "containerd-shim" {
				return "containerd-shim-runc-v2"
			}
			return m.helperName
		}
	}
	return r.name
}
