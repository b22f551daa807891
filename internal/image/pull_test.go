package image_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/imagetest"
	"github.com/berth-containers/berth/internal/image/snapshot"
)

func openStore(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkStoreClean asserts that every visible blob matches its digest and nothing is left in
// ingest/.
func checkStoreClean(t *testing.T, s *image.Store) {
	t.Helper()
	dir := filepath.Join(s.Dir(), "blobs", "sha256")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("blob %s does not match its digest (%d bytes)", e.Name(), len(b))
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "ingest")); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("ingest/ not empty: %v", names)
	}
}

// runIn mounts a snapshot of img and runs a shell command inside it with chroot, returning
// its output: what a container would see.
func runIn(t *testing.T, s *image.Store, img *image.Image, key, script string) string {
	t.Helper()
	sn, err := snapshot.New(s)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sn.Prepare(key, img)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() {
		if err := sn.Remove(key); err != nil {
			t.Errorf("Remove snapshot: %v", err)
		}
	})
	if err := snap.Mount(""); err != nil {
		t.Fatalf("Mount: %v", err)
	}
	defer snap.Unmount("")
	out, err := exec.Command("chroot", snap.Rootfs, "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("run %q in snapshot: %v\n%s", script, err, out)
	}
	return string(out)
}

func TestPullByTagAndDigest(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	layers := imagetest.BusyboxLayers(t)
	img := imagetest.Image(t, layers, imagetest.HostPlatform(), "gzip", "zstd", "none")
	dg := imagetest.Push(t, reg.Ref("test/busybox:1"), img)

	s := openStore(t)
	ctx := context.Background()
	got, err := s.Pull(ctx, reg.Ref("test/busybox:1"), image.PullOptions{})
	if err != nil {
		t.Fatalf("Pull by tag: %v", err)
	}
	if got.Digest != dg {
		t.Errorf("pulled manifest %s, pushed %s", got.Digest, dg)
	}
	if want := reg.Ref("test/busybox:1"); len(got.Names) != 1 || got.Names[0] != want {
		t.Errorf("names = %v, want [%s]", got.Names, want)
	}
	if len(got.Layers) != 3 || got.Size < 500_000 {
		t.Errorf("layers %d size %d, want 3 layers and busybox's size", len(got.Layers), got.Size)
	}
	checkStoreClean(t, s)

	out := runIn(t, s, got, "c1", "cat /etc/hostname; test -e /etc/motd && echo motd-visible; ls -l /usr/bin/su-test | cut -c1-10; echo $(id -u)")
	if want := "berth-test\n-rwsr-xr-x\n0\n"; out != want {
		t.Errorf("inside the rootfs got %q, want %q", out, want)
	}

	// By digest: the same image, found without a tag, recorded under its repo digest.
	s2 := openStore(t)
	byDigest, err := s2.Pull(ctx, reg.Ref("test/busybox@"+dg.String()), image.PullOptions{})
	if err != nil {
		t.Fatalf("Pull by digest: %v", err)
	}
	if byDigest.Digest != dg || len(byDigest.Names) != 0 {
		t.Errorf("by digest: digest %s names %v", byDigest.Digest, byDigest.Names)
	}
	if _, err := s2.Get(reg.Ref("test/busybox@" + dg.String())); err != nil {
		t.Errorf("Get by digest reference after pull: %v", err)
	}

	// A digest that the registry does not have fails cleanly.
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := s2.Pull(ctx, reg.Ref("test/busybox@"+bad), image.PullOptions{}); err == nil {
		t.Errorf("pull of an unknown digest succeeded")
	}
	checkStoreClean(t, s2)
}

func TestPullMultiPlatformIndex(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	layers := imagetest.BusyboxLayers(t)
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	archLayer := func(a string) []byte {
		return imagetest.LayerTar([]imagetest.File{{Name: "etc/arch", Body: []byte(a + "\n")}})
	}
	imgAmd := imagetest.Image(t, append(append([][]byte{}, layers...), archLayer("amd64")), amd)
	imgArm := imagetest.Image(t, append(append([][]byte{}, layers...), archLayer("arm64")), arm)
	imagetest.PushIndex(t, reg.Ref("multi/bb:latest"), []v1.Image{imgArm, imgAmd}, []v1.Platform{arm, amd})
	dAmd, _ := imgAmd.Digest()
	dArm, _ := imgArm.Digest()

	s := openStore(t)
	host := image.HostPlatform()
	if host.Architecture != "amd64" {
		t.Skipf("this test picks linux/amd64 as the host platform; host is %s", host.Architecture)
	}
	got, err := s.Pull(context.Background(), reg.Ref("multi/bb"), image.PullOptions{})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got.Digest != dAmd {
		t.Errorf("picked %s, want the linux/amd64 image %s", got.Digest, dAmd)
	}
	if out := runIn(t, s, got, "amd", "cat /etc/arch"); out != "amd64\n" {
		t.Errorf("/etc/arch = %q", out)
	}

	got, err = s.Pull(context.Background(), reg.Ref("multi/bb"), image.PullOptions{Platform: &arm})
	if err != nil {
		t.Fatalf("Pull --platform linux/arm64/v8: %v", err)
	}
	if got.Digest != dArm {
		t.Errorf("picked %s, want the linux/arm64 image %s", got.Digest, dArm)
	}
	cf, _ := s.ConfigFile(got)
	if cf.Architecture != "arm64" {
		t.Errorf("config architecture %s", cf.Architecture)
	}
	// The tag now names the arm64 image; the amd64 one is dangling, sharing 3 layers.
	imgs, _ := s.List()
	if len(imgs) != 2 {
		t.Errorf("%d images, want 2", len(imgs))
	}
	s390 := v1.Platform{OS: "linux", Architecture: "s390x"}
	_, err = s.Pull(context.Background(), reg.Ref("multi/bb"), image.PullOptions{Platform: &s390})
	if err == nil || !strings.Contains(err.Error(), "no image for platform linux/s390x") {
		t.Errorf("pull for a platform not in the index: %v", err)
	}
}

func TestConcurrentPullsShareContent(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	img := imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("c/bb:1"), img)
	root := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := image.Open(root)
			if err == nil {
				_, err = s.Pull(context.Background(), reg.Ref("c/bb:1"), image.PullOptions{})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent pulls: %v", err)
	}
	s, _ := image.Open(root)
	imgs, _ := s.List()
	if len(imgs) != 1 {
		t.Fatalf("%d images after concurrent pulls of one", len(imgs))
	}
	blobs, _ := os.ReadDir(filepath.Join(s.Dir(), "blobs", "sha256"))
	if len(blobs) != 5 { // manifest, config, 3 layers
		t.Errorf("%d blobs, want 5", len(blobs))
	}
	layers, _ := os.ReadDir(filepath.Join(s.Dir(), "layers"))
	if len(layers) != 3 {
		t.Errorf("%d unpacked layers, want 3", len(layers))
	}
	checkStoreClean(t, s)
	if out := runIn(t, s, imgs[0], "c", "cat /etc/hostname"); out != "berth-test\n" {
		t.Errorf("rootfs after concurrent pulls: %q", out)
	}
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }
