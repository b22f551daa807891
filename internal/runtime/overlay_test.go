package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The overlay is the first rootfs step: after / is made slave or private, before the rootfs
// is bound onto itself; userxattr is added in a user namespace; the Go init gets the same
// checked data; a failure names the annotation, the data and the errno.
func TestPlanRootfsOverlay(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"l1", "l2", "u", "w"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	val := "lowerdir=" + dir + "/l2:" + dir + "/l1,upperdir=" + dir + "/u,workdir=" + dir + "/w"
	in := testPlanInput(t, func(s *specs.Spec, in *planInput) {
		s.Annotations = map[string]string{AnnotationRootfsOverlay: val}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		in.userNS = true
	})
	p, why, err := compileInitPlan(in)
	if err != nil || why != "" {
		t.Fatalf("compile: %v, fallback %q", err, why)
	}
	want := val + ",userxattr"
	i := index(p, opMountHost) // making / slave or private
	if o := p.ops[i+1]; o.code != opMountHost || o.strs[0] != "overlay" || o.strs[1] != "/b/rootfs" || o.strs[2] != "overlay" || o.strs[3] != want || o.ints[0] != 0 {
		t.Errorf("ops[2] = %+v; want the overlay on /b/rootfs with %q", o, want)
	}
	if p.ops[i].strs[1] != "/" || p.ops[i+2].code != opMountHost || !strings.HasPrefix(p.ops[i+2].what, "bind rootfs") {
		t.Errorf("the overlay is not between making / private and binding the rootfs: %q, %q", p.ops[i].what, p.ops[i+2].what)
	}
	err = p.failure(i+1, unix.EINVAL, "mount overlay on /b/rootfs (flags 0)")
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "annotation "+AnnotationRootfsOverlay) || !strings.Contains(err.Error(), want) {
		t.Errorf("overlay failure: %v", err)
	}
	// An EACCES binding the rootfs still gets its hint, wherever the op now is.
	if err := p.failure(i+2, unix.EACCES, "mount"); !strings.Contains(err.Error(), "must be able to search") {
		t.Errorf("bind rootfs EACCES: %v", err)
	}
	if got, err := rootfsOverlay(in.spec, false); err != nil || got != want {
		t.Errorf("the Go init's overlay data: %q, %v; want %q", got, err, want)
	}

	// Without a user namespace nothing is added; a bad value, a missing directory or a
	// spec without a new mount namespace fail the compile whichever init would run.
	in = testPlanInput(t, func(s *specs.Spec, _ *planInput) { s.Annotations = map[string]string{AnnotationRootfsOverlay: val} })
	if p, _, err := compileInitPlan(in); err != nil || p.ops[i+1].strs[3] != val {
		t.Errorf("no user namespace: %v", err)
	}
	for v, msg := range map[string]string{
		val + ",index=on":                      `"index=on" is not one of`,
		strings.Replace(val, "/l1", "/l3", 1):  "no such file or directory",
		strings.Replace(val, "/u,", "/u/,", 1): "not a clean path",
	} {
		for _, goInit := range []bool{false, true} {
			in := testPlanInput(t, func(s *specs.Spec, _ *planInput) {
				s.Annotations = map[string]string{AnnotationRootfsOverlay: v}
				if goInit {
					s.Annotations[AnnotationInit] = "go"
				}
			})
			if _, _, err := compileInitPlan(in); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "annotation "+AnnotationRootfsOverlay) {
				t.Errorf("%q (go init %v): %v; want an error naming the annotation with %q", v, goInit, err, msg)
			}
		}
	}
	in = testPlanInput(t, func(s *specs.Spec, _ *planInput) {
		s.Annotations = map[string]string{AnnotationRootfsOverlay: val}
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.MountNamespace {
				s.Linux.Namespaces[i].Path = "/proc/1/ns/mnt"
			}
		}
	})
	if _, _, err := compileInitPlan(in); err == nil || !strings.Contains(err.Error(), "new mount namespace") {
		t.Errorf("a joined mount namespace: %v", err)
	}
}
