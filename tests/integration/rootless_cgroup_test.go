package integration

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The rootless engine on a cgroup v2 host that delegates a subtree to the user. This host's
// cgroups are hybrid: the test runs in `make test-v2`'s VM, as root there, for a made-up
// uid with no passwd entry, no /etc/subuid range (the single-id map) and no slirp4netns
// (--network none). The delegation is what systemd makes for user@UID.service: a root-owned
// parent that offers cpu, io, memory and pids but not cpuset, then the user's own cgroup
// (directory, cgroup.procs, cgroup.subtree_control, cgroup.threads chowned), then the
// leaf the engine runs in.

const rlCgroupUID = 54321

type rlEngine struct {
	bin, home, runDir string
}

func (e *rlEngine) berth(t *testing.T, cgfd int, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + e.home, "XDG_RUNTIME_DIR=" + e.runDir}
	cmd.Dir = e.home
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: rlCgroupUID, Gid: rlCgroupUID, Groups: []uint32{}},
		UseCgroupFD: true, CgroupFD: cgfd,
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// busyboxImageTar writes a one-layer root filesystem: the static busybox and its applets.
func busyboxImageTar(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range []string{"bin/", "proc/", "sys/", "dev/", "etc/", "tmp/", "root/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busyboxBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "sleep", "true", "echo"} {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// delegateCgroup makes parent (root's, offering cpu io memory pids) / user (the uid's) /
// session (the uid's, where the engine runs) and removes them, with everything the test
// started in them, at cleanup.
func delegateCgroup(t *testing.T) (user string, sessionFD int) {
	t.Helper()
	parent := fmt.Sprintf("/sys/fs/cgroup/berth-rl-%d", os.Getpid())
	user = filepath.Join(parent, "user@54321.service")
	session := filepath.Join(user, "session.scope")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every process the test started under it (the engine's monitors, a container
		// left by a failed assertion) goes, then the cgroups bottom up.
		os.WriteFile(filepath.Join(parent, "cgroup.kill"), []byte("1"), 0)
		var dirs []string
		filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := unix.Rmdir(dirs[i])
				if err == nil || errors.Is(err, unix.ENOENT) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("remove the test's cgroup %s: %v", dirs[i], err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	root, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpu", "io", "memory", "pids"} {
		if !strings.Contains(" "+strings.TrimSpace(string(root))+" ", " "+c+" ") {
			t.Fatalf("the VM's root cgroup does not enable %s (its cgroup.subtree_control: %q)", c, root)
		}
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+cpu +io +memory +pids"), 0); err != nil {
		t.Fatalf("enable controllers in %s: %v", parent, err)
	}
	for _, d := range []string{user, session} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{d, filepath.Join(d, "cgroup.procs"), filepath.Join(d, "cgroup.subtree_control"), filepath.Join(d, "cgroup.threads")} {
			if err := os.Chown(p, rlCgroupUID, rlCgroupUID); err != nil {
				t.Fatal(err)
			}
		}
	}
	fd, err := unix.Open(session, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return user, fd
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRootlessEngineDelegatedCgroup: --memory and --pids-limit land in the container's
// cgroup under the user's delegated one, stats and pause go through it, removal takes it,
// --cpuset-cpus is refused naming cpuset, and a container without limits runs too.
func TestRootlessEngineDelegatedCgroup(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("/sys/fs/cgroup is not a pure cgroup v2 hierarchy here (only v2 delegates to a user): this test runs in make test-v2")
	}
	// The engine and its per-container monitor, copied where the uid can run them.
	bins := map[string]string{"berth": "./cmd/berth", "berth-monitor": "./cmd/berth-monitor"}
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	for name, pkg := range bins {
		src, err := exec.LookPath(name)
		if os.Getenv("BERTH_TEST_PREBUILT") == "" {
			src = filepath.Join(t.TempDir(), name)
			err = goBuild(src, pkg, nil)
		}
		if err != nil {
			t.Fatalf("the %s binary: %v", name, err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/etc/subuid"); err == nil {
		if b, _ := os.ReadFile("/etc/subuid"); strings.Contains(string(b), fmt.Sprint(rlCgroupUID)+":") {
			t.Fatalf("/etc/subuid has a range for uid %d: the test wants the single-id map", rlCgroupUID)
		}
	}

	e := &rlEngine{bin: filepath.Join(base, "berth"), home: filepath.Join(base, "home"), runDir: filepath.Join(base, "run")}
	for _, d := range []string{e.home, e.runDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, rlCgroupUID, rlCgroupUID)
	}
	tarball := filepath.Join(e.home, "busybox.tar")
	busyboxImageTar(t, tarball)
	os.Chown(tarball, rlCgroupUID, rlCgroupUID)

	user, cgfd := delegateCgroup(t)
	must := func(args ...string) string {
		t.Helper()
		out, stderr, code := e.berth(t, cgfd, args...)
		if code != 0 {
			t.Fatalf("berth %s (uid %d): exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), rlCgroupUID, code, out, stderr)
		}
		return strings.TrimSpace(out)
	}
	must("import", "-c", `CMD ["sh"]`, tarball, "busybox")

	id := must("run", "-d", "--network", "none", "--memory", "64m", "--pids-limit", "32", "busybox", "sleep", "1000")
	cg := filepath.Join(user, "berth", id)
	if got := readTrim(t, filepath.Join(cg, "memory.max")); got != "67108864" {
		t.Errorf("%s/memory.max = %s, want 67108864 (--memory 64m)", cg, got)
	}
	if got := readTrim(t, filepath.Join(cg, "pids.max")); got != "32" {
		t.Errorf("%s/pids.max = %s, want 32", cg, got)
	}
	pid := must("inspect", "-f", "{{.State.Pid}}", id)
	if got := readTrim(t, "/proc/"+pid+"/cgroup"); got != "0::"+strings.TrimPrefix(cg, "/sys/fs/cgroup") {
		t.Errorf("the container's init %s is in %q, want 0::%s", pid, got, strings.TrimPrefix(cg, "/sys/fs/cgroup"))
	}
	// The single-id map: root inside is the user, and nothing else is mapped.
	if got := strings.Join(strings.Fields(readTrim(t, "/proc/"+pid+"/uid_map")), " "); got != fmt.Sprintf("0 %d 1", rlCgroupUID) {
		t.Errorf("the container's uid_map = %q, want 0 %d 1", got, rlCgroupUID)
	}
	if st := mustStat(t, cg); int(st.Uid) != rlCgroupUID {
		t.Errorf("%s belongs to uid %d, want the user %d", cg, st.Uid, rlCgroupUID)
	}
	if got := must("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", id); !strings.Contains(got, "/ 64MiB 1") {
		t.Errorf("stats = %q, want a 64MiB limit and one process", got)
	}
	// exec joins the container's cgroup (moved there from the engine's, through the
	// delegated root both are under).
	if got := must("exec", id, "cat", "/proc/self/cgroup"); got != "0::/" {
		t.Errorf("exec's /proc/self/cgroup = %q, want 0::/ (the container's cgroup, as its namespace's root)", got)
	}
	// top lists the cgroup's processes (busybox ps takes -o, not -ef).
	if got := must("top", id, "--", "-o", "pid,comm"); !strings.Contains(got, pid) || !strings.Contains(got, "sleep") {
		t.Errorf("top = %q, want the init %s (sleep)", got, pid)
	}
	must("pause", id)
	if ev := readTrim(t, filepath.Join(cg, "cgroup.events")); !strings.Contains(ev, "frozen 1") {
		t.Errorf("paused, but %s/cgroup.events = %q", cg, ev)
	}
	must("unpause", id)
	if ev := readTrim(t, filepath.Join(cg, "cgroup.events")); !strings.Contains(ev, "frozen 0") {
		t.Errorf("unpaused, but %s/cgroup.events = %q", cg, ev)
	}
	must("rm", "-f", id)
	if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after rm -f: %v, want it gone", cg, err)
	}

	// The limits as the container sees them: cgroup2 mounted in its cgroup namespace.
	out := must("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "32", "busybox", "sh", "-c",
		"cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
	if got := strings.Join(strings.Fields(out), " "); got != "0::/ 67108864 32" {
		t.Errorf("/proc/self/cgroup, memory.max and pids.max inside = %q, want 0::/ 67108864 32", got)
	}
	if ents, err := os.ReadDir(filepath.Join(user, "berth")); err != nil {
		t.Fatal(err)
	} else {
		for _, en := range ents {
			if en.IsDir() {
				t.Errorf("run --rm left the cgroup %s", filepath.Join(user, "berth", en.Name()))
			}
		}
	}

	_, stderr, code := e.berth(t, cgfd, "run", "--rm", "--network", "none", "--cpuset-cpus", "0", "busybox", "true")
	if code == 0 || !strings.Contains(stderr, "cpuset") || !strings.Contains(stderr, filepath.Join(user, "cgroup.controllers")) {
		t.Errorf("--cpuset-cpus with cpuset not delegated: exit %d, %q; want a refusal naming cpuset and %s/cgroup.controllers", code, stderr, user)
	}
	if out := must("run", "--rm", "--network", "none", "busybox", "echo", "plain"); out != "plain" {
		t.Errorf("a container without limits said %q, want plain", out)
	}
}
