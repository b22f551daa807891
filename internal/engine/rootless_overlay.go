package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/snapshot"
	"github.com/berth-containers/berth/internal/runtime"
)

// A rootless container's root is an overlay of its image's layers under an upper and work
// directory of its own, like root's, but mounted by the container's init: the engine
// prepares the snapshot without mounting it and hands the overlay to berth-runtime through
// the runtime.AnnotationRootfsOverlay annotation, which the init, root of the user
// namespace that owns the container's new mount namespace, mounts there before anything
// else (kernel 5.11 and later allow overlayfs in a user namespace).
//
// Where the kernel or the filesystem under the store refuses that, the layers are copied
// instead (snapshot.Copy). Which one a store gets is probed once, in a child in a user and
// mount namespace mapped as the containers are, and kept in the store with the kernel
// release, so a new kernel probes again.

// RootlessOverlayEnv, set to "off", makes the rootless overlay probe fail, so the store's
// new containers get copies: for a filesystem that misbehaves under overlay in ways the
// probe does not see, and for tests. It is not cached.
const RootlessOverlayEnv = "BERTH_ROOTLESS_OVERLAY"

// rootlessDriverFile caches the probe's answer in the store's snapshot directory:
// "overlay <release>" or "copy <release> <reason>".
const rootlessDriverFile = ".rootless-driver"

// usernsProbeOverlay is the probe's helper kind.
const usernsProbeOverlay = usernsPrefix + "probe-overlay"

// rootlessSnapshotter gives a rootless engine overlay snapshots where the probe says an
// overlay mounts in a user namespace here, copies otherwise.
func (e *Engine) rootlessSnapshotter(s *image.Store) (*snapshot.Snapshotter, error) {
	d, _ := e.rootlessDriver(filepath.Join(s.Root(), "snapshots"))
	sn, err := snapshot.NewWithDriver(s, d)
	if err != nil {
		return nil, err
	}
	sn.LimitOverlayData(len(",userxattr"))
	return sn, nil
}

// rootlessDriver returns the store's driver and, for the copy, why not overlay.
func (e *Engine) rootlessDriver(dir string) (snapshot.Driver, string) {
	if v := os.Getenv(RootlessOverlayEnv); v == "off" {
		return snapshot.Copy, RootlessOverlayEnv + "=off"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return snapshot.Copy, err.Error()
	}
	return snapshot.CachedProbe(filepath.Join(dir, rootlessDriverFile), func() error {
		c, err := e.startUserNS(usernsProbeOverlay, unix.CLONE_NEWNS, []string{dir}, nil, nil)
		if err != nil {
			// No answer from the kernel (no user namespace, no newuidmap): nothing to
			// keep, and containers will not start either; say why.
			return fmt.Errorf("%w: probe: %s", snapshot.ErrNoAnswer, oneLine(err.Error()))
		}
		return c.wait()
	})
}

// storageDriver is the Storage Driver `berth info` shows.
func (e *Engine) storageDriver(sn *snapshot.Snapshotter) string {
	if !e.rootless {
		return string(sn.Driver())
	}
	d, why := e.rootlessDriver(filepath.Join(e.Root, "snapshots"))
	if d == snapshot.Overlay {
		return "overlay (rootless)"
	}
	return "copy (rootless: overlay refused: " + why + ")"
}

// runtimeMountsRoot tells whether the runtime, not the engine, mounts the snapshot: a
// rootless overlay, which only the container's init can mount where the container sees it.
func (e *Engine) runtimeMountsRoot(snap *snapshot.Snapshot) bool {
	return e.rootless && snap.Driver == snapshot.Overlay
}

