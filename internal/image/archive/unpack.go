// Package archive turns image layers (tar streams, possibly gzip or zstd compressed) into
// directories and directories back into tar streams.
//
// A layer is unpacked into a directory of its own, in the form overlayfs reads as a lower
// layer: OCI whiteouts (".wh.NAME") become 0:0 character devices and opaque markers
// (".wh..wh..opq") become the trusted.overlay.opaque xattr. Layers therefore never depend on
// each other while unpacking, which lets them unpack in parallel and be shared by every image
// that lists them.
//
// The unpacker treats every layer as hostile. All names are resolved beneath the destination
// with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so neither "../" nor a symlink unpacked
// earlier in the same layer can carry a write outside it. Entries that try are refused with an
// error naming the entry.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes AUFS bookkeeping entries (".wh..wh.plnk", ...) that carry no
	// meaning for the container's filesystem.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"

	// OverlayOpaqueXattr marks a directory whose lower contents overlayfs must hide.
	OverlayOpaqueXattr = "trusted.overlay.opaque"
	// overlayXattrPrefix is overlayfs' private namespace: a layer that sets these could
	// redirect lookups or forge metadata, so they are never taken from a tar.
	overlayXattrPrefix = "trusted.overlay."

	// UserOverlayOpaqueXattr is the opaque marker of an overlay mounted in a user
	// namespace (the "userxattr" option): trusted.* needs privilege over the host.
	UserOverlayOpaqueXattr = "user.overlay.opaque"
	// userOverlayXattrPrefix is the same private namespace for such overlays; never taken
	// from a tar either.
	userOverlayXattrPrefix = "user.overlay."
)

// BreakoutError reports a layer entry that tried to reach outside the layer's directory.
type BreakoutError struct {
	Entry  string
	Reason string
}

func (e *BreakoutError) Error() string {
	return fmt.Sprintf("refusing layer entry %q: %s", e.Entry, e.Reason)
}

// Stats describes an unpacked layer.
type Stats struct {
	// Size is the sum of the sizes of the regular files and symlinks, as `docker images`
	// counts a layer.
	Size int64
	// Entries is the number of tar entries applied.
	Entries int
	// SkippedDevices counts the device nodes a Rootless unpack could not make.
	SkippedDevices int
	// Unmapped counts the entries a Rootless unpack gave to root because their owner
	// has no id in the user namespace (a user without a subordinate range).
	Unmapped int
}

// fchownat gives an entry its owner; rootless, an owner the user namespace does not map
// (EINVAL) becomes root, as Podman's ignore_chown_errors does.
func (u *unpacker) fchownat(pfd int, base string, hdr *tar.Header) error {
	err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EINVAL && u.opts.Rootless {
		u.stats.Unmapped++
		err = unix.Fchownat(pfd, base, 0, 0, unix.AT_SYMLINK_NOFOLLOW)
	}
	return err
}

// Unpack extracts the uncompressed tar stream r into dest, which must be an existing, empty
// directory that nothing else writes to. Owners, modes (setuid/setgid/sticky included),
// xattrs, times, hardlinks, symlinks and device nodes are kept; whiteouts are converted to
// overlayfs' form. On error dest holds a partial layer that the caller must discard.
func Unpack(r io.Reader, dest string) (Stats, error) {
	return UnpackWith(r, dest, Options{})
}

// Options tunes UnpackWith.
type Options struct {
	// ApplyWhiteouts deletes what whiteouts name (and empties opaque directories) instead
	// of recording them, for flattening layers onto one tree that already holds the layers
	// below. Whiteouts may come in OCI form or, from Tar of a layer directory, as such.
	ApplyWhiteouts bool
	// Rootless unpacks as root of a user namespace (an unprivileged user's layers, read by
	// an overlay mounted with "userxattr"): opaque directories get user.overlay.opaque,
	// device nodes (which only the host's root may make) are skipped and counted, and
	// trusted.* and security.* xattrs the kernel refuses are dropped, as rootless Podman
	// does.
	Rootless bool
}

