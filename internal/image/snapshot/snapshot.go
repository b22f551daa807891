// Package snapshot turns an image into a container's root filesystem.
//
// A snapshot is an overlayfs stack: the image's unpacked layers (shared, read-only) as lower
// directories and a private upper and work directory per container. Preparing one creates
// three empty directories and a small record, so it costs well under a millisecond and copies
// no image data. Where overlayfs cannot be used, the copy driver flattens the layers into a
// private directory instead (slow, but correct).
//
// Preparing does not mount. The engine either
//   - mounts it itself where it wants, e.g. in the container's mount namespace: OCIMount
//     gives a specs.Mount whose Type, Source and Options go straight to mount(2)
//     (MountOptions alone when only the data string is wanted), or Mount(target) does it; or
//   - calls Mount("") to mount it on the host at Snapshot.Rootfs and uses that path as the
//     OCI spec's root.path, calling Unmount (or just Remove, which unmounts) afterwards.
//
// For the copy driver Rootfs is already the populated tree: OCIMount returns a bind mount of
// it and Mount is a no-op.
package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/archive"
)

// Driver is how a snapshot presents its layers.
type Driver string

const (
	// Overlay stacks the layers with overlayfs under a private upper directory.
	Overlay Driver = "overlay"
	// Copy flattens the layers into a private directory.
	Copy Driver = "copy"
)

// maxMountData is what mount(2) accepts as option data: one page, NUL included.
const maxMountData = 4095

// Snapshot is a prepared root filesystem.
type Snapshot struct {
	Key     string  `json:"key"`
	Driver  Driver  `json:"driver"`
	ImageID v1.Hash `json:"imageID"` // the image's config digest
	Image   v1.Hash `json:"image"`   // the image's manifest digest
	// Dir holds everything private to the snapshot.
	Dir string `json:"dir"`
	// Lower are overlay's lower directories, topmost first (overlay's order).
	Lower []string `json:"lower,omitempty"`
	// Upper and Work are overlay's upper and work directories.
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
	// Rootfs is the mountpoint for Mount (overlay) or the flattened tree (copy).
	Rootfs string `json:"rootfs"`
}

// Snapshotter creates and removes snapshots under <root>/snapshots.
type Snapshotter struct {
	store  *image.Store
	dir    string
	driver Driver
	// dataLimit, when set, makes Prepare copy an image whose overlay options (plus
	// dataExtra bytes) would not fit the page mount(2) takes (see LimitOverlayData).
	dataLimit bool
	dataExtra int
}

