// Command runner runs the OCI runtime-tools validation suite (v0.9.0, built from the pinned
// module in tests/conformance/suite) against runc, crun and berth-runtime on this machine,
// one program at a time and each runtime in turn, and writes docs/conformance.md: the
// per-program results and, for every program berth-runtime fails, why.
//
// It exits non-zero when berth-runtime fails a program that has no explanation in
// explain.go, or fails one that runc or crun passes without that being a documented,
// deliberate difference. Run it as root from the repository root (make conformance).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runtimeSpec is one contender: the wrapper script the programs run as $RUNTIME.
type runtimeSpec struct {
	Name    string
	Binary  string
	Version string
	// script is the wrapper's body; %[1]s is the binary, %[2]s its state root.
	script string
}

type run struct {
	Program string
	Runtime string
	Result  Result
	Elapsed time.Duration
	// Leaks lists what the program and runtime left behind and the runner removed.
	Leaks []string
}

func main() {
	bin := flag.String("bin", "bin", "directory holding the berth-runtime to test")
	out := flag.String("out", "docs/conformance.md", "markdown report to write (empty: none)")
	tapDir := flag.String("tap", "", "directory to keep every program's TAP and stderr in (default: a temporary one, removed)")
	only := flag.String("programs", "", "comma-separated programs to run (default: all)")
	rts := flag.String("runtimes", "runc,crun,berth", "comma-separated runtimes, run in this order for each program")
	timeout := flag.Duration("timeout", 2*time.Minute, "time limit of one program")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatalf("the validation programs create containers: run as root")
	}
	if err := mainErr(*bin, *out, *tapDir, *only, *rts, *timeout); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "conformance: "+format+"\n", a...)
	os.Exit(1)
}

func mainErr(bin, out, tapDir, only, rtList string, timeout time.Duration) error {
	started := time.Now()
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "tests/conformance/suite/go.mod")); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	work, err := os.MkdirTemp("", "berth-conformance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// A container in a user namespace must reach its rootfs: every directory above it must
	// be searchable by others.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	if tapDir == "" {
		tapDir = filepath.Join(work, "tap")
	}
	if err := os.MkdirAll(tapDir, 0o755); err != nil {
		return err
	}

	berth, err := filepath.Abs(filepath.Join(bin, "berth-runtime"))
	if err != nil {
		return err
	}
	all := map[string]*runtimeSpec{
		"runc": {Name: "runc", Binary: "runc", script: "exec %[1]s --root %[2]s \"$@\"\n"},
		// crun 1.8.1 refuses this host's hybrid layout ("cgroups in hybrid mode not
		// supported"), with --cgroup-manager=disabled too: it looks at the cgroup2 mount at
		// startup, whatever the manager. So it runs in a mount namespace of its own (a slave
		// copy of the host's) where an empty tmpfs hides that mount, as make bench does; it
		// then sees a v1 host and makes real v1 cgroups that the programs check.
		"crun": {Name: "crun", Binary: "crun", script: "exec unshare --mount --propagation slave sh -c " +
			"'umount -l /sys/fs/cgroup/unified && mount -t tmpfs -o size=64k,mode=755 cgroup2-hidden /sys/fs/cgroup/unified && exec \"$0\" --root %[2]s \"$@\"' %[1]s \"$@\"\n"},
		"berth": {Name: "berth", Binary: berth, script: "exec %[1]s --root %[2]s \"$@\"\n"},
	}
	var runtimes []*runtimeSpec
	for _, n := range strings.Split(rtList, ",") {
		r, ok := all[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("-runtimes: unknown runtime %q (runc, crun, berth)", n)
		}
		p, err := exec.LookPath(r.Binary)
		if err != nil {
			return fmt.Errorf("%s: %w (hack/deps-conformance.sh installs runc and crun; make build makes berth-runtime)", r.Name, err)
		}
		r.Binary = p
		v, _ := exec.Command(p, "--version").Output()
		r.Version = firstLine(string(v))
		runtimes = append(runtimes, r)
	}

	suite := filepath.Join(work, "suite")
	fmt.Fprintln(os.Stderr, "conformance: building runtime-tools v0.9.0 validation programs")
	programs, err := buildSuite(filepath.Join(repo, "tests/conformance/suite"), suite)
	if err != nil {
		return err
	}
	if only != "" {
		want := map[string]bool{}
		for _, p := range strings.Split(only, ",") {
			want[strings.TrimSpace(p)] = true
		}
		var keep []string
		for _, p := range programs {
			if want[p] {
				keep = append(keep, p)
				delete(want, p)
			}
		}
		if len(want) > 0 {
			return fmt.Errorf("-programs: no such validation program: %v", keys(want))
		}
		programs = keep
	}
	for _, r := range runtimes {
		root := filepath.Join(work, "root-"+r.Name)
		if err := os.MkdirAll(root, 0o700); err != nil {
			return err
		}
		body := "#!/bin/sh\n" + fmt.Sprintf(r.script, r.Binary, root)
		if err := os.WriteFile(filepath.Join(work, "rt-"+r.Name), []byte(body), 0o755); err != nil {
			return err
		}
	}

	var runs []run
	for _, p := range programs {
		for _, r := range runtimes {
			rn := runOne(work, suite, tapDir, p, r, timeout)
			fmt.Fprintf(os.Stderr, "%-34s %-6s %-5s %6.1fs  %s\n", p, r.Name, rn.Result.Verdict, rn.Elapsed.Seconds(), rn.Result.Why)
			for _, l := range rn.Leaks {
				fmt.Fprintf(os.Stderr, "    cleaned up after it: %s\n", l)
			}
			runs = append(runs, rn)
		}
	}
	rep := newReport(programs, runtimes, runs, time.Since(started))
	problems := rep.check()
	if out != "" {
		if err := os.WriteFile(out, []byte(rep.markdown()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "conformance: wrote %s\n", out)
	}
	fmt.Println(rep.summaryLine())
	if len(problems) > 0 {
		return fmt.Errorf("berth-runtime has %d unexplained result(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// buildSuite builds every validation program and runtimetest (static: it runs inside the
// suite's busybox rootfs) into dir, next to the rootfs tarball the programs unpack from
// their working directory. It returns the programs' names.
func buildSuite(module, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	gocmd := func(env []string, args ...string) ([]byte, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = module
		cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-mod=readonly"}, env...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), module, err, stderr.Bytes())
		}
		return out, nil
	}
	const rt = "github.com/opencontainers/runtime-tools"
	if _, err := gocmd(nil, "build", "-o", dir+"/", rt+"/validation/..."); err != nil {
		return nil, err
	}
	if _, err := gocmd([]string{"CGO_ENABLED=0"}, "build", "-o", filepath.Join(dir, "runtimetest"), rt+"/cmd/runtimetest"); err != nil {
		return nil, err
	}
	modDir, err := gocmd(nil, "list", "-m", "-f", "{{.Dir}}", rt)
	if err != nil {
		return nil, err
	}
	tarball := fmt.Sprintf("rootfs-%s.tar.gz", goruntime.GOARCH)
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(modDir)), tarball))
	if err != nil {
		return nil, fmt.Errorf("the suite's rootfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, tarball), b, 0o644); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var programs []string
	for _, e := range ents {
		if n := e.Name(); n != "runtimetest" && n != tarball && !e.IsDir() {
			programs = append(programs, n)
		}
	}
	sort.Strings(programs)
	if len(programs) == 0 {
		return nil, errors.New("no validation program was built")
	}
	return programs, nil
}

// runOne runs one program against one runtime, with a temporary directory of its own for
// the bundles, and removes whatever the run left behind.
func runOne(work, suite, tapDir, program string, r *runtimeSpec, timeout time.Duration) run {
	tmp := filepath.Join(work, "tmp", program+"."+r.Name)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return run{Program: program, Runtime: r.Name, Result: Result{Verdict: Fail, Why: err.Error()}}
	}
	tapPath := filepath.Join(tapDir, program+"."+r.Name+".tap")
	errPath := filepath.Join(tapDir, program+"."+r.Name+".stderr")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(suite, program))
	cmd.Dir = suite
	cmd.Env = append(os.Environ(), "RUNTIME="+filepath.Join(work, "rt-"+r.Name), "TMPDIR="+tmp)
	// Files, not pipes: a container the program leaves running keeps them open.
	tapF, err1 := os.Create(tapPath)
	errF, err2 := os.Create(errPath)
	rn := run{Program: program, Runtime: r.Name}
	if err := errors.Join(err1, err2); err != nil {
		rn.Result = Result{Verdict: Fail, Why: err.Error()}
		return rn
	}
	cmd.Stdout, cmd.Stderr = tapF, errF
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	start := time.Now()
	err := cmd.Run()
	rn.Elapsed = time.Since(start)
	tapF.Close()
	errF.Close()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		code = -1
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
	}
	tap, _ := os.ReadFile(tapPath)
	stderr, _ := os.ReadFile(errPath)
	rn.Result = Classify(string(tap), string(stderr), code)
	if ctx.Err() != nil {
		rn.Result.Verdict = Fail
		rn.Result.Why = fmt.Sprintf("timed out after %v; %s", timeout, rn.Result.Why)
	}
	rn.Leaks = cleanup(work, tmp, r)
	return rn
}

