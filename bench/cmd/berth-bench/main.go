// Command berth-bench compares berth with runc, crun, Podman and containerd, measuring each
// command from outside its process (wall time, user+sys CPU and peak RSS from wait4), with
// the contenders interleaved in one process. It prints the tables, writes the generated part
// of docs/benchmarks.md and a chart of the headline ratios.
//
//	make build && go run ./bench/cmd/berth-bench          # what `make bench` does
//	go run ./bench/cmd/berth-bench -sections 1,4 -n 10      # a quick look
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-containers/berth/bench/harness"
	"golang.org/x/sys/unix"
)

type config struct {
	binDir      string
	work        string
	n           int
	engineN     int
	density     int
	imageRounds int
	nsProcs     int
	nsN         int
	warmup      int
	sections    map[int]bool
	out         string
	chart       string
	view        string
}

func (c *config) bin(name string) string { return filepath.Join(c.binDir, name) }

// nsEnv marks the re-executed harness that already runs in its own mount namespace.
const nsEnv = "_BERTH_BENCH_MOUNTNS"

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.binDir, "bin", "bin", "directory holding the built berth-runtime and berth")
	flag.StringVar(&cfg.work, "work", "/run/berth-bench", "scratch directory (bundles, state roots); removed afterwards")
	flag.IntVar(&cfg.n, "n", 100, "iterations of each runtime flow (sections 1 and 4)")
	flag.IntVar(&cfg.engineN, "engine-n", 30, "runs of each engine (section 2)")
	flag.IntVar(&cfg.density, "density", 200, "detached containers per engine (section 3)")
	flag.IntVar(&cfg.imageRounds, "image-rounds", 5, "alternating rounds of the image pulls (section 5)")
	flag.IntVar(&cfg.nsProcs, "ns-procs", 2000, "extra processes while timing berth ns (section 6)")
	flag.IntVar(&cfg.nsN, "ns-n", 21, "runs of berth ns and lsns (section 6)")
	flag.IntVar(&cfg.warmup, "warmup", 2, "uncounted iterations before each measurement")
	bundleOnly := flag.String("write-bundle", "", "only write the benchmark's rootfs and bundles (bundle-true, bundle-sleep) into this directory, for profiling by hand")
	sections := flag.String("sections", "1,2,3,4,5,6", "sections to run, comma-separated")
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "markdown file whose generated part is rewritten (empty: none)")
	flag.StringVar(&cfg.chart, "chart", "docs/benchmarks.png", "PNG chart of the headline ratios (empty: none)")
	flag.StringVar(&cfg.view, "cgroup-view", "v1", "v1: run everything in a mount namespace without the cgroup2 mount, so this hybrid host looks like cgroup v1 to every contender (crun refuses hybrid); host: the host's layout as it is (crun then runs with --cgroup-manager=disabled)")
	flag.Parse()
	if *bundleOnly != "" {
		if err := writeBundles(*bundleOnly); err != nil {
			fmt.Fprintf(os.Stderr, "berth-bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(cfg, *sections); err != nil {
		fmt.Fprintf(os.Stderr, "berth-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(cfg *config, sections string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (it creates containers)")
	}
	cfg.sections = map[int]bool{}
	for _, f := range strings.Split(sections, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 6 {
			return fmt.Errorf("-sections %q: %q is not a section number 1-6", sections, f)
		}
		cfg.sections[n] = true
	}
	if cfg.view != "v1" && cfg.view != "host" {
		return fmt.Errorf("-cgroup-view %q: must be v1 or host", cfg.view)
	}
	for _, p := range []*string{&cfg.binDir, &cfg.out, &cfg.chart, &cfg.work} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	if cfg.view == "v1" && os.Getenv(nsEnv) == "" && unifiedMounted() {
		return reexecInMountNS()
	}
	if cfg.view == "v1" && os.Getenv(nsEnv) != "" {
		if err := hideUnified(); err != nil {
			return err
		}
	}
	if err := harness.BecomeSubreaper(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(cfg.work, "run-")
	if err != nil {
		return err
	}
	cfg.work = work
	defer os.RemoveAll(work)
	if err := harness.Setup(work); err != nil {
		return err
	}

	rep := &harness.Report{}
	rep.Env = environment(cfg, "start")
	rts := runtimes(cfg)

	var s1, s4 *harness.Section
	if cfg.sections[1] || cfg.sections[4] {
		fmt.Fprintf(os.Stderr, "berth-bench: section 1 and 4: %d iterations of the runtime flows\n", cfg.n)
		if s1, s4, err = runtimeSections(cfg, rts); err != nil {
			return fmt.Errorf("section 1: %w", err)
		}
	}
	if cfg.sections[1] {
		rep.Sections = append(rep.Sections, s1)
	}
	if cfg.sections[2] || cfg.sections[3] {
		s2, s3, err := engineSections(cfg)
		if err != nil {
			return err
		}
		for _, s := range []*harness.Section{s2, s3} {
			if s != nil {
				rep.Sections = append(rep.Sections, s)
			}
		}
	}
	if cfg.sections[4] {
		rep.Sections = append(rep.Sections, s4)
	}
	if cfg.sections[5] {
		fmt.Fprintf(os.Stderr, "berth-bench: section 5: image pull + unpack, %d rounds\n", cfg.imageRounds)
		rep.Sections = append(rep.Sections, imageSection(cfg))
	}
	if cfg.sections[6] {
		fmt.Fprintf(os.Stderr, "berth-bench: section 6: berth ns vs lsns with %d extra processes\n", cfg.nsProcs)
		s6, err := nsviewSection(cfg)
		if err != nil {
			return err
		}
		rep.Sections = append(rep.Sections, s6)
	}
	rep.Headlines = headlines(rep, rts)
	end := environment(cfg, "end")
	rep.Env = append(rep.Env, end[len(end)-1])

	rep.WriteText(os.Stdout)
	chartRef := ""
	if cfg.chart != "" && len(rep.Headlines) > 0 {
		if err := harness.WriteChart(cfg.chart, "berth vs runc, crun, Podman, Docker and lsns on this host", rep.Headlines); err != nil {
			return err
		}
		if cfg.out != "" {
			if rel, err := filepath.Rel(filepath.Dir(cfg.out), cfg.chart); err == nil {
				chartRef = rel
			}
		}
		fmt.Fprintf(os.Stderr, "berth-bench: wrote %s\n", cfg.chart)
	}
	if cfg.out != "" {
		if err := harness.UpdateMarkdown(cfg.out, rep.Markdown(chartRef)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "berth-bench: wrote %s\n", cfg.out)
	}
	return nil
}

// runtimes are the contenders of sections 1 and 4, each with a fresh state root.
func runtimes(cfg *config) []*ociRuntime {
	rts := []*ociRuntime{
		{name: "berth-runtime", path: cfg.bin("berth-runtime")},
		{name: "runc", path: lookPath("runc")},
		{name: "crun", path: lookPath("crun")},
	}
	if cfg.view == "host" {
		// crun 1.8 refuses a hybrid layout whose cgroup2 has any controller; without
		// cgroups it runs, but does less than the others.
		rts[2].global = []string{"--cgroup-manager=disabled"}
	}
	for _, r := range rts {
		r.root = filepath.Join(cfg.work, "state-"+r.name)
	}
	return rts
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// headlines picks the ratios the chart shows, with the targets as ratios where
// the target is relative.
func headlines(rep *harness.Report, rts []*ociRuntime) []harness.Headline {
	var hs []harness.Headline
	find := func(num int, op string) *harness.Comparison {
		for _, s := range rep.Sections {
			if s.Number != num {
				continue
			}
			for _, c := range s.Comparisons {
				if strings.HasPrefix(c.Op, op) {
					return c
				}
			}
		}
		return nil
	}
	// target is the goal in the metric's unit, drawn as a ratio to the baseline's
	// median; sameAsCrun marks the goals stated as "no worse than crun".
	add := func(num int, op, label string, m harness.Metric, target float64, sameAsCrun bool) {
		c := find(num, op)
		if c == nil {
			return
		}
		for j := 1; j < len(c.Contenders); j++ {
			h := harness.Headline{Label: fmt.Sprintf("%s: %s / %s", label, c.Contenders[0], c.Contenders[j]), Ratio: c.Ratio(j, m)}
			switch base := c.Summary(j, m).Median; {
			case sameAsCrun && c.Contenders[j] == "crun":
				h.Target = 1
			case target > 0 && base > 0:
				h.Target = target / base
			}
			hs = append(hs, h)
		}
	}
	const ms, mib = float64(time.Millisecond), float64(1 << 20)
	add(1, "run", "run wall", harness.Wall, 0, true)
	add(1, "run", "run CPU", harness.CPU, 0, true)
	add(1, "delete --force", "delete --force wall", harness.Wall, 10*ms, false)
	// Engine: run --rm at most 30 ms and at least 10× faster than Podman.
	if c := find(2, "run --rm"); c != nil {
		for j := 1; j < len(c.Contenders); j++ {
			h := harness.Headline{Label: fmt.Sprintf("engine run --rm wall: %s / %s", c.Contenders[0], c.Contenders[j]), Ratio: c.Ratio(j, harness.Wall)}
			if base := c.Summary(j, harness.Wall).Median; base > 0 {
				h.Target = 30 * ms / base
			}
			if c.Contenders[j] == "podman" {
				h.Target = math.Min(h.Target, 0.1)
			}
			hs = append(hs, h)
		}
		for j := 1; j < len(c.Contenders); j++ {
			hs = append(hs, harness.Headline{Label: fmt.Sprintf("engine run --rm CPU: %s / %s", c.Contenders[0], c.Contenders[j]), Ratio: c.Ratio(j, harness.GroupCPU)})
		}
	}
	// Density: the per-container helper's RSS at most 2 MiB.
	if len(densityResults) > 1 && densityResults[0].name == "berth" {
		b := densityResults[0]
		for _, o := range densityResults[1:] {
			var r, base []float64
			for i := 0; i < len(b.mem) && i < len(o.mem); i++ {
				if o.mem[i].rss > 0 {
					r = append(r, float64(b.mem[i].rss)/float64(o.mem[i].rss))
				}
				base = append(base, float64(o.mem[i].rss))
			}
			sm := summarize(r)
			h := harness.Headline{Label: fmt.Sprintf("helper RSS: berth-monitor / %s", helperLabel(o)), Ratio: harness.Summary{Median: sm.Median, Min: sm.Min, Max: sm.Max, N: len(r)}}
			if bm := summarize(base).Median; bm > 0 {
				h.Target = 2 * mib / bm
			}
			hs = append(hs, h)
		}
	}
	add(4, "run", "run peak RSS", harness.RSS, 5*mib, false)
	add(4, "create", "create peak RSS", harness.RSS, 5*mib, false)
	hs = append(hs, imageHeadlines()...)
	add(6, "list all", "berth ns wall", harness.Wall, 0, false)
	return hs
}

func environment(cfg *config, when string) [][2]string {
	var env [][2]string
	if when == "start" {
		var u unix.Utsname
		unix.Uname(&u)
		env = append(env,
			[2]string{"date", time.Now().UTC().Format("2006-01-02 15:04 UTC")},
			[2]string{"kernel", unix.ByteSliceToString(u.Release[:])},
			[2]string{"cpu", cpuModel()},
			[2]string{"berth", gitDescribe()},
			[2]string{"runc", firstLine(lookPath("runc"), "--version")},
			[2]string{"crun", firstLine(lookPath("crun"), "--version")},
			[2]string{"cgroups", cgroupView(cfg)},
		)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	env = append(env, [2]string{"load average at " + when, strings.Join(strings.Fields(string(load))[:3], " ") +
		" (the machine's 2 cores are shared with other work; medians and interleaving absorb most of it)"})
	return env
}

func cgroupView(cfg *config) string {
	if cfg.view == "v1" {
		return "cgroup v1 for every contender: the harness runs in its own mount namespace (a slave copy of the host's) where an empty tmpfs replaces the cgroup2 mount at /sys/fs/cgroup/unified, so this hybrid host looks like pure v1 to all (crun 1.8.1 refuses hybrid); the cgroup2 hierarchy held only hugetlb"
	}
	return "the host's hybrid layout; crun with --cgroup-manager=disabled (it makes no cgroup)"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return fmt.Sprintf("%s × %d", strings.TrimSpace(v), numCPU())
			}
		}
	}
	return fmt.Sprintf("%d cpus", numCPU())
}

func numCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return "not installed"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}

