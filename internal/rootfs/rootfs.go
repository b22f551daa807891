// Package rootfs builds a container's root filesystem inside its new mount namespace:
// the mounts of the OCI config in order, /dev, masked and read-only paths, and the switch of
// root with pivot_root(2) (or chroot with --no-pivot).
//
// Every destination is resolved inside the rootfs (openat2 with RESOLVE_IN_ROOT, and
// filepath-securejoin where directories must be created) and mounted through
// the /proc/self/fd/N link of an O_PATH handle, so a symlink in the image (or one swapped in
// during setup) can never send a mount outside the rootfs: the CVE-2021-30465 class.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is what the init needs to know to build the rootfs.
type Config struct {
	Rootfs string // absolute host path of the root filesystem
	// Overlay, when set, is overlay mount data (from ParseOverlay) to mount on Rootfs in the
	// new mount namespace before anything else (OverlayAnnotation).
	Overlay       string
	Bundle        string // bundle directory, for relative bind sources
	Mounts        []specs.Mount
	Propagation   string
	Readonly      bool
	Devices       []specs.LinuxDevice
	MaskedPaths   []string
	ReadonlyPaths []string
	UserNS        bool // the process is in a non-initial user namespace: no mknod
	NewNetNS      bool // sysfs can only be mounted with a network namespace of our own
	NewCgroupNS   bool
	// CgroupPaths are the container's cgroup directories (hierarchy → absolute path), for a
	// "cgroup" mount without a cgroup namespace.
	CgroupPaths map[string]string
	// IDMapped maps a mount's index to a descriptor of its idmapped clone, prepared by the
	// runtime (only a process privileged over the host's user namespace can idmap a mount).
	IDMapped map[int]int
	// OpenConsole, when set, is called once the mounts and devices exist (so the
	// container's devpts is there) and returns a path to bind on /dev/console.
	OpenConsole func(root *os.File) (string, error)
}

// Root is a rootfs being built; Close releases its handles.
type Root struct {
	cfg     *Config
	root    *os.File // O_PATH handle of the rootfs mount
	devNull *os.File // the host's /dev/null, opened before anything in the image could interfere
}

// Prepare makes the rootfs a private mount point and performs every configured mount,
// creates /dev, and applies masked and read-only paths. It runs in the container's new mount
// namespace, before pivot_root.
func Prepare(cfg *Config) (*Root, error) {
	prop, err := Propagation(cfg.Propagation)
	if err != nil {
		return nil, err
	}
	// A shared root cannot be pivoted: keep everything slave until the switch is done.
	first := prop
	if prop&unix.MS_SHARED != 0 {
		first = unix.MS_SLAVE | unix.MS_REC
	}
	if err := unix.Mount("", "/", "", first, ""); err != nil {
		return nil, fmt.Errorf("make / %s in the container's mount namespace: %w", propName(first), err)
	}
	if cfg.Overlay != "" {
		if err := mountOverlay(cfg.Rootfs, cfg.Overlay); err != nil {
			return nil, err
		}
	}
	if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.EACCES) && cfg.UserNS {
			return nil, fmt.Errorf("bind rootfs %s onto itself: %w (in a user namespace, the container's root must be able to search every directory above the rootfs)", cfg.Rootfs, err)
		}
		return nil, fmt.Errorf("bind rootfs %s onto itself: %w", cfg.Rootfs, err)
	}
	r := &Root{cfg: cfg}
	if r.root, err = os.OpenFile(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	if r.devNull, err = os.OpenFile("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
		r.Close()
		return nil, fmt.Errorf("open the host's /dev/null: %w", err)
	}
	if err := r.prepare(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Root) prepare() error {
	devBound := false
	for i, m := range r.cfg.Mounts {
		if fd, ok := r.cfg.IDMapped[i]; ok {
			if err := r.moveIn(m, fd); err != nil {
				return fmt.Errorf("mounts[%d] (idmapped %s on %s): %w", i, m.Source, m.Destination, err)
			}
			continue
		}
		if err := r.mount(m); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, mountKind(m), m.Destination, err)
		}
		if filepath.Clean("/"+m.Destination) == "/dev" && isBind(m) {
			devBound = true
		}
	}
	if !devBound {
		if err := r.createDevices(); err != nil {
			return err
		}
	}
	for i, d := range r.cfg.Devices {
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("linux.devices[%d] %s: %w", i, d.Path, err)
		}
	}
	if r.cfg.OpenConsole != nil {
		slave, err := r.cfg.OpenConsole(r.root)
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		if err := r.bindConsole(slave); err != nil {
			return fmt.Errorf("bind console on /dev/console: %w", err)
		}
	}
	for _, p := range r.cfg.MaskedPaths {
		if err := r.mask(p); err != nil {
			return fmt.Errorf("linux.maskedPaths %s: %w", p, err)
		}
	}
	for _, p := range r.cfg.ReadonlyPaths {
		if err := r.readonly(p); err != nil {
			return fmt.Errorf("linux.readonlyPaths %s: %w", p, err)
		}
	}
	return nil
}

