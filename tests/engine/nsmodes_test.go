package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nsOf is the namespace link of a running container's init as the host sees it
// ("pid:[4026532252]").
func (h *harness) nsOf(ref, typ string) string {
	h.t.Helper()
	pid := h.inspect(ref, "{{.State.Pid}}")
	if pid == "0" {
		h.t.Fatalf("%s is not running", ref)
	}
	l, err := os.Readlink("/proc/" + pid + "/ns/" + typ)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func hostNS(t *testing.T, typ string) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/" + typ)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// wantFail checks that a berth command failed with the exit code and the message.
func wantFail(t *testing.T, r result, code int, msg string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, msg) {
		t.Errorf("want exit %d and %q: %s", code, msg, r)
	}
}

// --pid container:A shows A's processes; --pid host the host's; the joiner of a container
// that stopped cannot start until it runs again, and then joins its new namespace; what
// `berth ns` says of each.
func TestNsModesPid(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "a", "busybox", "sh", "-c", "exec sleep 4242")
	r := h.run("run", "--rm", "--pid", "container:a", "busybox", "ps", "-o", "pid,args")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\s*1 sleep 4242$`).MatchString(r.stdout) {
		t.Errorf("ps with --pid container:a does not show a's sleep as pid 1: %s", r)
	}
	h.ok("run", "-d", "--name", "b", "--pid", "container:a", "busybox", "sleep", "1000")
	if a, b := h.nsOf("a", "pid"), h.nsOf("b", "pid"); a != b {
		t.Errorf("pid namespaces: a %s, b %s", a, b)
	}
	if m := h.inspect("b", "{{.HostConfig.PidMode}}"); m != "container:a" {
		t.Errorf("inspect b: PidMode %q", m)
	}
	if m := h.inspect("a", "{{.HostConfig.PidMode}}"); m != "" {
		t.Errorf("inspect a: PidMode %q, want Docker's empty default", m)
	}

	// --pid host: the host's namespace, and a process the test started in it.
	host := exec.Command("sleep", "4343")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	script := fmt.Sprintf("readlink /proc/self/ns/pid; cat /proc/%d/cmdline | tr '\\0' ' '", host.Process.Pid)
	r = h.run("run", "--rm", "--pid", "host", "busybox", "sh", "-c", script)
	if want := hostNS(t, "pid") + "\nsleep 4343 "; r.code != 0 || r.stdout != want {
		t.Errorf("--pid host: want %q: %s", want, r)
	}
	h.ok("run", "-d", "--name", "h", "--pid", "host", "busybox", "sleep", "1001")
	if m := h.inspect("h", "{{.HostConfig.PidMode}}"); m != "host" {
		t.Errorf("inspect h: PidMode %q", m)
	}

	// berth ns: b shares a's pid namespace, h the host's; a's own is attributed to a in the
	// listing, with both processes.
	nsLine := regexp.MustCompile(`(?m)^\s*pid\s+(.*?)\s+pid:\[\d+\]$`)
	for ref, want := range map[string]string{"b": "shared with a (", "h": "shared with host", "a": "own"} {
		out := h.ok("ns", ref)
		m := nsLine.FindStringSubmatch(out)
		if m == nil || !strings.HasPrefix(m[1], want) {
			t.Errorf("berth ns %s: pid line %q, want %q:\n%s", ref, m, want, out)
		}
	}
	inode := strings.TrimSuffix(strings.TrimPrefix(h.nsOf("a", "pid"), "pid:["), "]")
	out := h.ok("ns", "-t", "pid", "-n", "-o", "NS,NPROCS,CONTAINER")
	if !regexp.MustCompile(`(?m)^` + inode + `\s+2 a \(`).MatchString(out) {
		t.Errorf("berth ns: a's pid namespace %s should hold 2 processes and be a's:\n%s", inode, out)
	}
	if !regexp.MustCompile(`(?m)^` + strings.Trim(hostNS(t, "pid"), "pid:[]") + `\s+\d+ host$`).MatchString(out) {
		t.Errorf("berth ns: the host's pid namespace should stay the host's:\n%s", out)
	}

	// A stops: the kernel ends b with it (its pid namespace's init died); b cannot start
	// until a runs, then joins a's new namespace.
	h.ok("kill", "a")
	eventually(t, 10*time.Second, "b to end with a", func() bool { return h.state("b").Status == "exited" })
	wantFail(t, h.run("start", "b"), 1, "cannot join PID of a non running container: a")
	h.ok("start", "a")
	h.ok("start", "b")
	if a, b := h.nsOf("a", "pid"), h.nsOf("b", "pid"); a != b {
		t.Errorf("after the restart: pid namespaces a %s, b %s", a, b)
	}
	if r := h.run("exec", "b", "ps", "-o", "args"); !strings.Contains(r.stdout, "sleep 4242") {
		t.Errorf("exec b ps after the restart: %s", r)
	}

	// Errors: a missing or stopped target (at start, as on Docker: --rm removes the
	// container), a bad mode, host with --userns=auto.
	wantFail(t, h.run("run", "--rm", "--pid", "container:missing", "busybox", "true"), 125,
		"cannot join PID of a non running container: missing")
	h.ok("create", "--name", "stopped", "busybox", "true")
	wantFail(t, h.run("run", "--rm", "--pid", "container:stopped", "busybox", "true"), 125,
		"cannot join PID of a non running container: stopped")
	wantFail(t, h.run("create", "--pid", "bogus", "busybox"), 125, `invalid --pid "bogus"`)
	wantFail(t, h.run("create", "--pid", "container:", "busybox"), 125, "the container name is missing")
	wantFail(t, h.run("create", "--pid", "host", "--userns", "auto", "busybox"), 125,
		"cannot share the host PID namespace when user namespaces are enabled")
	wantFail(t, h.run("create", "--pid", "container:a", "--userns", "auto", "busybox"), 125,
		"cannot be combined with --userns=auto")
	if n := len(strings.Fields(h.ok("ps", "-aq"))); n != 4 {
		t.Errorf("%d containers, want a, b, h and stopped: the failed ones must be gone", n)
	}
}

// --ipc: private by default (not joinable, as Docker's), shareable joinable by
// container:NAME (the same namespace and /dev/shm), host, none (no /dev/shm).
func TestNsModesIpc(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "s", "--ipc", "shareable", "--shm-size", "1m", "busybox", "sleep", "1000")
	h.ok("exec", "s", "sh", "-c", "echo from-s > /dev/shm/marker")
	if r := h.run("exec", "s", "sh", "-c", "df -k /dev/shm | tail -1"); !strings.Contains(r.stdout, " 1024 ") {
		t.Errorf("--shm-size 1m with --ipc shareable: %s", r)
	}
	want := h.nsOf("s", "ipc") + "\nfrom-s\n"
	r := h.run("run", "--rm", "--ipc", "container:s", "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/marker")
	if r.code != 0 || r.stdout != want {
		t.Errorf("--ipc container:s: want %q: %s", want, r)
	}
	// A joiner's writes are the donor's, and the donor's stay when the joiner is gone.
	h.ok("run", "--rm", "--ipc", "container:s", "busybox", "sh", "-c", "echo from-joiner > /dev/shm/back")
	if r := h.run("exec", "s", "cat", "/dev/shm/back"); r.stdout != "from-joiner\n" {
		t.Errorf("the joiner's /dev/shm file in s: %s", r)
	}
	if m := h.inspect("s", "{{.HostConfig.IpcMode}}"); m != "shareable" {
		t.Errorf("inspect s: IpcMode %q", m)
	}

	// The default is private: its own namespace, not joinable.
	h.ok("run", "-d", "--name", "p", "busybox", "sleep", "1000")
	if m := h.inspect("p", "{{.HostConfig.IpcMode}}"); m != "private" {
		t.Errorf("inspect p: IpcMode %q, want Docker's private", m)
	}
	if p, s := h.nsOf("p", "ipc"), h.nsOf("s", "ipc"); p == s || p == hostNS(t, "ipc") {
		t.Errorf("private ipc namespace %s (s %s, host %s)", p, s, hostNS(t, "ipc"))
	}
	wantFail(t, h.run("run", "--rm", "--ipc", "container:p", "busybox", "true"), 125,
		"can't join IPC of container p: non-shareable IPC")

	// host: the host's namespace and /dev/shm.
	marker, err := os.CreateTemp("/dev/shm", "berth-nsmodes-")
	if err != nil {
		t.Fatal(err)
	}
	marker.WriteString("from-host\n")
	marker.Close()
	t.Cleanup(func() { os.Remove(marker.Name()) })
	want = hostNS(t, "ipc") + "\nfrom-host\n"
	r = h.run("run", "--rm", "--ipc", "host", "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; cat "+marker.Name())
	if r.code != 0 || r.stdout != want {
		t.Errorf("--ipc host: want %q: %s", want, r)
	}

	// none: a namespace of its own, and no /dev/shm mount.
	r = h.run("run", "--rm", "--ipc", "none", "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; grep -c ' /dev/shm ' /proc/mounts")
	if f := strings.Fields(r.stdout); len(f) != 2 || f[0] == hostNS(t, "ipc") || f[1] != "0" {
		t.Errorf("--ipc none: want an ipc namespace of its own and 0 /dev/shm mounts: %s", r)
	}

	// Errors.
	wantFail(t, h.run("run", "--rm", "--ipc", "container:missing", "busybox", "true"), 125,
		"can't join IPC of container missing: No such container: missing")
	h.ok("create", "--name", "stopped", "--ipc", "shareable", "busybox", "true")
	wantFail(t, h.run("run", "--rm", "--ipc", "container:stopped", "busybox", "true"), 125,
		"can't join IPC of container stopped: container")
	wantFail(t, h.run("create", "--ipc", "bogus", "busybox"), 125, `invalid --ipc "bogus"`)
	// A shareable container whose /dev/shm is the user's mount has none to share (Docker's
	// rule), and makes none.
	h.ok("run", "-d", "--name", "own", "--ipc", "shareable", "--tmpfs", "/dev/shm", "busybox", "sleep", "1000")
	wantFail(t, h.run("run", "--rm", "--ipc", "container:own", "busybox", "true"), 125,
		"can't join IPC of container own: non-shareable IPC (its /dev/shm is a mount of its own)")
	if m := mountsOf(filepath.Join(h.root, "containers", h.inspect("own", "{{.Id}}"), "shm")); m != "" {
		t.Errorf("a shareable container with its own /dev/shm mount got the engine's too: %s", m)
	}

	// The shareable /dev/shm is the container's while it runs: gone when it stops, made
	// anew when it starts (the harness's cleanup checks nothing stays mounted).
	sDir := filepath.Join(h.root, "containers", h.inspect("s", "{{.Id}}"), "shm")
	if !strings.Contains(mountsOf(sDir), "tmpfs") {
		t.Errorf("s's /dev/shm %s is not mounted", sDir)
	}
	h.ok("kill", "s")
	// The end of the run is the monitor's exit helper's, after the exit that ps shows.
	eventually(t, 10*time.Second, "s's /dev/shm to be unmounted once it exited", func() bool {
		return h.state("s").Status == "exited" && mountsOf(sDir) == ""
	})
	h.ok("start", "s")
	if r := h.run("exec", "s", "ls", "/dev/shm"); r.code != 0 || r.stdout != "" {
		t.Errorf("s's /dev/shm after a restart should be empty: %s", r)
	}
}

// mountsOf returns the mountinfo lines whose mount point is dir.
func mountsOf(dir string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// --uts host: the host's name, which -h cannot change.
func TestNsModesUts(t *testing.T) {
	h := newHarness(t)
	hn, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r := h.run("run", "--rm", "--uts", "host", "busybox", "sh", "-c", "hostname; echo $HOSTNAME; readlink /proc/self/ns/uts")
	if want := hn + "\n" + hn + "\n" + hostNS(t, "uts") + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("--uts host: want %q: %s", want, r)
	}
	if r := h.run("run", "--rm", "busybox", "hostname"); r.code != 0 || r.stdout == hn+"\n" {
		t.Errorf("without --uts host the hostname should be the container's: %s", r)
	}
	h.ok("create", "--name", "u", "--uts", "host", "busybox")
	if m := h.inspect("u", "{{.HostConfig.UTSMode}}"); m != "host" {
		t.Errorf("inspect: UTSMode %q", m)
	}
	wantFail(t, h.run("run", "--rm", "--uts", "host", "-h", "foo", "busybox", "true"), 125,
		"conflicting options: hostname and the UTS mode")
	wantFail(t, h.run("create", "--uts", "private", "busybox"), 125, `invalid --uts "private"`)
	if n := len(strings.Fields(h.ok("ps", "-aq"))); n != 1 {
		t.Errorf("%d containers, want only u", n)
	}
}

// --log-driver none: the output reaches a foreground run, no log is written, `logs`
// fails as Docker's does; an unknown driver is refused at create and leaves nothing.
func TestLogDriver(t *testing.T) {
	h := newHarness(t)
	r := h.run("run", "--name", "n", "--log-driver", "none", "busybox", "sh", "-c", "echo out; echo err >&2")
	if r.code != 0 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("foreground run with --log-driver none: %s", r)
	}
	id := h.inspect("n", "{{.Id}}")
	ents, err := os.ReadDir(filepath.Join(h.root, "containers", id))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), "json.log") {
			t.Errorf("--log-driver none wrote %s", e.Name())
		}
	}
	r = h.run("logs", "n")
	if r.code != 1 || r.stdout != "" || r.stderr != "Error: configured logging driver does not support reading\n" {
		t.Errorf("logs of a none container: %s", r)
	}
	if got := h.inspect("n", "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]"); got != "none []" {
		t.Errorf("inspect: LogConfig.Type and LogPath %q", got)
	}
	// A detached one, restarted: still no log, and attach still sees the output.
	h.ok("run", "-d", "--name", "d", "--log-driver", "none", "busybox", "sh", "-c", "sleep 0.3; echo late; sleep 1000")
	att := h.cmd("attach", "d")
	outp, err := att.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := att.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	n, _ := outp.Read(buf)
	att.Process.Kill()
	att.Wait()
	if string(buf[:n]) != "late\n" {
		t.Errorf("attach to a none container read %q", buf[:n])
	}
	if _, err := os.Stat(filepath.Join(h.root, "containers", h.inspect("d", "{{.Id}}"), h.inspect("d", "{{.Id}}")+"-json.log")); err == nil {
		t.Errorf("a detached none container has a log file")
	}
	// json-file is still the default.
	h.ok("run", "--name", "j", "busybox", "echo", "kept")
	if r := h.run("logs", "j"); r.stdout != "kept\n" {
		t.Errorf("logs of a json-file container: %s", r)
	}
	if got := h.inspect("j", "{{.HostConfig.LogConfig.Type}}"); got != "json-file" {
		t.Errorf("default LogConfig.Type %q", got)
	}

	before := h.ok("ps", "-aq")
	for _, d := range []string{"bogus", "syslog", "journald"} {
		r := h.run("run", "-d", "--log-driver", d, "busybox", "true")
		wantFail(t, r, 125, "no log driver named '"+d+"' is registered")
		if r.stdout != "" {
			t.Errorf("--log-driver %s printed %q", d, r.stdout)
		}
	}
	if after := h.ok("ps", "-aq"); after != before {
		t.Errorf("refused log drivers left containers: before %q, after %q", before, after)
	}
	if ents, _ := os.ReadDir(filepath.Join(h.root, "containers")); len(ents) != len(strings.Fields(before)) {
		t.Errorf("%d container directories for %d containers", len(ents), len(strings.Fields(before)))
	}
}

// Rootless: --pid host is refused with the reason, the joins and the host's or a shared
// IPC namespace are not supported yet; --uts host, --ipc none and --log-driver none work.
func TestNsModesRootless(t *testing.T) {
	u := newRLUser(t, true)
	u.importBusybox(t)
	wantFail(t, u.berth(t, "create", "--pid", "host", "busybox"), 125, "--pid host is not available rootless")
	for _, args := range [][]string{{"--pid", "container:x"}, {"--ipc", "container:x"}, {"--ipc", "host"}, {"--ipc", "shareable"}} {
		wantFail(t, u.berth(t, append(append([]string{"create"}, args...), "busybox")...), 125,
			args[0]+" "+args[1]+" is not supported rootless yet")
	}
	hn, _ := os.Hostname()
	if out := u.ok(t, "run", "--rm", "--uts", "host", "busybox", "hostname"); out != hn+"\n" {
		t.Errorf("rootless --uts host: hostname %q, want %q", out, hn)
	}
	// grep -c exits 1 when it counts nothing.
	if r := u.berth(t, "run", "--rm", "--ipc", "none", "busybox", "grep", "-c", " /dev/shm ", "/proc/mounts"); r.stdout != "0\n" {
		t.Errorf("rootless --ipc none: want no /dev/shm mount: %s", r)
	}
	if out := u.ok(t, "run", "--rm", "--log-driver", "none", "busybox", "echo", "hi"); out != "hi\n" {
		t.Errorf("rootless --log-driver none: %q", out)
	}
	if out := u.ok(t, "ps", "-aq"); out != "" {
		t.Errorf("containers left: %q", out)
	}
	u.ok(t, "rmi", "busybox")
	checkNothingLeft(t, u, filepath.Join(u.home, ".local", "share", "berth"))
}
