package engine

import (
	"archive/tar"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/testutil/testuser"
)

// rlUser is an unprivileged user made for one test, with the berth binaries where it can
// run them, its own home and runtime directory.
type rlUser struct {
	name             string
	uid, gid         int
	subuid, subgid   int
	home, runtimeDir string
	bin              string
}

// newRLUser makes the user; with range false it gets no /etc/subuid and /etc/subgid range.
func newRLUser(t *testing.T, withRange bool) *rlUser {
	t.Helper()
	for _, p := range []string{"newuidmap", "newgidmap", "slirp4netns"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is missing: run hack/deps-rootless.sh", p)
		}
	}
	if fi, err := os.Stat("/dev/net/tun"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		t.Fatalf("/dev/net/tun must be usable by an unprivileged user (0666, as udev makes it): run hack/deps-rootless.sh")
	}
	prefix := "berthre"
	if !withRange {
		prefix = "berthrn"
	}
	tu := testuser.New(t, prefix, withRange)
	u := &rlUser{name: tu.Name, uid: tu.UID, gid: tu.GID, subuid: tu.SubUID, subgid: tu.SubGID}
	base, err := os.MkdirTemp("", "berth-rl-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	// Files the containers left in the test's own bind-mounted directory belong to the
	// test; the rest was checked empty by checkNothingLeft. (Runs before the user goes.)
	t.Cleanup(func() { os.RemoveAll(base) })
	u.home, u.runtimeDir = filepath.Join(base, "home"), filepath.Join(base, "run")
	for _, d := range []string{u.home, u.runtimeDir, filepath.Join(u.home, "bin")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, u.uid, u.gid)
	}
	os.Chmod(filepath.Join(u.home, "bin"), 0o755)
	for _, b := range []string{"berth", "berth-full", "berth-monitor"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(u.home, "bin", b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u.bin = filepath.Join(u.home, "bin", "berth")
	return u
}

// command is the berth binary run as the user, with only the environment a login would
// give (and env).
func (u *rlUser) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(u.bin, args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + u.home, "XDG_RUNTIME_DIR=" + u.runtimeDir, "USER=" + u.name}, env...)
	cmd.Dir = u.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	return cmd
}

// berth runs the berth binary as the user.
func (u *rlUser) berth(t *testing.T, args ...string) result {
	t.Helper()
	return u.berthEnv(t, nil, args...)
}

func (u *rlUser) berthEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := u.command(env, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
	}
	return r
}

// importBusybox imports the test image as the user, from a copy of the tarball in its home.
func (u *rlUser) importBusybox(t *testing.T) {
	t.Helper()
	tarball := filepath.Join(u.home, "busybox.tar")
	data, err := os.ReadFile(busyboxTar)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	u.ok(t, "import", "-c", `CMD ["sh"]`, tarball, "busybox")
}