// UnpackWith is Unpack with options.
func UnpackWith(r io.Reader, dest string, opts Options) (Stats, error) {
	root, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open layer directory %s: %w", dest, err)
	}
	u := &unpacker{root: root, dest: dest, parentFd: -1, opts: opts}
	defer u.close()

	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.stats, fmt.Errorf("read layer tar (after %d entries): %w", u.stats.Entries, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, err
		}
		u.stats.Entries++
	}
	// Directory times go last and deepest first: creating entries inside a directory
	// changes its mtime.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := u.setTimes(d.rel, d.hdr); err != nil {
			return u.stats, err
		}
	}
	return u.stats, nil
}

type dirTimes struct {
	rel string
	hdr *tar.Header
}

type unpacker struct {
	opts  Options
	root  int
	dest  string
	stats Stats
	dirs  []dirTimes
	// The last parent directory opened, kept because tar entries come grouped by directory.
	// Entries only ever add or remove children of it, never the directory itself, so the
	// handle stays the directory that openat2 resolved.
	parentRel string
	parentFd  int
	buf       []byte
}

func (u *unpacker) close() {
	u.dropParent()
	unix.Close(u.root)
}

func (u *unpacker) dropParent() {
	if u.parentFd >= 0 {
		unix.Close(u.parentFd)
		u.parentFd = -1
	}
	u.parentRel = ""
}

// cleanName turns a tar name into a path relative to the layer root. Leading slashes are
// dropped (absolute names are contained, as tar itself does); a ".." that climbs above the
// root is refused. "" means the root itself.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", &BreakoutError{Entry: name, Reason: "name contains a NUL byte"}
	}
	depth := 0
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", &BreakoutError{Entry: name, Reason: "path leads outside the layer"}
			}
		default:
			depth++
		}
	}
	p := path.Clean("/" + name)[1:]
	return p, nil
}

// openDir resolves rel (a cleaned relative path, "" for the root) to a directory beneath the
// root without following any symlink, creating missing directories when create is set.
func (u *unpacker) openDir(rel string, create bool) (int, error) {
	if rel == "" {
		return unix.Dup(u.root)
	}
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for {
		fd, err := unix.Openat2(u.root, rel, how)
		if err == nil {
			return fd, nil
		}
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ELOOP || err == unix.EXDEV || err == unix.ENOTDIR {
			return -1, &BreakoutError{Entry: rel, Reason: "a component of the path is a symlink or not a directory; writing through links is refused"}
		}
		if err != unix.ENOENT || !create {
			return -1, fmt.Errorf("open %s in layer %s: %w", rel, u.dest, err)
		}
		break
	}
	// Create the missing components one by one, each beneath its already-opened parent.
	fd, err := unix.Dup(u.root)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		err := unix.Mkdirat(fd, c, 0o755)
		if err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, fmt.Errorf("mkdir %s in layer %s: %w", rel, u.dest, err)
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if err == unix.ELOOP || err == unix.ENOTDIR {
				return -1, &BreakoutError{Entry: rel, Reason: "a component of the path is a symlink or not a directory; writing through links is refused"}
			}
			return -1, fmt.Errorf("open %s in layer %s: %w", rel, u.dest, err)
		}
		fd = next
	}
	return fd, nil
}

// parent returns a handle on rel's parent directory, valid until the next dropParent.
func (u *unpacker) parent(dir string) (int, error) {
	if u.parentFd >= 0 && u.parentRel == dir {
		return u.parentFd, nil
	}
	u.dropParent()
	fd, err := u.openDir(dir, true)
	if err != nil {
		return -1, err
	}
	u.parentFd, u.parentRel = fd, dir
	return fd, nil
}

