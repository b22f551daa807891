package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedExe returns an executable path for the container's first process that no process in
// the container can open for writing: the defence against CVE-2019-5736, where a container
// process reaches the runtime's binary through /proc/<pid>/exe (or by making the init exec
// "#!/proc/self/exe") and overwrites it on the host.
//
// The binary is exec'd through a detached read-only clone of its mount (open_tree with
// OPEN_TREE_CLONE, then mount_setattr MOUNT_ATTR_RDONLY): /proc/<pid>/exe then names a file
// on a read-only mount, so opening it for writing fails with EROFS, and the clone is not in
// any mount namespace a container can reach. It costs two syscalls and no copy, and leaves
// nothing on the host: the clone goes away with the last process that uses it. Where
// open_tree is not allowed, the binary is copied into a sealed memfd instead (one copy of
// the binary per create, the approach runc took first).
//
// A container with CAP_SYS_ADMIN in the host's user namespace could clear the read-only
// flag; such a container can escape in many other ways.
//
// The caller closes the returned file after the child has been started.
func (r *Runtime) sealedExe() (*os.File, error) {
	src := r.exe()
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err == nil {
			return os.NewFile(uintptr(fd), "berth-runtime (read-only clone)"), nil
		}
		unix.Close(fd)
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("seal %s: %w", src, err)
	}
	return memfdCopy(src)
}

func memfdCopy(src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", src, err)
	}
	defer in.Close()
	fd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("seal %s: memfd_create: %w", src, err)
	}
	out := os.NewFile(uintptr(fd), "berth-runtime (sealed copy)")
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return nil, fmt.Errorf("seal %s: copy: %w", src, err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(out.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		out.Close()
		return nil, fmt.Errorf("seal %s: %w", src, err)
	}
	return out, nil
}