func (u *rlUser) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := u.berth(t, args...)
	if r.code != 0 {
		t.Fatalf("berth %s (as %s): exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), u.name, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return int(st.Uid), int(st.Gid)
}

func ifaces(t *testing.T, procNetDev string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(procNetDev, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// TestRootless runs the engine as a user made for the test: import, a container as root
// inside that writes to a bind mount (ids land on the user and its subordinate range),
// a published port reached from the host's loopback, a root-only host file it cannot read,
// --network none and host, the refusals rootless owes, and nothing left afterwards.
func TestRootless(t *testing.T) {
	u := newRLUser(t, true)
	u.importBusybox(t)
	store := filepath.Join(u.home, ".local", "share", "berth")
	if _, err := os.Stat(filepath.Join(store, "image")); err != nil {
		t.Fatalf("the user's image store is not under ~/.local/share/berth: %v", err)
	}
	// The image's /tmp (1777, root's) and /data/seed, unpacked by the user.
	layers, _ := filepath.Glob(filepath.Join(store, "image", "layers", "*", "diff", "data", "seed"))
	if len(layers) != 1 {
		t.Fatalf("want one unpacked layer with data/seed, got %v", layers)
	}
	if uid, _ := owner(t, layers[0]); uid != u.uid {
		t.Errorf("the image's root-owned data/seed is owned by %d on the host, want the user %d", uid, u.uid)
	}

	// Root inside writes as the user, uid 1000 inside as subuid+999.
	shared := filepath.Join(u.home, "shared")
	os.Mkdir(shared, 0o777)
	os.Chown(shared, u.uid, u.gid)
	os.Chmod(shared, 0o777)
	out := u.ok(t, "run", "--rm", "-v", shared+":/data", "busybox", "sh", "-c",
		"id -u; echo r > /data/by-root && echo c > /data/chowned && chown 1000:1000 /data/chowned")
	if strings.TrimSpace(out) != "0" {
		t.Errorf("id -u inside = %q, want 0", out)
	}
	u.ok(t, "run", "--rm", "-u", "1000:1000", "-v", shared+":/data", "busybox", "sh", "-c", "echo u > /data/by-1000")
	if uid, gid := owner(t, filepath.Join(shared, "by-root")); uid != u.uid || gid != u.gid {
		t.Errorf("a file root wrote inside is %d:%d on the host, want the user's %d:%d", uid, gid, u.uid, u.gid)
	}
	for _, f := range []string{"by-1000", "chowned"} {
		if uid, gid := owner(t, filepath.Join(shared, f)); uid != u.subuid+999 || gid != u.subgid+999 {
			t.Errorf("%s (uid 1000 inside) is %d:%d on the host, want the subordinate %d:%d", f, uid, gid, u.subuid+999, u.subgid+999)
		}
	}

	// A root-only host file, bind-mounted in, stays unreadable.
	secret := filepath.Join(u.home, "secret")
	if err := os.WriteFile(secret, []byte("host root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := u.berth(t, "run", "--rm", "-v", secret+":/secret:ro", "busybox", "cat", "/secret")
	if r.code == 0 || strings.Contains(r.stdout, "host root only") || !strings.Contains(r.stderr+r.stdout, "Permission denied") {
		t.Errorf("reading a root-only host file inside: exit %d, out %q, err %q; want Permission denied", r.code, r.stdout, r.stderr)
	}

	// A published port, reached from the host's loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	u.ok(t, "run", "-d", "--name", "web", "-p", fmt.Sprintf("%d:8080", port), "busybox", "sh", "-c",
		"echo hello-rootless > /tmp/index.html && exec httpd -f -p 8080 -h /tmp")
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /index.html HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if body = string(b); strings.Contains(body, "hello-rootless") {
			break
		}
	}
	if !strings.Contains(body, "hello-rootless") {
		t.Errorf("GET from 127.0.0.1:%d: %q, want the container's page", port, body)
	}
	if n := len(userProcs(t, u, "slirp4netns")); n != 1 {
		t.Errorf("%d slirp4netns processes of the user while the container runs, want 1", n)
	}
	u.ok(t, "rm", "-f", "web")
	// slirp4netns is stopped by rm itself; the container's monitor exits on its own
	// right after.
	if p := userProcs(t, u, "slirp4netns"); len(p) > 0 {
		t.Errorf("after rm -f, slirp4netns still runs: %v", describe(p))
	}
	if p := waitNoProcs(t, u); len(p) > 0 {
		t.Errorf("after rm -f, the user still runs %v", describe(p))
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after rm -f", port)
	}

	// A port the host already uses fails the run with the reason, and leaves nothing
	// (checked at the end).
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r = u.berth(t, "run", "--rm", "-p", busy.Addr().String()+":80", "busybox", "echo")
	busy.Close()
	if r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("publishing a port in use: %v; want a failure saying so", r)
	}
	if p := waitNoProcs(t, u); len(p) > 0 {
		t.Errorf("after a failed start, the user still runs %v", describe(p))
	}

	// --network none: loopback only; host: the host's interfaces.
	out = u.ok(t, "run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
	if got := ifaces(t, out); len(got) != 1 || got[0] != "lo" {
		t.Errorf("--network none interfaces = %v, want [lo]", got)
	}
	// The host's own interface (other tests' veths come and go meanwhile): the one
	// with the default route.
	hostIf := ""
	routes, _ := os.ReadFile("/proc/net/route")
	for _, l := range strings.Split(string(routes), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "00000000" {
			hostIf = f[0]
			break
		}
	}
	if hostIf == "" {
		t.Fatal("the host has no default route to tell its interface by")
	}
	out = u.ok(t, "run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
	if got := ifaces(t, out); !strings.Contains(","+strings.Join(got, ",")+",", ","+hostIf+",") {
		t.Errorf("--network host interfaces = %v, want the host's %s among them", got, hostIf)
	}

	// What rootless cannot have fails with the reason.
	r = u.berth(t, "run", "--rm", "--network", "bridge", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "need root") {
		t.Errorf("--network bridge rootless: exit %d, %q; want 125 and a reason", r.code, r.stderr)
	}
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type != unix.CGROUP2_SUPER_MAGIC {
		r = u.berth(t, "run", "--rm", "--memory", "64m", "busybox", "true")
		if r.code != 125 || !strings.Contains(r.stderr, "cgroup v2") {
			t.Errorf("--memory rootless on a cgroup v1 host: exit %d, %q; want 125 and why", r.code, r.stderr)
		}
	}

	// A container's own files under other ids, in a directory the user cannot write,
	// and a named volume written as uid 1000: rm and volume rm remove them (inside the
	// user namespace).
	u.ok(t, "run", "--name", "own", "-v", "vol1:/vol", "busybox", "sh", "-c",
		"mkdir -p /home/x && echo f > /home/x/f && chown -R 1000:1000 /home/x && chmod 500 /home/x && "+
			"mkdir /vol/d && echo v > /vol/d/v && chown -R 1000:1000 /vol/d && chmod 500 /vol/d")
	u.ok(t, "rm", "own")
	u.ok(t, "volume", "rm", "vol1")

	// stop, start and exec work without a cgroup.
	u.ok(t, "run", "-d", "--name", "sl", "busybox", "sleep", "60")
	if out := u.ok(t, "exec", "sl", "cat", "/proc/1/cmdline"); !strings.Contains(out, "sleep") {
		t.Errorf("exec: pid 1 is %q, want sleep", out)
	}
	u.ok(t, "stop", "-t", "1", "sl")
	if p := userProcs(t, u, "sleep"); len(p) > 0 {
		t.Errorf("after stop, the container's sleep still runs: %v", describe(p))
	}
	u.ok(t, "rm", "sl")

	// Everything the user made goes with rm and rmi.
	u.ok(t, "rmi", "busybox")
	checkNothingLeft(t, u, store)
}

// userProcs lists the pids of processes running as the user or one of its subordinate
// ids (named comm when comm is not empty).
func userProcs(t *testing.T, u *rlUser, comm string) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil {
			continue
		}
		id := int(st.Uid)
		if id != u.uid && (u.subuid < 0 || id < u.subuid || id >= u.subuid+65536) {
			continue
		}
		// A zombie holds nothing but its pid; reaping it is its parent's (here pid 1's,
		// for the monitors that exited) business.
		if b, _ := os.ReadFile("/proc/" + e.Name() + "/stat"); strings.Contains(string(b), ") Z ") {
			continue
		}
		if comm != "" {
			b, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			if strings.TrimSpace(string(b)) != comm {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// waitNoProcs waits up to 5 s for the user's processes to be gone and returns those left.
func waitNoProcs(t *testing.T, u *rlUser) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(userProcs(t, u, "")) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return userProcs(t, u, "")
}

// checkNothingLeft: no process, mount, namespace holder, container, snapshot, layer or
// socket of the user's is left.
func checkNothingLeft(t *testing.T, u *rlUser, store string) {
	t.Helper()
	if p := waitNoProcs(t, u); len(p) > 0 {
		t.Errorf("processes of the user are left: %v", describe(p))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, u.home) || strings.Contains(l, u.runtimeDir) {
			t.Errorf("mount left: %s", l)
		}
	}
	for _, d := range []string{"containers", "snapshots", "image/layers", "volumes"} {
		ents, _ := os.ReadDir(filepath.Join(store, d))
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s/%s is left", d, e.Name())
			}
		}
	}
	// Nothing under the store or the runtime directory belongs to a subordinate id, and
	// the runtime directory holds no files (sockets, state) any more.
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != u.uid {
				t.Errorf("%s is owned by %d, not the user", p, st.Uid)
			}
		}
		return nil
	})
	filepath.Walk(u.runtimeDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("%s is left in the runtime directory", p)
		}
		return nil
	})
	if _, err := os.Stat(fmt.Sprintf("/tmp/berth-%d", u.uid)); err == nil {
		t.Errorf("/tmp/berth-%d was made though XDG_RUNTIME_DIR was set", u.uid)
	}
}