// unifiedMounted tells whether this hybrid host has its cgroup2 mount where crun looks.
func unifiedMounted() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// reexecInMountNS runs this harness again in a new mount namespace and exits with its status.
func reexecInMountNS() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	// Cloneflags, not Unshareflags: the latter also makes every mount private, and the host's
	// propagation is part of what the runtimes work with.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		return fmt.Errorf("re-run in a new mount namespace: %w", err)
	}
	os.Exit(0)
	return nil
}

// hideUnified makes our copy of the mount tree a slave of the host's (nothing we do leaks
// out, the host's changes still come in) and replaces the cgroup2 mount in it with an empty
// tmpfs of our own. crun in v1 mode still writes its pid into <that dir>/<id>/cgroup.procs
// (for the "0::" line of /proc/self/cgroup) and fails if it cannot: on our tmpfs that is a
// plain file that vanishes with this namespace, not a directory hidden under the host's
// cgroup2 mount.
func hideUnified() error {
	const dir = "/sys/fs/cgroup/unified"
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / rslave in our mount namespace: %w", err)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("umount %s in our mount namespace: %w", dir, err)
	}
	if err := unix.Mount("berth-bench-no-cgroup2", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64m,mode=755"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s in our mount namespace: %w", dir, err)
	}
	return nil
}