// New returns a snapshotter for the store's root, using overlayfs when the kernel and the
// filesystem under the root support it and copying otherwise.
func New(store *image.Store) (*Snapshotter, error) {
	sn := &Snapshotter{store: store, dir: filepath.Join(store.Root(), "snapshots")}
	if err := os.MkdirAll(sn.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	sn.driver = sn.detect()
	return sn, nil
}

// NewWithDriver is New with the driver chosen by the caller (who probed for it, if need
// be: New's probe mounts on the host, which only root may do).
func NewWithDriver(store *image.Store, d Driver) (*Snapshotter, error) {
	if d != Overlay && d != Copy {
		return nil, fmt.Errorf("unknown snapshot driver %q", d)
	}
	sn := &Snapshotter{store: store, dir: filepath.Join(store.Root(), "snapshots"), driver: d}
	if err := os.MkdirAll(sn.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	return sn, nil
}

// Driver is the driver Prepare uses.
func (sn *Snapshotter) Driver() Driver { return sn.driver }

// LimitOverlayData is for a caller whose overlays are mounted with mount(2) alone (a
// container's init, given the options in an annotation): an image whose options, plus
// extra bytes the caller adds, would exceed the page mount(2) takes (some 30 layers under a
// long home directory) gets a copy instead, where Mount would have used the new mount API.
func (sn *Snapshotter) LimitOverlayData(extra int) {
	sn.dataLimit, sn.dataExtra = true, extra
}

var probeCache sync.Map // snapshot dir -> Driver

// detect tries one overlay mount under the snapshot directory (the filesystem that will hold
// upper directories matters, not only the kernel) and remembers the answer for the process
// and, keyed by kernel release, on disk.
func (sn *Snapshotter) detect() Driver {
	if d, ok := probeCache.Load(sn.dir); ok {
		return d.(Driver)
	}
	d, _ := CachedProbe(filepath.Join(sn.dir, ".driver"), func() error { return probeOverlay(sn.dir) })
	probeCache.Store(sn.dir, d)
	return d
}

// ErrNoAnswer wraps a probe's error that says nothing about overlay (the probe could not
// run): CachedProbe then answers Copy without keeping it.
var ErrNoAnswer = errors.New("the overlay probe did not run")

// CachedProbe answers whether overlay snapshots work here: from file, when it holds an
// answer for the running kernel release, or else by probe (nil: overlay; an error: copy,
// for that reason), whose answer it keeps in file ("DRIVER RELEASE[ REASON]", written whole
// and renamed, as another process may probe the same store) unless the error wraps
// ErrNoAnswer. A new kernel probes again. It returns the driver and, for Copy, why.
func CachedProbe(file string, probe func() error) (Driver, string) {
	var uts unix.Utsname
	unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	if b, err := os.ReadFile(file); err == nil {
		f := strings.SplitN(strings.TrimSpace(string(b)), " ", 3)
		if len(f) >= 2 && f[1] == release {
			switch {
			case f[0] == string(Overlay):
				return Overlay, ""
			case f[0] == string(Copy) && len(f) == 3:
				return Copy, f[2]
			case f[0] == string(Copy):
				return Copy, "overlay refused"
			}
		}
	}
	d, why := Overlay, ""
	if err := probe(); err != nil {
		d, why = Copy, strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		if errors.Is(err, ErrNoAnswer) {
			return d, why
		}
	}
	line := string(d) + " " + release
	if why != "" {
		line += " " + why
	}
	tmp := fmt.Sprintf("%s.%d", file, os.Getpid())
	if err := os.WriteFile(tmp, []byte(line+"\n"), 0o600); err != nil || os.Rename(tmp, file) != nil {
		// Not kept: the next process probes again.
		os.Remove(tmp)
	}
	return d, why
}

func probeOverlay(dir string) error {
	p, err := os.MkdirTemp(dir, ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(p)
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(p, d), 0o755); err != nil {
			return err
		}
	}
	m := filepath.Join(p, "m")
	data := fmt.Sprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", p, p, p)
	if err := unix.Mount("overlay", m, "overlay", 0, data); err != nil {
		return err
	}
	return unix.Unmount(m, unix.MNT_DETACH)
}

func (sn *Snapshotter) path(key string) string { return filepath.Join(sn.dir, key) }

// An overlay snapshot's bottom layer holds the mount points a container's init needs and
// an image may lack (images built FROM scratch have none of them): the directories proc,
// dev, sys and etc, and the empty files etc/hostname, etc/hosts and etc/resolv.conf, the
// targets of the engine's bind mounts. Without it the init makes them in the container's
// upper directory: seven inodes made and freed per run, each allocation scanning past
// the inodes freed in the last minute on an ext4 without a journal (as on the CI host).
// Being the bottom layer, it hides nothing: the image's own entries (a symlink, a file
// with content, a whiteout, an opaque directory) win over it, exactly as if the init had
// found them. It is shared by every snapshot, never written, and made once per store, in
// a directory of its own renamed into place, so concurrent makers agree. Docker does the
// same per container (its "-init" layer).
var mountpointDirs, mountpointFiles = []string{"proc", "dev", "sys", "etc"}, []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"}

func (sn *Snapshotter) mountpointsPath() string { return filepath.Join(sn.dir, ".mountpoints") }

// addMountpoints gives a copy what the mount points layer would have: each mount point the
// tree lacks, where its parent is a directory of the tree's own.
func addMountpoints(root string) {
	for _, d := range mountpointDirs {
		os.Mkdir(filepath.Join(root, d), 0o755) // or there already, as whatever it is
	}
	for _, f := range mountpointFiles {
		if fi, err := os.Lstat(filepath.Join(root, filepath.Dir(f))); err != nil || !fi.IsDir() {
			continue
		}
		if fd, err := os.OpenFile(filepath.Join(root, f), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			fd.Close()
		}
	}
}

// mountpoints returns the mount points layer, made if it is missing; "" if it cannot be
// made (the init then makes the mount points in the upper directory, as it can).
func (sn *Snapshotter) mountpoints() string {
	p := sn.mountpointsPath()
	if _, err := os.Lstat(p); err == nil {
		return p
	}
	tmp, err := os.MkdirTemp(sn.dir, ".mountpoints-")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return ""
	}
	for _, d := range mountpointDirs {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return ""
		}
	}
	for _, f := range mountpointFiles {
		if err := os.WriteFile(filepath.Join(tmp, f), nil, 0o644); err != nil {
			return ""
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		if _, err := os.Lstat(p); err != nil {
			return "" // not another maker's either
		}
	}
	return p
}

// Prepare creates the snapshot key for img. The key must be new; it becomes the name of the
// snapshot's directory. The image's layers stay in the store (whatever rmi or prune do)
// until Remove.
func (sn *Snapshotter) Prepare(key string, img *image.Image) (*Snapshot, error) {
	if !image.IsKey(key) {
		return nil, fmt.Errorf("invalid snapshot key %q: use 1-128 letters, digits, '_', '.', '-'", key)
	}
	dir := sn.path(key)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("snapshot %s already exists", key)
		}
		return nil, fmt.Errorf("create snapshot %s: %w", key, err)
	}
	s := &Snapshot{Key: key, Driver: sn.driver, ImageID: img.ID, Image: img.Digest, Dir: dir, Rootfs: filepath.Join(dir, "rootfs")}
	ok := false
	defer func() {
		if !ok {
			sn.store.RemoveAll(dir)
			sn.store.Release(key)
		}
	}()
	if err := sn.store.Lease(key, img); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	layers, err := sn.store.LayerPaths(img)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	if err := os.Mkdir(s.Rootfs, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	if s.Driver == Overlay && sn.dataLimit {
		n := len("lowerdir=,upperdir=,workdir=") + len(filepath.Join(dir, "upper")) + len(filepath.Join(dir, "work")) + sn.dataExtra +
			len(sn.mountpointsPath()) + 1
		for _, l := range layers {
			n += len(l) + 1
		}
		if n > maxMountData {
			s.Driver = Copy
		}
	}
	switch s.Driver {
	case Overlay:
		s.Upper, s.Work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{s.Upper, s.Work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", key, err)
			}
		}
		for i := len(layers) - 1; i >= 0; i-- {
			s.Lower = append(s.Lower, layers[i])
		}
		if base := sn.mountpoints(); base != "" {
			s.Lower = append(s.Lower, base)
		}
		if len(s.Lower) == 0 {
			// overlayfs needs a lower directory; an image without layers gets an empty one.
			empty := filepath.Join(dir, "empty")
			if err := os.Mkdir(empty, 0o755); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", key, err)
			}
			s.Lower = []string{empty}
		}
	case Copy:
		for i, l := range img.Layers {
			if err := sn.store.Flatten(sn.store.LayerDir(l), s.Rootfs); err != nil {
				return nil, fmt.Errorf("snapshot %s: copy layer %d (%s): %w", key, i, l, err)
			}
		}
		addMountpoints(s.Rootfs)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "snapshot.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("snapshot %s: write record: %w", key, err)
	}
	ok = true
	return s, nil
}

// Get returns the snapshot key.
func (sn *Snapshotter) Get(key string) (*Snapshot, error) {
	if !image.IsKey(key) {
		return nil, fmt.Errorf("invalid snapshot key %q", key)
	}
	b, err := os.ReadFile(filepath.Join(sn.path(key), "snapshot.json"))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("snapshot %s: bad record: %w", key, err)
	}
	return &s, nil
}

