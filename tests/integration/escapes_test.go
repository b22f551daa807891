package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// /dev as a symlink in the image, pointing at a host directory: the /dev tmpfs and the
// device nodes stay inside the rootfs (or create refuses), and the host directory is untouched.
func TestDevSymlinkInImage(t *testing.T) {
	r := newRT(t)
	victim := t.TempDir()
	b := newBundle(t, `ls /dev > /dev/null && echo ok`)
	os.RemoveAll(filepath.Join(b.rootfs(), "dev"))
	if err := os.Symlink(victim, filepath.Join(b.rootfs(), "dev")); err != nil {
		t.Fatal(err)
	}
	b.save(t)
	out, stderr, code := r.exec("run", "-b", b.Dir, "devlink")
	if code != 0 && !strings.Contains(stderr, "/dev") {
		t.Errorf("refusal does not name /dev: %q", stderr)
	}
	if code == 0 && strings.TrimSpace(out) != "ok" {
		t.Errorf("container output %q", out)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("device nodes or mounts reached the host directory: %v", ents)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), victim) {
		t.Error("a mount landed on the host directory")
	}
}

// The 2025 runc advisories: the image's /dev/null is a symlink to a procfs file, and masking
// must not bind that file writable over a masked path. berth masks with the host's /dev/null,
// opened before anything in the image is looked at.
func TestMaskingIgnoresImageDevNull(t *testing.T) {
	r := newRT(t)
	hostCore, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	b := newBundle(t, `echo x > /proc/keys 2>/dev/null && echo keys=written || echo keys=denied
		echo keys-is=$(stat -L -c '%F %t:%T' /proc/keys)`)
	// No /dev tmpfs: /dev comes from the image, with its hostile null.
	b.Spec.Mounts = withoutMount(b.Spec.Mounts, "/dev")
	os.MkdirAll(filepath.Join(b.rootfs(), "dev"), 0o755)
	os.Symlink("/proc/sys/kernel/core_pattern", filepath.Join(b.rootfs(), "dev", "null"))
	out := lines(r.mustRun(b, "devnull"))
	if out["keys"] != "denied" && out["keys"] != "written" {
		t.Errorf("writing the masked /proc/keys: %q", out["keys"])
	}
	if out["keys-is"] != "character special file 1:3" {
		t.Errorf("/proc/keys is masked by %q, want the real null device 1:3", out["keys-is"])
	}
	if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(now) != string(hostCore) {
		t.Fatalf("the host's core_pattern changed: %q -> %q", hostCore, now)
	}
}

// A masked or read-only path that is a symlink in the image is refused, not followed.
func TestMaskedPathSymlinkRefused(t *testing.T) {
	r := newRT(t)
	for _, field := range []string{"maskedPaths", "readonlyPaths"} {
		b := newBundle(t, `true`)
		os.Symlink("/etc/passwd", filepath.Join(b.rootfs(), "etc", "secret"))
		if field == "maskedPaths" {
			b.Spec.Linux.MaskedPaths = append(b.Spec.Linux.MaskedPaths, "/etc/secret")
		} else {
			b.Spec.Linux.ReadonlyPaths = append(b.Spec.Linux.ReadonlyPaths, "/etc/secret")
		}
		b.save(t)
		_, stderr, code := r.exec("run", "-b", b.Dir, "masklink")
		if code == 0 || !strings.Contains(stderr, "/etc/secret") || !strings.Contains(stderr, "symlink") {
			t.Errorf("%s through a symlink: exit %d, %q", field, code, stderr)
		}
	}
}

// This host has neither AppArmor nor SELinux: asking for either is a clear error.
func TestLSMLabelsRefusedWithoutLSM(t *testing.T) {
	r := newRT(t)
	for name, set := range map[string]func(*specs.Spec){
		"apparmor": func(s *specs.Spec) { s.Process.ApparmorProfile = "berth-default" },
		"selinux":  func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" },
		"mount":    func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" },
	} {
		b := newBundle(t, "true")
		set(b.Spec)
		b.save(t)
		// Labels are applied by the Go init: where the LSM is enabled (the cgroup v2 lane's
		// Debian kernel has AppArmor) it is the init that refuses the unknown profile.
		r.allowGoInit("lsm-" + name)
		_, stderr, code := r.exec("create", "-b", b.Dir, "lsm-"+name)
		if code != 1 {
			t.Errorf("%s label: exit %d", name, code)
		}
		if !strings.Contains(stderr, "AppArmor") && !strings.Contains(stderr, "SELinux") {
			t.Errorf("%s label: the error does not say which LSM is missing: %q", name, stderr)
		}
	}
}

// Landlock, asked for with the org.berth.landlock annotation, confines the container's
// program to the paths it lists.
func TestLandlockAnnotation(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo a > /tmp/ok && echo tmp=written; echo b > /root/no 2>/dev/null && echo root=written || echo root=denied; cat /etc/passwd >/dev/null && echo read=ok`)
	b.Spec.Annotations = map[string]string{"org.berth.landlock": `{"readOnly": ["/"], "readWrite": ["/tmp", "/dev"]}`}
	r.allowGoInit("landlock") // landlock is applied by the Go init
	out := lines(r.mustRun(b, "landlock"))
	if out["tmp"] != "written" || out["root"] != "denied" || out["read"] != "ok" {
		t.Errorf("under landlock: %v", out)
	}
	if _, err := os.Stat(filepath.Join(b.rootfs(), "root", "no")); err == nil {
		t.Error("a write outside the landlock paths reached the rootfs")
	}
	b = newBundle(t, "true")
	b.Spec.Annotations = map[string]string{"org.berth.landlock": `{"readOnly": ["/"], "writeEverything": true}`}
	b.save(t)
	if _, stderr, code := r.exec("create", "-b", b.Dir, "badlandlock"); code != 1 || !strings.Contains(stderr, "org.berth.landlock") {
		t.Errorf("a bad landlock annotation: exit %d, %q", code, stderr)
	}
}
