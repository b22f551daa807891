package engine

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exec: in the container's namespaces with its environment; -u, -w, -e, -i, -t, -d; its
// exit code; errors for a missing command and a stopped container.
func TestExec(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "-h", "boxhost", "busybox", "sleep", "1000")
	r := h.run("exec", "box", "sh", "-c", "echo $FROM_RUN $(hostname); ps -o pid,comm | grep -c sleep")
	if r.code != 0 || r.stdout != "1 boxhost\n1\n" {
		t.Errorf("exec: %s", r)
	}
	r = h.run("exec", "-u", "svc", "-w", "/tmp", "-e", "X=2", "box", "sh", "-c", "echo $(id -u) $(pwd) $X; exit 6")
	if r.code != 6 || r.stdout != "1000 /tmp 2\n" {
		t.Errorf("exec -u -w -e: %s", r)
	}
	if r = h.runIn("abc\n", "exec", "-i", "box", "tr", "a-z", "A-Z"); r.stdout != "ABC\n" {
		t.Errorf("exec -i: %s", r)
	}
	// The exec'd process is in the container's cgroup, as its init is.
	r = h.run("exec", "box", "cat", "/proc/self/cgroup")
	init := h.run("exec", "box", "cat", "/proc/1/cgroup")
	if r.stdout != init.stdout || r.stdout == "" {
		t.Errorf("exec's cgroup %q differs from the init's %q", r.stdout, init.stdout)
	}
	if r := h.run("exec", "box", "nosuchcmd"); r.code != 127 || !strings.Contains(r.stderr, "executable file not found") {
		t.Errorf("exec of a missing command: %s", r)
	}
	h.ok("exec", "-d", "box", "sleep", "77")
	eventually(t, 5*time.Second, "the detached exec in top", func() bool { return strings.Contains(h.ok("top", "box"), "sleep 77") })
	tm := h.startTerm("exec", "-it", "box", "sh")
	tm.expect("# ", 5*time.Second)
	tm.typ("echo tty $(tty)\r")
	tm.expect("tty /dev/pts/", 5*time.Second)
	tm.typ("exit 3\r")
	if code := tm.wait(5 * time.Second); code != 3 {
		t.Errorf("exec -it: exit %d; screen:\n%s", code, tm.text())
	}
	h.ok("stop", "-t", "0", "box")
	if r := h.run("exec", "box", "true"); r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("exec in a stopped container: %s", r)
	}
}

