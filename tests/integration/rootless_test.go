package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/testutil/testuser"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootlessUser is an unprivileged user made for one test, with its subordinate id range.
type rootlessUser struct {
	name           string
	uid, gid       int
	subuid, subgid int // first subordinate id
	bin            string
	home           string
}

func newRootlessUser(t *testing.T) *rootlessUser {
	t.Helper()
	tu := testuser.New(t, "berthrl", true)
	u := &rootlessUser{name: tu.Name, uid: tu.UID, gid: tu.GID, subuid: tu.SubUID, subgid: tu.SubGID}
	u.home = t.TempDir()
	os.Chmod(filepath.Dir(u.home), 0o755)
	os.Chown(u.home, u.uid, u.gid)
	// A copy of the runtime the user can reach (the test's own copy is in a private dir).
	u.bin = filepath.Join(u.home, "berth-runtime")
	data, err := os.ReadFile(runtimeBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return u
}

// run runs berth-runtime as the user, with its state under the user's runtime dir.
func (u *rootlessUser) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(u.bin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + u.home, "HOME=" + u.home}
	cmd.Dir = u.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// bundle makes a busybox bundle owned by the user from `spec --rootless`, edited by f.
func (u *rootlessUser) bundle(t *testing.T, f func(*specs.Spec)) string {
	t.Helper()
	b := newBundle(t, "true")
	dir := filepath.Join(u.home, fmt.Sprintf("bundle%d", time.Now().UnixNano()))
	if err := os.Rename(b.Dir, dir); err != nil {
		t.Fatal(err)
	}
	chownTree(t, dir, u.uid)
	if _, stderr, code := u.run(t, "", "spec", "--rootless", "--bundle", dir); code != 0 {
		t.Fatalf("spec --rootless as %s: %s", u.name, stderr)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	spec := &specs.Spec{}
	if err := json.Unmarshal(raw, spec); err != nil {
		t.Fatal(err)
	}
	if int(spec.Linux.UIDMappings[0].HostID) != u.uid {
		t.Errorf("spec --rootless maps root to %d, want the user's %d", spec.Linux.UIDMappings[0].HostID, u.uid)
	}
	if f != nil {
		f(spec)
		raw, _ = json.Marshal(spec)
		os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	}
	return dir
}

func TestRootlessContainers(t *testing.T) {
	u := newRootlessUser(t)

	// Root inside, the user outside.
	dir := u.bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = false
		s.Root.Readonly = false
		s.Process.Args = []string{"sh", "-c", "echo uid=$(id -u); echo -n x > /tmp/mine"}
	})
	out, stderr, code := u.run(t, "", "run", "-b", dir, "rl-single")
	if code != 0 || !strings.Contains(out, "uid=0") {
		t.Fatalf("rootless run: exit %d, %q, %q", code, out, stderr)
	}
	if st := mustStat(t, filepath.Join(dir, "rootfs", "tmp", "mine")); int(st.Uid) != u.uid {
		t.Errorf("a file written as root inside is owned by %d on the host, want the user's %d", st.Uid, u.uid)
	}

	// The user's subordinate range through newuidmap/newgidmap.
	dir = u.bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = false
		s.Root.Readonly = false
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(u.uid), Size: 1}, {ContainerID: 1, HostID: uint32(u.subuid), Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(u.gid), Size: 1}, {ContainerID: 1, HostID: uint32(u.subgid), Size: 65536}}
		s.Process.Args = []string{"sh", "-c", "touch /tmp/sub && chown 1000:1000 /tmp/sub"}
	})
	if _, stderr, code := u.run(t, "", "run", "-b", dir, "rl-range"); code != 0 {
		t.Fatalf("rootless run with a subordinate range: exit %d, %q", code, stderr)
	}
	if st := mustStat(t, filepath.Join(dir, "rootfs", "tmp", "sub")); int(st.Uid) != u.subuid+999 || int(st.Gid) != u.subgid+999 {
		t.Errorf("uid 1000 inside is %d:%d on the host, want %d:%d", st.Uid, st.Gid, u.subuid+999, u.subgid+999)
	}

	// A root-only file of the host, bound in, stays unreadable to root inside.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("host-secret"), 0o600)
	os.Chmod(filepath.Dir(secret), 0o755)
	dir = u.bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = false
		s.Process.Args = []string{"sh", "-c", "cat /secret 2>&1; echo read-exit=$?"}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/secret", Type: "bind", Source: secret, Options: []string{"bind", "ro"}})
	})
	out, stderr, code = u.run(t, "", "run", "-b", dir, "rl-secret")
	if code != 0 || strings.Contains(out, "host-secret") || !strings.Contains(out, "read-exit=1") {
		t.Errorf("reading a root-only host file from a rootless container: exit %d, %q, %q", code, out, stderr)
	}

	// Limits need a delegated cgroup, which this host has not got: a clear error.
	dir = u.bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = false
		limit := int64(64 << 20)
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	})
	if _, stderr, code := u.run(t, "", "run", "-b", dir, "rl-limits"); code != 1 || !strings.Contains(stderr, "linux.resources") || !strings.Contains(stderr, "cgroup") {
		t.Errorf("limits without a delegated cgroup: exit %d, %q", code, stderr)
	}

	// `spec --rootless` works as it is (a terminal, through a console socket).
	dir = u.bundle(t, nil)
	sock, masterCh := consoleListener(t)
	os.Chmod(filepath.Dir(sock), 0o777)
	os.Chmod(sock, 0o777)
	if _, stderr, code := u.run(t, "", "create", "-b", dir, "--console-socket", sock, "rl-asis"); code != 0 {
		t.Fatalf("create from the unedited rootless spec: %q", stderr)
	}
	master := <-masterCh
	if master == nil {
		t.Fatal("no pty master")
	}
	defer master.Close()
	if _, stderr, code := u.run(t, "", "start", "rl-asis"); code != 0 {
		t.Fatalf("start: %q", stderr)
	}
	master.Write([]byte("echo in=$(id -u)-$(hostname); exit\n"))
	if out := readAll(t, master); !strings.Contains(out, "in=0-berth") {
		t.Errorf("the unedited rootless container's shell said %q", out)
	}
	waitFor(t, "the shell to exit", func() bool {
		out, _, _ := u.run(t, "", "state", "rl-asis")
		return strings.Contains(out, `"stopped"`)
	})
	if _, stderr, code := u.run(t, "", "delete", "rl-asis"); code != 0 {
		t.Errorf("delete: %q", stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(u.home, "berth")); len(ents) != 0 {
		t.Errorf("the user's state dir still holds %d containers", len(ents))
	}
}
