package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A detached container: run -d prints its id, ps shows it up, logs has its output, stop
// stops it (the stop signal, then SIGKILL after -t), rm removes it.
func TestDetachedLifecycle(t *testing.T) {
	h := newHarness(t)
	id := strings.TrimSpace(h.ok("run", "-d", "--name", "web", "busybox", "sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; echo oops >&2; while true; do sleep 0.1; done"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("run -d printed %q, want a 64-hex id", id)
	}
	ps := h.ok("ps")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID   IMAGE") {
		t.Fatalf("ps:\n%s", ps)
	}
	for _, want := range []string{id[:12], "busybox", `"sh -c trap 'echo go…"`, "Up ", "web"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("ps line %q lacks %q", lines[1], want)
		}
	}
	if got := strings.TrimSpace(h.ok("ps", "-q")); got != id[:12] {
		t.Errorf("ps -q = %q, want %q", got, id[:12])
	}
	eventually(t, 5*time.Second, "the output in the logs", func() bool { return strings.Contains(h.ok("logs", "web"), "started") })
	r := h.run("logs", "web")
	if r.stdout != "started\n" || r.stderr != "oops\n" {
		t.Errorf("logs: stdout %q stderr %q, want \"started\\n\" and \"oops\\n\"", r.stdout, r.stderr)
	}
	// Docker's json-file format, in the file inspect names.
	logPath := h.inspect("web", "{{.LogPath}}")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\{"log":"started\\n","stream":"stdout","time":"\d{4}-\d\d-\d\dT[0-9:.]+Z"\}$`).Match(b) {
		t.Errorf("log file %s is not json-file:\n%s", logPath, b)
	}
	if st := h.state("web"); st.Status != "running" || !st.Running || st.Pid <= 0 {
		t.Fatalf("state while running: %+v", st)
	}
	start := time.Now()
	if out := h.ok("stop", "-t", "5", "web"); out != "web\n" {
		t.Errorf("stop printed %q", out)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stop took %v although the container exits on TERM", d)
	}
	st := h.state("web")
	if st.Status != "exited" || st.ExitCode != 7 || st.Running {
		t.Errorf("state after stop: %+v, want exited with code 7", st)
	}
	if !strings.Contains(h.ok("logs", "web"), "got TERM") {
		t.Errorf("the container did not log its TERM handler")
	}
	if ps := h.ok("ps"); strings.Contains(ps, id[:12]) {
		t.Errorf("ps (running only) still lists the stopped container:\n%s", ps)
	}
	if ps := h.ok("ps", "-a"); !regexp.MustCompile(`Exited \(7\) .* ago`).MatchString(ps) {
		t.Errorf("ps -a:\n%s", ps)
	}
	// Stopped, it can start again; its logs accumulate.
	h.ok("start", "web")
	eventually(t, 5*time.Second, "the second run's output", func() bool { return strings.Count(h.ok("logs", "web"), "started") == 2 })
	// A container that ignores SIGTERM is killed after the timeout.
	h.ok("run", "-d", "--name", "stubborn", "busybox", "sleep", "1000")
	// As with Docker, run -d returns once the container is started, which can be a moment
	// before its init has exec'd sleep; a TERM before that ends the init, not sleep.
	eventually(t, 5*time.Second, "sleep running as the container's init", func() bool {
		comm, err := os.ReadFile("/proc/" + strings.TrimSpace(h.ok("inspect", "-f", "{{.State.Pid}}", "stubborn")) + "/comm")
		return err == nil && string(comm) == "sleep\n"
	})
	start = time.Now()
	h.ok("stop", "-t", "1", "stubborn")
	if d := time.Since(start); d < time.Second || d > 6*time.Second {
		t.Errorf("stop -t 1 of a container ignoring TERM took %v", d)
	}
	if st := h.state("stubborn"); st.ExitCode != 137 {
		t.Errorf("killed container exit code %d, want 137", st.ExitCode)
	}
	r = h.run("rm", "web")
	if r.code == 0 || !strings.Contains(r.stderr, "container is running") {
		t.Errorf("rm of a running container: %s", r)
	}
	h.ok("rm", "-f", "web")
	h.ok("rm", "stubborn")
	if out := h.ok("ps", "-aq"); out != "" {
		t.Errorf("ps -aq after rm: %q", out)
	}
	if _, err := os.Stat(filepath.Dir(logPath)); !os.IsNotExist(err) {
		t.Errorf("the container's directory is still there: %v", err)
	}
}

// A foreground container: its output and exit status are the command's; -i feeds stdin.
func TestForeground(t *testing.T) {
	h := newHarness(t)
	r := h.run("run", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("run: %s", r)
	}
	if st := h.state("fg"); st.Status != "exited" || st.ExitCode != 3 {
		t.Errorf("state: %+v", st)
	}
	r = h.runIn("hello\nworld\n", "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; echo done")
	if r.code != 0 || r.stdout != "HELLO\nWORLD\ndone\n" {
		t.Errorf("run -i: %s", r)
	}
	// Without -i the container's stdin is empty.
	r = h.runIn("ignored\n", "run", "--rm", "busybox", "sh", "-c", "cat; echo end")
	if r.code != 0 || r.stdout != "end\n" {
		t.Errorf("run without -i: %s", r)
	}
	// A container killed by a signal: 128+N, as Docker reports it.
	h.ok("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
	syscall.Kill(h.state("victim").Pid, syscall.SIGKILL)
	if code := strings.TrimSpace(h.ok("wait", "victim")); code != "137" {
		t.Errorf("wait for a container killed by SIGKILL: %s, want 137", code)
	}
	// Options reach the process: env, workdir, user, hostname, entrypoint.
	r = h.run("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "svc", "-h", "box", "--entrypoint", "sh", "busybox",
		"-c", `echo "$A $(pwd) $(id -u):$(id -g) $(hostname) $HOSTNAME"`)
	if r.code != 0 || r.stdout != "1 /tmp 1000:1000 box box\n" {
		t.Errorf("run with options: %s", r)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\n"), 0o644)
	r = h.run("run", "--rm", "--env-file", envFile, "busybox", "sh", "-c", "echo $FROM_FILE")
	if r.stdout != "yes\n" {
		t.Errorf("--env-file: %s", r)
	}
}

// A foreground run forwards the signals it gets to the container's process (Docker's
// --sig-proxy), and lives on until the container exits; with --sig-proxy=false a signal
// ends the command alone.
func TestSigProxyRun(t *testing.T) {
	h := newHarness(t)
	script := `trap "echo got USR1" USR1; trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done`
	start := func(args ...string) (*exec.Cmd, *bufio.Reader) {
		cmd := h.cmd(append(args, "busybox", "sh", "-c", script)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewReader(out)
	}
	expect := func(r *bufio.Reader, want string) {
		t.Helper()
		line := make(chan string, 1)
		go func() {
			s, _ := r.ReadString('\n')
			line <- s
		}()
		select {
		case s := <-line:
			if s != want+"\n" {
				t.Fatalf("the container printed %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the container did not print %q", want)
		}
	}
	cmd, out := start("run", "--rm", "--name", "proxied")
	expect(out, "ready")
	cmd.Process.Signal(syscall.SIGUSR1)
	expect(out, "got USR1")
	cmd.Process.Signal(syscall.SIGTERM)
	expect(out, "got TERM")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("run with its container ended by the forwarded TERM: %v, want exit 7", err)
	}

	cmd, out = start("run", "--sig-proxy=false", "--name", "unproxied")
	expect(out, "ready")
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("run --sig-proxy=false: %v, want death by SIGTERM", err)
	}
	if st := h.state("unproxied"); st.Status != "running" {
		t.Errorf("without the proxy the container should run on; it is %s", st.Status)
	}
	h.ok("rm", "-f", "unproxied")
}

// -it through a real pty: type a command and read the screen, detach with ctrl-p ctrl-q,
// see it still running, attach back, and exit.
func TestInteractiveTTY(t *testing.T) {
	h := newHarness(t)
	tm := h.startTerm("run", "-it", "--name", "shell", "busybox", "sh")
	tm.expect("# ", 10*time.Second)
	tm.typ("echo hello $((6*7)); tty\r")
	tm.expect("hello 42", 5*time.Second)
	tm.expect("/dev/pts/0", 5*time.Second)
	// The window size reached the container's terminal.
	tm.typ("stty size\r")
	tm.expect("24 80", 5*time.Second)
	tm.typ("\x10\x11") // ctrl-p ctrl-q
	if code := tm.wait(5 * time.Second); code != 0 {
		t.Fatalf("detach: berth exited %d; screen:\n%s", code, tm.text())
	}
	if st := h.state("shell"); st.Status != "running" {
		t.Fatalf("after detach the container is %s", st.Status)
	}
	tm2 := h.startTerm("attach", "shell")
	tm2.typ("echo back $((1+1))\r")
	tm2.expect("back 2", 5*time.Second)
	tm2.typ("exit 5\r")
	if code := tm2.wait(10 * time.Second); code != 5 {
		t.Errorf("attach: exit code %d, want 5; screen:\n%s", code, tm2.text())
	}
	if st := h.state("shell"); st.Status != "exited" || st.ExitCode != 5 {
		t.Errorf("state: %+v", st)
	}
	// What was typed and shown is in the logs (a tty's single stream).
	if logs := h.ok("logs", "shell"); !strings.Contains(logs, "hello 42") || !strings.Contains(logs, "back 2") {
		t.Errorf("logs of the tty container:\n%s", logs)
	}
	// -t without a terminal on stdin is refused, as on Docker.
	r := h.runIn("x", "run", "-it", "--rm", "busybox", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "the input device is not a TTY") {
		t.Errorf("run -it without a tty: %s", r)
	}
}

// --rm leaves nothing: no container, snapshot, runtime record, cgroup, mount, network
// attachment or anonymous volume.
func TestRmLeavesNothing(t *testing.T) {
	h := newHarness(t)
	r := h.run("run", "--rm", "--name", "gone", "-v", "/anon", "busybox", "sh", "-c", "echo hi > /anon/f; cat /anon/f")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run --rm: %s", r)
	}
	// The container's files, its snapshot's among them, are left to its monitor, which
	// deletes them on its way out: no berth command runs until they are gone.
	containers := filepath.Join(h.root, "containers")
	ents, _ := os.ReadDir(containers)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".removed-") {
			t.Errorf("container directory left: %s", e.Name())
		}
	}
	eventually(t, 5*time.Second, "the monitor to delete the container's files", func() bool {
		ents, _ := os.ReadDir(containers)
		return len(ents) == 0
	})
	if out := h.ok("ps", "-aq"); out != "" {
		t.Errorf("ps -aq after --rm: %q", out)
	}
	if out := h.ok("volume", "ls", "-q"); out != "" {
		t.Errorf("anonymous volume left: %q", out)
	}
	snaps, _ := os.ReadDir(filepath.Join(h.root, "snapshots"))
	for _, s := range snaps {
		if !strings.HasPrefix(s.Name(), ".") {
			t.Errorf("snapshot left: %s", s.Name())
		}
	}
	if ents, _ := os.ReadDir(h.runtimeRoot); len(ents) != 0 {
		t.Errorf("runtime records left: %v", ents)
	}
	if m := mountsUnder(h.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	b, _ := os.ReadFile(filepath.Join(h.root, "networks", "state.json"))
	if strings.Contains(string(b), `"containerID"`) {
		t.Errorf("network attachment left: %s", b)
	}
	// Files whose monitor died before it deleted them go with the next listing, unless
	// a process holds them.
	orphan, held := filepath.Join(containers, ".removed-orphan"), filepath.Join(containers, ".removed-held")
	for _, d := range []string{orphan, held} {
		os.MkdirAll(filepath.Join(d, "snapshot", "upper"), 0o700)
		os.WriteFile(filepath.Join(d, "container.json"), []byte("{}"), 0o600)
	}
	hf, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Flock(int(hf.Fd()), syscall.LOCK_EX)
	h.ok("ps", "-a")
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("a listing left a removed container's files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(held, "container.json")); err != nil {
		t.Errorf("a listing deleted files that a process holds: %v", err)
	}
	hf.Close()
	os.RemoveAll(held)
	// The name is free again.
	h.ok("run", "--rm", "--name", "gone", "busybox", "true")
	// An --rm container's overlay is volatile: nothing syncs its upper directory, which
	// goes with it. A kept container's is not.
	if out := h.ok("run", "--rm", "busybox", "grep", " / / ", "/proc/self/mountinfo"); !strings.Contains(out, "volatile") {
		t.Errorf("the root of an --rm container is not mounted volatile: %s", out)
	}
	if out := h.ok("run", "--name", "kept", "busybox", "grep", " / / ", "/proc/self/mountinfo"); strings.Contains(out, "volatile") || !strings.Contains(out, "overlay") {
		t.Errorf("the root of a kept container: %s", out)
	}
	h.ok("rm", "kept")
	// --rm with -d goes too once the container exits.
	id := strings.TrimSpace(h.ok("run", "-d", "--rm", "busybox", "true"))
	eventually(t, 5*time.Second, "the --rm -d container to go", func() bool {
		return !strings.Contains(h.ok("ps", "-aq", "--no-trunc"), id)
	})
	if d := cgroupDirs(id); len(d) > 0 {
		t.Errorf("cgroups left: %v", d)
	}
}

// Restart policies act on a crash of the container's process.
func TestRestartPolicies(t *testing.T) {
	h := newHarness(t)
	// on-failure:2 restarts a failing container twice, then leaves it exited.
	h.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 4")
	eventually(t, 10*time.Second, "on-failure to give up", func() bool {
		st := h.state("flaky")
		return st.Status == "exited" && st.RestartCount == 2
	})
	time.Sleep(500 * time.Millisecond)
	st := h.state("flaky")
	if st.RestartCount != 2 || st.ExitCode != 4 {
		t.Errorf("on-failure:2: %+v", st)
	}
	if n := strings.Count(h.ok("logs", "flaky"), "run"); n != 3 {
		t.Errorf("on-failure:2 ran %d times, want 3", n)
	}
	// on-failure does not restart a success.
	h.ok("run", "-d", "--name", "fine", "--restart", "on-failure", "busybox", "true")
	eventually(t, 5*time.Second, "the container to exit", func() bool { return h.state("fine").Status == "exited" })
	time.Sleep(300 * time.Millisecond)
	if st := h.state("fine"); st.RestartCount != 0 || st.Status != "exited" {
		t.Errorf("on-failure after exit 0: %+v", st)
	}
	// always: the process is killed from outside (a crash), the container comes back with
	// a new process; stop ends it for good.
	h.ok("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "1000")
	first := h.state("svc")
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "always to restart the killed container", func() bool {
		st := h.state("svc")
		return st.Status == "running" && st.Pid != first.Pid && st.RestartCount == 1
	})
	if ps := h.ok("ps"); !strings.Contains(ps, "svc") {
		t.Errorf("ps after the restart:\n%s", ps)
	}
	h.ok("stop", "-t", "1", "svc")
	time.Sleep(500 * time.Millisecond)
	if st := h.state("svc"); st.Status != "exited" || st.RestartCount != 1 {
		t.Errorf("always after stop: %+v", st)
	}
	// unless-stopped restarts after a crash too.
	h.ok("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sh", "-c", "sleep 0.2; exit 1")
	eventually(t, 10*time.Second, "unless-stopped to restart", func() bool { return h.state("us").RestartCount >= 2 })
	h.ok("rm", "-f", "us")
	// --rm and a restart policy conflict, as on Docker.
	r := h.run("run", "--rm", "--restart", "always", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "Conflicting options: --restart and --rm") {
		t.Errorf("--rm --restart: %s", r)
	}
}

// The CLI killed at any point leaves a consistent state: the container it started goes on,
// ps tells the truth, logs keep being written; killing the monitor does not make ps lie.
func TestCLIKilledMidRun(t *testing.T) {
	h := newHarness(t)
	cgroupsBefore := berthCgroups()
	cmd := h.cmd("run", "--name", "orphan", "busybox", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.2; done; exit 9")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the container to run", func() bool {
		r := h.run("inspect", "-f", "{{.State.Status}}", "orphan")
		return strings.TrimSpace(r.stdout) == "running"
	})
	cmd.Process.Kill()
	cmd.Wait()
	if st := h.state("orphan"); st.Status != "running" {
		t.Fatalf("after the CLI was killed the container is %s", st.Status)
	}
	if code := strings.TrimSpace(h.ok("wait", "orphan")); code != "9" {
		t.Errorf("wait = %s, want 9", code)
	}
	if logs := h.ok("logs", "orphan"); !strings.Contains(logs, "tick 10") {
		t.Errorf("logs after the CLI was killed:\n%s", logs)
	}

	// Killed at random points of create and start, over and over: every container that
	// ps lists is in a state it can report, and rm -f clears everything.
	// The first milliseconds, in finer steps: the id, directory and cgroup made at once.
	for i := 0; i < 25; i++ {
		c := h.cmd("run", "-d", "busybox", "sleep", "1000")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(i) * 3 * time.Millisecond
		if i < 10 {
			delay = time.Duration(i) * 500 * time.Microsecond
		}
		time.Sleep(delay)
		c.Process.Kill()
		c.Wait()
	}
	for _, line := range strings.Split(strings.TrimSpace(h.ok("ps", "-a", "--format", "{{.ID}} {{.Status}}")), "\n") {
		if line == "" {
			continue
		}
		if !regexp.MustCompile(`^[0-9a-f]{12} (Up |Created|Exited \(\d+\))`).MatchString(line) {
			t.Errorf("ps -a line after killed CLIs: %q", line)
		}
	}
	// The monitor killed: the container still runs (ps says so); once it dies ps says
	// it exited, and the next command cleans up.
	h.ok("run", "-d", "--name", "lonely", "busybox", "sleep", "1000")
	st := h.state("lonely")
	mon := monitorOf(t, h, "lonely")
	syscall.Kill(mon, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	if s := h.state("lonely"); s.Status != "running" || s.Pid != st.Pid {
		t.Errorf("after the monitor was killed: %+v", s)
	}
	syscall.Kill(st.Pid, syscall.SIGKILL)
	eventually(t, 5*time.Second, "ps to see the container exited", func() bool { return h.state("lonely").Status == "exited" })
	h.ok("rm", "lonely")

	// Nothing of the killed runs is left once their containers are removed: a run killed
	// before its container was recorded leaves a .creating- directory (and the cgroup made
	// early for it), which a listing removes.
	for _, id := range strings.Fields(h.ok("ps", "-aq", "--no-trunc")) {
		h.ok("rm", "-f", id)
	}
	for d := range berthCgroups() {
		if !cgroupsBefore[d] {
			t.Errorf("cgroup left by a killed run: %s", d)
		}
	}
}

// A create killed after it claimed its name leaves a .creating- directory and the claim:
// the next listing removes both, and the name can be used again.
func TestAbandonedCreateFreesItsName(t *testing.T) {
	h := newHarness(t)
	id := strings.Repeat("ab", 32)
	os.MkdirAll(filepath.Join(h.root, "names"), 0o700)
	if err := os.MkdirAll(filepath.Join(h.root, "containers", ".creating-"+id), 0o700); err != nil {
		t.Fatal(err)
	}
	claim := filepath.Join(h.root, "names", "claimed")
	if err := os.Symlink(id, claim); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(h.root, "names", "someone-else")
	if err := os.Symlink(strings.Repeat("cd", 32), other); err != nil {
		t.Fatal(err)
	}
	h.ok("ps", "-a")
	if _, err := os.Lstat(filepath.Join(h.root, "containers", ".creating-"+id)); !os.IsNotExist(err) {
		t.Errorf("the abandoned create's directory is still there: %v", err)
	}
	if _, err := os.Lstat(claim); !os.IsNotExist(err) {
		t.Errorf("the abandoned create's name is still claimed: %v", err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("another container's claim went too: %v", err)
	}
	os.Remove(other)
	h.ok("run", "--rm", "--name", "claimed", "busybox", "true")
}

// berthCgroups lists the containers' cgroups under /berth in the pids hierarchy (or the
// unified one).
func berthCgroups() map[string]bool {
	out := map[string]bool{}
	for _, dir := range []string{"/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/berth"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				out[filepath.Join(dir, e.Name())] = true
			}
		}
	}
	return out
}

// monitorOf finds the berth-monitor of a container (the parent of its init).
func monitorOf(t *testing.T, h *harness, ref string) int {
	t.Helper()
	pid := h.state(ref).Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ppid, _ := strconv.Atoi(f[1])
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if strings.TrimSpace(string(comm)) != "berth-monitor" {
		t.Fatalf("the init's parent %d is %q, not berth-monitor", ppid, comm)
	}
	return ppid
}

// 20 `berth run -d` at once all succeed, with distinct generated names.
func TestConcurrentRuns(t *testing.T) {
	h := newHarness(t)
	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = h.run("run", "-d", "busybox", "sleep", "1000")
		}(i)
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("run %d: %s", i, r)
			continue
		}
		ids[strings.TrimSpace(r.stdout)] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct ids, want %d", len(ids), n)
	}
	names := strings.Fields(h.ok("ps", "--format", "{{.Names}}"))
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			t.Errorf("name %s given twice", name)
		}
		seen[name] = true
	}
	if len(names) != n {
		t.Errorf("ps lists %d running containers, want %d: %v", len(names), n, names)
	}
	// Each has its own address.
	ips := map[string]bool{}
	for id := range ids {
		ip := h.inspect(id, "{{.NetworkSettings.IPAddress}}")
		if ip == "" || ips[ip] {
			t.Errorf("container %s has address %q (duplicate or none)", id[:12], ip)
		}
		ips[ip] = true
	}
	// And all go at once too.
	args := append([]string{"rm", "-f"}, strings.Fields(h.ok("ps", "-q"))...)
	h.ok(args...)
}

// Bad flags and missing images give Docker's errors and exit codes.
func TestErrors(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"run", "--bogus", "busybox"}, 125, "unknown flag: --bogus\nSee 'berth run --help'."},
		{[]string{"run"}, 125, `"berth run" requires at least 1 argument.`},
		{[]string{"run", "--pull", "never", "nosuchimage"}, 125, "No such image: nosuchimage"},
		{[]string{"run", "--rm", "busybox", "nosuchcommand"}, 127, `"nosuchcommand": executable file not found in $PATH`},
		{[]string{"run", "--rm", "busybox", "/etc/passwd"}, 126, "/etc/passwd"},
		{[]string{"run", "--rm", "-m", "lots", "busybox", "true"}, 125, `invalid argument "lots" for "-m, --memory" flag`},
		{[]string{"run", "--rm", "--restart", "sometimes", "busybox", "true"}, 125, "invalid restart policy"},
		{[]string{"run", "--name", "bad name!", "busybox", "true"}, 125, "Invalid container name (bad name!)"},
		{[]string{"run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true"}, 125, `invalid capability: "NOT_A_CAP"`},
		{[]string{"run", "--rm", "-u", "ghost", "busybox", "true"}, 125, "unable to find user ghost"},
		{[]string{"stop", "nosuch"}, 1, "No such container: nosuch"},
		{[]string{"rm", "nosuch"}, 1, "No such container: nosuch"},
		{[]string{"logs", "nosuch"}, 1, "No such container: nosuch"},
		{[]string{"kill", "nosuch"}, 1, "No such container: nosuch"},
		{[]string{"inspect", "nosuch"}, 1, "No such object: nosuch"},
		{[]string{"nosuchcommand"}, 125, `unknown command "nosuchcommand"`},
	} {
		r := h.run(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("berth %s: %s; want exit %d and %q", strings.Join(c.args, " "), r, c.code, c.stderr)
		}
	}
	// A name in use.
	h.ok("create", "--name", "taken", "busybox")
	r := h.run("create", "--name", "taken", "busybox")
	if r.code != 125 || !strings.Contains(r.stderr, `The container name "/taken" is already in use by container`) {
		t.Errorf("create with a taken name: %s", r)
	}
	// Nothing half-made remains of the failed runs (they were --rm, or failed before
	// anything was made): only "taken" exists.
	if out := strings.Fields(h.ok("ps", "-a", "--format", "{{.Names}}")); len(out) != 1 || out[0] != "taken" {
		t.Errorf("containers after the failures: %v", out)
	}
}

// logs: -f follows until the container stops, --tail, -t, --since; the json-file log is
// rotated by size and logs reads across the rotated files.
func TestLogs(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "talker", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done")
	cmd := h.cmd("logs", "-f", "talker")
	var out strings.Builder
	cmd.Stdout = &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("logs -f: %v", err)
	}
	if out.String() != "line 1\nline 2\nline 3\nline 4\nline 5\n" {
		t.Errorf("logs -f: %q", out.String())
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("logs -f returned after %v, before the container finished", d)
	}
	if got := h.ok("logs", "--tail", "2", "talker"); got != "line 4\nline 5\n" {
		t.Errorf("logs --tail 2: %q", got)
	}
	if got := h.ok("logs", "-t", "--tail", "1", "talker"); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 5\n$`).MatchString(got) {
		t.Errorf("logs -t: %q", got)
	}
	if got := h.ok("logs", "--since", "1h", "talker"); strings.Count(got, "line") != 5 {
		t.Errorf("logs --since 1h: %q", got)
	}
	if got := h.ok("logs", "--since", time.Now().Add(time.Hour).Format(time.RFC3339), "talker"); got != "" {
		t.Errorf("logs --since the future: %q", got)
	}
	// Rotation: 2 files of at most 1 KiB; the oldest lines are gone, the newest are read
	// from both files.
	h.ok("run", "--name", "chatty", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox", "sh", "-c", "for i in $(seq 1 100); do echo entry $i; done")
	dir := filepath.Dir(h.inspect("chatty", "{{.LogPath}}"))
	files, _ := filepath.Glob(filepath.Join(dir, "*-json.log*"))
	if len(files) != 2 {
		t.Errorf("log files after rotation: %v", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 1024 {
			t.Errorf("%s: %v bytes, over max-size", f, fi.Size())
		}
	}
	got := strings.Split(strings.TrimSpace(h.ok("logs", "chatty")), "\n")
	if len(got) < 10 || got[len(got)-1] != "entry 100" || got[0] == "entry 1" {
		t.Errorf("logs across rotated files: %d lines, first %q last %q", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		var a, b int
		fmt.Sscanf(got[i-1], "entry %d", &a)
		fmt.Sscanf(got[i], "entry %d", &b)
		if b != a+1 {
			t.Errorf("logs across rotated files: %q follows %q", got[i], got[i-1])
		}
	}
}

// A start that comes after the container's process died but while its monitor is still
// recording the exit waits for the monitor and starts the container again; it does not
// take the dying run for a start in progress ("being started by another berth", which
// TestNsModesPid met under CI's load). The monitor is stopped (SIGSTOP) across the death
// to hold that window open.
func TestStartRightAfterDeath(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "phoenix", "busybox", "sleep", "1000")
	pid, mon := h.state("phoenix").Pid, monitorOf(t, h, "phoenix")
	if err := syscall.Kill(mon, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(mon, syscall.SIGCONT) })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A zombie the stopped monitor cannot reap: dead to berth, its exit not yet recorded.
	eventually(t, 5*time.Second, "the process to die", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err == nil && strings.Contains(string(b), ") Z ")
	})
	if st := h.state("phoenix"); st.Status != "running" {
		t.Fatalf("before the monitor resumes, the record should still say running: %+v", st)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		syscall.Kill(mon, syscall.SIGCONT)
	}()
	if r := h.run("start", "phoenix"); r.code != 0 || r.stdout != "phoenix\n" {
		t.Fatalf("start while the monitor records the exit: %s", r)
	}
	if st := h.state("phoenix"); st.Status != "running" || st.Pid == pid {
		t.Fatalf("after the start: %+v", st)
	}
	h.ok("rm", "-f", "phoenix")
}
