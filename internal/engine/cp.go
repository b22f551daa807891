package engine

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// `berth cp` copies between a container's filesystem and the host, with Docker's rules:
// a directory copied onto an existing directory goes inside it (its contents, for
// SRC/.), a file onto a directory goes inside it, otherwise the destination is
// created or replaced; "-" is a tar stream on stdin or stdout.
//
// Inside the container every step is taken from a directory descriptor with O_NOFOLLOW
// (paths are resolved in the container's root by pathrs), so no symlink the container
// made can lead a copy to the host's files, even while the container runs. A running
// container is reached through /proc/PID/root (its whole view, volumes included); a
// stopped one through its snapshot, mounted for the copy.

type cpEntry struct {
	rel     string // relative to the copied tree; "" for its top
	mode    os.FileMode
	uid     int
	gid     int
	mtime   time.Time
	link    string
	size    int64
	content func() (io.ReadCloser, error)
}

type cpSink interface{ put(cpEntry) error }

// withRoot gives fn a handle on the container's root directory.
func (e *Engine) withRoot(ref string, fn func(root *os.File) error) error {
	l, err := e.lock(ref, false)
	if err != nil {
		return err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return err
	}
	var dir string
	if st.Pid > 0 && alive(st.Pid, st.PidStart) {
		dir = fmt.Sprintf("/proc/%d/root", st.Pid)
	} else {
		sn, err := e.snapshotter()
		if err != nil {
			return err
		}
		snap, err := sn.Get(c.ID)
		if err != nil {
			return err
		}
		dir = snap.Rootfs
		if e.runtimeMountsRoot(snap) {
			// The lock keeps a start out while the overlay is mounted in the helper.
			root, err := e.openOverlayRoot(snap, false)
			if err != nil {
				return err
			}
			defer root.Close()
			return fn(root)
		}
		if snap.Driver == "overlay" && !isMounted(snap.Rootfs) {
			// The lock keeps a start out while the snapshot is mounted here.
			if err := snap.Mount(""); err != nil {
				return err
			}
			defer snap.Unmount("")
		}
	}
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: open its root: %w", short(c.ID), err)
	}
	defer root.Close()
	return fn(root)
}

// CopyFrom copies src in the container to dst on the host, or as a tar stream to w when
// dst is "-".
func (e *Engine) CopyFrom(ref, src, dst string, w io.Writer) error {
	return e.withRoot(ref, func(root *os.File) error {
		h, err := pathrs.OpenatInRoot(root, src)
		if err != nil {
			return messagef("Could not find the file %s in container %s", src, ref)
		}
		defer h.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(h.Fd()), &st); err != nil {
			return err
		}
		base := path.Base(path.Clean("/" + src))
		if base == "/" {
			base = "."
		}
		contents := strings.HasSuffix(src, "/.")
		var sink cpSink
		if dst == "-" {
			tw := tar.NewWriter(w)
			defer tw.Close()
			top := base
			if contents {
				top = "."
			}
			sink = &tarSink{tw: tw, top: top}
		} else {
			target, err := hostTarget(dst, base, st.Mode&unix.S_IFMT == unix.S_IFDIR, contents)
			if err != nil {
				return err
			}
			sink = &hostSink{top: target}
		}
		return walkContainer(h, &st, "", sink)
	})
}

// hostTarget applies Docker's rules to a host destination.
func hostTarget(dst, base string, srcDir, contents bool) (string, error) {
	fi, err := os.Stat(dst)
	switch {
	case err == nil && fi.IsDir():
		if srcDir && contents {
			return dst, nil
		}
		return filepath.Join(dst, base), nil
	case err == nil:
		if srcDir {
			return "", fmt.Errorf("cannot copy a directory to the file %s", dst)
		}
		return dst, nil
	case errors.Is(err, os.ErrNotExist):
		if strings.HasSuffix(dst, "/") && !srcDir {
			return "", fmt.Errorf("destination directory %s does not exist", dst)
		}
		if _, err := os.Stat(filepath.Dir(filepath.Clean(dst))); err != nil {
			return "", fmt.Errorf("destination directory %s does not exist", filepath.Dir(filepath.Clean(dst)))
		}
		return dst, nil
	}
	return "", err
}

