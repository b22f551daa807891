// Package engine drives the built berth binary as a user would type it: run, ps, logs,
// stop, rm, -it through a real pty, and so on, and checks what the user would see, and
// that nothing is left behind (containers, snapshots, mounts, cgroups, networks).
package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/network"
)

var (
	binDir     string
	berthBin   string
	busyboxTar string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "engine tests run real containers and need root")
		os.Exit(1)
	}
	if _, err := os.Stat("/usr/bin/busybox"); err != nil {
		fmt.Fprintln(os.Stderr, "engine tests need a static busybox: run hack/deps-engine.sh")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "berth-engine-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	berthBin = filepath.Join(dir, "berth")
	code := 1
	cgroupsBefore := berthCgroups()
	// A bridge network turns IPv4 forwarding on, as Docker does; the tests leave the host
	// as they found it.
	fwd, fwdErr := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err := build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	// No container cgroup is left behind by any test, including those whose ids no test
	// saw (a create that failed, a run killed before its record existed).
	for d := range berthCgroups() {
		if !cgroupsBefore[d] {
			fmt.Fprintf(os.Stderr, "cgroup left by the tests: %s\n", d)
			code = 1
		}
	}
	// The runtime's parent cgroup (/berth) once the tests' containers are gone; rmdir
	// refuses one that still has children.
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/berth")
	for _, p := range append(parents, "/sys/fs/cgroup/berth") {
		syscall.Rmdir(p)
	}
	if fwdErr == nil {
		os.WriteFile("/proc/sys/net/ipv4/ip_forward", fwd, 0o644)
	}
	os.Exit(code)
}

func build() error {
	// berth and berth-runtime share a build stamp, as `make build` gives them, so the
	// containers' init is the static berth-runtime (engine.initExe).
	stamp := fmt.Sprintf("engine-test-%d", time.Now().UnixNano())
	// berth-runtime and berth as `make build` makes them (static, against musl where it is
	// installed), so the tests run the binaries users get.
	for _, b := range []struct{ out, pkg string }{{"berth-runtime", "./cmd/berth-runtime"}, {"berth", "./cmd/berth"}} {
		cmd := exec.Command("bash", "../../hack/build-static.sh", filepath.Join(binDir, b.out), b.pkg, stamp)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	mon := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, "berth-monitor"), "github.com/berth-containers/berth/cmd/berth-monitor")
	mon.Env = append(os.Environ(), "CGO_ENABLED=0")
	mon.Stdout, mon.Stderr = os.Stderr, os.Stderr
	if err := mon.Run(); err != nil {
		return fmt.Errorf("build ./cmd/berth-monitor: %w", err)
	}
	// The busybox image's root filesystem, as a tarball for `berth import`.
	root := filepath.Join(binDir, "rootfs")
	for _, d := range []string{"bin", "etc", "root", "tmp", "proc", "sys", "dev", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	b, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("/usr/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nsvc:x:1000:1000::/data:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nsvc:x:1000:\nnogroup:x:65534:\n"), 0o644)
	os.WriteFile(filepath.Join(root, "data/seed"), []byte("from the image\n"), 0o644)
	busyboxTar = filepath.Join(binDir, "busybox.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", busyboxTar, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return nil
}

// harness is one test's berth: its own engine root and runtime root, with the busybox
// image imported; Cleanup removes every container and checks nothing is left.
type harness struct {
	t           *testing.T
	root        string
	runtimeRoot string
	env         []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	base, err := os.MkdirTemp("", "berth-et-")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by others, as /var/lib is: a container's remapped root (--userns) must
	// reach its rootfs under the engine root.
	os.Chmod(base, 0o711)
	h := &harness{t: t, root: filepath.Join(base, "root"), runtimeRoot: filepath.Join(base, "run")}
	h.env = []string{"BERTH_ROOT=" + h.root, "BERTH_RUNTIME_ROOT=" + h.runtimeRoot}
	t.Cleanup(func() { h.cleanup(base) })
	h.ok("import", "-c", `CMD ["sh"]`, busyboxTar, "busybox")
	return h
}

// result is one berth command's outcome.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

func (h *harness) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), h.env...)
	return cmd
}

// run runs berth with args and returns what it printed and its exit code.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runIn("", args...)
}

func (h *harness) runIn(stdin string, args ...string) result {
	h.t.Helper()
	cmd := h.cmd(args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("berth %v: %v", args, err)
	}
	return r
}

// ok runs berth and fails the test unless it exits 0; it returns stdout.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 {
		h.t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// inspect returns one field of `berth inspect` through a template.
func (h *harness) inspect(ref, tmpl string) string {
	h.t.Helper()
	return strings.TrimSpace(h.ok("inspect", "-f", tmpl, ref))
}

// state reads the container's inspect State.
func (h *harness) state(ref string) inspectState {
	h.t.Helper()
	var docs []struct {
		ID           string `json:"Id"`
		State        inspectState
		RestartCount int
	}
	out := h.ok("inspect", ref)
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 1 {
		h.t.Fatalf("inspect %s: %v: %s", ref, err, out)
	}
	docs[0].State.RestartCount = docs[0].RestartCount
	docs[0].State.ID = docs[0].ID
	return docs[0].State
}

type inspectState struct {
	Status       string
	Running      bool
	Pid          int
	ExitCode     int
	OOMKilled    bool
	Error        string
	RestartCount int
	ID           string
}

// eventually retries cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var cleanupMu sync.Mutex

// cleanup removes every container of the test and checks what must not be left: mounts
// under the roots, runtime records, the containers' cgroups, network state; then it
// removes the networks and the directories.
func (h *harness) cleanup(base string) {
	t := h.t
	ids := strings.Fields(h.run("ps", "-aq", "--no-trunc").stdout)
	for _, id := range ids {
		if r := h.run("rm", "-f", "-v", id); r.code != 0 {
			t.Errorf("cleanup: rm -f %s: %s", id, r)
		}
	}
	// Monitors exit once their container is gone; give them a moment.
	eventually(t, 10*time.Second, "the monitors to exit", func() bool { return len(monitorPids(h.root)) == 0 })
	if ents, _ := os.ReadDir(h.runtimeRoot); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("cleanup: runtime records left in %s: %v", h.runtimeRoot, names)
	}
	if m := mountsUnder(base); len(m) > 0 {
		t.Errorf("cleanup: mounts left: %v", m)
	}
	for _, id := range ids {
		for _, d := range cgroupDirs(id) {
			t.Errorf("cleanup: cgroup left: %s", d)
		}
	}
	if snaps, _ := os.ReadDir(filepath.Join(h.root, "snapshots")); len(snaps) > 0 {
		var names []string
		for _, s := range snaps {
			if !strings.HasPrefix(s.Name(), ".") {
				names = append(names, s.Name())
			}
		}
		if len(names) > 0 {
			t.Errorf("cleanup: snapshots left: %v", names)
		}
	}
	cleanupMu.Lock()
	if m, err := network.Open(h.root); err == nil {
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup: network destroy: %v", err)
		}
	}
	cleanupMu.Unlock()
	if m := mountsUnder(base); len(m) > 0 {
		for _, p := range m {
			syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(base)
}

// monitorPids lists the berth-monitor processes working in root.
func monitorPids(root string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "berth-monitor" {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if strings.HasPrefix(cwd, root+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// cgroupDirs lists the container's cgroup directories that exist in any hierarchy.
func cgroupDirs(id string) []string {
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		for _, p := range []string{filepath.Join("/sys/fs/cgroup", e.Name(), "berth", id), filepath.Join("/sys/fs/cgroup", "berth", id)} {
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}
