package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultDevices are the nodes every container gets in /dev, as the OCI spec requires.
var DefaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

func (r *Root) createDevices() error {
	for _, d := range DefaultDevices {
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("default device %s: %w", d.Path, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	dev, err := r.dir("/dev")
	if err != nil {
		return fmt.Errorf("create /dev in rootfs: %w", err)
	}
	defer dev.Close()
	for _, l := range links {
		err := unix.Symlinkat(l[0], int(dev.Fd()), filepath.Base(l[1]))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}

// createDevice makes a device node in the rootfs; in a user namespace, where mknod is not
// allowed, it bind-mounts the host's node of the same path instead.
func (r *Root) createDevice(d specs.LinuxDevice) error {
	path := filepath.Clean("/" + d.Path)
	if !strings.HasPrefix(path, "/dev/") {
		return fmt.Errorf("device path %s is not under /dev", d.Path)
	}
	var kind uint32
	switch d.Type {
	case "c", "u":
		kind = unix.S_IFCHR
	case "b":
		kind = unix.S_IFBLK
	case "p":
		kind = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q (c, b, u or p)", d.Type)
	}
	if r.cfg.UserNS {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("in a user namespace devices are bind-mounted from the host: %w", err)
		}
		return r.bindMount(specs.Mount{Source: path, Destination: path}, path, mountOptions{bind: true})
	}
	parent, err := r.dir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("create %s in rootfs: %w", filepath.Dir(path), err)
	}
	defer parent.Close()
	base := filepath.Base(path)
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	// Whatever the image has at that path (a file, a stale node, a symlink) is replaced.
	if err := unix.Unlinkat(int(parent.Fd()), base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		if errors.Is(err, unix.EISDIR) {
			return fmt.Errorf("%s is a directory in the rootfs", path)
		}
		return fmt.Errorf("remove %s from rootfs: %w", path, err)
	}
	if err := unix.Mknodat(int(parent.Fd()), base, kind|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	// mknod applies the umask; the configured mode is what the user asked for.
	if err := unix.Fchmodat(int(parent.Fd()), base, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(int(parent.Fd()), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	return nil
}

func (r *Root) bindConsole(slave string) error {
	return r.bindMount(specs.Mount{Source: slave, Destination: "/dev/console"}, "/dev/console",
		mountOptions{bind: true})
}