// walkContainer sends the tree at handle h to the sink, descending only through
// descriptors opened with O_NOFOLLOW.
func walkContainer(h *os.File, st *unix.Stat_t, rel string, sink cpSink) error {
	ent := statEntry(rel, st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(int(h.Fd()), "", buf)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		ent.link = string(buf[:n])
		return sink.put(ent)
	case unix.S_IFREG:
		ent.content = func() (io.ReadCloser, error) { return pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC) }
		return sink.put(ent)
	case unix.S_IFDIR:
		if err := sink.put(ent); err != nil {
			return err
		}
		d, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("open directory %s: %w", rel, err)
		}
		defer d.Close()
		names, err := d.Readdirnames(-1)
		if err != nil {
			return fmt.Errorf("read directory %s: %w", rel, err)
		}
		sort.Strings(names)
		for _, n := range names {
			fd, err := unix.Openat(int(d.Fd()), n, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", path.Join(rel, n), err)
			}
			child := os.NewFile(uintptr(fd), n)
			var cst unix.Stat_t
			err = unix.Fstat(fd, &cst)
			if err == nil {
				err = walkContainer(child, &cst, path.Join(rel, n), sink)
			}
			child.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Devices, fifos and sockets are not copied, as Docker's cp leaves them out.
	return nil
}

func statEntry(rel string, st *unix.Stat_t) cpEntry {
	mode := os.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	}
	return cpEntry{rel: rel, mode: mode, uid: int(st.Uid), gid: int(st.Gid), size: st.Size,
		mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
}

// hostSink writes the tree on the host, at top.
type hostSink struct{ top string }

func (s *hostSink) put(ent cpEntry) error {
	p := filepath.Join(s.top, filepath.FromSlash(ent.rel))
	switch {
	case ent.mode&os.ModeSymlink != 0:
		os.Remove(p)
		if err := os.Symlink(ent.link, p); err != nil {
			return err
		}
		return os.Lchown(p, ent.uid, ent.gid)
	case ent.mode.IsDir():
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	default:
		r, err := ent.content()
		if err != nil {
			return err
		}
		defer r.Close()
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := os.Lchown(p, ent.uid, ent.gid); err != nil {
		return err
	}
	if err := os.Chmod(p, ent.mode&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(p, ent.mtime, ent.mtime)
}

// tarSink writes the tree as a tar stream, under the name top.
type tarSink struct {
	tw  *tar.Writer
	top string
}

func (s *tarSink) put(ent cpEntry) error {
	name := path.Join(s.top, ent.rel)
	hdr := &tar.Header{Name: name, Mode: int64(ent.mode.Perm()), Uid: ent.uid, Gid: ent.gid, ModTime: ent.mtime, Format: tar.FormatPAX}
	if ent.mode&os.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if ent.mode&os.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if ent.mode&os.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	switch {
	case ent.mode&os.ModeSymlink != 0:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, ent.link
	case ent.mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	default:
		hdr.Typeflag, hdr.Size = tar.TypeReg, ent.size
	}
	if err := s.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg {
		r, err := ent.content()
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := io.CopyN(s.tw, r, ent.size); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
	}
	return nil
}

// CopyTo copies src on the host (or a tar stream from r when src is "-") to dst in the
// container.
func (e *Engine) CopyTo(ref, src string, r io.Reader, dst string) error {
	var srcDir bool
	var base string
	contents := strings.HasSuffix(src, "/.")
	if src != "-" {
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("could not stat %s: %w", src, err)
		}
		srcDir = fi.IsDir()
		base = filepath.Base(filepath.Clean(src))
	}
	return e.withRoot(ref, func(root *os.File) error {
		// Where the copy goes: inside dst if it is a directory, else dst itself.
		var parent *os.File
		var name string
		if h, err := pathrs.OpenatInRoot(root, dst); err == nil {
			var st unix.Stat_t
			unix.Fstat(int(h.Fd()), &st)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				parent, name = h, base
				if src == "-" || (srcDir && contents) {
					name = ""
				}
			} else {
				h.Close()
				if srcDir || src == "-" {
					return fmt.Errorf("cannot copy a directory to the file %s in the container", dst)
				}
			}
		}
		if parent == nil {
			clean := path.Clean("/" + dst)
			p, err := pathrs.OpenatInRoot(root, path.Dir(clean))
			if err != nil {
				return messagef("Could not find the file %s in container %s", path.Dir(clean), ref)
			}
			parent, name = p, path.Base(clean)
		}
		defer parent.Close()
		sink := &ctrSink{parent: parent, top: name}
		if src == "-" {
			return walkTar(r, sink)
		}
		return walkHost(src, sink)
	})
}