// Close releases the handles; the mounts stay.
func (r *Root) Close() {
	if r.root != nil {
		r.root.Close()
	}
	if r.devNull != nil {
		r.devNull.Close()
	}
}

// Finish switches the process's root to the rootfs, makes it read-only if configured and
// applies the configured propagation. The working directory is / of the container afterwards.
func (r *Root) Finish(noPivot bool) error {
	defer r.Close()
	if r.cfg.Readonly {
		if err := remountBind(r.root, unix.MS_RDONLY); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	if noPivot {
		if err := chrootInto(r.cfg.Rootfs); err != nil {
			return err
		}
	} else if err := pivotInto(r.root); err != nil {
		return err
	}
	prop, _ := Propagation(r.cfg.Propagation)
	if prop&unix.MS_SHARED != 0 {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("make / %s: %w", propName(prop), err)
		}
	}
	return nil
}

// pivotInto makes root the process's root without a put_old directory: after
// pivot_root(".", ".") the old root is stacked under the new one, and is detached at once.
func pivotInto(root *os.File) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// Our slave copy of the host's mounts must not send the unmount back to the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

func chrootInto(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs %s to /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func mountKind(m specs.Mount) string {
	if isBind(m) {
		return "bind " + m.Source
	}
	return m.Type
}

// fdPath names an open file by its magic link, which mount(2) follows to the very object
// the descriptor holds, whatever happened to its path since.
func fdPath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}

func (r *Root) mount(m specs.Mount) error {
	opts, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	if m.Type == "bind" {
		opts.bind = true
	}
	dest := filepath.Clean("/" + m.Destination)
	if dest == "/" {
		return errors.New("cannot mount over the container's root")
	}
	if opts.bind {
		return r.bindMount(m, dest, opts)
	}
	switch m.Type {
	case "":
		return errors.New("mount has no type and is not a bind mount")
	case "cgroup", "cgroup2":
		return r.mountCgroup(dest, opts)
	case "proc", "sysfs":
		// procfs and sysfs must land on a real directory of that name: following an image's
		// symlink would leave the masked and read-only paths pointing elsewhere.
		if err := r.noSymlinks(dest); err != nil {
			return err
		}
		if m.Type == "sysfs" && r.cfg.UserNS && !r.cfg.NewNetNS {
			// The kernel only lets a user namespace mount sysfs for a netns it owns.
			return r.bindMount(specs.Mount{Source: "/sys", Destination: dest}, dest,
				mountOptions{bind: true, recursive: true, flags: opts.flags | unix.MS_RDONLY})
		}
	}
	target, err := r.mkTarget(dest, true)
	if err != nil {
		return err
	}
	defer target.Close()
	data := strings.Join(opts.data, ",")
	if err := unix.Mount(m.Source, fdPath(target), m.Type, opts.flags, data); err != nil {
		if m.Type == "mqueue" && errors.Is(err, unix.EPERM) {
			// Without an IPC namespace of our own, share the host's queues read-write.
			return r.bindMount(specs.Mount{Source: "/dev/mqueue", Destination: dest}, dest,
				mountOptions{bind: true, flags: opts.flags})
		}
		return fmt.Errorf("mount %s (options %q): %w", m.Type, data, err)
	}
	return r.propagate(dest, opts)
}