func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		// "./": the layer's root directory itself.
		if hdr.Typeflag != tar.TypeDir {
			return &BreakoutError{Entry: hdr.Name, Reason: "the layer root can only be a directory"}
		}
		fd, err := unix.Dup(u.root)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := u.setMeta(fd, hdr); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirTimes{rel: "", hdr: hdr})
		return nil
	}
	dir, base := splitRel(rel)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(hdr, dir, base)
	}
	pfd, err := u.parent(dir)
	if err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		exists, err := u.removeExisting(pfd, base, true)
		if err != nil {
			return err
		}
		if !exists {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir %s in layer %s: %w", rel, u.dest, err)
			}
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory %s in layer %s: %w", rel, u.dest, err)
		}
		defer unix.Close(fd)
		if err := u.setMeta(fd, hdr); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirTimes{rel: rel, hdr: hdr})
		return nil

	case tar.TypeReg, tar.TypeGNUSparse:
		if _, err := u.removeExisting(pfd, base, false); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create %s in layer %s: %w", rel, u.dest, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		if u.buf == nil {
			u.buf = make([]byte, 256<<10)
		}
		n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, u.buf)
		if err != nil {
			return fmt.Errorf("write %s in layer %s: %w", rel, u.dest, err)
		}
		u.stats.Size += n
		if err := u.setMeta(fd, hdr); err != nil {
			return err
		}
		return u.futimes(fd, rel, hdr)

	case tar.TypeSymlink:
		if err := checkSymlink(rel, hdr.Linkname); err != nil {
			return err
		}
		if _, err := u.removeExisting(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink %s -> %s in layer %s: %w", rel, hdr.Linkname, u.dest, err)
		}
		u.stats.Size += int64(len(hdr.Linkname))
		if err := u.fchownat(pfd, base, hdr); err != nil {
			return fmt.Errorf("chown symlink %s in layer %s: %w", rel, u.dest, err)
		}
		if err := u.lsetxattrs(pfd, base, hdr); err != nil {
			return err
		}
		return u.setTimesAt(pfd, base, rel, hdr)

	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return &BreakoutError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is outside the layer", hdr.Linkname)}
		}
		tdir, tbase := splitRel(target)
		tfd, err := u.openDir(tdir, false)
		if err != nil {
			var be *BreakoutError
			if errors.As(err, &be) {
				return &BreakoutError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is reached through a symlink", hdr.Linkname)}
			}
			return fmt.Errorf("hardlink %s: target %s not in this layer: %w", rel, target, err)
		}
		defer unix.Close(tfd)
		var st unix.Stat_t
		if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("hardlink %s: target %s not in this layer: %w", rel, target, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return &BreakoutError{Entry: hdr.Name, Reason: "hardlink to a directory"}
		}
		if target == rel {
			return nil
		}
		// The parent may have been reopened by openDir above; fetch it again.
		pfd, err = u.parent(dir)
		if err != nil {
			return err
		}
		if _, err := u.removeExisting(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
			return fmt.Errorf("hardlink %s -> %s in layer %s: %w", rel, target, u.dest, err)
		}
		return nil

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if u.opts.Rootless && hdr.Typeflag != tar.TypeFifo {
			u.stats.SkippedDevices++
			return nil
		}
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if _, err := u.removeExisting(pfd, base, false); err != nil {
			return err
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode, int(dev)); err != nil {
			return fmt.Errorf("mknod %s in layer %s: %w", rel, u.dest, err)
		}
		if err := u.fchownat(pfd, base, hdr); err != nil {
			return fmt.Errorf("chown %s in layer %s: %w", rel, u.dest, err)
		}
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod %s in layer %s: %w", rel, u.dest, err)
		}
		if err := u.lsetxattrs(pfd, base, hdr); err != nil {
			return err
		}
		return u.setTimesAt(pfd, base, rel, hdr)

	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("layer entry %q: unsupported tar type %q", hdr.Name, hdr.Typeflag)
	}
}

// checkSymlink refuses a relative symlink target that climbs above the layer root from where
// the link sits, as Docker does. Absolute targets are fine: they only ever resolve inside the
// container's root.
func checkSymlink(rel, target string) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return &BreakoutError{Entry: rel, Reason: "invalid symlink target"}
	}
	if strings.HasPrefix(target, "/") {
		return nil
	}
	depth := 0
	if dir, _ := splitRel(rel); dir != "" {
		depth = strings.Count(dir, "/") + 1
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return &BreakoutError{Entry: rel, Reason: fmt.Sprintf("symlink target %q leads outside the layer", target)}
			}
		default:
			depth++
		}
	}
	return nil
}

