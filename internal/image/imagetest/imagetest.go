// Package imagetest has what the image tests and benchmarks share: a throwaway local
// registry (Debian's docker-registry) and images built from the host's busybox.
package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RepoRoot finds the repository root (for hack/ scripts) from the working directory.
func RepoRoot() string {
	d, _ := os.Getwd()
	for d != "/" {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		d = filepath.Dir(d)
	}
	return ""
}

// Need makes sure a tool from hack/deps-image.sh is installed, installing it if not, and
// skips the test with the reason when that is impossible.
func Need(t testing.TB, bin string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	script := filepath.Join(RepoRoot(), "hack", "deps-image.sh")
	out, err := exec.Command("sh", script).CombinedOutput()
	if p, lerr := exec.LookPath(bin); lerr == nil {
		return p
	}
	t.Skipf("%s is not installed and %s could not install it: %v\n%s", bin, script, err, out)
	return ""
}

// Registry is a docker-registry serving on 127.0.0.1.
type Registry struct {
	Addr string // host:port
	Dir  string // its storage
}

// StartRegistry runs docker-registry on a free loopback port with storage in a temp dir;
// it is stopped in Cleanup. htpasswd, when not empty, is the content of an htpasswd file
// that turns on basic authentication.
func StartRegistry(t testing.TB, htpasswd string) *Registry {
	t.Helper()
	return StartRegistryOn(t, "127.0.0.1", htpasswd)
}

// StartRegistryOn is StartRegistry on another loopback address (127.0.0.2 is not one that
// clients treat as plain-HTTP by default).
func StartRegistryOn(t testing.TB, host, htpasswd string) *Registry {
	t.Helper()
	bin := Need(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	auth := ""
	if htpasswd != "" {
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, []byte(htpasswd), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", hp)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s/storage
  delete:
    enabled: true
http:
  addr: %s
%s`, dir, addr, auth)
	cp := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cp)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The registry takes a moment to listen; wait for /v2/ to answer, bounded.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry on %s did not come up: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Registry{Addr: addr, Dir: dir}
}

// Ref is a reference to repo:tag in this registry.
func (r *Registry) Ref(repoTag string) string { return r.Addr + "/" + repoTag }

// File is a file of a test layer.
type File struct {
	Name     string
	Mode     int64
	Body     []byte
	Link     string // symlink target when Type is tar.TypeSymlink, hardlink target for TypeLink
	Type     byte
	UID, GID int
}

// LayerTar makes an uncompressed layer tar from files.
func LayerTar(files []File) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Typeflag: f.Type, Linkname: f.Link, Uid: f.UID, Gid: f.GID,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		tw.Write(f.Body)
	}
	tw.Close()
	return b.Bytes()
}

// Layer turns a tar into a layer compressed with comp ("gzip", "zstd" or "none").
func Layer(t testing.TB, tarData []byte, comp string) v1.Layer {
	t.Helper()
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarData)), nil }
	var l v1.Layer
	var err error
	switch comp {
	case "zstd":
		l, err = tarball.LayerFromOpener(opener, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	case "none":
		l, err = tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCIUncompressedLayer))
		if err == nil {
			l = &uncompressedLayer{Layer: l, data: tarData}
		}
	default:
		l, err = tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer))
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// uncompressedLayer serves the tar itself as the blob.
type uncompressedLayer struct {
	v1.Layer
	data []byte
}

func (u *uncompressedLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(u.data)), nil
}
func (u *uncompressedLayer) Digest() (v1.Hash, error) { return u.Layer.DiffID() }
func (u *uncompressedLayer) Size() (int64, error)     { return int64(len(u.data)), nil }

// BusyboxLayers are three layers of a working busybox image: the binary, its applet links
// (and /etc files), and a top layer that adds a file and whites out another.
func BusyboxLayers(t testing.TB) [][]byte {
	t.Helper()
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static is needed (/usr/bin/busybox): %v", err)
	}
	out, err := exec.Command("/usr/bin/busybox", "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	base := []File{
		{Name: "bin/", Type: tar.TypeDir}, {Name: "usr/", Type: tar.TypeDir}, {Name: "usr/bin/", Type: tar.TypeDir},
		{Name: "sbin/", Type: tar.TypeDir}, {Name: "usr/sbin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
	}
	links := []File{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app\n")},
		{Name: "etc/motd", Body: []byte("to be whited out\n")},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "bin/busybox" {
			continue
		}
		rel, _ := filepath.Rel(filepath.Dir("/"+p), "/bin/busybox")
		links = append(links, File{Name: p, Type: tar.TypeSymlink, Link: rel})
	}
	top := []File{
		{Name: "etc/.wh.motd"},
		{Name: "etc/hostname", Body: []byte("berth-test\n")},
		{Name: "usr/bin/su-test", Mode: 0o4755, Body: []byte("#!/bin/sh\n")},
		{Name: "home/", Type: tar.TypeDir},
		{Name: "home/app/", Type: tar.TypeDir, UID: 1000, GID: 1000},
	}
	return [][]byte{LayerTar(base), LayerTar(links), LayerTar(top)}
}

// Image builds an image from layer tars for os/arch with the given compression per layer
// (repeated from the last entry), with a config a user would recognise.
func Image(t testing.TB, layers [][]byte, plat v1.Platform, comps ...string) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, l := range layers {
		c := "gzip"
		if len(comps) > 0 {
			c = comps[min(i, len(comps)-1)]
		}
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: Layer(t, l, c), History: v1.History{
			CreatedBy: fmt.Sprintf("layer %d (%s)", i, c), Created: v1.Time{Time: time.Unix(1700000000+int64(i), 0)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: time.Unix(1700000100, 0)}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE=busybox"}
	cf.Config.WorkingDir = "/home/app"
	cf.Config.Labels = map[string]string{"org.example.test": "yes"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// HostPlatform is the platform test images are built for.
func HostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// Push writes img to ref (plain HTTP registry).
func Push(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PushIndex writes a multi-platform index of imgs (paired with plats) to ref.
func PushIndex(t testing.TB, ref string, imgs []v1.Image, plats []v1.Platform) v1.Hash {
	t.Helper()
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		p := plats[i]
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p, MediaType: types.OCIManifestSchema1}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	d, _ := idx.Digest()
	return d
}
