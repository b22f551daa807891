// Package images measures image pulls and snapshot creation against podman and
// skopeo+umoci. Run:
//
//	go test -run XXX -bench . -benchtime 1x ./bench/images/
//
// Every tool pulls the same multi-layer image from a docker-registry on 127.0.0.1 into an
// empty store, in alternating order, ROUNDS times (default 7); the medians and the ratios to
// berth are reported as benchmark metrics and printed as a table.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/imagetest"
	"github.com/berth-containers/berth/internal/image/snapshot"
)

// benchLayers is a busybox base plus layers shaped like a language runtime install: many
// small files, a few large ones, compressible text and incompressible data.
func benchLayers(b *testing.B) [][]byte {
	layers := imagetest.BusyboxLayers(b)
	rng := rand.New(rand.NewSource(42))
	words := []string{"func", "return", "package", "import", "struct", "interface", "range", "select", "defer", "go"}
	text := func(n int) []byte {
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rng.Intn(len(words))])
			buf.WriteByte(" \n"[rng.Intn(2)])
		}
		return buf.Bytes()[:n]
	}
	for l := 0; l < 3; l++ {
		var files []imagetest.File
		for d := 0; d < 40; d++ {
			dir := fmt.Sprintf("usr/lib/pkg%d/mod%02d/", l, d)
			files = append(files, imagetest.File{Name: dir, Type: tar.TypeDir})
			for f := 0; f < 50; f++ {
				files = append(files, imagetest.File{Name: fmt.Sprintf("%sfile%02d.go", dir, f), Body: text(1024 + rng.Intn(12<<10))})
			}
		}
		layers = append(layers, imagetest.LayerTar(files))
	}
	big := make([]byte, 24<<20)
	rng.Read(big)
	layers = append(layers, imagetest.LayerTar([]imagetest.File{{Name: "opt/blob.bin", Body: big}, {Name: "opt/notes.txt", Body: text(8 << 20)}}))
	return layers
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func run(b *testing.B, env []string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// unmountUnder detaches every mount below dir (podman's overlay storage leaves some).
func unmountUnder(dir string) {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mi), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}

func BenchmarkPullUnpack(b *testing.B) {
	rounds := 7
	if r, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	podman := imagetest.Need(b, "podman")
	skopeo := imagetest.Need(b, "skopeo")
	umoci := imagetest.Need(b, "umoci")
	reg := imagetest.StartRegistry(b, "")
	img := imagetest.Image(b, benchLayers(b), imagetest.HostPlatform())
	ref := reg.Ref("bench/app:1")
	imagetest.Push(b, ref, img)
	m, _ := img.Manifest()
	var compressed int64
	for _, l := range m.Layers {
		compressed += l.Size
	}

	bin := filepath.Join(b.TempDir(), "berth")
	run(b, nil, "go", "build", "-o", bin, filepath.Join(imagetest.RepoRoot(), "cmd", "berth"))
	// podman wants short paths for its runroot.
	work, err := os.MkdirTemp("", "bpi-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unmountUnder(work); os.RemoveAll(work) })

	type tool struct {
		name  string
		pull  func(dir string)
		times []time.Duration
	}
	tools := []*tool{
		{name: "berth pull", pull: func(dir string) {
			run(b, nil, bin, "--root", dir, "pull", "-q", ref)
		}},
		{name: "podman pull (overlay)", pull: func(dir string) {
			run(b, []string{"TMPDIR=" + dir}, podman, "--root", dir+"/r", "--runroot", dir+"/rr", "--storage-driver", "overlay",
				"--cgroup-manager", "cgroupfs", "--events-backend", "none", "pull", "-q", "--tls-verify=false", ref)
		}},
		{name: "skopeo copy + umoci unpack", pull: func(dir string) {
			run(b, []string{"TMPDIR=" + dir}, skopeo, "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+"/oci:app")
			run(b, nil, umoci, "unpack", "--image", dir+"/oci:app", dir+"/bundle")
		}},
	}
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		for i := range tools {
			t := tools[(r+i)%len(tools)]
			dir := filepath.Join(work, fmt.Sprint(r, i))
			os.MkdirAll(dir, 0o700)
			unix.Sync()
			start := time.Now()
			t.pull(dir)
			t.times = append(t.times, time.Since(start))
			unmountUnder(dir)
			os.RemoveAll(dir)
		}
	}
	b.StopTimer()

	base := median(tools[0].times)
	fmt.Printf("\nimage: %d layers, %.1f MB compressed; %d rounds, alternating order\n", len(m.Layers), float64(compressed)/1e6, rounds)
	fmt.Printf("%-28s %10s %8s   %s\n", "tool", "median", "ratio", "all runs")
	for _, t := range tools {
		med := median(t.times)
		var all []string
		for _, d := range t.times {
			all = append(all, fmt.Sprintf("%.0f", float64(d.Microseconds())/1000))
		}
		fmt.Printf("%-28s %8.0fms %7.2fx   %s\n", t.name, float64(med.Microseconds())/1000, float64(med)/float64(base), strings.Join(all, " "))
		b.ReportMetric(float64(med.Microseconds())/1000, strings.Fields(t.name)[0]+"-ms")
	}

	// Snapshot creation for the pulled image, as the engine will call it.
	root := filepath.Join(work, "snap")
	run(b, nil, bin, "--root", root, "pull", "-q", ref)
	s, err := image.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	got, err := s.Get(ref)
	if err != nil {
		b.Fatal(err)
	}
	sn, err := snapshot.New(s)
	if err != nil {
		b.Fatal(err)
	}
	var prep, mnt []time.Duration
	for i := 0; i < 200; i++ {
		k := fmt.Sprint("c", i)
		start := time.Now()
		sp, err := sn.Prepare(k, got)
		if err != nil {
			b.Fatal(err)
		}
		prep = append(prep, time.Since(start))
		start = time.Now()
		if err := sp.Mount(""); err != nil {
			b.Fatal(err)
		}
		mnt = append(mnt, time.Since(start))
		if err := sn.Remove(k); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("snapshot (%s, %d layers): Prepare median %v, overlay mount median %v (200 runs)\n",
		sn.Driver(), len(got.Layers), median(prep), median(mnt))
	b.ReportMetric(float64(median(prep).Microseconds()), "prepare-us")
}
