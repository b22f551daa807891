package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeCgroup makes dir in a fake cgroupfs tree with the files delegation looks at, owned by
// uid (as systemd's Delegate= or an administrator's chown leaves them).
func fakeCgroup(t *testing.T, dir string, uid int, controllers, procs string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"cgroup.controllers": controllers, "cgroup.procs": procs, "cgroup.subtree_control": ""}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.subtree_control")} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// The layout systemd gives a logged-in user: user.slice/user-UID.slice (root's), then
// user@UID.service delegated, with the user's shell in a scope below app.slice.
func TestDelegationFound(t *testing.T) {
	const uid = 4242
	mnt := t.TempDir()
	slice := filepath.Join(mnt, "user.slice", "user-4242.slice")
	fakeCgroup(t, slice, 0, "cpuset cpu io memory pids", "")
	svc := filepath.Join(slice, "user@4242.service")
	fakeCgroup(t, svc, uid, "cpu io memory pids", "")
	fakeCgroup(t, filepath.Join(svc, "app.slice"), uid, "cpu io memory pids", "")
	fakeCgroup(t, filepath.Join(svc, "app.slice", "shell.scope"), uid, "cpu memory pids", "123\n456\n")

	d := findDelegation(mnt, "/user.slice/user-4242.slice/user@4242.service/app.slice/shell.scope", uid)
	if d.Why != "" {
		t.Fatalf("delegation refused: %s", d.Why)
	}
	if d.Root != svc {
		t.Errorf("delegated root = %s, want %s (the topmost cgroup the user owns)", d.Root, svc)
	}
	if got, want := d.cgroupsPath("abc"), "/user.slice/user-4242.slice/user@4242.service/berth/abc"; got != want {
		t.Errorf("cgroupsPath = %s, want %s", got, want)
	}

	mem := int64(64 << 20)
	if err := checkRootlessLimits(&HostConfig{Memory: mem}, d); err != nil {
		t.Errorf("--memory with memory delegated: %v", err)
	}
	err := checkRootlessLimits(&HostConfig{CpusetCpus: "0"}, d)
	if err == nil || !strings.Contains(err.Error(), "cpuset controller") || !strings.Contains(err.Error(), filepath.Join(svc, "cgroup.controllers")) {
		t.Errorf("--cpuset-cpus without cpuset delegated: %v; want a refusal naming cpuset and %s/cgroup.controllers", err, svc)
	}

	// The kernel makes a cgroup's files on mkdir; a fake tree has them made beforehand.
	fakeCgroup(t, filepath.Join(svc, "berth"), uid, "", "")
	if err := prepareRootlessCgroup(d); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{svc, filepath.Join(svc, "berth")} {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			t.Fatal(err)
		}
		// A regular file keeps the last write: the controllers asked for.
		if got := string(b); got != "+cpu +io +memory +pids" {
			t.Errorf("%s/cgroup.subtree_control written %q, want +cpu +io +memory +pids (cpuset is not offered)", dir, got)
		}
	}

	l := &specs.Linux{Resources: &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &mem},
	}}
	if err := rootlessCgroupSpec(l, "abc", d); err != nil {
		t.Fatal(err)
	}
	if l.CgroupsPath != d.cgroupsPath("abc") || l.Resources == nil || l.Resources.Memory == nil || l.Resources.Devices != nil {
		t.Errorf("spec: cgroupsPath %q, resources %+v; want %s, the memory limit and no device rules", l.CgroupsPath, l.Resources, d.cgroupsPath("abc"))
	}
}

func TestDelegationRefused(t *testing.T) {
	const uid = 4242
	mnt := t.TempDir()
	fakeCgroup(t, filepath.Join(mnt, "user.slice"), 0, "cpu memory pids", "")
	fakeCgroup(t, filepath.Join(mnt, "user.slice", "session-1.scope"), 0, "cpu memory pids", "99\n")
	d := findDelegation(mnt, "/user.slice/session-1.scope", uid)
	if !strings.Contains(d.Why, "not delegated to uid 4242") {
		t.Errorf("a root-owned cgroup: why = %q, want not delegated", d.Why)
	}
	mem := int64(1 << 20)
	if err := checkRootlessLimits(&HostConfig{Memory: mem}, d); err == nil || !strings.Contains(err.Error(), "not delegated") {
		t.Errorf("--memory without delegation: %v", err)
	}
	l := &specs.Linux{CgroupsPath: "/x", Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "rwm"}}}}
	if err := rootlessCgroupSpec(l, "abc", d); err != nil || l.CgroupsPath != "" || l.Resources != nil {
		t.Errorf("no limits, no delegation: err %v, cgroupsPath %q, resources %+v; want no cgroup", err, l.CgroupsPath, l.Resources)
	}
	l = &specs.Linux{Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}}}
	if err := rootlessCgroupSpec(l, "abc", d); err == nil {
		t.Error("a memory limit without delegation was accepted")
	}

	// Delegated, but the delegated cgroup holds the user's processes itself.
	own := filepath.Join(mnt, "delegated")
	fakeCgroup(t, own, uid, "cpu memory pids", "77\n")
	d = findDelegation(mnt, "/delegated", uid)
	if !strings.Contains(d.Why, "holds processes") || !strings.Contains(d.Why, filepath.Join(own, "cgroup.procs")) {
		t.Errorf("a delegated cgroup with processes: why = %q", d.Why)
	}
}
