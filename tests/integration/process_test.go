package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The pty master arrives over --console-socket as containerd and conmon expect, and the
// container's program has it as its controlling terminal.
func TestConsoleSocket(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo tty=$(tty); stty size; read line; echo echoed=$line`)
	b.Spec.Process.Terminal = true
	b.Spec.Process.ConsoleSize = &specs.Box{Height: 33, Width: 101}
	b.save(t)
	sock, masterCh := consoleListener(t)
	r.allowGoInit("tty") // the console is set up by the Go init
	r.mustOK("create", "-b", b.Dir, "--console-socket", sock, "tty")
	var master *os.File
	select {
	case master = <-masterCh:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master arrived on the console socket")
	}
	if master == nil {
		t.Fatal("receiving the pty master failed")
	}
	defer master.Close()
	r.mustOK("start", "tty")
	if _, err := master.Write([]byte("typed-in\n")); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }()
	waitFor(t, "the program to finish", func() bool { return r.state("tty").Status == runtime.StatusStopped })
	master.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-done
	got := out.String()
	for _, want := range []string{"tty=/dev/pts/0", "33 101", "echoed=typed-in"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q lacks %q", got, want)
		}
	}
}

// consoleListener listens on a console socket and delivers the first pty master sent to it
// (nil on failure).
func consoleListener(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	masterCh := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			masterCh <- nil
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			masterCh <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		masterCh <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return sock, masterCh
}

// readAll reads a pty master until the slave side is gone (EIO) or 5 s pass.
func readAll(t *testing.T, master *os.File) string {
	var out strings.Builder
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		master.SetReadDeadline(time.Now())
		<-done
	}
	return out.String()
}

func TestPreserveFDs(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `cat <&3; echo; ls /proc/self/fd | tr '\n' ' '`)
	b.save(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("through-fd-3"))
	pw.Close()
	cmd := exec.Command(runtimeBin, "--root", r.root, "run", "--preserve-fds", "1", "-b", b.Dir, "fds")
	cmd.ExtraFiles = []*os.File{pr}
	out, err := cmd.CombinedOutput()
	pr.Close()
	if err != nil {
		t.Fatalf("run --preserve-fds 1: %v: %s", err, out)
	}
	lines := strings.SplitN(string(out), "\n", 2)
	if lines[0] != "through-fd-3" {
		t.Errorf("fd 3 carried %q", lines[0])
	}
	// 0-2, the preserved 3, and the one ls opens for /proc/self/fd: nothing of the runtime.
	if fds := strings.Fields(lines[1]); len(fds) > 5 {
		t.Errorf("the container holds descriptors %v; the runtime leaked some", fds)
	}
}

func TestOOMScoreAdjAnnotationsAndLog(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `cat /proc/self/oom_score_adj; sleep 60`)
	adj := 500
	b.Spec.Process.OOMScoreAdj = &adj
	b.Spec.Annotations = map[string]string{"org.example.key": "value"}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "oom")
	st := r.state("oom")
	if st.Annotations["org.example.key"] != "value" {
		t.Errorf("state annotations %v", st.Annotations)
	}
	got, _ := os.ReadFile("/proc/" + itoa(st.Pid) + "/oom_score_adj")
	if strings.TrimSpace(string(got)) != "500" {
		t.Errorf("oom_score_adj of the container is %q, want 500", got)
	}
	// --log --log-format json: one JSON object per line with level, msg and time.
	logFile := filepath.Join(t.TempDir(), "log.json")
	_, _, code := r.exec("--log", logFile, "--log-format", "json", "start", "nosuch")
	if code != 1 {
		t.Fatalf("start nosuch: exit %d", code)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var entry map[string]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(raw))), &entry); err != nil {
		t.Fatalf("log line %q is not JSON: %v", raw, err)
	}
	if entry["level"] != "error" || !strings.Contains(entry["msg"], "nosuch") || entry["time"] == "" {
		t.Errorf("log entry %v", entry)
	}
}

func TestRootfsPropagationAndCgroupView(t *testing.T) {
	r := newRT(t)
	layout, err := cgroups.DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	// On v1 each hierarchy is a directory of the view; on v2 the view is the one hierarchy.
	pidsDir, want := "/sys/fs/cgroup/pids", []string{"memory", "pids", "cpu", "freezer"}
	if layout == cgroups.Unified {
		pidsDir, want = "/sys/fs/cgroup", []string{"cgroup.procs", "memory.max", "pids.max", "cgroup.freeze"}
	}
	b := newBundle(t, `awk '$5=="/" {for (i=7;i<NF && $i!="-";i++) printf "%s ", $i; print ""}' /proc/self/mountinfo
		echo cg=$(ls /sys/fs/cgroup | tr '\n' ' ')
		echo pids=$(cat `+pidsDir+`/cgroup.procs 2>/dev/null | wc -l)
		touch `+pidsDir+`/x 2>/dev/null && echo cgwrite=ok || echo cgwrite=denied`)
	b.Spec.Linux.RootfsPropagation = "private"
	out := r.mustRun(b, "prop")
	first := strings.SplitN(out, "\n", 2)[0]
	if strings.Contains(first, "shared:") || strings.Contains(first, "master:") {
		t.Errorf("rootfsPropagation private: / has propagation %q", first)
	}
	kv := lines(out)
	for _, h := range want {
		if !strings.Contains(kv["cg"], h) {
			t.Errorf("the container's /sys/fs/cgroup (%s) %q lacks %s", layout, kv["cg"], h)
		}
	}
	if kv["pids"] == "0" {
		t.Error("the container's pids hierarchy does not show its own processes")
	}
	if kv["cgwrite"] != "denied" {
		t.Error("the cgroup view is writable")
	}
}

// `run` of a process.terminal config without --console-socket gives the program the
// caller's own terminal, as `runc run` does: it reads the config once to know that, and
// create takes the spec from it.
func TestRunOnCallersTerminal(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo tty=$(tty); read line; echo echoed=$line; exit 3`)
	b.Spec.Process.Terminal = true
	b.save(t)
	r.allowGoInit("own-tty") // the console is set up by the Go init
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runtimeBin, "--root", r.root, "run", "-b", b.Dir, "own-tty")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	var mu sync.Mutex
	var screen []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf) // ends with EIO once run and the container are gone
			mu.Lock()
			screen = append(screen, buf[:n]...)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func() string { mu.Lock(); defer mu.Unlock(); return string(screen) }
	// Typed once the program shows it runs: run's raw mode would otherwise eat it.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if strings.Contains(shown(), "tty=") {
			ptmx.Write([]byte("hello\r"))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = cmd.Wait()
	<-done
	out := shown()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("run on the caller's terminal: %v, want exit status 3; screen %q", err, out)
	}
	if !strings.Contains(out, "tty=/dev/pts/") || !strings.Contains(out, "echoed=hello") {
		t.Errorf("screen %q: want the container's own pty and the typed line echoed", out)
	}
}

// The init is in the container's cgroup in every hierarchy the runtime recorded, whether it
// joined the v1 ones itself (the C init, lateCgroupJoin) or was moved there (the Go init,
// which has threads). Read from the host, with the program already running.
func TestInitInItsCgroupEverywhere(t *testing.T) {
	r := newRT(t)
	for _, c := range []struct {
		id     string
		goInit bool
	}{{"cg-plan", false}, {"cg-go", true}} {
		b := newBundle(t, "sleep 1000")
		if c.goInit {
			b.Spec.Annotations = map[string]string{"org.berth.init": "go"}
			r.allowGoInit(c.id)
		}
		b.save(t)
		r.mustOK("run", "--detach", "--bundle", b.Dir, c.id)
		st := r.state(c.id)
		if st.Pid <= 0 {
			t.Fatalf("%s: no pid in %+v", c.id, st)
		}
		var rec struct {
			CgroupPaths map[string]string `json:"cgroupPaths"`
		}
		raw, err := os.ReadFile(filepath.Join(r.root, c.id, "state.json"))
		if err != nil || json.Unmarshal(raw, &rec) != nil || len(rec.CgroupPaths) == 0 {
			t.Fatalf("%s: the record's cgroup paths: %v %s", c.id, err, raw)
		}
		own, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
			if f := strings.SplitN(line, ":", 3); len(f) == 3 {
				for _, k := range strings.Split(f[1], ",") {
					in[k], in[strings.TrimPrefix(k, "name=")] = f[2], f[2]
				}
			}
		}
		for k, dir := range rec.CgroupPaths {
			if got := in[k]; got == "" || !strings.HasSuffix(dir, got) {
				t.Errorf("%s: in the %q hierarchy the init is in %q; its cgroup is %s\n%s", c.id, k, got, dir, own)
			}
		}
		if how := r.lastInit(c.id); (how == "plan") == c.goInit {
			t.Errorf("%s: init %q", c.id, how)
		}
	}
}
