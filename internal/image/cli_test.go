package image_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/imagetest"
)

var berthBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-bin-")
	if err != nil {
		panic(err)
	}
	// As `make build` makes it: the lean berth, which hands these commands to berth-full
	// beside it (internal/image/lean.go), so both are under test.
	berthBin = filepath.Join(dir, "berth")
	out, err := exec.Command("bash", filepath.Join(imagetest.RepoRoot(), "hack", "build-static.sh"), berthBin, "./cmd/berth").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// berth runs the CLI with --root root and returns stdout; it fails the test on error.
func berth(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, errOut, err := berthRun(root, nil, args...)
	if err != nil {
		t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func berthRun(root string, stdin io.Reader, args ...string) (string, string, error) {
	cmd := exec.Command(berthBin, append([]string{"--root", root}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &o, &e, stdin
	err := cmd.Run()
	return o.String(), e.String(), err
}

func TestCLIImagesTagRmi(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	img := imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("cli/bb:v1"), img)
	root := t.TempDir()

	out := berth(t, root, "pull", reg.Ref("cli/bb:v1"))
	if out != reg.Ref("cli/bb:v1")+"\n" {
		t.Errorf("pull stdout = %q", out)
	}
	berth(t, root, "tag", reg.Ref("cli/bb:v1"), "busybox:mine")
	out = berth(t, root, "images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !regexp.MustCompile(`^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$`).MatchString(lines[0]) {
		t.Errorf("images header: %q", lines[0])
	}
	cf, _ := img.ConfigName()
	id := cf.Hex[:12]
	row := regexp.MustCompile(`^busybox\s+mine\s+` + id + `\s+\d+ (years|months|weeks) ago\s+\d(\.\d+)?MB$`)
	row2 := regexp.MustCompile(`^` + regexp.QuoteMeta(reg.Ref("cli/bb")) + `\s+v1\s+` + id + `\s`)
	if len(lines) != 3 || !((row.MatchString(lines[1]) && row2.MatchString(lines[2])) || (row.MatchString(lines[2]) && row2.MatchString(lines[1]))) {
		t.Errorf("images rows:\n%s", out)
	}
	if q := berth(t, root, "images", "-q"); q != id+"\n" {
		t.Errorf("images -q = %q, want %q", q, id+"\n")
	}
	insp := berth(t, root, "image", "inspect", "--format", "{{.Id}} {{.Config.WorkingDir}} {{.Os}}", "busybox:mine")
	if want := cf.String() + " /home/app linux\n"; insp != want {
		t.Errorf("inspect --format = %q, want %q", insp, want)
	}
	hist := berth(t, root, "image", "history", "busybox:mine")
	if !strings.Contains(hist, "layer 2 (gzip)") || !strings.HasPrefix(strings.Split(hist, "\n")[1], id) {
		t.Errorf("history:\n%s", hist)
	}

	// Removing one of two names only untags.
	out = berth(t, root, "rmi", "busybox:mine")
	if out != "Untagged: busybox:mine\n" {
		t.Errorf("rmi of one of two tags: %q", out)
	}
	out = berth(t, root, "rmi", reg.Ref("cli/bb:v1"))
	if !strings.Contains(out, "Untagged: "+reg.Ref("cli/bb:v1")+"\n") || !strings.Contains(out, "Deleted: "+cf.String()) {
		t.Errorf("rmi of the last tag: %q", out)
	}
	if out := berth(t, root, "images", "-q"); out != "" {
		t.Errorf("images after rmi: %q", out)
	}
	_, errOut, err := berthRun(root, nil, "rmi", "nosuch:image")
	if err == nil || !strings.Contains(errOut, "no such image") {
		t.Errorf("rmi of a missing image: %v %q", err, errOut)
	}
}

// slowProxy forwards to the registry but trickles blob bodies, so a pull can be killed
// while a layer is half written.
func slowProxy(t *testing.T, target string) string {
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if strings.Contains(r.Request.URL.Path, "/blobs/") && r.ContentLength > 1<<20 {
			r.Body = &slowBody{rc: r.Body}
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

type slowBody struct{ rc io.ReadCloser }

func (s *slowBody) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	return s.rc.Read(p)
}
func (s *slowBody) Close() error { return s.rc.Close() }

func TestPullKilledThenRepeated(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	// Incompressible, so the layer is as big on the wire as on disk and the proxy trickles it.
	big := make([]byte, 24<<20)
	rand.New(rand.NewSource(1)).Read(big)
	layers := append(imagetest.BusyboxLayers(t), imagetest.LayerTar([]imagetest.File{{Name: "data/big", Body: big}}))
	img := imagetest.Image(t, layers, imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("k/big:1"), img)
	proxy := slowProxy(t, reg.Addr)
	ref := proxy + "/k/big:1"
	root := t.TempDir()

	cmd := exec.Command(berthBin, "--root", root, "pull", "-q", ref)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until a big blob is partly in ingest/, then kill -9 the pull.
	ingest := filepath.Join(root, "image", "ingest")
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for time.Now().Before(deadline) && !killed {
		ents, _ := os.ReadDir(ingest)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() > 1<<20 {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("pull finished before it could be killed: %v %s", werr, errOut.String())
	}
	s, err := image.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("killed pull registered an image")
	}
	// No half-written blob is visible (the ingest debris may stay until the next pull).
	dir := filepath.Join(s.Dir(), "blobs", "sha256")
	blobs, _ := os.ReadDir(dir)
	for _, b := range blobs {
		data, _ := os.ReadFile(filepath.Join(dir, b.Name()))
		if fmt.Sprintf("%x", sha256sum(data)) != b.Name() {
			t.Errorf("visible blob %s is not complete", b.Name())
		}
	}

	// The repeated pull (fast, straight from the registry) succeeds.
	out := berth(t, root, "pull", "-q", reg.Ref("k/big:1"))
	if out != reg.Ref("k/big:1")+"\n" {
		t.Errorf("second pull: %q", out)
	}
	got, err := s.Get(reg.Ref("k/big:1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.LayerDir(got.Layers[3]), "data", "big"))
	if err != nil || !bytes.Equal(b, big) {
		t.Errorf("big layer content after repeated pull differs (%v)", err)
	}
	checkStoreClean(t, s)
}

func TestRmiFreesDisk(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	layers := imagetest.BusyboxLayers(t)
	// Incompressible, so the blob is as large as the unpacked file.
	extra := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(extra)
	a := imagetest.Image(t, append(append([][]byte{}, layers...), imagetest.LayerTar([]imagetest.File{{Name: "a", Body: extra}})), imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("r/a:1"), a)
	b := imagetest.Image(t, layers, imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("r/b:1"), b)
	s := openStore(t)
	ctx := context.Background()
	empty, _ := s.DiskUsage()
	imgB, err := s.Pull(ctx, reg.Ref("r/b:1"), image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withB, _ := s.DiskUsage()
	imgA, err := s.Pull(ctx, reg.Ref("r/a:1"), image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withBoth, _ := s.DiskUsage()
	if withBoth-withB < 8<<20 {
		t.Fatalf("pulling a added %d bytes, expected its 8MiB layer (blob and unpacked: 16MiB)", withBoth-withB)
	}
	rep, err := s.Remove([]string{reg.Ref("r/a:1")}, false)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.DiskUsage()
	// a's own layer goes (blob and unpacked copy); the three layers it shares with b stay.
	if freed := withBoth - after; freed < 16<<20 || after-withB > 64<<10 {
		t.Errorf("rmi freed %d bytes (store %d -> %d, with b only %d)", freed, withBoth, after, withB)
	}
	if rep.Reclaimed < 16<<20 {
		t.Errorf("reported reclaimed %d", rep.Reclaimed)
	}
	for _, l := range imgB.Layers {
		if _, err := os.Stat(s.LayerDir(l)); err != nil {
			t.Errorf("shared layer %s removed with a: %v", l, err)
		}
	}
	if _, err := os.Stat(s.LayerDir(imgA.Layers[3])); !os.IsNotExist(err) {
		t.Errorf("a's own layer still there: %v", err)
	}
	if _, err := s.Remove([]string{imgB.ID.Hex[:12]}, false); err != nil {
		t.Fatal(err)
	}
	final, _ := s.DiskUsage()
	if final-empty > 64<<10 {
		t.Errorf("store holds %d bytes after removing everything (empty: %d)", final, empty)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "l")); len(ents) != 0 {
		t.Errorf("%d layer links left", len(ents))
	}
}
