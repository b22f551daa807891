package snapshot_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/archive"
	"github.com/berth-containers/berth/internal/image/imagetest"
	"github.com/berth-containers/berth/internal/image/snapshot"
)

// loadTestImage builds a busybox image whose top layer whites out a file and makes a
// directory opaque, and loads it (as a docker-archive from go-containerregistry) into a
// fresh store.
func loadTestImage(t *testing.T) (*image.Store, *image.Image) {
	t.Helper()
	layers := imagetest.BusyboxLayers(t)
	layers = append(layers[:2:2],
		imagetest.LayerTar([]imagetest.File{{Name: "opq/", Type: tar.TypeDir}, {Name: "opq/a", Body: []byte("a")}, {Name: "opq/b", Body: []byte("b")}}),
		layers[2],
		imagetest.LayerTar([]imagetest.File{{Name: "opq/", Type: tar.TypeDir}, {Name: "opq/.wh..wh..opq"}, {Name: "opq/c", Body: []byte("c")}}))
	return loadImage(t, "snap/test:1", layers)
}

// loadImage makes an image of layers, loads it into a fresh store as ref and returns both.
func loadImage(t *testing.T, ref string, layers [][]byte) (*image.Store, *image.Image) {
	t.Helper()
	img := imagetest.Image(t, layers, imagetest.HostPlatform())
	tag, _ := name.NewTag(ref)
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(&buf); err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, err := s.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	return s, got
}

