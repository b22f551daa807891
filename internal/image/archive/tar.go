package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TarOptions tunes Tar.
type TarOptions struct {
	// OverlayWhiteouts converts overlayfs' whiteouts (0:0 character devices, opaque xattrs)
	// back into OCI ".wh." entries, for turning an overlay upper directory into a layer.
	OverlayWhiteouts bool
}

// Tar writes the tree under dir to w as a tar stream with names relative to dir, keeping
// owners, modes, times, xattrs, hardlinks, symlinks and device nodes. Entries come in a
// stable (sorted) order so the same tree gives the same bytes. Symlinks are written as links,
// never followed, so a container's filesystem cannot make Tar read host files.
func Tar(w io.Writer, dir string, opts TarOptions) error {
	t := &tarrer{tw: tar.NewWriter(w), root: dir, opts: opts, links: map[[2]uint64]string{}}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("tar %s: not a directory", dir)
	}
	if err := t.walk(""); err != nil {
		return err
	}
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("tar %s: finish archive: %w", dir, err)
	}
	return nil
}

type tarrer struct {
	tw    *tar.Writer
	root  string
	opts  TarOptions
	links map[[2]uint64]string
	buf   []byte
}

func (t *tarrer) walk(rel string) error {
	full := filepath.Join(t.root, rel)
	d, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("tar: open directory %s: %w", full, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("tar: read directory %s: %w", full, err)
	}
	sort.Strings(names)
	for _, n := range names {
		r := n
		if rel != "" {
			r = rel + "/" + n
		}
		isDir, err := t.entry(r)
		if err != nil {
			return err
		}
		if isDir {
			if err := t.walk(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tarrer) entry(rel string) (bool, error) {
	full := filepath.Join(t.root, rel)
	fi, err := os.Lstat(full)
	if err != nil {
		return false, fmt.Errorf("tar: stat %s: %w", full, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, fmt.Errorf("tar: stat %s: no unix attributes", full)
	}
	var link string
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(full); err != nil {
			return false, fmt.Errorf("tar: readlink %s: %w", full, err)
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return false, fmt.Errorf("tar: header for %s: %w", full, err)
	}
	hdr.Name = rel
	hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	hdr.Uname, hdr.Gname = "", ""
	hdr.Mode = int64(st.Mode & 0o7777)
	hdr.ModTime = fi.ModTime()
	hdr.AccessTime, hdr.ChangeTime = timeOf(st.Atim), timeOf(st.Ctim)
	hdr.Format = tar.FormatPAX

	mode := st.Mode & unix.S_IFMT
	if mode == unix.S_IFCHR && st.Rdev == 0 && t.opts.OverlayWhiteouts {
		dir, base := splitRel(rel)
		wh := whiteoutPrefix + base
		if dir != "" {
			wh = dir + "/" + wh
		}
		return false, t.tw.WriteHeader(&tar.Header{Name: wh, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime(), Format: tar.FormatPAX})
	}

	xa, err := listXattrs(full)
	if err != nil {
		return false, err
	}
	opaque := false
	for k, v := range xa {
		if strings.HasPrefix(k, overlayXattrPrefix) || strings.HasPrefix(k, userOverlayXattrPrefix) {
			if (k == OverlayOpaqueXattr || k == UserOverlayOpaqueXattr) && v == "y" {
				opaque = true
			}
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}

	if mode == unix.S_IFREG && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
		} else {
			t.links[key] = rel
		}
	}
	if mode == unix.S_IFDIR {
		hdr.Name += "/"
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return false, fmt.Errorf("tar: write header for %s: %w", full, err)
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.Open(full)
		if err != nil {
			return false, fmt.Errorf("tar: open %s: %w", full, err)
		}
		if t.buf == nil {
			t.buf = make([]byte, 256<<10)
		}
		n, err := io.CopyBuffer(t.tw, struct{ io.Reader }{f}, t.buf)
		f.Close()
		if err != nil {
			return false, fmt.Errorf("tar: copy %s: %w", full, err)
		}
		if n != hdr.Size {
			return false, fmt.Errorf("tar: %s changed size while being archived", full)
		}
	}
	if mode == unix.S_IFDIR && opaque && t.opts.OverlayWhiteouts {
		if err := t.tw.WriteHeader(&tar.Header{Name: rel + "/" + whiteoutOpaque, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
			return false, err
		}
	}
	return mode == unix.S_IFDIR, nil
}

func listXattrs(path string) (map[string]string, error) {
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(path, buf)
	if err == unix.ERANGE {
		sz, err2 := unix.Llistxattr(path, nil)
		if err2 != nil {
			return nil, fmt.Errorf("tar: list xattrs of %s: %w", path, err2)
		}
		buf = make([]byte, sz)
		n, err = unix.Llistxattr(path, buf)
	}
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tar: list xattrs of %s: %w", path, err)
	}
	if n == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		k := string(name)
		sz, err := unix.Lgetxattr(path, k, nil)
		if err != nil {
			continue
		}
		val := make([]byte, sz)
		sz, err = unix.Lgetxattr(path, k, val)
		if err != nil {
			continue
		}
		m[k] = string(val[:sz])
	}
	return m, nil
}

func timeOf(ts syscall.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }
