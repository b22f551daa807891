package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type ent struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	body       string
	major      int64
	xattrs     map[string]string
}

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(1700000000, 0), Size: int64(len(e.body)), Devmajor: e.major, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func TestUnpackPreservesMetadata(t *testing.T) {
	dest := t.TempDir()
	data := mkTar(t,
		ent{name: "./", typ: tar.TypeDir, mode: 0o755},
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, uid: 0, gid: 0, body: "setuid"},
		ent{name: "bin/sg", typ: tar.TypeReg, mode: 0o2755, uid: 1000, gid: 50, body: "setgid"},
		ent{name: "bin/hard", typ: tar.TypeLink, link: "bin/su"},
		ent{name: "bin/sh", typ: tar.TypeSymlink, link: "su", uid: 7, gid: 8},
		ent{name: "/abs/file", typ: tar.TypeReg, body: "contained"},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1},
		ent{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "x/attr", typ: tar.TypeReg, body: "x", xattrs: map[string]string{"user.k": "v", "trusted.overlay.redirect": "/etc"}},
		ent{name: "etc/gone/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "etc/gone/.wh..wh..opq", typ: tar.TypeReg},
		ent{name: "etc/.wh.passwd", typ: tar.TypeReg},
	)
	st, err := Unpack(bytes.NewReader(data), dest)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if st.Entries != 14 {
		t.Errorf("entries = %d, want 14", st.Entries)
	}
	su := lstat(t, filepath.Join(dest, "bin/su"))
	if su.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/su mode %o, want 4755", su.Mode&0o7777)
	}
	sg := lstat(t, filepath.Join(dest, "bin/sg"))
	if sg.Mode&0o7777 != 0o2755 || sg.Uid != 1000 || sg.Gid != 50 {
		t.Errorf("bin/sg mode %o owner %d:%d, want 2755 1000:50", sg.Mode&0o7777, sg.Uid, sg.Gid)
	}
	if h := lstat(t, filepath.Join(dest, "bin/hard")); h.Ino != su.Ino || su.Nlink != 2 {
		t.Errorf("bin/hard is not a hardlink of bin/su (ino %d vs %d, nlink %d)", h.Ino, su.Ino, su.Nlink)
	}
	if l, _ := os.Readlink(filepath.Join(dest, "bin/sh")); l != "su" {
		t.Errorf("bin/sh -> %q, want su", l)
	}
	if sh := lstat(t, filepath.Join(dest, "bin/sh")); sh.Uid != 7 || sh.Gid != 8 {
		t.Errorf("symlink owner %d:%d, want 7:8", sh.Uid, sh.Gid)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "abs/file")); string(b) != "contained" {
		t.Errorf("absolute name not contained in layer: %q", b)
	}
	if tm := lstat(t, filepath.Join(dest, "tmp")); tm.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o, want 1777", tm.Mode&0o7777)
	}
	if n := lstat(t, filepath.Join(dest, "dev/null")); n.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(n.Rdev) != 1 {
		t.Errorf("dev/null not char 1:x: mode %o rdev %d", n.Mode, n.Rdev)
	}
	if f := lstat(t, filepath.Join(dest, "dev/fifo")); f.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("dev/fifo not a fifo")
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dest, "x/attr"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("user.k xattr = %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dest, "x/attr"), "trusted.overlay.redirect", buf); err == nil {
		t.Errorf("a trusted.overlay xattr from the tar was applied")
	}
	if n, err := unix.Lgetxattr(filepath.Join(dest, "etc/gone"), OverlayOpaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque dir xattr = %q, %v", buf[:n], err)
	}
	if w := lstat(t, filepath.Join(dest, "etc/passwd")); w.Mode&unix.S_IFMT != unix.S_IFCHR || w.Rdev != 0 {
		t.Errorf("whiteout etc/passwd is not a 0:0 char device")
	}
	if fi, _ := os.Lstat(filepath.Join(dest, "bin")); fi.ModTime().Unix() != 1700000000 {
		t.Errorf("bin mtime %v, want 1700000000", fi.ModTime().Unix())
	}

	// And back: Tar with overlay whiteouts gives the OCI entries again.
	var out bytes.Buffer
	if err := Tar(&out, dest, TarOptions{OverlayWhiteouts: true}); err != nil {
		t.Fatalf("Tar: %v", err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h
	}
	for _, want := range []string{"bin/su", "etc/.wh.passwd", "etc/gone/.wh..wh..opq", "dev/null", "bin/sh"} {
		if got[want] == nil {
			t.Errorf("Tar output lacks %s (has %d entries)", want, len(got))
		}
	}
	if h := got["bin/hard"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/su" {
		if h2 := got["bin/su"]; h2 == nil || h2.Typeflag != tar.TypeLink {
			t.Errorf("Tar lost the hardlink between bin/hard and bin/su")
		}
	}
	if h := got["bin/su"]; h != nil && h.Typeflag == tar.TypeReg && h.Mode != 0o4755 {
		t.Errorf("Tar bin/su mode %o", h.Mode)
	}
}