func (u *unpacker) whiteout(hdr *tar.Header, dir, base string) error {
	pfd, err := u.parent(dir)
	if err != nil {
		return err
	}
	if base == whiteoutOpaque && u.opts.ApplyWhiteouts {
		return u.emptyDir(pfd, dir)
	}
	if base == whiteoutOpaque {
		name := OverlayOpaqueXattr
		if u.opts.Rootless {
			name = UserOverlayOpaqueXattr
		}
		if err := unix.Fsetxattr(pfd, name, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque in layer %s: %w", dir, u.dest, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return &BreakoutError{Entry: hdr.Name, Reason: "whiteout names no entry in its directory"}
	}
	if _, err := u.removeExisting(pfd, name, false); err != nil {
		return err
	}
	if u.opts.ApplyWhiteouts {
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s/%s in layer %s: %w", dir, name, u.dest, err)
	}
	return nil
}

// emptyDir removes everything inside the directory pfd (an opaque directory's lower contents).
func (u *unpacker) emptyDir(pfd int, rel string) error {
	d, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s in %s: %w", rel, u.dest, err)
	}
	f := os.NewFile(uintptr(d), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s in %s: %w", rel, u.dest, err)
	}
	for _, n := range names {
		if err := RemoveAllAt(pfd, n); err != nil {
			return fmt.Errorf("empty opaque directory %s in %s: %w", rel, u.dest, err)
		}
	}
	return nil
}

// removeExisting clears the way for a new entry named base. With keepDir, an existing
// directory stays (a later tar entry for a directory only updates its metadata) and the
// result says so.
func (u *unpacker) removeExisting(pfd int, base string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, fmt.Errorf("stat %s in layer %s: %w", base, u.dest, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return false, fmt.Errorf("replace %s in layer %s: %w", base, u.dest, err)
		}
		return false, nil
	}
	if keepDir {
		return true, nil
	}
	if err := RemoveAllAt(pfd, base); err != nil {
		return false, fmt.Errorf("replace directory %s in layer %s: %w", base, u.dest, err)
	}
	return false, nil
}

// RemoveAllAt removes name (a file or a whole tree) beneath the directory dirfd without
// following symlinks.
func RemoveAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, rerr := d.Readdirnames(512)
		for _, n := range names {
			if err := RemoveAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		if rerr == io.EOF || len(names) == 0 {
			break
		}
		if rerr != nil {
			d.Close()
			return rerr
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// setMeta applies owner, mode and xattrs through an open descriptor. The owner goes first
// because chown clears setuid/setgid bits.
func (u *unpacker) setMeta(fd int, hdr *tar.Header) error {
	err := unix.Fchown(fd, hdr.Uid, hdr.Gid)
	if err == unix.EINVAL && u.opts.Rootless {
		u.stats.Unmapped++
		err = unix.Fchown(fd, 0, 0)
	}
	if err != nil {
		return fmt.Errorf("chown %s in layer %s: %w", hdr.Name, u.dest, err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("chmod %s in layer %s: %w", hdr.Name, u.dest, err)
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s on %s in layer %s: %w", k, hdr.Name, u.dest, err)
		}
	}
	return nil
}

func (u *unpacker) lsetxattrs(pfd int, base string, hdr *tar.Header) error {
	for k, v := range xattrs(hdr) {
		p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			if err == unix.EPERM && hdr.Typeflag == tar.TypeSymlink && strings.HasPrefix(k, "user.") {
				// The kernel allows no user.* xattrs on symlinks.
				continue
			}
			if err == unix.EPERM && u.opts.Rootless && (strings.HasPrefix(k, "trusted.") || strings.HasPrefix(k, "security.")) {
				continue
			}
			return fmt.Errorf("set xattr %s on %s in layer %s: %w", k, hdr.Name, u.dest, err)
		}
	}
	return nil
}

func xattrs(hdr *tar.Header) map[string]string {
	var m map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || name == "" || strings.HasPrefix(name, overlayXattrPrefix) || strings.HasPrefix(name, userOverlayXattrPrefix) {
			continue
		}
		if m == nil {
			m = make(map[string]string)
		}
		m[name] = v
	}
	return m
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{toTimespec(at), toTimespec(hdr.ModTime)}
}

func toTimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0, Nsec: 0}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

func (u *unpacker) futimes(fd int, rel string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(fd, "", timespecs(hdr), unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times on %s in layer %s: %w", rel, u.dest, err)
	}
	return nil
}

func (u *unpacker) setTimesAt(pfd int, base, rel string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times on %s in layer %s: %w", rel, u.dest, err)
	}
	return nil
}

func (u *unpacker) setTimes(rel string, hdr *tar.Header) error {
	if rel == "" {
		return u.futimes(u.root, ".", hdr)
	}
	dir, base := splitRel(rel)
	fd, err := u.openDir(dir, false)
	if err != nil {
		// The directory was replaced later in the layer; nothing to date.
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	return u.setTimesAt(fd, base, rel, hdr)
}
