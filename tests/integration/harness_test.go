// Package integration runs real containers with the berth-runtime binary, as root, and
// checks from inside them what a user would check.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var runtimeBin, probeBin string

var busyboxBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests run real containers and need root")
		os.Exit(1)
	}
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			busyboxBin = p
			break
		}
	}
	if busyboxBin == "" {
		fmt.Fprintln(os.Stderr, "integration tests need a static busybox: run hack/deps.sh (apt-get install busybox-static)")
		os.Exit(1)
	}
	if d := os.Getenv("BERTH_TEST_TMPDIR"); d != "" {
		// The v2 lane's VM mounts /tmp nosuid: bundles go elsewhere there.
		os.MkdirAll(d, 0o1777)
		os.Setenv("TMPDIR", d)
	}
	code := 1
	// Every create notes which init its container got; each test's runtime checks the
	// notes of its own state root (see newRT).
	initLog, err := os.CreateTemp("", "berth-it-inits-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	initLog.Close()
	os.Setenv("BERTH_INIT_LOG", initLog.Name())
	defer os.Remove(initLog.Name())
	cgroupsBefore := containerCgroups()
	if os.Getenv("BERTH_TEST_PREBUILT") != "" {
		// The cgroup v2 lane's VM has no Go toolchain: the binaries are on its PATH.
		var err1, err2 error
		runtimeBin, err1 = exec.LookPath("berth-runtime")
		probeBin, err2 = exec.LookPath("probe")
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "BERTH_TEST_PREBUILT: berth-runtime or probe not on PATH:", err1, err2)
			os.Exit(1)
		}
		code = m.Run()
	} else {
		dir, err := os.MkdirTemp("", "berth-it-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		runtimeBin, probeBin = filepath.Join(dir, "berth-runtime"), filepath.Join(dir, "probe")
		if err := buildRuntime(runtimeBin); err != nil {
			fmt.Fprintln(os.Stderr, "build berth-runtime:", err)
			os.Exit(1)
		}
		if err := goBuild(probeBin, "./tests/integration/probe", []string{"CGO_ENABLED=0"}); err != nil {
			fmt.Fprintln(os.Stderr, "build probe:", err)
			os.Exit(1)
		}
		code = m.Run()
		os.RemoveAll(dir)
	}
	// No container cgroup is left behind by any test, failed creates included.
	for d := range containerCgroups() {
		if !cgroupsBefore[d] {
			fmt.Fprintf(os.Stderr, "cgroup left by the tests: %s\n", d)
			code = 1
		}
	}
	removeEmptyCgroupParents()
	os.Remove(initLog.Name())
	os.Exit(code)
}

