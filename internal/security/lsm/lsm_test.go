package lsm

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The real host: AppArmor and SELinux are not enabled here, so requests for
// them must fail with an error that says so; empty requests do nothing.
func TestHostWithoutLSMs(t *testing.T) {
	st := Detect()
	if st.AppArmor || st.SELinux {
		t.Skipf("host has AppArmor=%v SELinux=%v; this test covers hosts without them", st.AppArmor, st.SELinux)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := ApplyProcessLabel("", ""); err != nil {
		t.Fatalf("empty labels: %v", err)
	}
	err := ApplyProcessLabel("docker-default", "")
	if err == nil || !strings.Contains(err.Error(), `AppArmor profile "docker-default" requested, but this host does not have AppArmor enabled`) {
		t.Fatalf("AppArmor on a host without it: %v", err)
	}
	err = ApplyProcessLabel("", "system_u:system_r:container_t:s0")
	if err == nil || !strings.Contains(err.Error(), "does not have SELinux enabled") {
		t.Fatalf("SELinux on a host without it: %v", err)
	}
	if o, err := MountLabelOption(""); o != "" || err != nil {
		t.Fatalf("empty mount label: %q %v", o, err)
	}
	if _, err := MountLabelOption("system_u:object_r:container_file_t:s0"); err == nil || !strings.Contains(err.Error(), "mount label") {
		t.Fatalf("mount label without SELinux: %v", err)
	}
}

// withFakeHost points detection and the attr directory at a temporary tree
// that looks like a host with both LSMs, to check what gets written where.
func withFakeHost(t *testing.T, apparmorDir bool) string {
	root := t.TempDir()
	mk := func(p, content string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldParam, oldFS, oldSel, oldAttr := apparmorParam, apparmorFS, selinuxMounts, threadAttrDir
	oldDetect := detect
	t.Cleanup(func() {
		apparmorParam, apparmorFS, selinuxMounts, threadAttrDir = oldParam, oldFS, oldSel, oldAttr
		detect = oldDetect
	})
	apparmorParam = mk("sys/module/apparmor/parameters/enabled", "Y\n")
	apparmorFS = filepath.Dir(mk("sys/kernel/security/apparmor/profiles", ""))
	threadAttrDir = filepath.Join(root, "attr")
	mk("attr/exec", "")
	if apparmorDir {
		mk("attr/apparmor/exec", "")
	}
	detect = sync.OnceValue(func() Status {
		s := probe()
		s.SELinux = true // selinuxfs cannot be faked by a file; probe's AppArmor answer is the real check here
		return s
	})
	return root
}

func TestApplyProcessLabelWrites(t *testing.T) {
	for _, stacked := range []bool{true, false} {
		root := withFakeHost(t, stacked)
		if !Detect().AppArmor {
			t.Fatalf("fake AppArmor tree not detected")
		}
		if err := ApplyProcessLabel("berth-default", ""); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "attr", "exec")
		if stacked {
			p = filepath.Join(root, "attr", "apparmor", "exec")
		}
		if b, _ := os.ReadFile(p); string(b) != "exec berth-default" {
			t.Errorf("stacked=%v: %s holds %q, want %q", stacked, p, b, "exec berth-default")
		}
		if err := ApplyProcessLabel("", "system_u:system_r:container_t:s0"); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "attr", "exec")); string(b) != "system_u:system_r:container_t:s0" {
			t.Errorf("SELinux exec attr holds %q", b)
		}
	}
	if o, err := MountLabelOption(`bad"label`); err == nil {
		t.Errorf("label with a quote accepted: %q", o)
	}
	if o, err := MountLabelOption("system_u:object_r:container_file_t:s0:c1,c2"); err != nil || o != `context="system_u:object_r:container_file_t:s0:c1,c2"` {
		t.Errorf("MountLabelOption: %q %v", o, err)
	}
}
