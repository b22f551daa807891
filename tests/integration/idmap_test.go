package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// An idmapped bind mount shows a host directory owned by host root as owned by root inside a
// user-namespaced container, and files written there are owned by host root on disk; the
// same mount without idmap shows nobody and refuses the write.
func TestIDMappedBindMount(t *testing.T) {
	r := newRT(t)
	hostDir := t.TempDir()
	if why := noIDMapSupport(hostDir); why != "" {
		t.Skipf("the kernel cannot idmap %s: %s", hostDir, why)
	}
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
		r.allowGoInit("idmap")
		out := lines(r.mustRun(b, "idmap"))
		if how := r.lastInit("idmap"); idmap != strings.HasPrefix(how, "go:") {
			t.Errorf("idmap %v: the container's init was %q", idmap, how)
		}
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
	r.allowGoInit("idmap-nomap")
	if _, stderr, code := r.exec("create", "-b", b.Dir, "idmap-nomap"); code != 1 || !strings.Contains(stderr, "mappings") {
		t.Errorf("idmap without any mappings: exit %d, %q", code, stderr)
	}
}

// noIDMapSupport says why the kernel cannot idmap mounts of dir's filesystem, or "". ramfs
// never could; tmpfs can since Linux 6.3 (the v2 lane's VM runs 6.1 from an initramfs).
func noIDMapSupport(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return ""
	}
	var u unix.Utsname
	unix.Uname(&u)
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	fmt.Sscanf(release, "%d.%d", &major, &minor)
	switch {
	case st.Type == 0x858458f6:
		return "ramfs has no idmapped mounts"
	case st.Type == unix.TMPFS_MAGIC && (major < 6 || major == 6 && minor < 3):
		return "tmpfs gained idmapped mounts in Linux 6.3, this kernel is " + release
	}
	return ""
}
