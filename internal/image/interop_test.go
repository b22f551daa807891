package image_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/imagetest"
)

// podman runs podman with all its state in a temp dir (vfs storage: nothing to unmount).
type podmanEnv struct {
	dir string
	bin string
}

func newPodman(t *testing.T) *podmanEnv {
	bin := imagetest.Need(t, "podman")
	// podman refuses a runroot path longer than 50 characters, so not t.TempDir().
	dir, err := os.MkdirTemp("", "pm-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podmanEnv{dir: dir, bin: bin}
	os.MkdirAll(filepath.Join(p.dir, "tmp"), 0o700)
	t.Cleanup(func() {
		// Its storage is all under dir; reset drops any lock or pause process it made.
		p.cmd("system", "reset", "--force").Run()
		os.RemoveAll(dir)
	})
	return p
}

func (p *podmanEnv) cmd(args ...string) *exec.Cmd {
	base := []string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	cmd := exec.Command(p.bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(p.dir, "tmp"))
	return cmd
}

func (p *podmanEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	var o, e bytes.Buffer
	cmd := p.cmd(args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String()
}

// TestSaveLoadWithPodmanAndSkopeo moves images between berth, podman and skopeo in both
// directions and checks that each side sees the same image (same ID, name, config) and that
// berth can run a shell from what it loaded.
func TestSaveLoadWithPodmanAndSkopeo(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	// All gzip: podman 4.3 cannot convert zstd layers to docker-archive (zstd is covered by
	// TestPullByTagAndDigest).
	img := imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform(), "gzip")
	imagetest.Push(t, reg.Ref("io/bb:1"), img)
	cfgName, _ := img.ConfigName()
	pm := newPodman(t)
	root := t.TempDir()
	tmp := t.TempDir()

	// berth -> podman.
	berth(t, root, "pull", "-q", reg.Ref("io/bb:1"))
	berth(t, root, "tag", reg.Ref("io/bb:1"), "berth/saved:v1")
	archive := filepath.Join(tmp, "berth.tar")
	berth(t, root, "save", "-o", archive, "berth/saved:v1")
	out := pm.run(t, "load", "-i", archive)
	if !strings.Contains(out, "Loaded image: docker.io/berth/saved:v1") {
		t.Errorf("podman load said %q", out)
	}
	out = pm.run(t, "image", "inspect", "--format", "{{.Id}} {{.Config.WorkingDir}} {{join .Config.Cmd \",\"}}", "docker.io/berth/saved:v1")
	if want := cfgName.Hex + " /home/app sh\n"; out != want {
		t.Errorf("podman sees %q, want %q", out, want)
	}

	// podman -> berth: docker-archive (legacy layout with symlinked layers) and oci-archive.
	pm.run(t, "pull", "-q", "--tls-verify=false", reg.Ref("io/bb:1"))
	pm.run(t, "tag", reg.Ref("io/bb:1"), "localhost/from/podman:d")
	pd := filepath.Join(tmp, "podman-docker.tar")
	pm.run(t, "save", "--format", "docker-archive", "-o", pd, "localhost/from/podman:d")
	po := filepath.Join(tmp, "podman-oci.tar")
	pm.run(t, "save", "--format", "oci-archive", "-o", po, "localhost/from/podman:d")
	root2 := t.TempDir()
	if out := berth(t, root2, "load", "-i", pd); out != "Loaded image: localhost/from/podman:d\n" {
		t.Errorf("berth load (podman docker-archive): %q", out)
	}
	f, _ := os.Open(po)
	out, errOut, err := berthRun(root2, f, "load")
	f.Close()
	if err != nil || out != "Loaded image: localhost/from/podman:d\n" {
		t.Errorf("berth load < podman oci-archive: %q %v %s", out, err, errOut)
	}
	s2, _ := image.Open(root2)
	got, err := s2.Get("localhost/from/podman:d")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != cfgName {
		t.Errorf("loaded image ID %s, want %s", got.ID, cfgName)
	}
	if imgs, _ := s2.List(); len(imgs) != 1 {
		t.Errorf("loading the same image twice left %d images", len(imgs))
	}
	if out := runIn(t, s2, got, "podman-loaded", "cat /etc/hostname; ls /bin | wc -l"); !strings.HasPrefix(out, "berth-test\n") {
		t.Errorf("rootfs of loaded image: %q", out)
	}

	// skopeo -> berth: an OCI archive straight from the registry.
	sk := imagetest.Need(t, "skopeo")
	so := filepath.Join(tmp, "skopeo-oci.tar")
	if out, err := exec.Command(sk, "copy", "--src-tls-verify=false", "docker://"+reg.Ref("io/bb:1"), "oci-archive:"+so+":sk/bb:1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	root3 := t.TempDir()
	if out := berth(t, root3, "load", "-i", so); out != "Loaded image: sk/bb:1\n" {
		t.Errorf("berth load (skopeo oci-archive): %q", out)
	}
	s3, _ := image.Open(root3)
	if got, err := s3.Get("sk/bb:1"); err != nil || got.ID != cfgName {
		t.Errorf("skopeo-copied image: %v %v", got, err)
	}

	// And berth's archive is one skopeo reads as a docker-archive too.
	if out, err := exec.Command(sk, "inspect", "--config", "docker-archive:"+archive).Output(); err != nil {
		t.Errorf("skopeo inspect docker-archive:%s: %v", archive, err)
	} else {
		var cfg struct{ Config struct{ WorkingDir string } }
		json.Unmarshal(out, &cfg)
		if cfg.Config.WorkingDir != "/home/app" {
			t.Errorf("skopeo reads config %s", out)
		}
	}
}

func TestImportAndChanges(t *testing.T) {
	root := t.TempDir()
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static is needed: %v", err)
	}
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(rootfs, "bin", "sh"))
	os.Symlink("busybox", filepath.Join(rootfs, "bin", "cat"))
	os.MkdirAll(filepath.Join(rootfs, "srv"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "srv", "index.html"), []byte("hello\n"), 0o644)

	id := strings.TrimSpace(berth(t, root, "import",
		"-c", `CMD ["cat", "/srv/index.html"]`, "-c", "ENTRYPOINT /bin/sh", "-c", "ENV A=1 B=\"two words\"",
		"-c", "WORKDIR /srv", "-c", "USER nobody", "-c", "EXPOSE 8080 53/udp", "-m", "from a directory",
		rootfs, "imported/dir:1"))
	s, _ := image.Open(root)
	img, err := s.Get("imported/dir:1")
	if err != nil {
		t.Fatal(err)
	}
	if img.ID.String() != id {
		t.Errorf("import printed %s, image is %s", id, img.ID)
	}
	cf, _ := s.ConfigFile(img)
	c := cf.Config
	if strings.Join(c.Cmd, " ") != "cat /srv/index.html" || strings.Join(c.Entrypoint, " ") != "/bin/sh -c /bin/sh" ||
		strings.Join(c.Env, ",") != "A=1,B=two words" || c.WorkingDir != "/srv" || c.User != "nobody" {
		t.Errorf("config after --change: %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	if cf.History[0].Comment != "from a directory" {
		t.Errorf("history %+v", cf.History)
	}
	if out := runIn(t, s, img, "imp", "cat /srv/index.html"); out != "hello\n" {
		t.Errorf("imported rootfs: %q", out)
	}

	// A tarball on stdin, gzip-compressed, gives the same layer.
	var tb bytes.Buffer
	tarCmd := exec.Command("tar", "-C", rootfs, "-czf", "-", ".")
	tarCmd.Stdout = &tb
	if err := tarCmd.Run(); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := berthRun(root, &tb, "import", "-", "imported/tar:1")
	if err != nil {
		t.Fatalf("import -: %v %s", err, errOut)
	}
	img2, _ := s.Get("imported/tar:1")
	if img2 == nil || img2.ID.String() != strings.TrimSpace(out) {
		t.Fatalf("import - printed %q, image %v", out, img2)
	}
	if out := runIn(t, s, img2, "imp2", "cat /srv/index.html; ls /bin"); out != "hello\nbusybox\ncat\nsh\n" {
		t.Errorf("tarball-imported rootfs: %q", out)
	}
	if _, _, err := berthRun(root, nil, "import", "-c", "RUN rm -rf /", rootfs); err == nil {
		t.Errorf("import accepted a RUN change")
	}
	checkStoreClean(t, s)
}

func TestPushToRegistry(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	img := imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("p/src:1"), img)
	root := t.TempDir()
	berth(t, root, "pull", "-q", reg.Ref("p/src:1"))
	berth(t, root, "tag", reg.Ref("p/src:1"), reg.Ref("p/dst:2"))
	out := berth(t, root, "push", reg.Ref("p/dst:2"))
	dg, _ := img.Digest()
	if want := "2: digest: " + dg.String(); !strings.HasPrefix(out, want) {
		t.Errorf("push printed %q, want prefix %q", out, want)
	}
	// What was pushed pulls back into an empty store and runs.
	s := openStore(t)
	got, err := s.Pull(context.Background(), reg.Ref("p/dst:2"), image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != dg {
		t.Errorf("round trip changed the manifest: %s vs %s", got.Digest, dg)
	}
}

// TestInsecureRegistry pulls from a plain-HTTP registry on 127.0.0.2, which is not assumed
// to speak HTTP: refused by default, allowed by --tls-verify=false, --insecure-registry and
// the root's registries.json.
func TestInsecureRegistry(t *testing.T) {
	reg := imagetest.StartRegistryOn(t, "127.0.0.2", "")
	img := imagetest.Image(t, imagetest.BusyboxLayers(t)[:1], imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("ins/bb:1"), img)
	ref := reg.Ref("ins/bb:1")

	root := t.TempDir()
	if _, errOut, err := berthRun(root, nil, "pull", "-q", ref); err == nil || !strings.Contains(errOut, "https://"+reg.Addr) {
		t.Errorf("pull over HTTPS from a plain-HTTP registry: %v %q", err, errOut)
	}
	berth(t, root, "pull", "-q", "--tls-verify=false", ref)
	berth(t, t.TempDir(), "pull", "-q", "--insecure-registry", reg.Addr, ref)
	root3 := t.TempDir()
	os.WriteFile(filepath.Join(root3, "registries.json"), []byte(`{"insecure-registries": ["`+reg.Addr+`"]}`), 0o644)
	berth(t, root3, "pull", "-q", ref)
	berth(t, root3, "tag", ref, reg.Ref("ins/copy:2"))
	berth(t, root3, "push", "-q", reg.Ref("ins/copy:2"))
}