func (r *Root) bindMount(m specs.Mount, dest string, opts mountOptions) error {
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(r.cfg.Bundle, src)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	target, err := r.mkTarget(dest, st.IsDir())
	if err != nil {
		return err
	}
	defer target.Close()
	flags := uintptr(unix.MS_BIND)
	if opts.recursive {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(src, fdPath(target), "", flags, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return r.finishBind(dest, opts)
}

// finishBind applies a bind mount's flags (a bind takes them only by a remount) and its
// propagation.
func (r *Root) finishBind(dest string, opts mountOptions) error {
	if opts.flags&^unix.MS_REMOUNT != 0 {
		mnt, err := r.open(dest)
		if err != nil {
			return err
		}
		defer mnt.Close()
		if err := remountBind(mnt, opts.flags&^unix.MS_REMOUNT); err != nil {
			return err
		}
	}
	return r.propagate(dest, opts)
}

// moveIn attaches a prepared detached mount at the destination, then applies the mount's
// flags and propagation.
func (r *Root) moveIn(m specs.Mount, fd int) error {
	opts, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	dest := filepath.Clean("/" + m.Destination)
	target, err := r.mkTarget(dest, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer target.Close()
	// The target by its descriptor: move_mount does not follow a /proc/self/fd magic link.
	if err := unix.MoveMount(fd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return r.finishBind(dest, opts)
}

// remountBind changes the flags of the bind mount f is the root of. A user namespace may
// not clear flags the kernel locked on the source mount, so on EPERM they are kept.
func remountBind(f *os.File, flags uintptr) error {
	err := unix.Mount("", fdPath(f), "", unix.MS_REMOUNT|unix.MS_BIND|flags, "")
	if errors.Is(err, unix.EPERM) {
		var st unix.Statfs_t
		if serr := unix.Fstatfs(int(f.Fd()), &st); serr == nil {
			err = unix.Mount("", fdPath(f), "", unix.MS_REMOUNT|unix.MS_BIND|flags|lockedFlags(st.Flags), "")
		}
	}
	if err != nil {
		return fmt.Errorf("remount with flags %#x: %w", flags, err)
	}
	return nil
}

func lockedFlags(st int64) uintptr {
	var f uintptr
	for _, p := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		{unix.ST_RDONLY, unix.MS_RDONLY},
	} {
		if st&p.st != 0 {
			f |= p.ms
		}
	}
	return f
}

func (r *Root) propagate(dest string, opts mountOptions) error {
	if len(opts.propagation) == 0 {
		return nil
	}
	mnt, err := r.open(dest)
	if err != nil {
		return err
	}
	defer mnt.Close()
	for _, p := range opts.propagation {
		if err := unix.Mount("", fdPath(mnt), "", p, ""); err != nil {
			return fmt.Errorf("set propagation %s: %w", propName(p), err)
		}
	}
	return nil
}

func propName(p uintptr) string {
	for k, v := range propagationOptions {
		if v == p {
			return k
		}
	}
	return fmt.Sprintf("%#x", p)
}

// open resolves path inside the rootfs, symlinks included, never leaving it: one
// openat2(RESOLVE_IN_ROOT), where the kernel itself keeps every component (and every
// symlink's target) inside the root. filepath-securejoin walks component by component,
// which costs several syscalls per component; it is kept for creating missing directories.
func (r *Root) open(path string) (*os.File, error) {
	f, err := r.openInRoot(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in rootfs: %w", path, err)
	}
	return f, nil
}

// dir returns a handle on the directory path in the rootfs, creating what is missing. Most
// exist in the image already, and then it costs one syscall.
func (r *Root) dir(path string) (*os.File, error) {
	if f, err := r.openInRoot(path); err == nil {
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return f, nil
		}
		f.Close()
	}
	return pathrs.MkdirAllHandle(r.root, path, 0o755)
}

func (r *Root) openInRoot(path string) (*os.File, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(int(r.root.Fd()), rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // a rename raced the lookup; the kernel asks us to retry
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// noSymlinks fails when any existing component of path in the rootfs is a symlink.
func (r *Root) noSymlinks(path string) error {
	cur := r.cfg.Rootfs
	for _, c := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		cur = filepath.Join(cur, c)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("mount destination %s is a symlink in the rootfs (%s); refusing to follow it",
				path, strings.TrimPrefix(cur, r.cfg.Rootfs))
		}
	}
	return nil
}

// mkTarget creates the mount point (a directory, or an empty file for a file bind) inside the
// rootfs and returns an O_PATH handle on it.
func (r *Root) mkTarget(path string, dir bool) (*os.File, error) {
	if dir {
		f, err := r.dir(path)
		if err != nil {
			return nil, fmt.Errorf("create mount point %s in rootfs: %w", path, err)
		}
		return f, nil
	}
	parent, err := r.dir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("create mount point %s in rootfs: %w", filepath.Dir(path), err)
	}
	defer parent.Close()
	// Made only where nothing is (mknodat): an open for writing would copy a file of the
	// image's lower layers up into the container's upper directory. Something there
	// already (a symlink is resolved in the rootfs below) is used as it is.
	err = unix.Mknodat(int(parent.Fd()), filepath.Base(path), unix.S_IFREG|0o644, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EROFS) {
		return nil, fmt.Errorf("create mount point %s in rootfs: %w", path, err)
	}
	return r.open(path)
}

func (r *Root) mask(path string) error {
	f, err := r.openNoFollow(path)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Mount("tmpfs", fdPath(f), "tmpfs", unix.MS_RDONLY, "")
	}
	return unix.Mount(fdPath(r.devNull), fdPath(f), "", unix.MS_BIND, "")
}

func (r *Root) readonly(path string) error {
	f, err := r.openNoFollow(path)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	err = unix.Mount(fdPath(f), fdPath(f), "", unix.MS_BIND|unix.MS_REC, "")
	f.Close()
	if err != nil {
		return fmt.Errorf("bind onto itself: %w", err)
	}
	mnt, err := r.openNoFollow(path)
	if err != nil {
		return err
	}
	defer mnt.Close()
	return remountBind(mnt, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
}

// openNoFollow opens path in the rootfs refusing any symlink on the way: masked and
// read-only paths name kernel filesystems, where a symlink can only be an attack.
func (r *Root) openNoFollow(path string) (*os.File, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	// Without O_NOFOLLOW, RESOLVE_NO_SYMLINKS refuses a trailing symlink too (with it,
	// O_PATH would quietly open the symlink itself).
	fd, err := unix.Openat2(int(r.root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s goes through a symlink in the rootfs; refusing it", path)
		}
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