// containerCgroups lists the containers' cgroups under /berth in every hierarchy.
func containerCgroups() map[string]bool {
	out := map[string]bool{}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/*")
	more, _ := filepath.Glob("/sys/fs/cgroup/berth/*")
	for _, d := range append(dirs, more...) {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out[d] = true
		}
	}
	return out
}

// removeEmptyCgroupParents removes the runtime's parent cgroup (/berth in each hierarchy)
// once the tests' containers are gone; rmdir refuses a parent that still has children.
func removeEmptyCgroupParents() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth")
	if d := "/sys/fs/cgroup/berth"; fileExists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		syscall.Rmdir(d)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildRuntime builds berth-runtime as `make build` does (hack/build-static.sh), so the
// tests run the binary that ships: static, and against musl where it is installed.
func buildRuntime(out string) error {
	build := exec.Command("bash", "../../hack/build-static.sh", out, "./cmd/berth-runtime")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

func goBuild(out, pkg string, env []string) error {
	build := exec.Command("go", "build", "-o", out, "github.com/berth-containers/berth/"+strings.TrimPrefix(pkg, "./"))
	build.Env = append(os.Environ(), env...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

// bundle is an OCI bundle with a busybox rootfs, made fresh for one test.
type bundle struct {
	Dir  string
	Spec *specs.Spec
}

// newBundle makes a bundle whose process runs busybox sh -c script.
func newBundle(t testing.TB, script string) *bundle {
	t.Helper()
	dir := t.TempDir()
	// A user-namespaced container's root needs to reach its rootfs through these.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	bb, err := os.ReadFile(busyboxBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "ls", "cat", "echo", "id", "hostname", "ip", "ps", "mount", "touch",
		"mkdir", "sleep", "grep", "stat", "readlink", "umask", "pwd", "env", "head", "wc", "df", "ln", "true",
		"false", "test", "tr", "awk", "dd", "chmod", "mknod", "rm", "uname", "date", "nproc", "find", "sed", "tty", "stty", "kill", "cut"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	spec := runtime.DefaultSpec(false)
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", script}
	spec.Root.Readonly = false
	return &bundle{Dir: dir, Spec: spec}
}

func (b *bundle) save(t testing.TB) {
	t.Helper()
	data, err := json.MarshalIndent(b.Spec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) rootfs() string { return filepath.Join(b.Dir, "rootfs") }

// addProbe puts the static probe program at /bin/probe with the given mode.
func (b *bundle) addProbe(t *testing.T, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(probeBin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(b.rootfs(), "bin", "probe")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// rt runs berth-runtime with a state root of its own and deletes whatever the test left.
type rt struct {
	t    *testing.T
	root string
	// goInit lists the containers allowed to run the Go init; every other one must have
	// had its setup done by the C init (the plan), which every test thereby exercises.
	goInit map[string]bool
}

func newRT(t *testing.T) *rt {
	t.Helper()
	r := &rt{t: t, root: t.TempDir(), goInit: map[string]bool{}}
	t.Cleanup(func() {
		for _, n := range initNotes(r.root) {
			if n.how != "plan" && !r.goInit[n.id] {
				t.Errorf("container %s took the Go init (%s), not the C init", n.id, n.how)
			}
		}
	})
	t.Cleanup(func() {
		ents, _ := os.ReadDir(r.root)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if _, stderr, code := r.exec("delete", "--force", e.Name()); code != 0 {
				t.Errorf("cleanup: delete --force %s: %s", e.Name(), stderr)
			}
			assertNoCgroup(t, e.Name())
		}
	})
	return r
}

type result struct {
	stdout, stderr string
	code           int
}

// allowGoInit lets the container id run the Go init, which its config needs.
func (r *rt) allowGoInit(id string) { r.goInit[id] = true }

type initNote struct{ id, how string }

// initNotes returns, in order, which init each container created under root got ("plan", or
// "go: <reason>").
func initNotes(root string) []initNote {
	b, _ := os.ReadFile(os.Getenv("BERTH_INIT_LOG"))
	var notes []initNote
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, root+" ")
		if !ok {
			continue
		}
		id, how, _ := strings.Cut(rest, " ")
		notes = append(notes, initNote{id, how})
	}
	return notes
}

// lastInit returns how the last container created as id under r's root was set up.
func (r *rt) lastInit(id string) string {
	how := ""
	for _, n := range initNotes(r.root) {
		if n.id == id {
			how = n.how
		}
	}
	return how
}

func (r *rt) exec(args ...string) (string, string, int) {
	res := r.execIn(nil, args...)
	return res.stdout, res.stderr, res.code
}

func (r *rt) execIn(stdin []byte, args ...string) result {
	r.t.Helper()
	cmd := exec.Command(runtimeBin, append([]string{"--root", r.root}, args...)...)
	// Files, not pipes: a created or detached container keeps the runtime's stdio, and a
	// pipe would make Wait last as long as the container.
	dir := r.t.TempDir()
	outF, err1 := os.Create(filepath.Join(dir, "stdout"))
	errF, err2 := os.Create(filepath.Join(dir, "stderr"))
	if err1 != nil || err2 != nil {
		r.t.Fatal(err1, err2)
	}
	defer outF.Close()
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start berth-runtime: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timedOut := false
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		timedOut = true
	}
	out, _ := os.ReadFile(outF.Name())
	errb, _ := os.ReadFile(errF.Name())
	if timedOut {
		r.t.Fatalf("berth-runtime %v: no answer after 60s; stdout %q stderr %q", args, out, errb)
	}
	return result{string(out), string(errb), cmd.ProcessState.ExitCode()}
}

// mustRun runs a container in the foreground and returns its output; it fails the test
// unless the container exits 0.
func (r *rt) mustRun(b *bundle, id string) string {
	r.t.Helper()
	b.save(r.t)
	out, stderr, code := r.exec("run", "-b", b.Dir, id)
	if code != 0 {
		r.t.Fatalf("run %s: exit %d\nstdout: %s\nstderr: %s", id, code, out, stderr)
	}
	return out
}

func (r *rt) state(id string) runtime.State {
	r.t.Helper()
	out, stderr, code := r.exec("state", id)
	if code != 0 {
		r.t.Fatalf("state %s: exit %d: %s", id, code, stderr)
	}
	var st runtime.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("state %s: bad JSON %q: %v", id, out, err)
	}
	return st
}

func (r *rt) mustOK(args ...string) string {
	r.t.Helper()
	out, stderr, code := r.exec(args...)
	if code != 0 {
		r.t.Fatalf("berth-runtime %v: exit %d: %s", args, code, stderr)
	}
	return out
}

// assertNoCgroup fails if any cgroup hierarchy still has the container's default directory.
func assertNoCgroup(t *testing.T, id string) {
	t.Helper()
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
	if m2, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id); len(m2) > 0 {
		matches = append(matches, m2...)
	}
	if len(matches) > 0 {
		t.Errorf("container %s left cgroup directories: %v", id, matches)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mustStat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// gone tells whether pid has exited (it may linger as a zombie until its reaper runs).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

func lines(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}