// tree describes every entry under dir: type, mode, owner, size or link target.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		unix.Lstat(p, &st)
		d := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			d += " -> " + l
		case fi.Mode().IsRegular():
			d += fmt.Sprintf(" %d", fi.Size())
		}
		if rel != "." {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestOverlayAndCopyAgree(t *testing.T) {
	s, img := loadTestImage(t)
	ov, err := snapshot.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Driver() != snapshot.Overlay {
		t.Skipf("overlayfs is not usable under %s", s.Root())
	}
	start := time.Now()
	so, err := ov.Prepare("ov", img)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Prepare overlay: %v", err)
	}
	t.Cleanup(func() { ov.Remove("ov") })
	t.Logf("overlay Prepare of a %d-layer image took %v", len(img.Layers), took)
	if took > 100*time.Millisecond {
		t.Errorf("overlay Prepare took %v", took)
	}
	if err := so.Mount(""); err != nil {
		t.Fatalf("Mount: %v", err)
	}

	cp, err := snapshot.NewWithDriver(s, snapshot.Copy)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cp.Prepare("cp", img)
	if err != nil {
		t.Fatalf("Prepare copy: %v", err)
	}
	t.Cleanup(func() { cp.Remove("cp") })

	a, b := tree(t, so.Rootfs), tree(t, sc.Rootfs)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("overlay and copy snapshots differ:\noverlay %d entries, copy %d", len(a), len(b))
		for i := 0; i < len(a) && i < len(b); i++ {
			if a[i] != b[i] {
				t.Errorf("first difference: %q vs %q", a[i], b[i])
				break
			}
		}
	}
	for _, root := range []string{so.Rootfs, sc.Rootfs} {
		if _, err := os.Lstat(filepath.Join(root, "etc/motd")); !os.IsNotExist(err) {
			t.Errorf("%s: whited-out etc/motd is visible (%v)", root, err)
		}
		ents, _ := os.ReadDir(filepath.Join(root, "opq"))
		if len(ents) != 1 || ents[0].Name() != "c" {
			t.Errorf("%s: opaque directory shows %v, want only c", root, ents)
		}
		out, err := exec.Command("chroot", root, "/bin/sh", "-c", "echo hi > /tmp/new; cat /tmp/new; cat /etc/hostname").CombinedOutput()
		if err != nil || string(out) != "hi\nberth-test\n" {
			t.Errorf("%s: shell in snapshot: %q %v", root, out, err)
		}
	}
	// Writes land in the private upper directory, not in the shared layer.
	if b, err := os.ReadFile(filepath.Join(so.Upper, "tmp/new")); err != nil || string(b) != "hi\n" {
		t.Errorf("upper/tmp/new = %q %v", b, err)
	}
	for _, l := range img.Layers {
		if _, err := os.Lstat(filepath.Join(s.LayerDir(l), "tmp/new")); err == nil {
			t.Errorf("write reached shared layer %s", l)
		}
	}

	// Export sees the container's view: image plus its change, minus whiteouts.
	var exp bytes.Buffer
	if err := ov.Export("ov", &exp); err != nil {
		t.Fatalf("Export: %v", err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(&exp)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["tmp/new"] || !names["bin/busybox"] || names["etc/motd"] || names["opq/a"] {
		t.Errorf("export has tmp/new=%v bin/busybox=%v etc/motd=%v opq/a=%v", names["tmp/new"], names["bin/busybox"], names["etc/motd"], names["opq/a"])
	}

	// Remove unmounts and deletes everything private.
	if err := ov.Remove("ov"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(so.Dir); !os.IsNotExist(err) {
		t.Errorf("snapshot dir left: %v", err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), so.Dir) {
		t.Errorf("snapshot still mounted after Remove")
	}
}

func TestOCIMountAndLeases(t *testing.T) {
	s, img := loadTestImage(t)
	sn := overlaySnapshotter(t, s)
	snap, err := sn.Prepare("c1", img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove("c1") })
	if _, err := sn.Prepare("c1", img); err == nil {
		t.Errorf("second Prepare with the same key succeeded")
	}
	if _, err := sn.Prepare("../evil", img); err == nil {
		t.Errorf("Prepare accepted key ../evil")
	}
	m, err := snap.OCIMount("/")
	if err != nil {
		t.Fatal(err)
	}
	// The image's layers, topmost first, then the mount points layer.
	if m.Type != "overlay" || m.Source != "overlay" || m.Destination != "/" || len(m.Options) != 3 ||
		!strings.HasPrefix(m.Options[0], "lowerdir=") || strings.Count(m.Options[0], ":") != len(img.Layers) ||
		!strings.HasSuffix(m.Options[0], ":"+filepath.Join(s.Root(), "snapshots", ".mountpoints")) {
		t.Errorf("OCIMount = %+v", m)
	}
	// The options are what mount(2) takes as they are (as a runtime would use them).
	target := t.TempDir()
	if err := unix.Mount(m.Source, target, m.Type, 0, strings.Join(m.Options, ",")); err != nil {
		t.Fatalf("mount with OCIMount's options: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "etc/hostname")); err != nil || string(b) != "berth-test\n" {
		t.Errorf("etc/hostname through OCIMount: %q %v", b, err)
	}
	unix.Unmount(target, unix.MNT_DETACH)

	// In use: rmi refuses without force; with force the name goes but the layers stay.
	_, err = s.Remove([]string{"snap/test:1"}, false)
	var inUse *image.InUseError
	if !errors.As(err, &inUse) || inUse.Key != "c1" {
		t.Fatalf("rmi of an image in use: %v", err)
	}
	if _, err := s.Remove([]string{"snap/test:1"}, true); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(s.LayerDir(l)); err != nil {
			t.Fatalf("layer of an in-use snapshot was collected: %v", err)
		}
	}
	if err := sn.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(true); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(s.LayerDir(l)); !os.IsNotExist(err) {
			t.Errorf("layer %s survived prune after its snapshot went: %v", l, err)
		}
	}
}

// TestManyLayersMount builds an image with more layers than fit in mount(2)'s page of
// options and checks that Mount still mounts it (through the new mount API).
func TestManyLayersMount(t *testing.T) {
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	layers := imagetest.BusyboxLayers(t)
	for i := 0; i < 120; i++ {
		layers = append(layers, imagetest.LayerTar([]imagetest.File{{Name: fmt.Sprintf("l/%03d", i), Body: []byte(fmt.Sprint(i))}}))
	}
	img := imagetest.Image(t, layers, imagetest.HostPlatform())
	tag, _ := name.NewTag("many/layers:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(&buf); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("many/layers:1")
	sn, _ := snapshot.New(s)
	if sn.Driver() != snapshot.Overlay {
		t.Skipf("overlayfs is not usable under %s", s.Root())
	}
	snap, err := sn.Prepare("many", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove("many") })
	if _, err := snap.OCIMount("/"); err == nil && len(strings.Join(snap.MountOptions(), ",")) > 4095 {
		t.Errorf("OCIMount accepted options longer than a page")
	}
	if err := snap.Mount(""); err != nil {
		t.Fatalf("Mount with %d layers: %v", len(got.Layers), err)
	}
	ents, _ := os.ReadDir(filepath.Join(snap.Rootfs, "l"))
	if len(ents) != 120 {
		t.Errorf("%d files from 120 layers", len(ents))
	}

	// A snapshotter whose overlays only mount(2) will mount (a rootless container's init)
	// copies this image, and keeps an overlay for one that fits the page.
	lim, err := snapshot.NewWithDriver(s, snapshot.Overlay)
	if err != nil {
		t.Fatal(err)
	}
	lim.LimitOverlayData(len(",userxattr"))
	cp, err := lim.Prepare("many-limited", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Remove("many-limited") })
	if cp.Driver != snapshot.Copy || len(cp.Lower) != 0 {
		t.Errorf("%d layers with LimitOverlayData: driver %s; want a copy", len(got.Layers), cp.Driver)
	}
	if ents, _ := os.ReadDir(filepath.Join(cp.Rootfs, "l")); len(ents) != 120 {
		t.Errorf("the copy has %d files from 120 layers", len(ents))
	}
	small, err := s.Get("many/layers:1")
	if err != nil {
		t.Fatal(err)
	}
	small.Layers = small.Layers[:3]
	ov, err := lim.Prepare("few-limited", small)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Remove("few-limited") })
	if ov.Driver != snapshot.Overlay || len(strings.Join(append(ov.MountOptions(), "userxattr"), ",")) > 4095 {
		t.Errorf("3 layers with LimitOverlayData: driver %s", ov.Driver)
	}
}

func BenchmarkPrepareRemove(b *testing.B) {
	s, err := image.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	img := imagetest.Image(b, imagetest.BusyboxLayers(b), imagetest.HostPlatform())
	tag, _ := name.NewTag("bench/prep:1")
	var buf bytes.Buffer
	tarball.Write(tag, img, &buf)
	if _, err := s.Load(&buf); err != nil {
		b.Fatal(err)
	}
	got, _ := s.Get("bench/prep:1")
	sn, _ := snapshot.New(s)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := fmt.Sprintf("k%d", i)
		if _, err := sn.Prepare(k, got); err != nil {
			b.Fatal(err)
		}
		if err := sn.Remove(k); err != nil {
			b.Fatal(err)
		}
	}
}

// ReadFile, which reads through the layers without mounting, answers as the mounted
// overlay does: files from any layer, whited out ones gone, an opaque directory hiding the
// layers below, the upper directory's own changes (a new file, a whiteout, an opaque
// directory) on top; a symlink on the way is refused rather than resolved.
func TestReadFileMatchesMount(t *testing.T) {
	s, img := loadTestImage(t)
	sn := overlaySnapshotter(t, s)
	snap, err := sn.Prepare("rf", img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove("rf") })
	// The container's own changes, as overlay would have written them.
	os.MkdirAll(filepath.Join(snap.Upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(snap.Upper, "etc", "new"), []byte("new\n"), 0o644)
	os.WriteFile(filepath.Join(snap.Upper, "etc", "group"), []byte("changed\n"), 0o644)
	if err := unix.Mknod(filepath.Join(snap.Upper, "etc", "hostname"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(snap.Upper, "home", "app"), 0o755)
	if err := unix.Setxattr(filepath.Join(snap.Upper, "home"), archive.OverlayOpaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(snap.Upper, "home", "app", "f"), []byte("f\n"), 0o644)
	os.Symlink("/etc", filepath.Join(snap.Upper, "lnk"))
	if err := snap.Mount(""); err != nil {
		t.Fatal(err)
	}
	defer snap.Unmount("")
	for _, p := range []string{"etc/passwd", "etc/group", "etc/new", "etc/hostname", "etc/motd", "opq/a", "opq/c",
		"home/app/f", "bin/busybox", "nosuch", "etc/passwd/x", "/../etc/passwd"} {
		want, werr := os.ReadFile(filepath.Join(snap.Rootfs, filepath.Clean("/"+p)))
		got, gerr := snap.ReadFile(p)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%s) = %.20q, %v; the mounted overlay gives %.20q, %v", p, got, gerr, want, werr)
		}
		if werr != nil && errors.Is(werr, os.ErrNotExist) && !errors.Is(gerr, os.ErrNotExist) {
			t.Errorf("ReadFile(%s): %v; want not-exist as the overlay says", p, gerr)
		}
	}
	if _, err := snap.ReadFile("lnk/passwd"); !errors.Is(err, snapshot.ErrSymlinkInPath) {
		t.Errorf("ReadFile through a symlink: %v; want ErrSymlinkInPath", err)
	}
}

