// Package clients drives berth-runtime the way container engines do: the exact command
// sequences containerd's runc shim and Podman's conmon send (shim_sequence_test.go), and
// end to end through the real clients from Debian, containerd (ctr), dockerd and Podman,
// each started by its test on unix sockets in temporary directories and stopped after.
package clients

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/image"
	"golang.org/x/sys/unix"
)

var (
	runtimeBin string // the berth-runtime under test
	imageTar   string // a docker-archive/OCI-layout tar of the busybox image
	busyboxBin string
)

// imageRef is the name the busybox image is saved under; each client shows it its own way.
const imageRef = "berth-test/busybox:latest"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "client tests run real containers and daemons and need root")
		os.Exit(1)
	}
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			busyboxBin = p
			break
		}
	}
	if busyboxBin == "" {
		fmt.Fprintln(os.Stderr, "client tests need a static busybox: run hack/deps-conformance.sh (apt-get install busybox-static)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "berth-clients-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Daemons and shims run as root from paths under here, and the user namespace tests of
	// the runtime want the path traversable.
	os.Chmod(dir, 0o755)
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	runtimeBin = filepath.Join(dir, "berth-runtime")
	// As `make build` does: the clients run the binary that ships.
	build := exec.Command("bash", "../../hack/build-static.sh", runtimeBin, "./cmd/berth-runtime")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build berth-runtime: %w", err)
	}
	imageTar = filepath.Join(dir, "busybox.tar")
	return makeImage(filepath.Join(dir, "image"), imageTar)
}

// makeImage builds a one-layer busybox image with berth's own image store (import of a
// rootfs directory, then save), in the archive format docker load, podman load and ctr
// image import all read.
func makeImage(work, out string) error {
	rootfs := filepath.Join(work, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	bb, err := os.ReadFile(busyboxBin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "echo", "cat", "sleep", "hostname", "ls", "ps", "id", "true", "env", "grep", "head", "kill", "trap", "wc"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			return err
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	st, err := image.Open(filepath.Join(work, "store"))
	if err != nil {
		return err
	}
	if _, err := st.ImportDir(rootfs, image.ImportOptions{Ref: imageRef, Changes: []string{`CMD ["sh"]`, "ENV PATH=/bin"}}); err != nil {
		return fmt.Errorf("import busybox rootfs: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := st.Save(f, []string{imageRef}); err != nil {
		return fmt.Errorf("save busybox image: %w", err)
	}
	return f.Close()
}

// need returns the path of a client's binary, or skips the test saying which package to
// install.
func need(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s; hack/deps-conformance.sh installs it)", bin, pkg)
	}
	return p
}

// run runs a command with a time limit and returns its stdout; stderr goes into the error.
func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("%s %s: no answer after %v; stderr: %s", name, strings.Join(args, " "), timeout, stderr.Bytes())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w; stderr: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// daemon is a client's daemon this test started, in its own process group.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startDaemon starts a daemon with its output in logPath and stops it at cleanup: SIGTERM,
// then SIGKILL to its process group after 20 s.
func startDaemon(t *testing.T, logPath string, env []string, name string, args ...string) *daemon {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	lf.Close()
	d := &daemon{name: filepath.Base(name), cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		unix.Kill(-d.cmd.Process.Pid, unix.SIGKILL)
		<-d.done
	}
}

// logTail is the end of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitSocket waits for a daemon's unix socket to appear, failing with its log if the daemon
// exits or takes more than a minute.
func waitSocket(t *testing.T, d *daemon, sock string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("%s exited before its socket %s appeared:\n%s", d.name, sock, d.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no socket %s after a minute:\n%s", d.name, sock, d.logTail())
}

// eventually polls cond for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// processesMentioning lists the pids whose command line contains s: the shims and
// container processes of a daemon this test started are found by its temporary directory.
func processesMentioning(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cleanupDir removes what a client left under dir after its daemon stopped: processes
// started from there (shims, conmon), mounts, then the files. Each leftover is reported, as
// the client should have removed it.
func cleanupDir(t *testing.T, dir string) {
	t.Helper()
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("processes of this test still running after its daemon stopped: %v", pids)
		for _, p := range pids {
			unix.Kill(p, unix.SIGKILL)
		}
	}
	if ms := mountsUnder(dir); len(ms) > 0 {
		for _, m := range ms {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", m, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
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
		if len(f) > 4 {
			p := strings.ReplaceAll(f[4], `\040`, " ")
			if p == dir || strings.HasPrefix(p, dir+"/") {
				ms = append(ms, p)
			}
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}

// cgroupsOf lists the cgroup directories, in every hierarchy, whose name contains id.
func cgroupsOf(id string) []string {
	var found []string
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hs {
		filepath.WalkDir(h, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Contains(d.Name(), id) {
				found = append(found, p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return found
}

// tempDir is a directory for a daemon's state that the test removes itself (t.TempDir's
// removal would fail on what a client leaves mounted); short, as unix socket paths are.
func tempDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	return d
}

// removeIfMade removes, at cleanup, those of paths (empty directories, deepest first) that
// do not exist now: clients make some fixed directories whatever their state dirs are
// (dockerd /run/docker/plugins, ctr and shims /run/containerd/fifo and /run/containerd/s).
// It must be called before the client starts, and its cleanup runs after the daemon's.
func removeIfMade(t *testing.T, paths ...string) {
	t.Helper()
	var made []string
	for _, p := range paths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			made = append(made, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range made {
			err := os.Remove(p)
			if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EBUSY) {
				// The machine is shared: another client may have come to use it meanwhile.
				t.Logf("left %s, which is in use: %v", p, err)
			} else if err != nil && !os.IsNotExist(err) {
				t.Errorf("remove %s, which the client made: %v", p, err)
			}
		}
	})
}

// removeCgroupsIfMade is removeIfMade for cgroup directories (relative to each hierarchy)
// that clients make as parents: containerd one per namespace, Podman libpod_parent and its
// conmon, dockerd docker.
func removeCgroupsIfMade(t *testing.T, rels ...string) {
	t.Helper()
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var paths []string
	for _, rel := range rels {
		for _, h := range hs {
			if st, err := os.Stat(h); err == nil && st.IsDir() {
				paths = append(paths, filepath.Join(h, rel))
			}
		}
	}
	removeIfMade(t, paths...)
}