// rootlessRootfsSpec passes a rootless overlay snapshot to the runtime.
func rootlessRootfsSpec(s *specs.Spec, snap *snapshot.Snapshot) {
	if snap.Driver != snapshot.Overlay {
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	// userxattr: the layers were unpacked with user.overlay.* markers (trusted.* are the
	// host root's), and the init's overlay lives in the container's user namespace.
	s.Annotations[runtime.AnnotationRootfsOverlay] = strings.Join(append(snap.MountOptions(), "userxattr"), ",")
}

// probeOverlayMain is the probe's child, root of a user and mount namespace mapped as the
// containers are: it mounts an overlay with userxattr on directories under the store's
// snapshot directory (the filesystem that will hold the upper directories matters), and
// exercises what containers will: a copy-up, a whiteout and an opaque directory.
func probeOverlayMain(args []string) error {
	if len(args) != 1 {
		return errors.New("want DIR")
	}
	p, err := os.MkdirTemp(args[0], ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(p)
	for _, d := range []string{"l/d", "u", "w", "m"} {
		if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"l/f", "l/d/f"} {
		if err := os.WriteFile(filepath.Join(p, f), []byte("x"), 0o644); err != nil {
			return err
		}
	}
	m := filepath.Join(p, "m")
	data := fmt.Sprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w,userxattr", p, p, p)
	if err := unix.Mount("overlay", m, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay in a user namespace: %w", err)
	}
	defer unix.Unmount(m, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(m, "f"), []byte("y"), 0o644); err != nil {
		return fmt.Errorf("overlay in a user namespace: copy up: %w", err)
	}
	if err := os.Remove(filepath.Join(m, "f")); err != nil {
		return fmt.Errorf("overlay in a user namespace: whiteout: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(m, "d")); err != nil {
		return fmt.Errorf("overlay in a user namespace: remove a lower directory: %w", err)
	}
	if err := os.Mkdir(filepath.Join(m, "d"), 0o755); err != nil {
		return fmt.Errorf("overlay in a user namespace: opaque directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(m, "d", "f")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("overlay in a user namespace: an opaque directory shows its lower contents (%v)", err)
	}
	return nil
}

// usernsOpenRoot is the helper kind that mounts a rootless overlay and hands back its root.
const usernsOpenRoot = usernsPrefix + "open-root"

// openOverlayRoot gives a handle on the root of a rootless overlay snapshot that no
// container is running from (cp, export, volumes filled from the image): the user cannot
// mount it, so a child in a user and mount namespace of its own mounts it and passes back
// an O_PATH handle on its root. The child's namespace goes when it exits; the mount lives
// on, detached, as long as the handle. readonly mounts the upper directory as the top
// lower layer, so that nothing is written (export, read while a container may start).
func (e *Engine) openOverlayRoot(snap *snapshot.Snapshot, readonly bool) (*os.File, error) {
	opts := append(snap.MountOptions(), "userxattr")
	if readonly {
		opts = []string{"lowerdir=" + strings.Join(append([]string{snap.Upper}, snap.Lower...), ":"), "userxattr"}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: socketpair: %w", snap.Key, err)
	}
	sock, peer := os.NewFile(uintptr(fds[0]), "open-root"), os.NewFile(uintptr(fds[1]), "open-root")
	defer sock.Close()
	ro := "rw"
	if readonly {
		ro = "ro"
	}
	c, err := e.startUserNS(usernsOpenRoot, unix.CLONE_NEWNS, []string{strings.Join(opts, ","), snap.Rootfs, ro}, nil, peer)
	peer.Close()
	if err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, rerr := unix.Recvmsg(fds[0], buf, oob, unix.MSG_CMSG_CLOEXEC)
	var root *os.File
	if rerr == nil && oobn > 0 {
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
			if rights, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(rights) == 1 {
				root = os.NewFile(uintptr(rights[0]), snap.Rootfs)
			}
		}
	}
	if err := c.wait(); err != nil {
		if root != nil {
			root.Close()
		}
		return nil, fmt.Errorf("snapshot %s: mount its overlay in the user namespace: %s", snap.Key, err)
	}
	if root == nil {
		return nil, fmt.Errorf("snapshot %s: the user namespace helper sent no handle on the overlay (%v)", snap.Key, rerr)
	}
	return root, nil
}

// openRootMain is the child of openOverlayRoot: args are the overlay's mount data, the
// directory to mount it on (in this namespace only) and rw or ro; the handle goes out
// through stdout, a unix socket.
func openRootMain(args []string) error {
	if len(args) != 3 {
		return errors.New("want DATA TARGET rw|ro")
	}
	var flags uintptr
	if args[2] == "ro" {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", args[1], "overlay", flags, args[0]); err != nil {
		return fmt.Errorf("mount overlay on %s (data %q): %w", args[1], args[0], err)
	}
	fd, err := unix.Open(args[1], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", args[1], err)
	}
	if err := unix.Sendmsg(1, []byte{0}, unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send the handle on %s: %w", args[1], err)
	}
	return nil
}

// rootPath names an open directory by a path that the archive code and securejoin take
// as a directory: the magic link, followed (the trailing "." makes Lstat follow it).
func rootPath(root *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d/.", root.Fd())
}

// exportRootless is Export for a rootless overlay snapshot.
func (e *Engine) exportRootless(snap *snapshot.Snapshot, w io.Writer) error {
	root, err := e.openOverlayRoot(snap, true)
	if err != nil {
		return fmt.Errorf("export %s: %w", snap.Key, err)
	}
	defer root.Close()
	return snapshot.ExportDir(w, rootPath(root))
}

// populateVolumesOf fills the container's empty volumes from its image (populateVolumes);
// a rootless overlay is opened for that only when some volume needs it.
func (e *Engine) populateVolumesOf(c *Container, snap *snapshot.Snapshot) error {
	if !e.runtimeMountsRoot(snap) {
		return populateVolumes(c, snap.Rootfs)
	}
	need := false
	for _, m := range c.Mounts {
		if m.Type == "volume" && !strings.Contains(m.Mode, "nocopy") {
			if ents, err := os.ReadDir(m.Source); err == nil && len(ents) == 0 {
				need = true
			}
		}
	}
	if !need {
		return nil
	}
	root, err := e.openOverlayRoot(snap, true)
	if err != nil {
		return err
	}
	defer root.Close()
	return populateVolumes(c, rootPath(root))
}

// userDBView writes the container's /etc/passwd and /etc/group, as its overlay shows them,
// under dir/etc, and returns dir: the container's user is resolved there, the overlay not
// being mounted on the host. The files are read through the layers (snapshot.ReadFile),
// or, for a path with a symlink on the way, through a mount in the user namespace.
func (e *Engine) userDBView(snap *snapshot.Snapshot, dir string) (string, error) {
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o700); err != nil {
		return "", fmt.Errorf("container user database: %w", err)
	}
	var root *os.File
	defer func() {
		if root != nil {
			root.Close()
		}
	}()
	for _, f := range []string{"passwd", "group"} {
		b, err := snap.ReadFile("/etc/" + f)
		if errors.Is(err, snapshot.ErrSymlinkInPath) {
			if root == nil {
				if root, err = e.openOverlayRoot(snap, true); err != nil {
					return "", err
				}
			}
			b, err = readInRoot(root, "etc/"+f)
		}
		dst := filepath.Join(etc, f)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// No such file in the image: none in the view either.
			if rerr := os.Remove(dst); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return "", fmt.Errorf("container user database: %w", rerr)
			}
			continue
		case err != nil:
			return "", fmt.Errorf("container user database: read /etc/%s: %w", f, err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return "", fmt.Errorf("container user database: %w", err)
		}
	}
	return dir, nil
}

// readInRoot reads name resolved inside root, as if root were "/" (symlinks included).
func readInRoot(root *os.File, name string) ([]byte, error) {
	fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(f)
}