func describe(pids []int) []string {
	var out []string
	for _, p := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		out = append(out, fmt.Sprintf("%d %s", p, strings.ReplaceAll(string(b), "\x00", " ")))
	}
	return out
}

// TestRootlessNoRange: a user without a subordinate range gets a single-id map (root
// inside is the user, nothing else is mapped), and an image file owned by another id is
// given to root with a warning rather than failing the import.
func TestRootlessNoRange(t *testing.T) {
	u := newRLUser(t, false)
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), u.name+":") {
			t.Fatalf("useradd -K SUB_UID_COUNT=0 still gave %s a range in %s", u.name, f)
		}
	}
	// The busybox tarball plus a file owned by uid 1000.
	tarball := filepath.Join(u.home, "busybox.tar")
	in, err := os.Open(busyboxTar)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(hdr)
		io.Copy(tw, tr)
	}
	tw.WriteHeader(&tar.Header{Name: "./etc/svc.conf", Mode: 0o644, Uid: 1000, Gid: 1000, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("svc"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	os.Chmod(tarball, 0o644)

	r := u.berth(t, "import", "-c", `CMD ["sh"]`, tarball, "busybox")
	if r.code != 0 {
		t.Fatalf("import without a range: %v", r)
	}
	if !strings.Contains(r.stderr, "given to root") {
		t.Errorf("import of a file owned by uid 1000 without a range: no warning in %q", r.stderr)
	}
	shared := filepath.Join(u.home, "shared")
	os.Mkdir(shared, 0o755)
	os.Chown(shared, u.uid, u.gid)
	got := u.ok(t, "run", "--rm", "--network", "none", "-v", shared+":/data", "busybox", "sh", "-c",
		"cat /proc/self/uid_map; stat -c %u /etc/svc.conf; echo r > /data/by-root")
	fields := strings.Fields(got)
	if len(fields) != 4 || fields[0] != "0" || fields[1] != strconv.Itoa(u.uid) || fields[2] != "1" || fields[3] != "0" {
		t.Errorf("uid_map and owner of the uid-1000 file inside = %q, want \"0 %d 1\" and 0", got, u.uid)
	}
	if uid, _ := owner(t, filepath.Join(shared, "by-root")); uid != u.uid {
		t.Errorf("a file root wrote is owned by %d, want the user %d", uid, u.uid)
	}
	u.ok(t, "rmi", "busybox")
	checkNothingLeft(t, u, filepath.Join(u.home, ".local", "share", "berth"))
}

// startTerm runs berth as the user on a new pty, as the controlling terminal of a new
// session (see harness.startTerm).
func (u *rlUser) startTerm(t *testing.T, env []string, args ...string) *term {
	t.Helper()
	return startOnPty(t, u.command(env, args...))
}

// rootFS prints ROOTFS=<fstype of the container's />.
const rootFS = `awk '$5 == "/" { for (i = 7; $i != "-"; i++); print "ROOTFS=" $(i+1) }' /proc/self/mountinfo`

// snapshotDirs lists the store's snapshots.
func snapshotDirs(t *testing.T, store string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(store, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(store, "snapshots", e.Name()))
		}
	}
	return out
}

