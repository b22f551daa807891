package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/archive"
	"github.com/berth-containers/berth/internal/image/imagetest"
)

// TestHostileLayersRefused pulls images whose layers try to write outside their layer
// directory and checks that each pull fails with a BreakoutError, that no image, layer or
// ingest debris remains, and that the files they aimed at on the host are untouched.
func TestHostileLayersRefused(t *testing.T) {
	reg := imagetest.StartRegistry(t, "")
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "victim")
	if err := os.WriteFile(victim, []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	newName := filepath.Join(victimDir, "planted")
	root := t.TempDir()
	// Deep enough to reach / from the layer directory under root.
	up := "../../../../../../../../../../../../../../../.."

	cases := map[string][]imagetest.File{
		"traversal":           {{Name: up + newName, Body: []byte("x")}},
		"traversal overwrite": {{Name: up + victim, Body: []byte("pwned")}},
		"symlink then write": {
			{Name: "escape", Type: tar.TypeSymlink, Link: victimDir},
			{Name: "escape/planted", Body: []byte("x")},
		},
		"relative symlink out": {{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/up", Type: tar.TypeSymlink, Link: "../../x"}},
		"hardlink out":         {{Name: "h", Type: tar.TypeLink, Link: up + victim}},
		"hardlink via symlink": {
			{Name: "d", Type: tar.TypeSymlink, Link: victimDir},
			{Name: "h", Type: tar.TypeLink, Link: "d/victim"},
		},
		"whiteout outside": {{Name: up + victimDir + "/.wh.victim"}},
		"whiteout via symlink": {
			{Name: "d", Type: tar.TypeSymlink, Link: victimDir},
			{Name: "d/.wh.victim"},
		},
		"whiteout of parent": {{Name: "etc/.wh.."}},
	}
	base := imagetest.BusyboxLayers(t)[0]
	s, err := image.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for name, files := range cases {
		i++
		ref := reg.Ref(fmt.Sprintf("hostile/case%d:1", i))
		img := imagetest.Image(t, [][]byte{base, imagetest.LayerTar(files)}, imagetest.HostPlatform())
		imagetest.Push(t, ref, img)
		t.Run(name, func(t *testing.T) {
			_, err := s.Pull(context.Background(), ref, image.PullOptions{})
			var be *archive.BreakoutError
			if !errors.As(err, &be) {
				t.Fatalf("pull of a hostile layer: %v, want a refusal", err)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "host data\n" {
				t.Fatalf("victim file changed: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(victimDir); len(ents) != 1 {
				t.Fatalf("something was planted next to the victim: %d entries", len(ents))
			}
			if _, err := s.Get(ref); !errors.Is(err, image.ErrNotFound) {
				t.Errorf("hostile image registered: %v", err)
			}
		})
	}
	// Only the good base layer may be unpacked; nothing hostile is left anywhere in the store.
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers"))
	if len(ents) != 1 {
		t.Errorf("%d layers unpacked, want only the shared base", len(ents))
	}

	// Contained rather than refused: an entry replacing a symlink replaces the link itself
	// (as tar does), it never writes through it.
	ref := reg.Ref("hostile/replace:1")
	img := imagetest.Image(t, [][]byte{base, imagetest.LayerTar([]imagetest.File{
		{Name: "v", Type: tar.TypeSymlink, Link: victim},
		{Name: "v", Body: []byte("pwned")},
		{Name: "w", Type: tar.TypeSymlink, Link: victimDir},
		{Name: "w/", Type: tar.TypeDir},
		{Name: "w/planted", Body: []byte("x")},
	})}, imagetest.HostPlatform())
	imagetest.Push(t, ref, img)
	got, err := s.Pull(context.Background(), ref, image.PullOptions{})
	if err != nil {
		t.Fatalf("pull of a layer replacing its own symlinks: %v", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "host data\n" {
		t.Fatalf("victim file changed: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(victimDir); len(ents) != 1 {
		t.Fatalf("something was planted next to the victim: %d entries", len(ents))
	}
	top := s.LayerDir(got.Layers[1])
	if b, _ := os.ReadFile(filepath.Join(top, "v")); string(b) != "pwned" {
		t.Errorf("layer's own v = %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(top, "w")); err != nil || !fi.IsDir() {
		t.Errorf("layer's own w is not a directory: %v", err)
	}
	if _, err := s.Remove([]string{ref}, false); err != nil {
		t.Fatal(err)
	}
	checkStoreClean(t, s)
	var stray []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !strings.Contains(p, "/layers/") && (fi.Name() == "planted" || fi.Name() == "x") {
			stray = append(stray, p)
		}
		return nil
	})
	if len(stray) > 0 {
		t.Errorf("hostile files in the store: %v", stray)
	}
}
