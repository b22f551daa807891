package cgroups

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDetectLayoutHost checks DetectLayout against the file system types themselves.
func TestDetectLayoutHost(t *testing.T) {
	l := hostLayout(t)
	magic, err := fsMagic("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var want Layout
	switch {
	case magic == cgroup2Magic:
		want = Unified
	case exists("/sys/fs/cgroup/unified") && mustMagic(t, "/sys/fs/cgroup/unified") == cgroup2Magic:
		want = Hybrid
	default:
		want = Legacy
	}
	if l != want {
		t.Fatalf("DetectLayout = %v; statfs of /sys/fs/cgroup says %v", l, want)
	}
	t.Logf("host layout: %v", l)
}

func mustMagic(t *testing.T, p string) int64 {
	m, err := fsMagic(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateAddProcPidsDestroy(t *testing.T) {
	m := newCgroup(t, nil)
	paths := m.Paths()
	l := hostLayout(t)
	if m.Layout() != l {
		t.Fatalf("Layout() = %v, host %v", m.Layout(), l)
	}
	switch l {
	case Unified:
		if len(paths) != 1 || paths[""] == "" {
			t.Fatalf("unified paths: %v", paths)
		}
	case Hybrid:
		for _, k := range []string{"", "cpu", "memory", "pids", "freezer", "devices"} {
			if paths[k] == "" {
				t.Fatalf("hybrid paths lack %q: %v", k, paths)
			}
		}
	}
	for k, d := range paths {
		if !strings.HasSuffix(d, "/berth/"+filepath.Base(d)) {
			t.Errorf("%s path %s is not under /berth", hierName(k), d)
		}
		magic := mustMagic(t, d)
		if st, err := os.Stat(d); err != nil || !st.IsDir() || (magic != cgroup1Magic && magic != cgroup2Magic) {
			t.Errorf("%s: %s is not a cgroup directory (%v, magic %#x)", hierName(k), d, err, magic)
		}
	}
	if d, ok := paths["cpuset"]; ok {
		if readTrim(t, d+"/cpuset.cpus") == "" || readTrim(t, d+"/cpuset.mems") == "" {
			t.Errorf("v1 cpuset.cpus/mems left empty in %s", d)
		}
	}

	p := startGated(t, "sleep 1000 & sleep 1000")
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	own := cgroupOf(t, p.pid())
	for k, d := range paths {
		mnt := filepath.Dir(filepath.Dir(d)) // .../berth/<id> -> mount
		if got := own[k]; mnt+got != d {
			t.Errorf("process %d is in %q in the %s hierarchy, want %s", p.pid(), got, hierName(k), d)
		}
	}
	// The background sleep is a child forked after the move: it must show up too, and a
	// process in a sub-cgroup must be listed (Pids is recursive).
	sub := filepath.Join(m.(*manager).procsDir(), "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if d, ok := paths["cpuset"]; ok && sub == d+"/sub" {
		if _, err := cpusetInherit(d, sub, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	q := startGated(t, "sleep 1000")
	if err := writeFile(sub, "cgroup.procs", strconv.Itoa(q.pid())); err != nil {
		t.Fatal(err)
	}
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if pids, err = m.Pids(); err != nil {
			t.Fatal(err)
		}
		if len(pids) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(pids) < 3 || !slices.Contains(pids, p.pid()) || !slices.Contains(pids, q.pid()) {
		t.Fatalf("Pids = %v, want the shell %d, its sleep child and %d in a sub-cgroup", pids, p.pid(), q.pid())
	}

	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, pr := range []*proc{p, q} {
		if sig := killedBy(pr.wait(t, 5*time.Second)); sig != syscall.SIGKILL {
			t.Errorf("process %d ended by signal %v, want SIGKILL", pr.pid(), sig)
		}
	}
	for k, d := range paths {
		if exists(d) {
			t.Errorf("%s directory %s still exists after Destroy", hierName(k), d)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatalf("second Destroy of a removed cgroup: %v", err)
	}
	if _, err := m.Pids(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Pids of a removed cgroup: %v, want ErrNotExist", err)
	}
}

func TestLoad(t *testing.T) {
	m := newCgroup(t, nil)
	p := startGated(t, "sleep 1000")
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	l, err := Load(m.Paths())
	if err != nil {
		t.Fatalf("Load(%v): %v", m.Paths(), err)
	}
	if l.Layout() != m.Layout() || !mapsEqual(l.Paths(), m.Paths()) {
		t.Fatalf("loaded %v %v, made %v %v", l.Layout(), l.Paths(), m.Layout(), m.Paths())
	}
	pids, err := l.Pids()
	if err != nil || !slices.Equal(pids, []int{p.pid()}) {
		t.Fatalf("loaded manager's Pids = %v, %v; want [%d]", pids, err, p.pid())
	}
	if err := l.Destroy(); err != nil {
		t.Fatalf("Destroy through the loaded manager: %v", err)
	}
	if sig := killedBy(p.wait(t, 5*time.Second)); sig != syscall.SIGKILL {
		t.Errorf("process ended by %v, want SIGKILL", sig)
	}
	for _, d := range m.Paths() {
		if exists(d) {
			t.Errorf("%s left after Destroy through Load", d)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestLoadRejects(t *testing.T) {
	needRoot(t)
	mt, err := readMounts()
	if err != nil {
		t.Fatal(err)
	}
	anyKey, anyMnt := "", ""
	if mt.layout != Unified {
		anyKey, anyMnt = mt.v1[0].controllers[0], mt.v1[0].mountpoint
	} else {
		anyMnt = mt.v2.mountpoint
	}
	for _, tc := range []struct {
		paths map[string]string
		want  string
	}{
		{map[string]string{anyKey: "berth/x"}, "not an absolute clean path"},
		{map[string]string{anyKey: anyMnt + "/berth/../x"}, "not an absolute clean path"},
		{map[string]string{anyKey: "/tmp/berth/x"}, "/tmp/berth/x is not inside"},
		{map[string]string{anyKey: anyMnt}, "is not inside"},
		{map[string]string{"net_cls": "/sys/fs/cgroup/net_cls/berth/x", anyKey: anyMnt + "/berth/x"}, "net_cls"},
	} {
		_, err := Load(tc.paths)
		wantErr(t, err, tc.want)
	}
	// No paths: a container recorded without a cgroup (rootless, none delegated).
	m, err := Load(nil)
	if err != nil {
		t.Fatalf("Load(nil): %v", err)
	}
	if err := m.Freeze(); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("Freeze of a container without a cgroup: %v, want ErrNoCgroup", err)
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("Destroy of a container without a cgroup: %v", err)
	}
}

func TestRelativePath(t *testing.T) {
	needRoot(t)
	own, err := ownCgroups()
	if err != nil {
		t.Fatal(err)
	}
	rel := testID(t) + "/ctr"
	m, err := New(Config{ID: "ignored", Path: rel})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the intermediate directory (the test's, not the
	// container's) goes after Destroy.
	t.Cleanup(func() {
		for _, d := range m.Paths() {
			if err := unix.Rmdir(filepath.Dir(d)); err != nil {
				t.Errorf("rmdir %s: %v", filepath.Dir(d), err)
			}
		}
	})
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	cleanupCgroup(t, m)
	mt, _ := readMounts()
	check := func(key, mnt string) {
		want := filepath.Join(mnt, own[key], rel)
		if got := m.Paths()[key]; got != want {
			t.Errorf("%s: path %s, want %s (own cgroup %s)", hierName(key), got, want, own[key])
		}
		if !exists(want) {
			t.Errorf("%s: %s not created", hierName(key), want)
		}
	}
	for _, h := range mt.v1 {
		check(h.controllers[0], h.mountpoint)
	}
	if mt.v2 != nil {
		check("", mt.v2.mountpoint)
	}
}

func TestRefusesRuntimeOwnCgroup(t *testing.T) {
	needRoot(t)
	own, err := ownCgroups()
	if err != nil {
		t.Fatal(err)
	}
	// Relative to the runtime's own cgroup: the root one is refused as the root, any
	// other as the runtime's.
	for _, p := range []string{".", "a/../"} {
		_, err := New(Config{ID: "x", Path: p})
		wantErr(t, err, `linux.cgroupsPath "`+p+`"`)
		if !strings.Contains(err.Error(), "holds the runtime itself") && !strings.Contains(err.Error(), "hierarchy root") {
			t.Fatalf("error %q gives neither reason", err)
		}
	}
	// An absolute path naming the runtime's own (non-root) cgroup is refused as well.
	for k, o := range own {
		if o != "/" && k != "name=systemd" {
			_, err := New(Config{ID: "x", Path: o})
			wantErr(t, err, "holds the runtime itself")
			break
		}
	}
}

func TestBadInputs(t *testing.T) {
	needRoot(t)
	_, err := New(Config{ID: "a/b"})
	wantErr(t, err, `container id "a/b"`)
	_, err = New(Config{ID: "x", Path: "system.slice:berth:x"})
	wantErr(t, err, "systemd cgroup driver is not supported")
	_, err = New(Config{ID: "x", Path: "/berth/../../x"})
	wantErr(t, err, "climbs above the hierarchy root")

	m := newCgroup(t, nil)
	wantErr(t, m.AddProc(-3), "invalid pid -3")
	// A pid that cannot exist: above the kernel's pid_max limit.
	wantErr(t, m.AddProc(1<<23), "add process 8388608", "no such process")
}

func TestCgroupFD(t *testing.T) {
	m := newCgroup(t, nil)
	fd, ok, err := m.CgroupFD()
	if err != nil {
		t.Fatal(err)
	}
	if m.Layout() != Unified {
		if ok {
			t.Fatalf("CgroupFD ok on %v", m.Layout())
		}
		return
	}
	defer unix.Close(fd)
	if !ok {
		t.Fatal("CgroupFD not ok on a unified host")
	}
	cmd := exec.Command(busybox(t), "cat", "/proc/self/cgroup")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("clone3(CLONE_INTO_CGROUP): %v", err)
	}
	want := "0::" + strings.TrimPrefix(m.Paths()[""], m.(*manager).v2mnt)
	if strings.TrimSpace(string(out)) != want {
		t.Fatalf("child cgroup %q, want %q", out, want)
	}
}

func TestKillSignal(t *testing.T) {
	m := newCgroup(t, nil)
	p := startGated(t, "sleep 1000")
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := killedBy(p.wait(t, 5*time.Second)); sig != syscall.SIGTERM {
		t.Fatalf("process ended by %v, want SIGTERM", sig)
	}
}

// A single-threaded process that writes "0" into each of TasksFiles is in the cgroup in
// every v1 hierarchy: the init's own join (runtime.lateCgroupJoin). UnifiedFD opens the
// cgroup2 part of a hybrid layout, and nothing elsewhere.
func TestTasksFilesSelfJoin(t *testing.T) {
	m := newCgroup(t, nil)
	files := m.TasksFiles()
	l := hostLayout(t)
	if l == Unified {
		if len(files) != 0 {
			t.Fatalf("TasksFiles on cgroup v2: %v", files)
		}
		t.Skip("cgroup v2 host: the init is born in its cgroup (CLONE_INTO_CGROUP), nothing joins by tasks")
	}
	fd, ok, err := m.UnifiedFD()
	if err != nil || ok != (l == Hybrid) {
		t.Fatalf("UnifiedFD on %v: ok %v, %v", l, ok, err)
	}
	if ok {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("UnifiedFD gave no directory: %v", err)
		}
		unix.Close(fd)
	}
	// Before any Create, UnifiedFD makes the cgroup2 directory itself.
	fresh, err := New(Config{ID: testID(t)})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCgroup(t, fresh)
	if fd, ok, err := fresh.UnifiedFD(); err != nil || ok != (l == Hybrid) {
		t.Fatalf("UnifiedFD of a cgroup not made yet on %v: ok %v, %v", l, ok, err)
	} else if ok {
		unix.Close(fd)
		if st, err := os.Stat(fresh.Paths()[""]); err != nil || !st.IsDir() {
			t.Errorf("UnifiedFD did not make %s: %v", fresh.Paths()[""], err)
		}
	}
	paths := m.Paths()
	if want := len(paths); l == Hybrid && len(files) != want-1 || l == Legacy && len(files) != want {
		t.Fatalf("TasksFiles %v for the paths %v", files, paths)
	}
	// busybox sh is one thread: it moves itself, then reports where it is (cat inherits).
	script := "for f in " + strings.Join(files, " ") + "; do echo 0 > $f || exit 1; done; echo joined; read x; cat /proc/$$/cgroup"
	cmd := exec.Command(busybox(t), "sh", "-c", script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	buf := make([]byte, 7)
	if _, err := pr.Read(buf); err != nil || string(buf) != "joined\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the self-join failed: %q %v", buf, err)
	}
	if l == Hybrid {
		// The cgroup2 part: the init is born there (UnifiedFD); here a move by pid.
		if err := writeFile(paths[""], "cgroup.procs", strconv.Itoa(cmd.Process.Pid)); err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
	b := make([]byte, 4096)
	for {
		n, err := pr.Read(b)
		out.Write(b[:n])
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 {
			for _, c := range strings.Split(f[1], ",") {
				got[c] = f[2]
			}
		}
	}
	for k, d := range paths {
		want := "/berth/" + filepath.Base(d)
		if got[k] != want {
			t.Errorf("the %s hierarchy: the process was in %q, want %s\n%s", hierName(k), got[k], want, out.String())
		}
	}
}
