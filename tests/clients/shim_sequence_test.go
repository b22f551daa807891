package clients

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// shimRT runs berth-runtime with the global flags containerd's runc shim and conmon give:
// --root, --log and --log-format json.
type shimRT struct {
	t         *testing.T
	root, log string
}

func newShimRT(t *testing.T) *shimRT {
	dir := t.TempDir()
	s := &shimRT{t: t, root: filepath.Join(dir, "root"), log: filepath.Join(dir, "log.json")}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(s.root)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("container %s left in the state root", e.Name())
				exec.Command(runtimeBin, "--root", s.root, "delete", "--force", e.Name()).Run()
			}
		}
	})
	return s
}

func (s *shimRT) cmd(args ...string) *exec.Cmd {
	return exec.Command(runtimeBin, append([]string{"--root", s.root, "--log", s.log, "--log-format", "json"}, args...)...)
}

// ok runs a command that must succeed and returns its stdout.
func (s *shimRT) ok(stdin string, args ...string) string {
	s.t.Helper()
	c := s.cmd(args...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	// Files, not pipes: a created container and an exec'd process keep the runtime's stdio,
	// and reading a pipe to its end would wait for them.
	dir := s.t.TempDir()
	outF, err1 := os.Create(filepath.Join(dir, "stdout"))
	errF, err2 := os.Create(filepath.Join(dir, "stderr"))
	if err1 != nil || err2 != nil {
		s.t.Fatal(err1, err2)
	}
	defer outF.Close()
	defer errF.Close()
	c.Stdout, c.Stderr = outF, errF
	err := c.Run()
	out, _ := os.ReadFile(outF.Name())
	if err != nil {
		stderr, _ := os.ReadFile(errF.Name())
		s.t.Fatalf("berth-runtime %v: %v: %s", args, err, stderr)
	}
	return string(out)
}

func (s *shimRT) state(id string) runtime.State {
	s.t.Helper()
	var st runtime.State
	if err := json.Unmarshal([]byte(s.ok("", "state", id)), &st); err != nil {
		s.t.Fatalf("state %s: %v", id, err)
	}
	return st
}

// shimBundle is a busybox bundle whose process runs script.
func shimBundle(t *testing.T, script string) (string, *specs.Spec) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(busyboxBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "sleep", "cat", "tty", "true"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	spec := runtime.DefaultSpec(false)
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", script}
	spec.Root.Readonly = false
	return dir, spec
}

func saveSpec(t *testing.T, dir string, spec *specs.Spec) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The whole life of a container as containerd's runc shim drives it: create with the
// shim's flags and stdio pipes and one preserved descriptor, start, state, ps --format json,
// update --resources -, pause, resume, exec --process --detach, kill ID <number>,
// kill --all, delete --force; and a failure reported in --log as JSON.
func TestShimCommandSequence(t *testing.T) {
	s := newShimRT(t)
	dir, spec := shimBundle(t, `echo started; echo on-stderr >&2; echo via-fd3 >&3; exec 3>&-; trap 'echo got-15' TERM; while true; do sleep 0.05; done`)
	saveSpec(t, dir, spec)
	const id = "shim-seq"

	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	fd3R, fd3W, _ := os.Pipe()
	defer outR.Close()
	defer errR.Close()
	defer fd3R.Close()
	pidFile := filepath.Join(dir, "init.pid")
	c := s.cmd("create", "--bundle", dir, "--pid-file", pidFile, "--no-pivot", "--no-new-keyring", "--preserve-fds", "1", id)
	c.Stdout, c.Stderr = outW, errW
	c.ExtraFiles = []*os.File{fd3W}
	err := c.Run()
	outW.Close()
	errW.Close()
	fd3W.Close()
	if err != nil {
		b, _ := os.ReadFile(s.log)
		t.Fatalf("create: %v; --log: %s", err, b)
	}
	t.Cleanup(func() { s.cmd("delete", "--force", id).Run() })
	st := s.state(id)
	if pf, _ := os.ReadFile(pidFile); st.Status != runtime.StatusCreated || strings.TrimSpace(string(pf)) != strconv.Itoa(st.Pid) {
		t.Fatalf("after create: %+v, --pid-file %q", st, pf)
	}

	s.ok("", "start", id)
	stdout := bufio.NewReader(outR)
	if l, _ := stdout.ReadString('\n'); l != "started\n" {
		t.Fatalf("the container's stdout pipe: %q", l)
	}
	if l, _ := bufio.NewReader(errR).ReadString('\n'); l != "on-stderr\n" {
		t.Errorf("the container's stderr pipe: %q", l)
	}
	if b, _ := readAll(fd3R, 5*time.Second); string(b) != "via-fd3\n" {
		t.Errorf("the preserved descriptor 3: %q", b)
	}
	if st := s.state(id); st.Status != runtime.StatusRunning {
		t.Fatalf("after start: %s", st.Status)
	}

	var pids []int
	if err := json.Unmarshal([]byte(s.ok("", "ps", "--format", "json", id)), &pids); err != nil || !contains(pids, st.Pid) {
		t.Errorf("ps --format json: %v (%v), want the init %d among them", pids, err, st.Pid)
	}

	s.ok(`{"memory":{"limit":67108864},"pids":{"limit":50}}`, "update", "--resources", "-", id)
	var rec runtime.Record
	b, _ := os.ReadFile(filepath.Join(s.root, id, "state.json"))
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("the container's record: %v", err)
	}
	for file, want := range map[string]string{"memory/memory.limit_in_bytes": "67108864", "pids/pids.max": "50"} {
		ctl, name, _ := strings.Cut(file, "/")
		p, ok := rec.CgroupPaths[ctl]
		if !ok {
			continue // not on this host's layout
		}
		if got, _ := os.ReadFile(filepath.Join(p, name)); strings.TrimSpace(string(got)) != want {
			t.Errorf("after update --resources -: %s/%s is %q, want %s", p, name, got, want)
		}
	}

	s.ok("", "pause", id)
	if st := s.state(id); st.Status != runtime.StatusPaused {
		t.Errorf("after pause: %s", st.Status)
	}
	s.ok("", "resume", id)
	if st := s.state(id); st.Status != runtime.StatusRunning {
		t.Errorf("after resume: %s", st.Status)
	}

	proc := *spec.Process
	proc.Args = []string{"sleep", "1000"}
	pj, _ := json.Marshal(proc)
	procFile := filepath.Join(dir, "exec.json")
	os.WriteFile(procFile, pj, 0o644)
	execPid := filepath.Join(dir, "exec.pid")
	s.ok("", "exec", "--process", procFile, "--detach", "--pid-file", execPid, id)
	pb, _ := os.ReadFile(execPid)
	ep, _ := strconv.Atoi(strings.TrimSpace(string(pb)))
	if ep <= 0 {
		t.Fatalf("exec --detach --pid-file: %q", pb)
	}
	if err := json.Unmarshal([]byte(s.ok("", "ps", "--format", "json", id)), &pids); err != nil || !contains(pids, ep) {
		t.Errorf("ps --format json after exec: %v, want the exec'd %d among them", pids, ep)
	}

	s.ok("", "kill", id, "15") // the shim sends the signal as a number
	if l, _ := stdout.ReadString('\n'); l != "got-15\n" {
		t.Errorf("after kill %s 15: the container printed %q", id, l)
	}
	s.ok("", "kill", "--all", id, "9")
	deadline := time.Now().Add(10 * time.Second)
	for s.state(id).Status != runtime.StatusStopped && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.state(id); st.Status != runtime.StatusStopped {
		t.Fatalf("after kill --all 9: %s", st.Status)
	}
	if err := unix.Kill(ep, 0); err == nil && !zombieOrGone(ep) {
		t.Errorf("the exec'd process %d survived kill --all", ep)
	}
	s.ok("", "delete", "--force", id)
	if err := s.cmd("state", id).Run(); err == nil {
		t.Errorf("state after delete --force still answers")
	}
	for _, p := range rec.CgroupPaths {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s left after delete --force", p)
		}
	}

	// A failure goes to --log as a JSON line with level error, where the shim and conmon read
	// the message they show their user.
	os.Truncate(s.log, 0)
	if err := s.cmd("start", "no-such-container").Run(); err == nil {
		t.Fatal("start of a container that does not exist succeeded")
	}
	lb, _ := os.ReadFile(s.log)
	var entry struct{ Level, Msg, Time string }
	if err := json.Unmarshal(bytes.TrimSpace(lb), &entry); err != nil || entry.Level != "error" ||
		!strings.Contains(entry.Msg, "no-such-container") || entry.Time == "" {
		t.Errorf("--log --log-format json after a failure: %q (%v); want one JSON line with level error naming the container", lb, err)
	}
}