// cleanup deletes the containers left in the runtime's state root, unmounts whatever was
// mounted under the run's temporary directory (runc, given no mount namespace, mounts the
// container's /proc, /dev and /sys into the host's and leaves them there), removes the
// cgroups the programs name, and the directory itself. It returns what it had to remove.
func cleanup(work, tmp string, r *runtimeSpec) []string {
	var leaks []string
	root := filepath.Join(work, "root-"+r.Name)
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		leaks = append(leaks, "container "+e.Name()+" still in the state root")
		out, err := exec.Command(filepath.Join(work, "rt-"+r.Name), "delete", "--force", e.Name()).CombinedOutput()
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("delete --force %s: %v: %s", e.Name(), err, bytes.TrimSpace(out)))
		}
	}
	if ms := mountsUnder(tmp); len(ms) > 0 {
		leaks = append(leaks, fmt.Sprintf("%d mounts in the host's mount namespace under the bundle", len(ms)))
		for _, m := range ms {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	// The programs' cgroupsPath values: /cgrouptest and testdir/cgrouptest/container. A
	// runtime removes the container's own directory, never the parents it had to make.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*")
	left := map[string]int{}
	for _, h := range dirs {
		for _, rel := range []string{"testdir/cgrouptest/container", "testdir/cgrouptest", "testdir", "cgrouptest"} {
			p := filepath.Join(h, rel)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := unix.Rmdir(p); err != nil {
				leaks = append(leaks, fmt.Sprintf("cgroup %s: %v", p, err))
			} else if rel == "cgrouptest" || rel == "testdir/cgrouptest/container" {
				left[rel]++
			}
		}
	}
	for _, rel := range []string{"cgrouptest", "testdir/cgrouptest/container"} {
		if n := left[rel]; n > 0 {
			leaks = append(leaks, fmt.Sprintf("the container's cgroup %s in %d hierarchies", rel, n))
		}
	}
	if err := os.RemoveAll(tmp); err != nil {
		leaks = append(leaks, fmt.Sprintf("remove %s: %v", tmp, err))
	}
	return leaks
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}