// top, stats, pause/unpause, wait, rename, inspect --format, ps --filter/--format.
func TestInspectionCommands(t *testing.T) {
	h := newHarness(t)
	id := strings.TrimSpace(h.ok("run", "-d", "--name", "busy", "-l", "tier=web", "-m", "32m", "busybox", "sh", "-c", "while true; do :; done"))
	h.ok("run", "-d", "--init", "--name", "idle", "busybox", "sleep", "1000")
	top := h.ok("top", "busy")
	if lines := strings.Split(strings.TrimSpace(top), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "PID") || !strings.Contains(lines[1], "while true") {
		t.Errorf("top:\n%s", top)
	}
	out := h.ok("stats", "--no-stream", "busy", "idle")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+NET I/O\s+BLOCK I/O\s+PIDS$`).MatchString(lines[0]) {
		t.Fatalf("stats:\n%s", out)
	}
	busy := regexp.MustCompile(`^` + id[:12] + `\s+busy\s+([\d.]+)%\s+[\d.]+\w?i?B / 32MiB\s+[\d.]+%\s+\S+ / \S+\s+\S+ / \S+\s+1$`).FindStringSubmatch(lines[1])
	if busy == nil {
		t.Errorf("stats line of busy: %q", lines[1])
	} else if cpu, _ := strconv.ParseFloat(busy[1], 64); cpu < 20 {
		t.Errorf("busy loop shows %v%% CPU", cpu)
	}
	h.ok("pause", "busy")
	if st := h.state("busy"); st.Status != "paused" {
		t.Errorf("after pause: %s", st.Status)
	}
	if ps := h.ok("ps", "--filter", "name=busy"); !strings.Contains(ps, "(Paused)") {
		t.Errorf("ps of a paused container:\n%s", ps)
	}
	h.ok("unpause", "busy")
	if st := h.state("busy"); st.Status != "running" {
		t.Errorf("after unpause: %s", st.Status)
	}
	// Filters and formats.
	if out := h.ok("ps", "--filter", "label=tier=web", "--format", "{{.Names}} {{.Label \"tier\"}} {{.State}}"); out != "busy web running\n" {
		t.Errorf("ps --filter label --format: %q", out)
	}
	if out := h.ok("ps", "--filter", "status=running", "-q"); len(strings.Fields(out)) != 2 {
		t.Errorf("ps --filter status=running: %q", out)
	}
	var row map[string]string
	if err := json.Unmarshal([]byte(strings.Split(h.ok("ps", "--format", "json", "--filter", "name=idle"), "\n")[0]), &row); err != nil || row["Names"] != "idle" {
		t.Errorf("ps --format json: %v %v", row, err)
	}
	if got := h.inspect("busy", "{{.Name}} {{.State.Running}} {{.Config.Labels.tier}} {{.HostConfig.Memory}}"); got != "/busy true web 33554432" {
		t.Errorf("inspect --format: %q", got)
	}
	var docs []map[string]any
	if err := json.Unmarshal([]byte(h.ok("inspect", "busy", "idle")), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("inspect of two: %v", err)
	}
	for _, k := range []string{"Id", "Created", "Path", "Args", "State", "Image", "LogPath", "Name", "RestartCount", "HostConfig", "Mounts", "Config", "NetworkSettings", "GraphDriver"} {
		if _, ok := docs[0][k]; !ok {
			t.Errorf("inspect lacks Docker's %s", k)
		}
	}
	// wait returns once the container stops, with its code.
	done := make(chan result, 1)
	go func() { done <- h.run("wait", "idle") }()
	time.Sleep(200 * time.Millisecond)
	h.ok("kill", "-s", "USR1", "idle") // berth-init passes it on; sleep dies of it: 128+10
	select {
	case r := <-done:
		if r.stdout != "138\n" {
			t.Errorf("wait: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after the container was killed")
	}
	// rename keeps the container, frees the old name, refuses a taken one.
	h.ok("rename", "idle", "resting")
	if got := h.inspect("resting", "{{.Name}}"); got != "/resting" {
		t.Errorf("after rename: %q", got)
	}
	if r := h.run("inspect", "idle"); r.code == 0 {
		t.Errorf("the old name still resolves: %s", r)
	}
	if r := h.run("rename", "resting", "busy"); r.code == 0 || !strings.Contains(r.stderr, "is already in use") {
		t.Errorf("rename to a taken name: %s", r)
	}
	h.ok("run", "--name", "idle", "busybox", "true") // the old name is free
}

// cp both ways, with Docker's rules for directories, and a tar stream; symlinks made in
// the container are not followed to the host.
func TestCp(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "c", "busybox", "sh", "-c", "mkdir -p /srv/d/sub; echo one > /srv/d/f; echo two > /srv/d/sub/g; ln -s /etc/shadow-host /srv/d/esc; exec sleep 1000")
	eventually(t, 5*time.Second, "the files", func() bool { return h.run("exec", "c", "test", "-L", "/srv/d/esc").code == 0 })
	dst := t.TempDir()
	h.ok("cp", "c:/srv/d", dst)
	if b, _ := os.ReadFile(filepath.Join(dst, "d", "sub", "g")); string(b) != "two\n" {
		t.Errorf("cp of a directory into an existing one: %q", b)
	}
	if l, err := os.Readlink(filepath.Join(dst, "d", "esc")); err != nil || l != "/etc/shadow-host" {
		t.Errorf("the symlink was not copied as a link: %q %v", l, err)
	}
	h.ok("cp", "c:/srv/d/f", filepath.Join(dst, "renamed"))
	if b, _ := os.ReadFile(filepath.Join(dst, "renamed")); string(b) != "one\n" {
		t.Errorf("cp of a file to a new name: %q", b)
	}
	// Into the container: a host directory, a file, and a tar stream.
	src := filepath.Join(t.TempDir(), "payload")
	os.MkdirAll(filepath.Join(src, "x"), 0o755)
	os.WriteFile(filepath.Join(src, "x", "y"), []byte("host data\n"), 0o640)
	h.ok("cp", src, "c:/srv")
	if r := h.run("exec", "c", "sh", "-c", "cat /srv/payload/x/y; stat -c %a /srv/payload/x/y"); r.stdout != "host data\n640\n" {
		t.Errorf("cp of a host directory: %s", r)
	}
	// A symlink in the container where a file is written is replaced, never followed.
	h.ok("exec", "c", "ln", "-s", "/proc/1/root/etc/victim", "/srv/trap")
	os.WriteFile(filepath.Join(dst, "trap"), []byte("safe\n"), 0o644)
	h.ok("cp", filepath.Join(dst, "trap"), "c:/srv/trap")
	if r := h.run("exec", "c", "sh", "-c", "test -L /srv/trap && echo link; cat /srv/trap"); r.stdout != "safe\n" {
		t.Errorf("cp onto a symlink: %s", r)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "fromtar.txt", Mode: 0o600, Size: 4, Typeflag: tar.TypeReg})
	tw.Write([]byte("tar\n"))
	tw.Close()
	cmd := h.cmd("cp", "-", "c:/srv")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cp - c:/srv: %v %s", err, out)
	}
	if r := h.run("exec", "c", "cat", "/srv/fromtar.txt"); r.stdout != "tar\n" {
		t.Errorf("cp from a tar stream: %s", r)
	}
	// Out as a tar stream.
	out := h.cmd("cp", "c:/srv/d", "-")
	b, err := out.Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	if strings.Join(names, " ") != "d/ d/esc d/f d/sub/ d/sub/g" {
		t.Errorf("cp to a tar stream: %v", names)
	}
	// A stopped container's files are reachable too.
	h.ok("stop", "-t", "0", "c")
	h.ok("cp", "c:/srv/payload/x/y", filepath.Join(dst, "after"))
	if b, _ := os.ReadFile(filepath.Join(dst, "after")); string(b) != "host data\n" {
		t.Errorf("cp from a stopped container: %q", b)
	}
	if r := h.run("cp", "c:/nope", dst); r.code == 0 || !strings.Contains(r.stderr, "Could not find the file /nope") {
		t.Errorf("cp of a missing file: %s", r)
	}
}

// system df, system prune, info, version.
func TestSystemCommands(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "--name", "old", "-v", "/anon", "busybox", "true")
	h.ok("run", "-d", "--name", "live", "busybox", "sleep", "1000")
	df := h.ok("system", "df")
	for _, re := range []string{`(?m)^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$`, `(?m)^Images\s+1\s+1\s`, `(?m)^Containers\s+2\s+1\s`, `(?m)^Local Volumes\s+1\s+1\s`} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("system df lacks %s:\n%s", re, df)
		}
	}
	info := h.ok("info")
	for _, want := range []string{"Containers: 2", "Running: 1", "Stopped: 1", "Images: 1", "Storage Driver: overlay", "Logging Driver: json-file", "Cgroup Driver: cgroupfs"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	if got := strings.TrimSpace(h.ok("info", "--format", "{{.ContainersRunning}}/{{.Containers}}")); got != "1/2" {
		t.Errorf("info --format: %q", got)
	}
	if !strings.Contains(h.ok("version"), "Version:") {
		t.Errorf("version prints no version")
	}
	out := h.ok("system", "prune", "-f", "--volumes")
	if !strings.Contains(out, "Deleted Containers:") || !strings.Contains(out, "Deleted Volumes:") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("system prune:\n%s", out)
	}
	if names := h.ok("ps", "-a", "--format", "{{.Names}}"); names != "live\n" {
		t.Errorf("after prune: %q", names)
	}
	if vols := h.ok("volume", "ls", "-q"); vols != "" {
		t.Errorf("volumes after prune --volumes: %q", vols)
	}
}

// --runtime runc: the same engine (monitor, logs, exec, stop) over a runc-compatible
// binary instead of the runtime library.
func TestOtherRuntime(t *testing.T) {
	h := newHarness(t)
	r := h.run("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "echo via runc; exit 2")
	if r.code != 2 || r.stdout != "via runc\n" {
		t.Errorf("run --runtime runc: %s", r)
	}
	h.ok("run", "-d", "--name", "rc", "--runtime", "runc", "busybox", "sleep", "1000")
	if got := h.inspect("rc", "{{.HostConfig.Runtime}} {{.State.Status}}"); got != "runc running" {
		t.Errorf("inspect: %q", got)
	}
	if r := h.run("exec", "rc", "echo", "exec ok"); r.stdout != "exec ok\n" {
		t.Errorf("exec with runc: %s", r)
	}
	monitorOf(t, h, "rc") // runc's init ended up the monitor's child too
	h.ok("stop", "-t", "1", "rc")
	if st := h.state("rc"); st.Status != "exited" || st.ExitCode != 137 {
		t.Errorf("after stop: %+v", st)
	}
	h.ok("rm", "rc")
	if ents, _ := os.ReadDir(h.runtimeRoot + ".runc"); len(ents) != 0 {
		t.Errorf("runc state left: %v", ents)
	}
	if r := h.run("run", "--rm", "--runtime", "nosuchruntime", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "unknown or invalid runtime name: nosuchruntime") {
		t.Errorf("--runtime nosuchruntime: %s", r)
	}
}

// The monitor of an idle container stays small: its resident set is below conmon's
// (about 2 MiB on this kind of host), and the container's init is its child.
func TestMonitorFootprint(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "idle", "--network", "none", "busybox", "sleep", "1000")
	mon := monitorOf(t, h, "idle")
	time.Sleep(500 * time.Millisecond)
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(mon), "smaps_rollup"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Rss:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no Rss in smaps_rollup:\n%s", b)
	}
	if rss, _ := strconv.Atoi(string(m[1])); rss > 2048 {
		t.Errorf("the monitor's resident set is %d KiB, over 2 MiB", rss)
	}
}

// wait on an --rm container returns its exit code although the container is gone by then.
func TestWaitAutoRemove(t *testing.T) {
	h := newHarness(t)
	id := strings.TrimSpace(h.ok("run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.5; exit 12"))
	if r := h.run("wait", id); r.stdout != "12\n" || r.code != 0 {
		t.Errorf("wait on an --rm container: %s", r)
	}
	eventually(t, 5*time.Second, "the --rm container to go", func() bool { return h.ok("ps", "-aq") == "" })
}