// List returns every snapshot's key.
func (sn *Snapshotter) List() ([]string, error) {
	ents, err := os.ReadDir(sn.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var keys []string
	for _, e := range ents {
		if e.IsDir() && image.IsKey(e.Name()) {
			keys = append(keys, e.Name())
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Remove unmounts the snapshot's rootfs if it is mounted, deletes its private directories
// and lets go of its image's layers. Removing a snapshot that does not exist is not an error.
func (sn *Snapshotter) Remove(key string) error {
	_, err := sn.remove(key, -1, "")
	return err
}

// RemoveTo is Remove, except that the snapshot's private directory is moved to name in the
// directory dirfd rather than deleted, for the caller to delete when it suits it: the
// deletion of upper and work directories is a walk of unlinks that waits on the
// filesystem. Where it cannot move it (dirfd is on another filesystem) it deletes it, as
// Remove does; moved says which.
func (sn *Snapshotter) RemoveTo(key string, dirfd int, name string) (moved bool, err error) {
	return sn.remove(key, dirfd, name)
}

func (sn *Snapshotter) remove(key string, dirfd int, name string) (bool, error) {
	if !image.IsKey(key) {
		return false, fmt.Errorf("invalid snapshot key %q", key)
	}
	dir := sn.path(key)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return false, sn.store.Release(key)
	}
	rootfs := filepath.Join(dir, "rootfs")
	for {
		// Every mount stacked there goes (a container's rootfs can be mounted more than once).
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
			// An unprivileged user may not unmount anything (EPERM), and never mounted
			// one here: its snapshots are copies.
			if err != unix.EINVAL && err != unix.ENOENT && !(err == unix.EPERM && os.Geteuid() != 0) {
				return false, fmt.Errorf("snapshot %s: unmount %s: %w", key, rootfs, err)
			}
			break
		}
	}
	moved := dirfd >= 0 && unix.Renameat2(unix.AT_FDCWD, dir, dirfd, name, unix.RENAME_NOREPLACE) == nil
	if !moved {
		if err := sn.store.RemoveAll(dir); err != nil {
			return false, fmt.Errorf("snapshot %s: remove %s: %w", key, dir, err)
		}
	}
	return moved, sn.store.Release(key)
}

// MountOptions are the overlay options (lowerdir, upperdir, workdir) as mount(2) takes them
// after joining with commas, or nil for the copy driver.
func (s *Snapshot) MountOptions() []string {
	if s.Driver != Overlay {
		return nil
	}
	return []string{
		"lowerdir=" + strings.Join(s.Lower, ":"),
		"upperdir=" + s.Upper,
		"workdir=" + s.Work,
	}
}

// OCIMount is the snapshot as an OCI mount at dest (usually "/"): type overlay with
// MountOptions, or for the copy driver a recursive bind of Rootfs. It fails when the options
// exceed the page mount(2) accepts (about 90 layers); Mount has no such limit.
func (s *Snapshot) OCIMount(dest string) (specs.Mount, error) {
	if s.Driver != Overlay {
		return specs.Mount{Destination: dest, Type: "bind", Source: s.Rootfs, Options: []string{"rbind"}}, nil
	}
	opts := s.MountOptions()
	if n := len(strings.Join(opts, ",")); n > maxMountData {
		return specs.Mount{}, fmt.Errorf("snapshot %s: overlay options are %d bytes, more than mount(2) takes; mount with Mount instead", s.Key, n)
	}
	return specs.Mount{Destination: dest, Type: "overlay", Source: "overlay", Options: opts}, nil
}

// Mount mounts the snapshot at target (Rootfs when empty) in the caller's mount namespace.
// Options too long for mount(2) go through the new mount API, one lower layer at a time.
func (s *Snapshot) Mount(target string) error { return s.MountWith(target, false) }

// MountWith is Mount; volatile mounts the overlay with "volatile" (Linux 5.10), for a
// container whose upper directory is thrown away when it exits (--rm): overlay then never
// syncs the upper filesystem, which otherwise happens at every unmount and writes back
// every dirty file of that whole filesystem (2-3 ms measured on the CI host, more under
// load), and after a host crash the upper directory may be torn, which nobody will read.
// A kernel that does not know the option gets a plain mount.
func (s *Snapshot) MountWith(target string, volatile bool) error {
	if s.Driver != Overlay {
		return nil
	}
	if target == "" {
		target = s.Rootfs
	}
	// A volatile mount leaves work/incompat/volatile behind, and overlay refuses to mount
	// that work directory again while it is there.
	incompat := filepath.Join(s.Work, "work", "incompat")
	if _, err := os.Lstat(incompat); err == nil {
		if err := os.RemoveAll(incompat); err != nil {
			return fmt.Errorf("snapshot %s: %w", s.Key, err)
		}
	}
	opts := s.MountOptions()
	data := strings.Join(opts, ",")
	if len(data) <= maxMountData {
		if volatile {
			err := unix.Mount("overlay", target, "overlay", 0, data+",volatile")
			if err != unix.EINVAL {
				if err != nil {
					return fmt.Errorf("snapshot %s: mount overlay at %s: %w", s.Key, target, err)
				}
				return nil
			}
		}
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return fmt.Errorf("snapshot %s: mount overlay at %s: %w", s.Key, target, err)
		}
		return nil
	}
	return s.mountFS(target, volatile)
}

func (s *Snapshot) mountFS(target string, volatile bool) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("snapshot %s: fsopen overlay: %w", s.Key, err)
	}
	defer unix.Close(fd)
	// lowerdir+ appends in lowerdir's order: topmost first.
	for _, l := range s.Lower {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return fmt.Errorf("snapshot %s: overlay lowerdir+ %s: %w", s.Key, l, err)
		}
	}
	for k, v := range map[string]string{"upperdir": s.Upper, "workdir": s.Work} {
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("snapshot %s: overlay %s=%s: %w", s.Key, k, v, err)
		}
	}
	if volatile {
		unix.FsconfigSetFlag(fd, "volatile") // a kernel without it mounts without
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("snapshot %s: create overlay: %w", s.Key, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("snapshot %s: fsmount overlay: %w", s.Key, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("snapshot %s: move overlay mount to %s: %w", s.Key, target, err)
	}
	return nil
}

// Unmount detaches the snapshot mounted at target (Rootfs when empty).
func (s *Snapshot) Unmount(target string) error {
	if s.Driver != Overlay {
		return nil
	}
	if target == "" {
		target = s.Rootfs
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("snapshot %s: unmount %s: %w", s.Key, target, err)
	}
	return nil
}

// Export writes the snapshot's filesystem as the container sees it (image layers plus its
// changes) to w as a tar stream: `berth export`. An overlay snapshot is mounted read-only in
// a private place for the duration.
func (sn *Snapshotter) Export(key string, w io.Writer) error {
	s, err := sn.Get(key)
	if err != nil {
		return err
	}
	if s.Driver != Overlay {
		return archive.Tar(w, s.Rootfs, archive.TarOptions{})
	}
	tmp, err := os.MkdirTemp(s.Dir, ".export-")
	if err != nil {
		return fmt.Errorf("export %s: %w", key, err)
	}
	defer os.Remove(tmp)
	// Read-only and without the upper's work dir: the lowers are the upper on top of the
	// image layers, so a running container's mount is not disturbed.
	data := "lowerdir=" + strings.Join(append([]string{s.Upper}, s.Lower...), ":")
	if err := unix.Mount("overlay", tmp, "overlay", unix.MS_RDONLY, data); err != nil {
		return fmt.Errorf("export %s: mount: %w", key, err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	return archive.Tar(w, tmp, archive.TarOptions{})
}

// ExportDir writes the tree under dir to w as a tar stream (for directories the engine
// already has mounted).
func ExportDir(w io.Writer, dir string) error {
	return archive.Tar(w, dir, archive.TarOptions{})
}

// ErrSymlinkInPath is ReadFile's answer for a path with a symlink on the way, which only
// a mounted overlay resolves.
var ErrSymlinkInPath = errors.New("a symlink on the way: mount the snapshot to resolve it")

// overlayOpaqueXattrs mark a directory that hides the layers below it (trusted.* for an
// overlay mounted by the host's root, user.* for one mounted with userxattr).
var overlayOpaqueXattrs = []string{archive.OverlayOpaqueXattr, archive.UserOverlayOpaqueXattr}

// ReadFile reads the regular file name (a path inside the container) as the snapshot's
// overlay shows it, without mounting it: from the upper directory first, then each layer
// down, honouring whiteouts (the file or a directory above it deleted) and opaque
// directories. A symlink on the way gives ErrSymlinkInPath. For the copy driver it reads the
// tree. It serves a caller that may not mount (an unprivileged engine resolving the
// container's user in its /etc/passwd).
func (s *Snapshot) ReadFile(name string) ([]byte, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+name), "/")
	if rel == "" {
		return nil, fmt.Errorf("snapshot %s: read %s: is a directory", s.Key, name)
	}
	layers := []string{s.Rootfs}
	if s.Driver == Overlay {
		layers = append([]string{s.Upper}, s.Lower...)
	}
	parts := strings.Split(rel, "/")
	notExist := &os.PathError{Op: "read", Path: name, Err: os.ErrNotExist}
	for _, l := range layers {
		opaque := false
		p := l
		for i, c := range parts {
			p = filepath.Join(p, c)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				if errors.Is(err, unix.ENOENT) {
					break // not in this layer: the next one down may have it
				}
				return nil, fmt.Errorf("snapshot %s: read %s: %w", s.Key, name, err)
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFLNK:
				return nil, fmt.Errorf("snapshot %s: read %s: %w", s.Key, name, ErrSymlinkInPath)
			case unix.S_IFCHR:
				return nil, notExist // a whiteout (0:0), or a device, no file to read either way
			case unix.S_IFDIR:
				if i == len(parts)-1 {
					return nil, fmt.Errorf("snapshot %s: read %s: is a directory", s.Key, name)
				}
				for _, x := range overlayOpaqueXattrs {
					if n, err := unix.Lgetxattr(p, x, make([]byte, 1)); err == nil && n == 1 {
						opaque = true
					}
				}
				continue
			case unix.S_IFREG:
				if i == len(parts)-1 {
					return os.ReadFile(p)
				}
			}
			// Anything but a directory above the file hides the layers below it too.
			return nil, notExist
		}
		if opaque {
			// A directory on the way hides the layers below; this one had no file.
			return nil, notExist
		}
	}
	return nil, notExist
}
