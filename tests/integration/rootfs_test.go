package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMountOptionsAndTmpfsSize(t *testing.T) {
	r := newRT(t)
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "hello"), []byte("from-host"), 0o644)
	b := newBundle(t, `
		echo size=$(df -k /data | awk 'NR==2{print $2}')
		grep ' /data ' /proc/self/mountinfo | awk '{print "dataopts="$6}'
		echo bound=$(cat /ro/hello)
		touch /ro/x 2>/dev/null && echo rowrite=ok || echo rowrite=denied
		grep ' /ro ' /proc/self/mountinfo | awk '{print "roopts="$6}'
		echo file=$(cat /etc/hostfile)
		echo mode=$(stat -c %a /data)`)
	os.WriteFile(filepath.Join(t.TempDir(), "x"), nil, 0)
	hostFile := filepath.Join(hostDir, "hello")
	b.Spec.Mounts = append(b.Spec.Mounts,
		specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=700", "nosuid", "nodev", "noexec"}},
		specs.Mount{Destination: "/ro", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro", "nosuid"}},
		specs.Mount{Destination: "/etc/hostfile", Source: hostFile, Options: []string{"bind", "ro"}},
	)
	out := lines(r.mustRun(b, "mopts"))
	if out["size"] != "1024" {
		t.Errorf("tmpfs size=1m shows %s KiB", out["size"])
	}
	if !strings.Contains(out["dataopts"], "nosuid") || !strings.Contains(out["dataopts"], "noexec") || !strings.Contains(out["dataopts"], "nodev") {
		t.Errorf("tmpfs mount options %q lack nosuid,nodev,noexec", out["dataopts"])
	}
	if out["mode"] != "700" {
		t.Errorf("tmpfs mode=700 shows %s", out["mode"])
	}
	if out["bound"] != "from-host" || out["file"] != "from-host" {
		t.Errorf("bind mounts: dir %q, file %q", out["bound"], out["file"])
	}
	if out["rowrite"] != "denied" || !strings.HasPrefix(out["roopts"], "ro") {
		t.Errorf("read-only bind: write %s, options %q", out["rowrite"], out["roopts"])
	}
	if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
		t.Error("a write through the read-only bind reached the host")
	}
}

func TestReadonlyRootMaskedAndReadonlyPaths(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `
		touch /newfile 2>/dev/null && echo root=rw || echo root=ro
		echo tmpwrite=$(touch /tmp2/ok && echo ok)
		echo kcore=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)
		echo keys=$(wc -c < /proc/keys)
		echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys=writable || echo procsys=denied
		ls /sys/firmware | wc -l | awk '{print "firmware="$1}'`)
	b.Spec.Root.Readonly = true
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/tmp2", Type: "tmpfs", Source: "tmpfs"})
	out := lines(r.mustRun(b, "ro"))
	if out["root"] != "ro" {
		t.Errorf("root.readonly: writing / gave %s", out["root"])
	}
	if out["tmpwrite"] != "ok" {
		t.Errorf("a tmpfs on a read-only root is not writable: %q", out["tmpwrite"])
	}
	// Masked (or absent on kernels without it): nothing to read either way.
	if out["kcore"] != "0" {
		t.Errorf("%s bytes were read from /proc/kcore", out["kcore"])
	}
	if out["keys"] != "0" {
		t.Errorf("/proc/keys is not masked: %s bytes", out["keys"])
	}
	if out["procsys"] != "denied" {
		t.Errorf("/proc/sys is %s", out["procsys"])
	}
	if out["firmware"] != "0" {
		t.Errorf("/sys/firmware shows %s entries, want a masked empty dir", out["firmware"])
	}
	if _, err := os.Stat(filepath.Join(b.rootfs(), "newfile")); err == nil {
		t.Error("a write to a read-only root reached the rootfs")
	}
}

// A symlink in the image must never send a mount outside the rootfs (CVE-2021-30465 class).
func TestMountDestinationSymlinkStaysInRootfs(t *testing.T) {
	r := newRT(t)
	victim := t.TempDir()
	os.WriteFile(filepath.Join(victim, "precious"), []byte("host-data"), 0o644)
	hostMounts := func() string { b, _ := os.ReadFile("/proc/self/mountinfo"); return string(b) }

	// A symlink to a directory that exists inside the rootfs: the mount lands there.
	b := newBundle(t, `echo -n container > /evil/precious; grep -c ' /etc ' /proc/self/mountinfo`)
	if err := os.Symlink("/etc", filepath.Join(b.rootfs(), "evil")); err != nil {
		t.Fatal(err)
	}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/evil", Type: "tmpfs", Source: "tmpfs"})
	if out := strings.TrimSpace(r.mustRun(b, "symlink-in")); out != "1" {
		t.Errorf("the mount did not land on the symlink's target inside the rootfs: %q", out)
	}
	if _, err := os.Stat("/etc/precious"); err == nil {
		t.Error("a write through the mount reached the host's /etc")
	}

	// Symlinks to the host (absolute, or climbing with ..): refused or kept inside, never outside.
	for i, target := range []string{victim, "../../../../../../../.." + victim} {
		b := newBundle(t, `echo -n container > /evil/precious`)
		if err := os.Symlink(target, filepath.Join(b.rootfs(), "evil")); err != nil {
			t.Fatal(err)
		}
		b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/evil", Type: "tmpfs", Source: "tmpfs"})
		b.save(t)
		_, stderr, code := r.exec("run", "-b", b.Dir, "symlink-out"+itoa(i))
		if code != 0 && !strings.Contains(stderr, "/evil") {
			t.Errorf("refusal does not name the destination: %q", stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(victim, "precious")); string(got) != "host-data" {
			t.Errorf("symlink %s: host file changed to %q", target, got)
		}
		if strings.Contains(hostMounts(), victim) {
			t.Errorf("symlink %s: a mount landed on the host directory", target)
		}
	}
}

func TestProcMountOnSymlinkRefused(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `true`)
	os.Remove(filepath.Join(b.rootfs(), "proc"))
	os.Mkdir(filepath.Join(b.rootfs(), "fakeproc"), 0o755)
	os.Symlink("/fakeproc", filepath.Join(b.rootfs(), "proc"))
	b.save(t)
	_, stderr, code := r.exec("run", "-b", b.Dir, "procsym")
	if code == 0 || !strings.Contains(stderr, "symlink") || !strings.Contains(stderr, "/proc") {
		t.Errorf("proc on a symlink: exit %d, %q; want a refusal naming /proc", code, stderr)
	}
}