func walkHost(src string, sink cpSink) error {
	src = filepath.Clean(src)
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			rel = ""
		}
		ent := statEntry(filepath.ToSlash(rel), &st)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if ent.link, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFREG:
			ent.content = func() (io.ReadCloser, error) { return os.Open(p) }
		case unix.S_IFDIR:
		default:
			return nil
		}
		return sink.put(ent)
	})
}

func walkTar(r io.Reader, sink cpSink) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the tar stream: %w", err)
		}
		rel := path.Clean("/" + hdr.Name)[1:]
		ent := cpEntry{rel: rel, mode: os.FileMode(hdr.Mode & 0o777), uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime, size: hdr.Size}
		if hdr.Mode&0o4000 != 0 {
			ent.mode |= os.ModeSetuid
		}
		if hdr.Mode&0o2000 != 0 {
			ent.mode |= os.ModeSetgid
		}
		if hdr.Mode&0o1000 != 0 {
			ent.mode |= os.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			ent.mode |= os.ModeDir
		case tar.TypeSymlink:
			ent.mode |= os.ModeSymlink
			ent.link = hdr.Linkname
		case tar.TypeReg:
			ent.content = func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }
		default:
			continue
		}
		if err := sink.put(ent); err != nil {
			return err
		}
	}
}

// ctrSink writes the tree into the container under parent, as top ("" for parent
// itself); every path is walked from parent one component at a time with O_NOFOLLOW.
type ctrSink struct {
	parent *os.File
	top    string
}

func (s *ctrSink) put(ent cpEntry) error {
	full := path.Join(s.top, ent.rel)
	dirfd := int(s.parent.Fd())
	var opened []int
	defer func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}()
	dir, name := path.Split(full)
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		fd, err := unix.Openat(dirfd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("copy into the container: %s: %w", dir, err)
		}
		opened = append(opened, fd)
		dirfd = fd
	}
	if name == "" {
		// The top is the existing directory itself: only its mode and owner change.
		return nil
	}
	// An O_PATH parent cannot be written through; reopen it for the *at calls.
	wfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	opened = append(opened, wfd)
	perm := uint32(ent.mode.Perm())
	if ent.mode&os.ModeSetuid != 0 {
		perm |= unix.S_ISUID
	}
	if ent.mode&os.ModeSetgid != 0 {
		perm |= unix.S_ISGID
	}
	if ent.mode&os.ModeSticky != 0 {
		perm |= unix.S_ISVTX
	}
	switch {
	case ent.mode&os.ModeSymlink != 0:
		unix.Unlinkat(wfd, name, 0)
		if err := unix.Symlinkat(ent.link, wfd, name); err != nil {
			return fmt.Errorf("copy into the container: symlink %s: %w", full, err)
		}
		return unix.Fchownat(wfd, name, ent.uid, ent.gid, unix.AT_SYMLINK_NOFOLLOW)
	case ent.mode.IsDir():
		if err := unix.Mkdirat(wfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("copy into the container: mkdir %s: %w", full, err)
		}
		fd, err := unix.Openat(wfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("copy into the container: %s: %w", full, err)
		}
		defer unix.Close(fd)
		unix.Fchown(fd, ent.uid, ent.gid)
		return unix.Fchmod(fd, perm)
	}
	r, err := ent.content()
	if err != nil {
		return err
	}
	defer r.Close()
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(wfd, name, flags, 0o600)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EISDIR) {
		// A symlink (never followed) or a directory is replaced.
		unix.Unlinkat(wfd, name, 0)
		unix.Unlinkat(wfd, name, unix.AT_REMOVEDIR)
		fd, err = unix.Openat(wfd, name, flags, 0o600)
	}
	if err != nil {
		return fmt.Errorf("copy into the container: create %s: %w", full, err)
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("copy into the container: write %s: %w", full, err)
	}
	f.Chown(ent.uid, ent.gid)
	if err := unix.Fchmod(fd, perm); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(ent.mtime.UnixNano()), unix.NsecToTimespec(ent.mtime.UnixNano())}
	return unix.UtimesNanoAt(wfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}