// TestUnpackRefusesHostile feeds layers that try to escape and checks that each is refused and
// that a file beside the destination is unchanged.
func TestUnpackRefusesHostile(t *testing.T) {
	cases := map[string][]ent{
		"dotdot":          {{name: "../outside", typ: tar.TypeReg, body: "pwned"}},
		"deep dotdot":     {{name: "a/b/../../../outside", typ: tar.TypeReg, body: "pwned"}},
		"symlink escape":  {{name: "up", typ: tar.TypeSymlink, link: "../"}},
		"write via link":  {{name: "evil", typ: tar.TypeSymlink, link: "/"}, {name: "evil/outside", typ: tar.TypeReg, body: "pwned"}},
		"write via rel":   {{name: "d/", typ: tar.TypeDir}, {name: "d/l", typ: tar.TypeSymlink, link: ".."}, {name: "d/l/x", typ: tar.TypeReg, body: "pwned"}},
		"hardlink out":    {{name: "h", typ: tar.TypeLink, link: "../outside"}},
		"hardlink via ln": {{name: "s", typ: tar.TypeSymlink, link: "/"}, {name: "h", typ: tar.TypeLink, link: "s/outside"}},
		"whiteout dotdot": {{name: "a/.wh..", typ: tar.TypeReg}},
		"whiteout out":    {{name: "../.wh.outside", typ: tar.TypeReg}},
		"whiteout via ln": {{name: "s", typ: tar.TypeSymlink, link: "/"}, {name: "s/.wh.outside", typ: tar.TypeReg}},
		"root not dir":    {{name: ".", typ: tar.TypeReg}},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			if err := os.WriteFile(outside, []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(parent, "layer")
			os.Mkdir(dest, 0o755)
			_, err := Unpack(bytes.NewReader(mkTar(t, ents...)), dest)
			var be *BreakoutError
			if !errors.As(err, &be) {
				t.Fatalf("Unpack = %v, want a BreakoutError", err)
			}
			b, rerr := os.ReadFile(outside)
			fi, _ := os.Lstat(outside)
			if rerr != nil || string(b) != "host" || !fi.Mode().IsRegular() {
				t.Fatalf("file outside the layer changed: %q %v", b, rerr)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 2 {
				t.Fatalf("parent directory has %d entries, want outside + layer", len(entries))
			}
		})
	}
}

func TestUnpackReplacesEntries(t *testing.T) {
	dest := t.TempDir()
	data := mkTar(t,
		ent{name: "a/x", typ: tar.TypeReg, body: "1"},
		ent{name: "a", typ: tar.TypeSymlink, link: "/etc"},
		ent{name: "f", typ: tar.TypeSymlink, link: "/etc/passwd"},
		ent{name: "f", typ: tar.TypeReg, body: "new"},
	)
	if _, err := Unpack(bytes.NewReader(data), dest); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "a")); err != nil || l != "/etc" {
		t.Errorf("a = %q, %v; want the symlink that replaced the directory", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("f should be a regular file replacing the symlink, not written through it")
	}
}
