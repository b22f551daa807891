package integration

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/berth-containers/berth/internal/security/lsm"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// `features` is the runtime spec's JSON, and true to this build and this host.
func TestFeatures(t *testing.T) {
	r := newRT(t)
	var f features.Features
	out := r.mustOK("features")
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features is not JSON: %v", err)
	}
	if f.OCIVersionMin == "" || f.OCIVersionMax == "" || len(f.Hooks) != 6 {
		t.Errorf("versions %q..%q, hooks %v", f.OCIVersionMin, f.OCIVersionMax, f.Hooks)
	}
	l := f.Linux
	if l == nil || len(l.Namespaces) != 8 || !slices.Contains(l.Capabilities, "CAP_SYS_ADMIN") {
		t.Fatalf("linux section %+v", l)
	}
	if !*l.Cgroup.V1 || !*l.Cgroup.V2 || *l.Cgroup.Systemd {
		t.Errorf("cgroup support %+v: v1 and v2 yes, systemd no", l.Cgroup)
	}
	for _, want := range []string{"SCMP_ACT_NOTIFY", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ERRNO"} {
		if !slices.Contains(l.Seccomp.Actions, want) {
			t.Errorf("seccomp actions %v lack %s", l.Seccomp.Actions, want)
		}
	}
	if !slices.Contains(l.Seccomp.Operators, "SCMP_CMP_MASKED_EQ") || !slices.Contains(l.Seccomp.SupportedFlags, "SECCOMP_FILTER_FLAG_TSYNC") {
		t.Errorf("seccomp operators %v, supported flags %v", l.Seccomp.Operators, l.Seccomp.SupportedFlags)
	}
	host := lsm.Detect()
	if *l.Apparmor.Enabled != host.AppArmor || *l.Selinux.Enabled != host.SELinux {
		t.Errorf("LSM support %v/%v does not match the host %+v", *l.Apparmor.Enabled, *l.Selinux.Enabled, host)
	}
	if !slices.Contains(f.MountOptions, "rbind") || !slices.Contains(f.MountOptions, "rslave") {
		t.Errorf("mount options %v", f.MountOptions)
	}
}
