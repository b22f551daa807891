package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const overlayAnnotation = "org.berth.rootfs.overlay"

// overlayBundle makes a bundle whose rootfs directory is empty and whose image is two
// lower layers, the busybox tree (base) and top (etc/gone, etc/motd), owned by hostID, the
// container's root in the user namespace the bundle gets; upper and work are the
// container's, fresh.
type overlayDirs struct{ base, top, upper, work string }

func overlayBundle(t *testing.T, script string, hostID int) (*bundle, overlayDirs) {
	t.Helper()
	b := newBundle(t, script)
	d := overlayDirs{base: filepath.Join(b.Dir, "base"), top: filepath.Join(b.Dir, "top"),
		upper: filepath.Join(b.Dir, "upper"), work: filepath.Join(b.Dir, "work")}
	if err := os.Rename(b.rootfs(), d.base); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.rootfs(), filepath.Join(d.top, "etc"), d.upper, d.work} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(d.top, "etc", "gone"), []byte("lower\n"), 0o644)
	os.WriteFile(filepath.Join(d.top, "etc", "motd"), []byte("from the top layer\n"), 0o644)
	for _, p := range []string{d.base, d.top, d.upper, d.work} {
		chownTree(t, p, hostID)
	}
	var ns []specs.LinuxNamespace
	for _, n := range b.Spec.Linux.Namespaces {
		if n.Type != specs.NetworkNamespace {
			ns = append(ns, n)
		}
	}
	b.Spec.Linux.Namespaces = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(hostID), Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(hostID), Size: 65536}}
	b.Spec.Annotations = map[string]string{overlayAnnotation: "lowerdir=" + d.top + ":" + d.base + ",upperdir=" + d.upper + ",workdir=" + d.work}
	return b, d
}

func assertNotMounted(t *testing.T, dir string) {
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			t.Errorf("%s is still mounted on the host: %s", dir, l)
		}
	}
}

// The annotation mounts an overlay on the rootfs in the container's mount namespace, with
// the C init and with the Go init: / is overlay (with userxattr, added for the user
// namespace), a new file goes to the upper directory only, a file of a lower layer deleted
// inside becomes a whiteout in the upper one and stays in its layer, and nothing is left
// mounted on the host.
func TestRootfsOverlayAnnotation(t *testing.T) {
	r := newRT(t)
	r.allowGoInit("ov-go")
	script := `awk '$5 == "/" { for (i = 7; $i != "-"; i++); print $(i+1), $(i+3) }' /proc/self/mountinfo
echo new > /new && rm /etc/gone && test ! -e /etc/gone && echo deleted; cat /etc/motd`
	for _, ann := range []string{"", "go"} {
		id := "ov-" + map[string]string{"": "c", "go": "go"}[ann]
		b, d := overlayBundle(t, script, 200000)
		if ann != "" {
			b.Spec.Annotations["org.berth.init"] = ann
		}
		out := strings.Split(strings.TrimSpace(r.mustRun(b, id)), "\n")
		if how := r.lastInit(id); strings.HasPrefix(how, "go:") != (ann == "go") {
			t.Errorf("%s: init %q", id, how)
		}
		if len(out) != 3 {
			t.Fatalf("%s: output %q; want the root mount, deleted, the motd", id, out)
		}
		root := strings.Fields(out[0])
		if len(root) != 2 || root[0] != "overlay" || !strings.Contains(root[1], "upperdir="+d.upper) ||
			!strings.Contains(root[1], "lowerdir="+d.top+":"+d.base) || !strings.Contains(root[1], "userxattr") {
			t.Errorf("%s: / inside is %q; want an overlay of the bundle's layers with userxattr", id, out[0])
		}
		if out[1] != "deleted" || out[2] != "from the top layer" {
			t.Errorf("%s: output %q", id, out[1:])
		}
		if b, err := os.ReadFile(filepath.Join(d.upper, "new")); err != nil || string(b) != "new\n" {
			t.Errorf("%s: upper/new: %q, %v; want the file written inside", id, b, err)
		}
		for _, l := range []string{d.top, d.base, b.rootfs()} {
			if _, err := os.Lstat(filepath.Join(l, "new")); err == nil {
				t.Errorf("%s: the file written inside is in %s too", id, l)
			}
		}
		if b, err := os.ReadFile(filepath.Join(d.top, "etc", "gone")); err != nil || string(b) != "lower\n" {
			t.Errorf("%s: the lower layer's etc/gone was changed: %q, %v", id, b, err)
		}
		if st := mustStat(t, filepath.Join(d.upper, "etc", "gone")); st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: upper/etc/gone has mode %o rdev %d; want overlay's whiteout (0:0 character device)", id, st.Mode, st.Rdev)
		}
		assertNotMounted(t, b.rootfs())
	}
}

