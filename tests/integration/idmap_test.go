package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// An idmapped bind mount shows a host directory owned by host root as owned by root inside a
// user-namespaced container, and files written there are owned by host root on disk; the
// same mount without idmap shows nobody and refuses the write.
func TestIDMappedBindMount(t *testing.T) {
	r := newRT(t)
	hostDir := t.TempDir()
	os.Chmod(hostDir, 0o755)
	os.WriteFile(filepath.Join(hostDir, "hostfile"), []byte("x"), 0o644)
	for _, idmap := range []bool{true, false} {
		b := newBundle(t, `echo owner=$(stat -c %u /data/hostfile); touch /data/new-`+map[bool]string{true: "idmapped", false: "plain"}[idmap]+` 2>/dev/null && echo write=ok || echo write=denied`)
		b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 400000, Size: 65536}}
		b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 400000, Size: 65536}}
		b.Spec.Mounts = withoutMount(b.Spec.Mounts, "/sys")
		opts := []string{"rbind"}
		if idmap {
			opts = append(opts, "idmap")
		}
		b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: hostDir, Options: opts})
		chownTree(t, b.rootfs(), 400000)
		out := lines(r.mustRun(b, "idmap"))
		if idmap {
			if out["owner"] != "0" || out["write"] != "ok" {
				t.Errorf("idmapped: owner %s, write %s; want 0 and ok", out["owner"], out["write"])
			}
			if st := mustStat(t, filepath.Join(hostDir, "new-idmapped")); st.Uid != 0 {
				t.Errorf("a file written through the idmapped mount is owned by %d on disk, want 0", st.Uid)
			}
		} else if out["owner"] != "65534" || out["write"] != "denied" {
			t.Errorf("control without idmap: owner %s, write %s; want 65534 and denied", out["owner"], out["write"])
		}
	}
	b := newBundle(t, "true")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: hostDir, Options: []string{"rbind", "idmap"}})
	b.save(t)
	if _, stderr, code := r.exec("create", "-b", b.Dir, "idmap-nomap"); code != 1 || !strings.Contains(stderr, "mappings") {
		t.Errorf("idmap without any mappings: exit %d, %q", code, stderr)
	}
}
