package engine

import (
	"errors"
	"fmt"
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
	release := kernelRelease()
	cache := filepath.Join(dir, rootlessDriverFile)
	if b, err := os.ReadFile(cache); err == nil {
		f := strings.SplitN(strings.TrimSpace(string(b)), " ", 3)
		if len(f) >= 2 && f[1] == release {
			switch {
			case f[0] == string(snapshot.Overlay):
				return snapshot.Overlay, ""
			case f[0] == string(snapshot.Copy) && len(f) == 3:
				return snapshot.Copy, f[2]
			}
		}
	}
	d, why := snapshot.Overlay, ""
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return snapshot.Copy, err.Error()
	}
	if err := e.inUserNSWith(usernsProbeOverlay, unix.CLONE_NEWNS, []string{dir}); err != nil {
		d, why = snapshot.Copy, strings.Join(strings.Fields(err.Error()), " ")
	}
	line := string(d) + " " + release
	if why != "" {
		line += " " + why
	}
	if err := os.WriteFile(cache, []byte(line+"\n"), 0o600); err != nil {
		e.warn("cache the rootless snapshot driver in %s: %v", cache, err)
	}
	return d, why
}

func (e *Engine) inUserNSWith(kind string, flags uintptr, args []string) error {
	c, err := e.startUserNS(kind, flags, args, nil, nil)
	if err != nil {
		return err
	}
	return c.wait()
}

func kernelRelease() string {
	var uts unix.Utsname
	unix.Uname(&uts)
	return unix.ByteSliceToString(uts.Release[:])
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
