package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpack feeds arbitrary bytes to the unpacker as a layer. Whatever it makes of them, it
// must not panic, and nothing outside the destination may appear or change: the parent holds
// only the destination and an untouched sentinel file afterwards.
//
//	go test -fuzz FuzzUnpack -fuzztime 60s ./internal/image/archive/
func FuzzUnpack(f *testing.F) {
	f.Add(mkTar(f, ent{name: "a/b", typ: tar.TypeReg, body: "x"}, ent{name: "a/.wh.b", typ: tar.TypeReg}))
	f.Add(mkTar(f, ent{name: "l", typ: tar.TypeSymlink, link: "/"}, ent{name: "l/x", typ: tar.TypeReg, body: "x"}))
	f.Add(mkTar(f, ent{name: "../x", typ: tar.TypeReg, body: "x"}))
	f.Add(mkTar(f, ent{name: "d/", typ: tar.TypeDir}, ent{name: "d/h", typ: tar.TypeLink, link: "../sentinel"}))
	f.Add(mkTar(f, ent{name: "d/", typ: tar.TypeDir}, ent{name: "d/.wh..wh..opq", typ: tar.TypeReg}, ent{name: "d", typ: tar.TypeReg, body: "y"}))
	f.Add(mkTar(f, ent{name: "c", typ: tar.TypeChar, major: 1}, ent{name: "f", typ: tar.TypeFifo}, ent{name: "c", typ: tar.TypeLink, link: "f"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		sentinel := filepath.Join(parent, "sentinel")
		if err := os.WriteFile(sentinel, []byte("host"), 0o600); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(parent, "layer")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		Unpack(bytes.NewReader(data), dest)
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 {
			names := []string{}
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("unpacking created entries outside the layer: %v", names)
		}
		fi, err := os.Lstat(sentinel)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("sentinel beside the layer changed: %v %v", fi, err)
		}
		b, _ := os.ReadFile(sentinel)
		if string(b) != "host" {
			t.Fatalf("sentinel content changed: %q", b)
		}
		if fi, err := os.Lstat(dest); err != nil || !fi.IsDir() {
			t.Fatalf("layer directory replaced: %v %v", fi, err)
		}
	})
}
