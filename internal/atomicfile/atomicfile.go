// Package atomicfile replaces small files so that a reader sees the old content or the new,
// never a mix: the runtime's and the engine's state files, which every container start
// rewrites several times.
package atomicfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Write replaces path with b. The content goes to path+".tmp" first; then, if path
// exists, the two names are exchanged (renameat2 RENAME_EXCHANGE) and the old content,
// now at the temporary name, is unlinked; otherwise the temporary file is renamed into
// place.
//
// Why not a plain rename over path: ext4 (auto_da_alloc, its default) starts writeback of
// a file renamed over another one, so the file gets its blocks at once, and freeing the
// replaced file's blocks then costs a discard wherever the filesystem is mounted with
// -o discard. Measured on this project's CI host (ext4, discard, no journal): 0.5-0.9 ms
// per replacement against 20-130 µs with the exchange, and a container start replaces
// its state files three to four times. An exchanged file keeps delayed allocation, so a
// short-lived state file never reaches the disk at all.
//
// There is no fsync, as before: the state survives a crash of any process (each name
// always holds a whole file) but not necessarily a crash of the host, which ends the
// containers too. Filesystems without RENAME_EXCHANGE get the plain rename.
func Write(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := WriteFile(tmp, b, mode, unix.O_TRUNC); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	if err == nil {
		// The old content, now under the temporary name: unlinked before its blocks (if
		// it never had any written back) would be allocated.
		unix.Unlink(tmp)
		return nil
	}
	if err != unix.ENOENT && err != unix.EINVAL && err != unix.ENOSYS {
		unix.Unlink(tmp)
		return fmt.Errorf("exchange %s with %s: %w", tmp, path, err)
	}
	if err := unix.Rename(tmp, path); err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

// WriteFile is os.WriteFile in three system calls (open, write, close) instead of six,
// with flag added to O_WRONLY|O_CREAT|O_CLOEXEC (O_TRUNC, or O_EXCL for a file that must
// not exist yet).
func WriteFile(path string, b []byte, mode os.FileMode, flag int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC|flag, uint32(mode.Perm()))
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("write %s: %w", path, err)
		}
		b = b[n:]
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