// conmon and the shim give a terminal container a --console-socket: the pty master arrives
// there, and the container's output comes out of it.
func TestShimConsoleSocket(t *testing.T) {
	s := newShimRT(t)
	dir, spec := shimBundle(t, `tty; echo tty-ok`)
	spec.Process.Terminal = true
	saveSpec(t, dir, spec)
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	masters := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			close(masters)
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 128), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			close(masters)
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			close(masters)
			return
		}
		masters <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	const id = "shim-tty"
	s.ok("", "create", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"), "--console-socket", sock, id)
	t.Cleanup(func() { s.cmd("delete", "--force", id).Run() })
	var master *os.File
	select {
	case m, ok := <-masters:
		if !ok {
			t.Fatal("no pty master came through the console socket")
		}
		master = m
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master came through the console socket")
	}
	defer master.Close()
	s.ok("", "start", id)
	out, _ := readAll(master, 10*time.Second)
	if !strings.Contains(string(out), "/dev/pts/0") || !strings.Contains(string(out), "tty-ok") {
		t.Errorf("the pty's output: %q, want /dev/pts/0 and tty-ok", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.state(id).Status != runtime.StatusStopped && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.ok("", "delete", id)
}

// readAll reads r until end of file (or EIO, as a pty master gives once the slave is
// closed) or the time limit.
func readAll(f *os.File, limit time.Duration) ([]byte, error) {
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, e := f.Read(buf)
			out = append(out, buf[:n]...)
			if e != nil {
				if !strings.Contains(e.Error(), "input/output error") && e.Error() != "EOF" {
					err = e
				}
				return
			}
		}
	}()
	select {
	case <-done:
		return out, err
	case <-time.After(limit):
		// The reader goroutine may stay blocked; its data is not looked at.
		f.SetReadDeadline(time.Now())
		return nil, fmt.Errorf("read %s: nothing final after %v", f.Name(), limit)
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func zombieOrGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}