// TestRemoveTo: the snapshot is unmounted and released, and its private files are moved
// where asked, or deleted when that is another filesystem.
func TestRemoveTo(t *testing.T) {
	s, img := loadTestImage(t)
	sn := overlaySnapshotter(t, s)
	trash := t.TempDir() // the store's filesystem
	shm, err := os.MkdirTemp("/dev/shm", "berth-snapshot-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	for _, c := range []struct {
		key, into string
		moved     bool
	}{{"mv", trash, true}, {"elsewhere", shm, false}} {
		snap, err := sn.Prepare(c.key, img)
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Mount(""); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap.Rootfs, "written"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(c.into)
		if err != nil {
			t.Fatal(err)
		}
		moved, err := sn.RemoveTo(c.key, int(d.Fd()), "snap")
		d.Close()
		if err != nil || moved != c.moved {
			t.Fatalf("RemoveTo into %s: moved %v, %v; want moved %v", c.into, moved, err, c.moved)
		}
		if _, err := os.Stat(snap.Dir); !os.IsNotExist(err) {
			t.Errorf("%s: the snapshot's directory is still there: %v", c.key, err)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), snap.Dir) {
			t.Errorf("%s: still mounted", c.key)
		}
		_, err = os.Stat(filepath.Join(c.into, "snap", "upper", "written"))
		if c.moved && err != nil {
			t.Errorf("%s: the upper directory was not moved: %v", c.key, err)
		}
		if !c.moved && !os.IsNotExist(err) {
			t.Errorf("%s: not moved, yet something is at the target: %v", c.key, err)
		}
	}
	// Released: the image is no longer in use.
	if _, err := s.Remove([]string{"snap/test:1"}, false); err != nil {
		t.Errorf("rmi after RemoveTo: %v", err)
	}
}

// TestMountpointsLayer: an image without the init's mount points gets them from the
// snapshot's bottom layer, and what the image has of its own wins: a symlink, a file with
// content, a whiteout.
func TestMountpointsLayer(t *testing.T) {
	layers := [][]byte{
		imagetest.LayerTar([]imagetest.File{
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o700},
			{Name: "etc/hostname", Body: []byte("image\n")},
			{Name: "etc/hosts", Body: []byte("hosts\n")},
			{Name: "etc/resolv.conf", Type: tar.TypeSymlink, Link: "../run/resolv.conf"},
			{Name: "sys", Type: tar.TypeSymlink, Link: "proc"},
		}),
		imagetest.LayerTar([]imagetest.File{{Name: "etc/", Type: tar.TypeDir, Mode: 0o700}, {Name: "etc/.wh.hosts"}}),
	}
	s, got := loadImage(t, "snap/mp:1", layers)
	sn := overlaySnapshotter(t, s)
	snap, err := sn.Prepare("mp", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove("mp") })
	if err := snap.Mount(""); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dev 40755 0:0",
		"etc 40700 0:0",
		"etc/hostname 100644 0:0 6",
		"etc/resolv.conf 120777 0:0 -> ../run/resolv.conf",
		"proc 40755 0:0",
		"sys 120777 0:0 -> proc",
	}
	if got := tree(t, snap.Rootfs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the snapshot's tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A second snapshot shares the layer, and nothing wrote to it.
	snap2, err := sn.Prepare("mp2", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove("mp2") })
	base := snap2.Lower[len(snap2.Lower)-1]
	if base != snap.Lower[len(snap.Lower)-1] {
		t.Errorf("two snapshots, two mount points layers: %s, %s", base, snap.Lower[len(snap.Lower)-1])
	}
	if got := strings.Join(tree(t, base), "\n"); got != "dev 40755 0:0\netc 40755 0:0\netc/hostname 100644 0:0 0\netc/hosts 100644 0:0 0\netc/resolv.conf 100644 0:0 0\nproc 40755 0:0\nsys 40755 0:0" {
		t.Errorf("the mount points layer:\n%s", got)
	}
}

// overlaySnapshotter is the store's snapshotter, for a test that needs overlay snapshots:
// it skips where overlayfs cannot be used.
func overlaySnapshotter(t *testing.T, s *image.Store) *snapshot.Snapshotter {
	t.Helper()
	sn, err := snapshot.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Driver() != snapshot.Overlay {
		t.Skipf("overlayfs is not usable under %s", s.Root())
	}
	return sn
}