// TestRootlessOverlay: a rootless container's root is an overlay of the image's layers,
// mounted by its init (the C init, and the Go init of -it): a file written inside lands in
// the container's upper directory only, a file of a layer deleted inside is a whiteout
// there and back in the next container; the probe's answer is cached in the store with the
// kernel release and shown by info; with BERTH_ROOTLESS_OVERLAY=off containers get copies.
func TestRootlessOverlay(t *testing.T) {
	u := newRLUser(t, true)
	u.importBusybox(t)
	store := filepath.Join(u.home, ".local", "share", "berth")
	if out := u.ok(t, "info"); !strings.Contains(out, "Storage Driver: overlay (rootless)\n") {
		t.Errorf("info: %q; want Storage Driver: overlay (rootless)", out)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	if b, err := os.ReadFile(filepath.Join(store, "snapshots", ".rootless-driver")); err != nil || string(b) != "overlay "+release+"\n" {
		t.Errorf("the store's cached probe: %q, %v; want overlay and the kernel release", b, err)
	}
	layers, _ := filepath.Glob(filepath.Join(store, "image", "layers", "*", "diff"))
	if len(layers) != 1 {
		t.Fatalf("want the image's one layer, got %v", layers)
	}
	initLog := filepath.Join(u.home, "inits")
	logEnv := []string{"BERTH_INIT_LOG=" + initLog}

	r := u.berthEnv(t, logEnv, "run", "--name", "ov", "--network", "none", "busybox", "sh", "-c",
		rootFS+"; echo written > /written && rm /data/seed && test ! -e /data/seed && echo deleted")
	if r.code != 0 || r.stdout != "ROOTFS=overlay\ndeleted\n" {
		t.Fatalf("run: %v; want / an overlay and the layer's file deleted", r)
	}
	snaps := snapshotDirs(t, store)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v, want the container's one", snaps)
	}
	snap := snaps[0]
	if b, err := os.ReadFile(filepath.Join(snap, "upper", "written")); err != nil || string(b) != "written\n" {
		t.Errorf("the file written inside is not in the upper directory: %q, %v", b, err)
	}
	for _, p := range []string{filepath.Join(layers[0], "written"), filepath.Join(snap, "rootfs", "written")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the file written inside is at %s too", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(layers[0], "data", "seed")); err != nil || string(b) != "from the image\n" {
		t.Errorf("the layer's data/seed changed: %q, %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(snap, "upper", "data", "seed"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper/data/seed: mode %o rdev %d, %v; want overlay's whiteout", st.Mode, st.Rdev, err)
	}
	if out := u.ok(t, "run", "--rm", "--network", "none", "busybox", "cat", "/data/seed"); out != "from the image\n" {
		t.Errorf("a new container's /data/seed: %q; want the image's", out)
	}
	// The stopped container's overlay, which the user cannot mount, through a helper in
	// the user namespace: cp out of it and into it, export it.
	got := filepath.Join(u.home, "got")
	u.ok(t, "cp", "ov:/written", got)
	if b, err := os.ReadFile(got); err != nil || string(b) != "written\n" {
		t.Errorf("cp out of the stopped container: %q, %v", b, err)
	}
	in := filepath.Join(u.home, "in")
	os.WriteFile(in, []byte("copied in\n"), 0o644)
	os.Chown(in, u.uid, u.gid)
	u.ok(t, "cp", in, "ov:/incoming")
	if b, err := os.ReadFile(filepath.Join(snap, "upper", "incoming")); err != nil || string(b) != "copied in\n" {
		t.Errorf("cp into the stopped container: upper/incoming %q, %v", b, err)
	}
	exported := u.ok(t, "export", "ov")
	names := map[string]bool{}
	tr := tar.NewReader(strings.NewReader(exported))
	for {
		hdr, err := tr.Next()
		if err != nil {
			if err != io.EOF {
				t.Errorf("export: %v", err)
			}
			break
		}
		names[strings.TrimPrefix(hdr.Name, "./")] = true
	}
	if !names["written"] || !names["incoming"] || !names["bin/busybox"] || names["data/seed"] {
		t.Errorf("export of the stopped container has written %v, incoming %v, bin/busybox %v, data/seed %v; want all but the deleted seed",
			names["written"], names["incoming"], names["bin/busybox"], names["data/seed"])
	}
	u.ok(t, "rm", "ov")
	// The user is resolved in the container's /etc/passwd and /etc/group without mounting
	// the overlay: through the layers, or (a symlink on the way, here put in with cp) through
	// the helper's mount.
	if out := u.ok(t, "run", "--rm", "--network", "none", "-u", "svc", "busybox", "id"); out != "uid=1000(svc) gid=1000(svc)\n" {
		t.Errorf("-u svc: id %q", out)
	}
	u.ok(t, "create", "--name", "lk", "--network", "none", "-u", "pw", "busybox", "id")
	var tb strings.Builder
	tw := tar.NewWriter(&tb)
	// Owned by the user: cp as the user cannot give a symlink away (a limit of rootless cp).
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeSymlink, Linkname: "/data/pw", Uid: u.uid, Gid: u.gid})
	pw := "pw:x:1234:1234::/:/bin/sh\n"
	tw.WriteHeader(&tar.Header{Name: "data/pw", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(pw)), Uid: u.uid, Gid: u.gid})
	tw.Write([]byte(pw))
	tw.Close()
	cpIn := u.command(nil, "cp", "-", "lk:/")
	cpIn.Stdin = strings.NewReader(tb.String())
	if out, err := cpIn.CombinedOutput(); err != nil {
		t.Fatalf("cp - lk:/: %v: %s", err, out)
	}
	if out := u.ok(t, "start", "-a", "lk"); !strings.HasPrefix(out, "uid=1234(pw) gid=1234") {
		t.Errorf("-u pw with /etc/passwd a symlink: id %q", out)
	}
	u.ok(t, "rm", "lk")
	// A new named volume is filled from the image's directory it is mounted on.
	if out := u.ok(t, "run", "--rm", "--network", "none", "-v", "seeded:/data", "busybox", "cat", "/data/seed"); out != "from the image\n" {
		t.Errorf("a new volume on /data: seed %q; want the image's", out)
	}
	u.ok(t, "volume", "rm", "seeded")

	// -it: the console makes the runtime take the Go init; the overlay is there too.
	tm := u.startTerm(t, logEnv, "run", "-it", "--rm", "--name", "tty", "--network", "none", "busybox", "sh")
	tm.expect("# ", 10*time.Second)
	tm.typ(rootFS + "; exit\r")
	tm.expect("ROOTFS=overlay", 10*time.Second)
	if code := tm.wait(10 * time.Second); code != 0 {
		t.Errorf("run -it: exit %d; the screen shows:\n%s", code, tm.text())
	}
	notes, _ := os.ReadFile(initLog)
	if n := strings.Split(strings.TrimSpace(string(notes)), "\n"); len(n) != 2 || !strings.HasSuffix(n[0], " plan") ||
		!strings.HasSuffix(n[1], " go: process.terminal (console socket)") {
		t.Errorf("inits: %q; want the C init, then the Go init for the terminal", notes)
	}

	// Forced fallback: copies, not cached, said by info.
	off := []string{RootlessOverlayOff}
	if r := u.berthEnv(t, off, "info"); !strings.Contains(r.stdout, "Storage Driver: copy (rootless: overlay refused: BERTH_ROOTLESS_OVERLAY=off)\n") {
		t.Errorf("info with %s: %v", off[0], r)
	}
	r = u.berthEnv(t, off, "run", "--name", "cp", "--network", "none", "busybox", "sh", "-c", rootFS+"; cat /data/seed; echo c > /written")
	if r.code != 0 || strings.Contains(r.stdout, "ROOTFS=overlay") || !strings.Contains(r.stdout, "from the image") {
		t.Errorf("run with %s: %v; want a copy for root", off[0], r)
	}
	snaps = snapshotDirs(t, store)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v, want the container's one", snaps)
	}
	if _, err := os.Stat(filepath.Join(snaps[0], "upper")); err == nil {
		t.Errorf("the copy snapshot has an upper directory")
	}
	if b, err := os.ReadFile(filepath.Join(snaps[0], "rootfs", "written")); err != nil || string(b) != "c\n" {
		t.Errorf("the copy's rootfs/written: %q, %v", b, err)
	}
	u.ok(t, "rm", "cp")
	cache := filepath.Join(store, "snapshots", ".rootless-driver")
	if b, _ := os.ReadFile(cache); string(b) != "overlay "+release+"\n" {
		t.Errorf("the forced fallback was cached: %q", b)
	}
	// A refusal the probe recorded for this kernel is kept (containers get copies); one
	// recorded for another kernel is probed again.
	refused := "copy " + release + " mount overlay in a user namespace: invalid argument\n"
	os.WriteFile(cache, []byte(refused), 0o600)
	if out := u.ok(t, "info"); !strings.Contains(out, "Storage Driver: copy (rootless: overlay refused: mount overlay in a user namespace: invalid argument)\n") {
		t.Errorf("info with a cached refusal: %q", out)
	}
	if out := u.ok(t, "run", "--rm", "--network", "none", "busybox", "sh", "-c", rootFS); strings.Contains(out, "ROOTFS=overlay") {
		t.Errorf("with a cached refusal, / is %q; want a copy", out)
	}
	os.WriteFile(cache, []byte("copy 1.0.0-old mount overlay in a user namespace: invalid argument\n"), 0o600)
	if out := u.ok(t, "run", "--rm", "--network", "none", "busybox", "sh", "-c", rootFS); out != "ROOTFS=overlay\n" {
		t.Errorf("with a refusal cached for another kernel, / is %q; want a new probe and an overlay", out)
	}
	if b, _ := os.ReadFile(cache); string(b) != "overlay "+release+"\n" {
		t.Errorf("after probing again the cache holds %q", b)
	}
	u.ok(t, "rmi", "busybox")
	checkNothingLeft(t, u, store)
}

// RootlessOverlayOff forces the rootless engine's copy fallback (see README "Rootless").
const RootlessOverlayOff = "BERTH_ROOTLESS_OVERLAY=off"