func TestDevicesAndDevLinks(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `
		for d in null zero full random urandom tty; do echo $d=$(stat -c '%F %t:%T %a' /dev/$d); done
		echo mydev=$(stat -c '%F %t:%T %a %u:%g' /dev/mydev)
		echo hi > /dev/mydev && echo write=ok
		echo fd=$(readlink /dev/fd) ptmx=$(readlink /dev/ptmx) stdin=$(readlink /dev/stdin)
		mknod /dev/sda1 b 8 1 2>/dev/null; head -c1 /dev/sda1 >/dev/null 2>&1 && echo disk=readable || echo disk=denied`)
	mode := os.FileMode(0o640)
	uid, gid := uint32(0), uint32(5)
	b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mydev", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &uid, GID: &gid}}
	// The device cgroup lets the container use the devices it was given, and nothing else.
	b.Spec.Linux.Resources.Devices = append(b.Spec.Linux.Resources.Devices,
		deviceRule(1, 3), deviceRule(1, 5), deviceRule(1, 7), deviceRule(1, 8), deviceRule(1, 9), deviceRule(5, 0))
	out := lines(r.mustRun(b, "devs"))
	want := map[string]string{
		"null": "character special file 1:3 666", "zero": "character special file 1:5 666",
		"full": "character special file 1:7 666", "random": "character special file 1:8 666",
		"urandom": "character special file 1:9 666", "tty": "character special file 5:0 666",
		"mydev": "character special file 1:3 640 0:5",
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("/dev/%s: %q, want %q", k, out[k], v)
		}
	}
	if out["write"] != "ok" {
		t.Error("writing the configured device failed")
	}
	if out["fd"] != "/proc/self/fd ptmx=pts/ptmx stdin=/proc/self/fd/0" {
		t.Errorf("/dev links: %q", out["fd"])
	}
	if out["disk"] != "denied" {
		t.Errorf("a disk node made with mknod inside the container is %s", out["disk"])
	}
}

func deviceRule(major, minor int64) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
}

func TestNoPivot(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo root=$(ls / | tr '\n' ' ')`)
	b.save(t)
	r.allowGoInit("nopivot")
	out, stderr, code := r.exec("run", "--no-pivot", "-b", b.Dir, "nopivot")
	if code != 0 || !strings.Contains(out, "bin") || !strings.Contains(out, "proc") {
		t.Errorf("--no-pivot: exit %d, %q, %q", code, out, stderr)
	}
}

func TestProcessUserCwdEnvUmaskRlimits(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo id=$(id -u):$(id -g):$(id -G | tr ' ' ','); echo cwd=$(pwd); echo umask=$(umask); echo foo=$FOO; echo nofile=$(ulimit -n); echo caps=$(grep CapEff /proc/self/status | awk '{print $2}')`)
	os.MkdirAll(filepath.Join(b.rootfs(), "work"), 0o777)
	umask := uint32(0o027)
	b.Spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 20}, Umask: &umask}
	b.Spec.Process.Cwd = "/work"
	b.Spec.Process.Env = append(b.Spec.Process.Env, "FOO=bar baz")
	b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 512}}
	out := lines(r.mustRun(b, "user"))
	if out["id"] != "1000:1000:1000,5,20" {
		t.Errorf("ids %q, want 1000:1000:1000,5,20", out["id"])
	}
	if out["cwd"] != "/work" || out["umask"] != "0027" || out["foo"] != "bar baz" || out["nofile"] != "512" {
		t.Errorf("cwd %q umask %q FOO %q nofile %q", out["cwd"], out["umask"], out["foo"], out["nofile"])
	}
	// A non-root user keeps no capabilities across exec without ambient ones.
	if out["caps"] != "0000000000000000" {
		t.Errorf("uid 1000 has effective capabilities %s", out["caps"])
	}
}

func TestSysctlInContainerNamespacesOnly(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shm=$(cat /proc/sys/kernel/shmmni)`)
	b.Spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
	hostFwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	out := lines(r.mustRun(b, "sysctl"))
	if out["fwd"] != "1" || out["shm"] != "1234" {
		t.Errorf("sysctls inside: %v", out)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(now) != string(hostFwd) {
		t.Errorf("the host's ip_forward changed from %q to %q", hostFwd, now)
	}
}