// A bad annotation fails create with an error naming it and what is wrong, before anything
// is made; a value the kernel refuses at mount time (workdir on another filesystem than
// upperdir) fails create with the annotation, the mount data and the errno, in both inits.
// Neither leaves a container, a cgroup or a mount.
func TestRootfsOverlayAnnotationErrors(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "berth-ov-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	os.Chown(shm, 200000, 200000)
	cases := []struct {
		name string
		mod  func(b *bundle, d overlayDirs) string
		want []string
	}{
		{"unknown-option", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.base + ",upperdir=" + d.upper + ",workdir=" + d.work + ",redirect_dir=on"
		}, []string{`"redirect_dir=on" is not one of lowerdir, upperdir, workdir, userxattr`}},
		{"relative", func(b *bundle, d overlayDirs) string {
			return "lowerdir=base,upperdir=" + d.upper + ",workdir=" + d.work
		},
			[]string{`"base" is not an absolute path`}},
		{"dotdot", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.base + "/../top,upperdir=" + d.upper + ",workdir=" + d.work
		}, []string{"not a clean path"}},
		{"escaped-comma", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.base + ",upperdir=" + d.upper + ",workdir=" + d.work + `\,index=off`
		}, []string{"contains '\\\\'"}},
		{"colon-in-upper", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.base + ",upperdir=" + d.upper + ":" + d.top + ",workdir=" + d.work
		}, []string{"a ':' is only allowed between lower directories"}},
		{"no-workdir", func(b *bundle, d overlayDirs) string { return "lowerdir=" + d.base + ",upperdir=" + d.upper },
			[]string{"upperdir and workdir go together"}},
		{"missing-lower", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.top + ":/nonexistent-berth,upperdir=" + d.upper + ",workdir=" + d.work
		}, []string{"lowerdir: stat /nonexistent-berth: no such file or directory"}},
		{"no-mount-namespace", func(b *bundle, d overlayDirs) string {
			var ns []specs.LinuxNamespace
			for _, n := range b.Spec.Linux.Namespaces {
				if n.Type != specs.MountNamespace {
					ns = append(ns, n)
				}
			}
			b.Spec.Linux.Namespaces = ns
			return b.Spec.Annotations[overlayAnnotation]
		}, []string{"new mount namespace"}},
		{"workdir-elsewhere", func(b *bundle, d overlayDirs) string {
			return "lowerdir=" + d.top + ":" + d.base + ",upperdir=" + d.upper + ",workdir=" + shm
		}, []string{"mount overlay on " + "<rootfs>", `(data "lowerdir=`, "workdir=" + shm + `,userxattr")`, "invalid argument"}},
	}
	for _, c := range cases {
		for _, ann := range []string{"", "go"} {
			t.Run(c.name+"/"+map[string]string{"": "c", "go": "go"}[ann], func(t *testing.T) {
				r := newRT(t)
				r.allowGoInit("bad")
				b, d := overlayBundle(t, "true", 200000)
				b.Spec.Annotations[overlayAnnotation] = c.mod(b, d)
				if ann != "" {
					b.Spec.Annotations["org.berth.init"] = ann
				}
				b.save(t)
				_, stderr, code := r.exec("create", "-b", b.Dir, "bad")
				if code != 1 {
					t.Errorf("exit status %d, want 1 (stderr %q)", code, stderr)
				}
				msg := strings.ReplaceAll(strings.TrimSpace(stderr), b.rootfs(), "<rootfs>")
				want := append([]string{"container bad"}, c.want...)
				if c.name != "no-mount-namespace" {
					want = append(want, "annotation "+overlayAnnotation)
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not mention %q", msg, w)
					}
				}
				if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
					t.Errorf("a failed create left %d entries in the state root", len(ents))
				}
				assertNoCgroup(t, "bad")
				assertNotMounted(t, b.rootfs())
				if ents, _ := os.ReadDir(d.upper); len(ents) != 0 {
					t.Errorf("a failed create left %d entries in the upper directory", len(ents))
				}
			})
		}
	}
}
