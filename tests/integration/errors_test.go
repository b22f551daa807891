package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Every bad input gets one clear line naming the container and the reason, exit status 1,
// and leaves nothing behind.
func TestBadInputs(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, b *bundle)
		want  []string
	}{
		{"malformed-json", func(t *testing.T, b *bundle) {
			os.WriteFile(filepath.Join(b.Dir, "config.json"), []byte(`{"ociVersion": "1.2.0", "process": {`), 0o644)
		}, []string{"config.json", "not valid JSON"}},
		{"no-args", func(t *testing.T, b *bundle) { b.Spec.Process.Args = nil; b.save(t) }, []string{"process.args"}},
		{"missing-rootfs", func(t *testing.T, b *bundle) { os.RemoveAll(b.rootfs()); b.save(t) }, []string{"root.path", "/rootfs", "no such file"}},
		{"no-config", func(t *testing.T, b *bundle) {}, []string{"config.json", "no such file"}},
		{"relative-cwd", func(t *testing.T, b *bundle) { b.Spec.Process.Cwd = "work"; b.save(t) }, []string{"process.cwd"}},
		{"unknown-ns", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
			b.save(t)
		}, []string{"linux.namespaces", "bogus"}},
		{"no-mount-ns", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}}
			b.Spec.Hostname = ""
			b.save(t)
		}, []string{"mount namespace"}},
		{"bad-ns-path", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces[:1:1], specs.LinuxNamespace{Type: specs.MountNamespace},
				specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/uts"})
			b.Spec.Hostname = ""
			b.save(t)
		}, []string{"network namespace path", "another type"}},
		{"userns-no-maps", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			b.save(t)
		}, []string{"uidMappings"}},
		{"host-sysctl", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Sysctl = map[string]string{"vm.swappiness": "10"}
			b.save(t)
		}, []string{"vm.swappiness", "host"}},
		{"missing-program", func(t *testing.T, b *bundle) { b.Spec.Process.Args = []string{"nosuchprog"}; b.save(t) }, []string{"nosuchprog", "not found"}},
		{"unknown-cap", func(t *testing.T, b *bundle) {
			b.Spec.Process.Capabilities.Bounding = append(b.Spec.Process.Capabilities.Bounding, "CAP_BOGUS")
			b.save(t)
		}, []string{"CAP_BOGUS"}},
		{"bad-mount", func(t *testing.T, b *bundle) {
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/nonexistent-berth-src"})
			b.save(t)
		}, []string{"/nonexistent-berth-src", "mounts["}},
		{"rlimit-above-hard", func(t *testing.T, b *bundle) {
			b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 30, Hard: 1 << 30}}
			b.save(t)
		}, []string{"RLIMIT_NOFILE", "CAP_SYS_RESOURCE"}},
		{"unknown-rlimit", func(t *testing.T, b *bundle) {
			b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}}
			b.save(t)
		}, []string{"RLIMIT_BOGUS"}},
		{"terminal-no-socket", func(t *testing.T, b *bundle) { b.Spec.Process.Terminal = true; b.save(t) }, []string{"console-socket"}},
		// The cgroup is made while the init starts (on v1): its failure still fails the
		// create, named, with nothing left.
		{"bad-cpuset", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4095"}}
			b.save(t)
		}, []string{"cpuset.cpus", "4095"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, "true")
			c.setup(t, b)
			_, stderr, code := r.exec("create", "-b", b.Dir, "bad")
			if code != 1 {
				t.Errorf("exit status %d, want 1 (stderr %q)", code, stderr)
			}
			msg := strings.TrimSpace(stderr)
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range append(c.want, "container bad") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
				t.Errorf("a failed create left %d entries in the state root", len(ents))
			}
			assertNoCgroup(t, "bad")
		})
	}
}

func TestUnknownAndInvalidIDs(t *testing.T) {
	r := newRT(t)
	for _, args := range [][]string{{"state", "nope"}, {"start", "nope"}, {"kill", "nope"}, {"delete", "nope"}} {
		_, stderr, code := r.exec(args...)
		if code != 1 || !strings.Contains(stderr, "nope") || !strings.Contains(stderr, "does not exist") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	for _, id := range []string{"../escape", "a/b", "..", "with space"} {
		_, stderr, code := r.exec("create", "-b", ".", id)
		if code != 1 || !strings.Contains(stderr, "invalid container id") {
			t.Errorf("create %q: exit %d, %q", id, code, stderr)
		}
	}
	if _, stderr, code := r.exec("state"); code != 1 || !strings.Contains(stderr, "container id") {
		t.Errorf("state without id: exit %d, %q", code, stderr)
	}
}
