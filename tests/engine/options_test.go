package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Volumes persist across containers; binds show host files; :ro is enforced; volumes in
// use cannot be removed; an empty volume starts with the image's files.
func TestVolumes(t *testing.T) {
	h := newHarness(t)
	if out := h.ok("volume", "create", "data"); out != "data\n" {
		t.Errorf("volume create printed %q", out)
	}
	h.ok("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
	if r := h.run("run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"); r.stdout != "kept\n" {
		t.Errorf("second container reading the volume: %s", r)
	}
	// Named volumes are made on first use; the image's files at the mount point are
	// copied into a new one (busybox's /data holds "seed").
	if r := h.run("run", "--rm", "-v", "fresh:/data", "busybox", "cat", "/data/seed"); r.stdout != "from the image\n" {
		t.Errorf("new volume over the image's /data: %s", r)
	}
	if out := h.ok("volume", "ls", "--format", "{{.Name}}"); out != "data\nfresh\n" {
		t.Errorf("volume ls: %q", out)
	}
	mp := h.ok("volume", "inspect", "-f", "{{.Mountpoint}}", "data")
	if b, err := os.ReadFile(filepath.Join(strings.TrimSpace(mp), "f")); err != nil || string(b) != "kept\n" {
		t.Errorf("volume data on the host: %q %v", b, err)
	}
	// A bind mount, read-write and read-only.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "host"), []byte("from host\n"), 0o644)
	r := h.run("run", "--rm", "-v", dir+":/h", "busybox", "sh", "-c", "cat /h/host; echo back > /h/ctr")
	if r.stdout != "from host\n" {
		t.Errorf("bind mount: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ctr")); string(b) != "back\n" {
		t.Errorf("write through the bind mount: %q", b)
	}
	r = h.run("run", "--rm", "-v", dir+":/h:ro", "busybox", "sh", "-c", "echo no > /h/x")
	if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("write to a :ro bind: %s", r)
	}
	r = h.run("run", "--rm", "--mount", "type=bind,source="+dir+",target=/m,readonly", "busybox", "sh", "-c", "cat /m/host; touch /m/y")
	if r.stdout != "from host\n" || r.code == 0 {
		t.Errorf("--mount type=bind,readonly: %s", r)
	}
	r = h.run("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "sh", "-c", "df -k /t | tail -1")
	if !strings.Contains(r.stdout, "1024") {
		t.Errorf("--mount type=tmpfs,tmpfs-size=1m: %s", r)
	}
	// In use: refused.
	h.ok("create", "--name", "user", "-v", "data:/data", "busybox")
	r = h.run("volume", "rm", "data")
	if r.code == 0 || !strings.Contains(r.stderr, "volume is in use") {
		t.Errorf("volume rm of a volume in use: %s", r)
	}
	h.ok("rm", "user")
	h.ok("volume", "rm", "data", "fresh")
	if out := h.ok("volume", "ls", "-q"); out != "" {
		t.Errorf("volume ls after rm: %q", out)
	}
	// rm -v takes the anonymous volumes with the container, and only those.
	h.ok("volume", "create", "keep")
	h.ok("run", "--name", "anon", "-v", "/scratch", "-v", "keep:/keep", "busybox", "true")
	if n := len(strings.Fields(h.ok("volume", "ls", "-q"))); n != 2 {
		t.Errorf("%d volumes, want the anonymous one and keep", n)
	}
	h.ok("rm", "-v", "anon")
	if out := h.ok("volume", "ls", "-q"); out != "keep\n" {
		t.Errorf("volumes after rm -v: %q", out)
	}
	h.ok("volume", "rm", "keep")
}

// cgroupFile reads a file of the container's cgroup in a v1 hierarchy (or v2).
func cgroupFile(t *testing.T, id, ctrl, v1file, v2file string) string {
	t.Helper()
	for _, p := range []string{filepath.Join("/sys/fs/cgroup", ctrl, "berth", id, v1file), filepath.Join("/sys/fs/cgroup/berth", id, v2file)} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("container %s: no %s (%s/%s) in its cgroup", id[:12], ctrl, v1file, v2file)
	return ""
}

// Resource flags land in the container's cgroup, where the kernel enforces them.
func TestResourceFlags(t *testing.T) {
	h := newHarness(t)
	id := strings.TrimSpace(h.ok("run", "-d", "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5", "--cpu-shares", "512",
		"--cpuset-cpus", "0", "--pids-limit", "42", "--ulimit", "nofile=256:512", "busybox", "sleep", "1000"))
	checks := []struct{ ctrl, v1, v2, want string }{
		{"memory", "memory.limit_in_bytes", "memory.max", strconv.Itoa(64 << 20)},
		{"cpu", "cpu.cfs_quota_us", "cpu.max", "50000"},
		{"cpu", "cpu.shares", "cpu.weight", "512"},
		{"cpuset", "cpuset.cpus", "cpuset.cpus", "0"},
		{"pids", "pids.max", "pids.max", "42"},
	}
	for _, c := range checks {
		got := cgroupFile(t, id, c.ctrl, c.v1, c.v2)
		if !strings.HasPrefix(got, c.want) && !(c.v2 == "cpu.weight" && got == "20") {
			t.Errorf("%s/%s = %q, want %q", c.ctrl, c.v1, got, c.want)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		if got := cgroupFile(t, id, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max"); got != strconv.Itoa(128<<20) {
			t.Errorf("memsw limit = %s", got)
		}
	}
	if got := h.inspect(id, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"); got != "67108864 500000000 42" {
		t.Errorf("inspect HostConfig: %q", got)
	}
	r := h.run("run", "--rm", "--ulimit", "nofile=256:512", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
	if r.stdout != "256\n512\n" {
		t.Errorf("--ulimit: %s", r)
	}
	// The pids limit holds: a fork loop stops at it, and the kernel counts the refusals.
	fl := strings.TrimSpace(h.ok("run", "-d", "--pids-limit", "8", "busybox", "sh", "-c",
		// The inner shell forks until it is refused and dies of it; the outer one then
		// execs (no fork needed) to keep the container up.
		`sh -c 'for i in $(seq 20); do sleep 100 & done' 2>/dev/null; exec sleep 100`))
	eventually(t, 5*time.Second, "the fork loop to hit the limit", func() bool {
		return strings.Contains(cgroupFile(t, fl, "pids", "pids.events", "pids.events"), "max ") &&
			!strings.HasSuffix(cgroupFile(t, fl, "pids", "pids.events", "pids.events"), "max 0")
	})
	if n, _ := strconv.Atoi(cgroupFile(t, fl, "pids", "pids.current", "pids.current")); n > 8 || n < 2 {
		t.Errorf("pids-limit 8: %d tasks in the cgroup", n)
	}
	// The memory limit holds: the OOM killer ends a process that goes over it, and
	// inspect says so.
	r = h.run("run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived")
	if r.code != 137 {
		t.Errorf("memory hog: %s, want 137", r)
	}
	if st := h.state("hog"); !st.OOMKilled {
		t.Errorf("inspect of the OOM-killed container: %+v", st)
	}
}

// Security flags: capabilities, privileged, seccomp, no-new-privileges, read-only rootfs,
// tmpfs, devices, sysctls, --init and --userns.
func TestSecurityFlags(t *testing.T) {
	h := newHarness(t)
	status := func(args ...string) map[string]string {
		t.Helper()
		out := h.ok(append(append([]string{"run", "--rm"}, args...), "busybox", "cat", "/proc/self/status")...)
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			k, v, _ := strings.Cut(line, ":")
			m[k] = strings.TrimSpace(v)
		}
		return m
	}
	def := status()
	if def["CapEff"] != "00000000a80425fb" || def["Seccomp"] != "2" || def["NoNewPrivs"] != "0" {
		t.Errorf("default: CapEff %s Seccomp %s NoNewPrivs %s (want Docker's caps, a filter, no_new_privs off)", def["CapEff"], def["Seccomp"], def["NoNewPrivs"])
	}
	if s := status("--cap-drop", "ALL", "--cap-add", "NET_ADMIN"); s["CapEff"] != "0000000000001000" {
		t.Errorf("--cap-drop ALL --cap-add NET_ADMIN: CapEff %s", s["CapEff"])
	}
	if s := status("--cap-drop", "chown"); s["CapEff"] != "00000000a80425fa" {
		t.Errorf("--cap-drop chown: CapEff %s", s["CapEff"])
	}
	if s := status("--security-opt", "no-new-privileges"); s["NoNewPrivs"] != "1" {
		t.Errorf("no-new-privileges: %s", s["NoNewPrivs"])
	}
	if s := status("--security-opt", "seccomp=unconfined"); s["Seccomp"] != "0" {
		t.Errorf("seccomp=unconfined: %s", s["Seccomp"])
	}
	priv := status("--privileged")
	if priv["Seccomp"] != "0" || priv["CapEff"] == def["CapEff"] {
		t.Errorf("--privileged: CapEff %s Seccomp %s", priv["CapEff"], priv["Seccomp"])
	}
	// A seccomp profile file (Docker's format) that denies mkdir.
	prof := filepath.Join(t.TempDir(), "profile.json")
	os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
		"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	r := h.run("run", "--rm", "--security-opt", "seccomp="+prof, "busybox", "mkdir", "/tmp/x")
	if r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Errorf("seccomp profile denying mkdir: %s", r)
	}
	// --read-only with a --tmpfs to write in.
	r = h.run("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c", "touch /x; touch /scratch/y && echo ok")
	if !strings.Contains(r.stderr, "Read-only file system") || r.stdout != "ok\n" {
		t.Errorf("--read-only --tmpfs: %s", r)
	}
	// A device, under another name.
	r = h.run("run", "--rm", "--device", "/dev/null:/dev/black", "busybox", "sh", "-c", "echo x > /dev/black && ls -l /dev/black")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "c") {
		t.Errorf("--device: %s", r)
	}
	// Sysctls, namespaced ones only.
	r = h.run("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.msgmax=4096", "busybox",
		"cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax")
	if r.stdout != "1\n4096\n" {
		t.Errorf("--sysctl: %s", r)
	}
	r = h.run("run", "--rm", "--sysctl", "kernel.panic=1", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "not a namespaced sysctl") {
		t.Errorf("--sysctl kernel.panic: %s", r)
	}
	// --init: pid 1 is berth-init, which reaps orphans and passes signals on.
	r = h.run("run", "--rm", "--init", "busybox", "sh", "-c", "(sleep 0.1 &) ; sleep 0.3; ps -o pid,stat,comm")
	if !regexp.MustCompile(`(?m)^\s+1 \S+\s+berth-init$`).MatchString(r.stdout) || strings.Contains(r.stdout, " Z ") {
		t.Errorf("--init: %s", r)
	}
	h.ok("run", "-d", "--init", "--name", "initd", "busybox", "sleep", "1000")
	// As for any container, a TERM that comes before its program runs (here before
	// berth-init, a Go program, has started and caught the signals) ends it otherwise.
	eventually(t, 5*time.Second, "berth-init running sleep", func() bool {
		ppid := fmt.Sprintf("PPid:\t%d\n", h.state("initd").Pid)
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			st, _ := os.ReadFile("/proc/" + p.Name() + "/status")
			if strings.HasPrefix(string(st), "Name:\tsleep\n") && strings.Contains(string(st), ppid) {
				return true
			}
		}
		return false
	})
	start := time.Now()
	h.ok("stop", "initd")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop of an --init container took %v: the TERM did not reach sleep", d)
	}
	if st := h.state("initd"); st.ExitCode != 143 {
		t.Errorf("--init container stopped by TERM: exit %d, want 143", st.ExitCode)
	}
	// --userns=auto: root inside is an unprivileged range outside, and owns its rootfs.
	r = h.run("run", "--rm", "--userns", "auto", "-v", "uvol:/vol", "busybox", "sh", "-c",
		"id -u; cat /proc/self/uid_map; stat -c %u /etc; touch /etc/new && echo writable; echo data > /vol/f && stat -c %u /vol/f")
	f := strings.Fields(r.stdout)
	if r.code != 0 || len(f) != 7 || f[0] != "0" || f[1] != "0" || f[2] == "0" || f[3] != "65536" || f[4] != "0" || f[5] != "writable" || f[6] != "0" {
		t.Errorf("--userns auto: %s", r)
	}
	// The volume is idmapped: what root wrote inside is root's on the host too.
	var st syscall.Stat_t
	mp := strings.TrimSpace(h.ok("volume", "inspect", "-f", "{{.Mountpoint}}", "uvol"))
	if err := syscall.Stat(filepath.Join(mp, "f"), &st); err != nil || st.Uid != 0 {
		t.Errorf("the file written in the volume: uid %d, %v", st.Uid, err)
	}
}
