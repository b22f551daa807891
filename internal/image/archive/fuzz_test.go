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
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		checkContained(t, parent, data)
	})
}

// FuzzUnpackEntries reads the fuzz input as a list of tar entries rather than raw tar bytes,
// so mutations reach the unpacker instead of dying on header checksums. Records are
// separated by NUL; in each, the first byte picks the type and 0x01 separates the name from
// the link target (or file content).
//
//	go test -fuzz FuzzUnpackEntries -fuzztime 60s ./internal/image/archive/
func FuzzUnpackEntries(f *testing.F) {
	f.Add([]byte("\x02evil\x01/\x00\x00evil/x\x01pwned"))
	f.Add([]byte("\x01d/\x00\x02d/l\x01..\x00\x00d/l/x\x01y"))
	f.Add([]byte("\x03h\x01../sentinel\x00\x00a/.wh..wh..opq\x00\x00../.wh.sentinel"))
	f.Add([]byte("\x00a\x01x\x00\x03b\x01a\x00\x04c\x00\x05f\x00\x00a\x01y"))
	types := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeFifo}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, rec := range bytes.Split(data, []byte{0}) {
			if len(rec) < 2 {
				continue
			}
			typ := types[int(rec[0])%len(types)]
			name, rest, _ := bytes.Cut(rec[1:], []byte{1})
			h := &tar.Header{Name: string(name), Typeflag: typ, Mode: int64(rec[0]) << 4 & 0o7777, Format: tar.FormatPAX}
			switch typ {
			case tar.TypeReg:
				h.Size = int64(len(rest))
			case tar.TypeSymlink, tar.TypeLink:
				h.Linkname = string(rest)
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			if typ == tar.TypeReg {
				tw.Write(rest)
			}
		}
		tw.Close()
		parent, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		checkContained(t, parent, b.Bytes())
	})
}

// checkContained unpacks data into parent/layer beside parent/sentinel and fails if anything
// outside the layer appeared or changed.
func checkContained(t *testing.T, parent string, data []byte) {
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
}
