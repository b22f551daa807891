package integration

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func capMask(t *testing.T, names ...string) string {
	bits := map[string]uint{"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12}
	var m uint64
	for _, n := range names {
		b, ok := bits[n]
		if !ok {
			t.Fatalf("capMask: %s", n)
		}
		m |= 1 << b
	}
	return fmt.Sprintf("%016x", m)
}

// The five capability sets read inside are the configured ones.
func TestCapabilitiesAsConfigured(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -d '\t' | tr : =`)
	nbs := []string{"CAP_NET_BIND_SERVICE"}
	b.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
		Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs,
	}
	out := lines(r.mustRun(b, "caps-user"))
	want := map[string]string{
		"CapBnd": capMask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
		"CapEff": capMask(t, nbs...), "CapPrm": capMask(t, nbs...),
		"CapInh": capMask(t, nbs...), "CapAmb": capMask(t, nbs...),
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("uid 1000: %s=%s, want %s", k, out[k], v)
		}
	}
	// For root the kernel gives every bounding capability at exec: the sets are what a
	// Docker-style config (all sets equal) asks for.
	b = newBundle(t, `grep -E '^Cap(Eff|Bnd)' /proc/self/status | tr -d '\t' | tr : =`)
	set := []string{"CAP_CHOWN", "CAP_NET_ADMIN"}
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
	out = lines(r.mustRun(b, "caps-root"))
	if out["CapBnd"] != capMask(t, set...) || out["CapEff"] != capMask(t, set...) {
		t.Errorf("root: CapBnd=%s CapEff=%s, want %s", out["CapBnd"], out["CapEff"], capMask(t, set...))
	}
}

func errnoRet(n uint) *uint { return &n }

// A profile that gives mkdir an errno is enforced, errnoRet included, and an argument filter
// lets one personality value through and not another.
func TestSeccompCustomProfileAndArgs(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `probe syscalls; probe personality 0; probe personality 0x8; mkdir /tmp/viash 2>&1; true`)
	b.addProbe(t, 0o755)
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: errnoRet(38)},
			{Names: []string{"unshare"}, Action: specs.ActErrno},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: errnoRet(1)},
		},
	}
	out := r.mustRun(b, "seccomp-custom")
	kv := lines(out)
	if kv["mkdir"] != "ENOSYS" {
		t.Errorf("mkdir under errnoRet 38: %s, want ENOSYS", kv["mkdir"])
	}
	if !strings.Contains(out, "Function not implemented") {
		t.Errorf("busybox mkdir did not see errno 38: %q", out)
	}
	if kv["unshare-net"] != "EPERM" {
		t.Errorf("unshare under ERRNO without errnoRet: %s, want EPERM", kv["unshare-net"])
	}
	if kv["getpid"] != "ok" {
		t.Errorf("getpid: %s", kv["getpid"])
	}
	// Two personality lines: 0 is let through, 0x8 is not.
	var pers []string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "personality="); ok {
			pers = append(pers, v)
		}
	}
	if len(pers) != 2 || pers[0] != "ok" || pers[1] != "EPERM" {
		t.Errorf("personality(0), personality(8): %v, want [ok EPERM]", pers)
	}
	_, stderr, code := r.exec("run", "-b", writeBundleWith(t, func(b *bundle) {
		b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	}), "badprofile")
	if code != 1 || !strings.Contains(stderr, "linux.seccomp") {
		t.Errorf("a bad profile: exit %d, %q", code, stderr)
	}
}

func writeBundleWith(t *testing.T, f func(*bundle)) string {
	b := newBundle(t, "true")
	f(b)
	b.save(t)
	return b.Dir
}

// The default profile blocks mount, unshare, keyctl, reboot and namespace clones even with
// the capabilities that would allow them, while a normal shell session works.
func TestSeccompDefaultProfile(t *testing.T) {
	r := newRT(t)
	run := func(id string, profile bool) map[string]string {
		b := newBundle(t, `probe syscalls; echo shell=$(echo a b | tr ' ' '\n' | sort -r | head -1)$(sh -c 'ls / | grep -c bin')`)
		b.addProbe(t, 0o755)
		for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"} {
			b.Spec.Process.Capabilities.Bounding = append(b.Spec.Process.Capabilities.Bounding, c)
			b.Spec.Process.Capabilities.Effective = append(b.Spec.Process.Capabilities.Effective, c)
			b.Spec.Process.Capabilities.Permitted = append(b.Spec.Process.Capabilities.Permitted, c)
		}
		if !profile {
			b.Spec.Linux.Seccomp = nil
		}
		if b.Spec.Linux.Seccomp == nil && profile {
			t.Fatal("the default spec has no seccomp profile")
		}
		return lines(r.mustRun(b, id))
	}
	with, without := run("default-profile", true), run("no-profile", false)
	for _, sc := range []string{"mount", "unshare-net", "unshare-user", "keyctl", "reboot", "clone-newuts"} {
		if with[sc] != "EPERM" {
			t.Errorf("%s under the default profile: %s, want EPERM", sc, with[sc])
		}
		if without[sc] == "EPERM" {
			t.Errorf("%s is denied even without a profile (%s): the test would prove nothing", sc, without[sc])
		}
	}
	if with["getpid"] != "ok" || with["shell"] != "b1" {
		t.Errorf("a normal shell session under the default profile: getpid %s, shell %q", with["getpid"], with["shell"])
	}
}

// A setuid-root binary doesn't raise a user's privileges under no_new_privs.
func TestNoNewPrivsStopsSetuid(t *testing.T) {
	r := newRT(t)
	for _, nnp := range []bool{true, false} {
		b := newBundle(t, `probe euid`)
		var st unix.Statfs_t
		if err := unix.Statfs(b.rootfs(), &st); err == nil && st.Flags&unix.ST_NOSUID != 0 {
			t.Fatalf("the bundle's filesystem (%s) is mounted nosuid, so the setuid control cannot work: set TMPDIR to a directory on a suid-capable filesystem", b.rootfs())
		}
		b.addProbe(t, os.ModeSetuid|0o755)
		b.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
		b.Spec.Process.NoNewPrivileges = nnp
		out := lines(r.mustRun(b, fmt.Sprintf("nnp-%v", nnp)))
		want := "1000"
		if !nnp {
			want = "0" // the control: without no_new_privs the setuid bit works
		}
		if out["euid"] != want {
			t.Errorf("noNewPrivileges %v: setuid probe runs with euid %s, want %s", nnp, out["euid"], want)
		}
	}
}

// CVE-2024-21626: a cwd naming one of the runtime's descriptors must never reach the host.
func TestCwdThroughLeakedFDRefused(t *testing.T) {
	r := newRT(t)
	for fd := 3; fd <= 12; fd++ {
		b := newBundle(t, `pwd; ls`)
		b.Spec.Process.Cwd = fmt.Sprintf("/proc/self/fd/%d", fd)
		b.save(t)
		out, stderr, code := r.exec("run", "-b", b.Dir, fmt.Sprintf("cwd%d", fd))
		if code == 0 {
			t.Errorf("cwd /proc/self/fd/%d: the container ran in %q", fd, out)
		} else if !strings.Contains(stderr, "process.cwd") {
			t.Errorf("cwd /proc/self/fd/%d: error does not name process.cwd: %q", fd, stderr)
		}
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// CVE-2019-5736: a process in the container makes the runtime exec itself (the user's
// program is a link to /proc/self/exe), takes hold of the runtime's binary through
// /proc/<pid>/exe, and once the runtime is gone tries to open the binary for writing.
// An attacker with default capabilities cannot even open the waiting init's exe (it is not
// dumpable); one with CAP_SYS_PTRACE can, but cannot write through it. The binary on the host
// must stay intact either way.
func TestRuntimeBinaryNotWritableFromContainer(t *testing.T) {
	r := newRT(t)
	before := fileHash(t, runtimeBin)
	ready := func(b *bundle, dir string) {
		waitFor(t, "a watcher", func() bool {
			_, err := os.Stat(filepath.Join(b.rootfs(), "tmp", dir, "ready"))
			return err == nil
		})
	}
	// The plain attacker, with default capabilities, owns the pid namespace.
	plain := newBundle(t, `mkdir -p /tmp/plain /tmp/ptrace; probe watch-exe /tmp/plain 4 > /tmp/plain/verdict; exec sleep 60`)
	plain.addProbe(t, 0o755)
	plain.Spec.Hostname = ""
	plain.Spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}
	plain.Spec.Linux.Seccomp = nil
	plain.save(t)
	r.mustOK("run", "-d", "-b", plain.Dir, "plain")
	ready(plain, "plain")
	pid := r.state("plain").Pid
	sharing := func(b *bundle) {
		b.Spec.Root.Path = plain.rootfs()
		b.Spec.Hostname = ""
		b.Spec.Linux.Seccomp = nil
		b.Spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace},
			{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", pid)}}
		b.save(t)
	}
	// The strong attacker: CAP_SYS_PTRACE, same pid namespace and rootfs. It holds the lock
	// the hijacked runtime would wait on.
	ptracer := newBundle(t, `exec probe watch-exe /tmp/ptrace > /tmp/ptrace/verdict`)
	for _, set := range []*[]string{&ptracer.Spec.Process.Capabilities.Bounding, &ptracer.Spec.Process.Capabilities.Effective, &ptracer.Spec.Process.Capabilities.Permitted} {
		*set = append(*set, "CAP_SYS_PTRACE")
	}
	sharing(ptracer)
	r.mustOK("run", "-d", "-b", ptracer.Dir, "ptracer")
	ready(plain, "ptrace")

	// The victim's program is a link to /proc/self/exe: its init would exec the runtime.
	os.Symlink("/proc/self/exe", filepath.Join(plain.rootfs(), "evil"))
	victim := newBundle(t, "")
	victim.Spec.Process.Args = []string{"/evil", "--root", "/tmp/ptrace", "kill", "x"}
	sharing(victim)
	r.mustOK("create", "-b", victim.Dir, "victim")

	// Poll files, not the runtime: running the runtime's binary meanwhile would make a
	// write fail with ETXTBSY and hide whether the mount is read-only.
	verdict := func(name string) string {
		p := filepath.Join(plain.rootfs(), "tmp", name, "verdict")
		for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "reopen-for-write") || strings.Contains(string(b), "watch=") {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no verdict in %s; so far: %q", p, b)
			}
		}
	}
	weak := verdict("plain")
	if !strings.Contains(weak, "open-exe-during-setup=EACCES") || strings.Contains(weak, "open-exe=ok") {
		t.Errorf("an attacker with default capabilities reached the waiting init's exe: %q", weak)
	}
	r.mustOK("start", "victim")
	strong := verdict("ptrace")
	t.Logf("default-capability attacker: %q; CAP_SYS_PTRACE attacker: %q", weak, strong)
	if !strings.Contains(strong, "open-exe=ok") {
		t.Fatalf("the CAP_SYS_PTRACE attacker never held the runtime's exe, so it proves nothing: %q", strong)
	}
	if strings.Contains(strong, "WROTE") || strings.Contains(strong, "write-while-running=ok") {
		t.Errorf("a container process wrote the runtime's binary: %q", strong)
	}
	if !strings.Contains(strong, "reopen-for-write=EROFS") && !strings.Contains(strong, "reopen-for-write=EPERM") {
		t.Errorf("reopening the runtime's binary for writing: %q, want EROFS (or EPERM on a sealed copy)", strong)
	}
	if fileHash(t, runtimeBin) != before {
		t.Fatal("the runtime's binary on the host changed")
	}
}

// linux.personality LINUX32 makes uname report a 32-bit machine.
func TestPersonality(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `uname -m`)
	b.Spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	if out := strings.TrimSpace(r.mustRun(b, "pers32")); out != "i686" {
		t.Errorf("uname -m under LINUX32: %q, want i686", out)
	}
	b = newBundle(t, "true")
	b.Spec.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX128"}
	b.save(t)
	if _, stderr, code := r.exec("run", "-b", b.Dir, "persbad"); code != 1 || !strings.Contains(stderr, "linux.personality") {
		t.Errorf("an unknown personality: exit %d, %q", code, stderr)
	}
}

// SCMP_ACT_NOTIFY: the listener fd reaches linux.seccomp.listenerPath with the container
// process state and its metadata; once the listener is closed, the notified syscall fails
// with ENOSYS inside the container.
func TestSeccompNotifyListener(t *testing.T) {
	r := newRT(t)
	sock := filepath.Join(t.TempDir(), "seccomp.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		state specs.ContainerProcessState
		fds   []int
		err   error
	}
	ch := make(chan got, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- got{err: err}
			return
		}
		var g got
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for i := range msgs {
			fds, _ := unix.ParseUnixRights(&msgs[i])
			g.fds = append(g.fds, fds...)
		}
		g.err = json.Unmarshal(buf[:n], &g.state)
		ch <- g
	}()
	b := newBundle(t, `mkdir /tmp/notified 2>&1; echo mkdir-exit=$?`)
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "berth-test-metadata",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	b.save(t)
	r.allowGoInit("notify") // a seccomp listener is handed over by the Go init
	r.mustOK("create", "-b", b.Dir, "notify")
	var g got
	select {
	case g = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived on listenerPath")
	}
	if g.err != nil || len(g.fds) != 1 {
		t.Fatalf("listener message: %v, %d fds", g.err, len(g.fds))
	}
	st := g.state
	if st.Metadata != "berth-test-metadata" || st.State.ID != "notify" || st.Pid != r.state("notify").Pid ||
		len(st.Fds) != 1 || st.Fds[0] != "seccompFd" {
		t.Errorf("container process state %+v", st)
	}
	unix.Close(g.fds[0]) // nobody answers: the notified syscall must fail, not hang
	r.mustOK("start", "notify")
	waitFor(t, "the program", func() bool { return r.state("notify").Status == "stopped" })
	if _, err := os.Stat(filepath.Join(b.rootfs(), "tmp", "notified")); err == nil {
		t.Error("mkdir succeeded although its notification was never answered")
	}
}
