package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// --userns=auto gives each container its own range of 65536 host ids, starting at
// userNSBase (far above the ranges /etc/subuid hands to users by convention). A range is
// claimed by creating <root>/userns/<block> exclusively, holding the container's id, and
// freed when the container is removed; a claim whose container is gone is taken over.
const (
	userNSBase   = 1 << 30
	userNSSize   = 65536
	userNSBlocks = 16384
)

func (e *Engine) allocUserNS(id string) (*IDMap, error) {
	dir := filepath.Join(e.Root, "userns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	for k := 0; k < userNSBlocks; k++ {
		p := filepath.Join(dir, strconv.Itoa(k))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			owner, rerr := os.ReadFile(p)
			if rerr == nil && len(owner) == 64 && !e.nameOwnerAlive(string(owner)) {
				if os.Remove(p) == nil {
					k-- // try this block again
				}
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--userns=auto: claim %s: %w", p, err)
		}
		_, err = f.WriteString(id)
		f.Close()
		if err != nil {
			os.Remove(p)
			return nil, fmt.Errorf("--userns=auto: claim %s: %w", p, err)
		}
		return &IDMap{ContainerID: 0, HostID: uint32(userNSBase + k*userNSSize), Size: userNSSize}, nil
	}
	return nil, errors.New("--userns=auto: every id range is taken")
}

func (e *Engine) freeUserNS(id string) {
	dir := filepath.Join(e.Root, "userns")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range ents {
		p := filepath.Join(dir, d.Name())
		if b, err := os.ReadFile(p); err == nil && string(b) == id {
			os.Remove(p)
		}
	}
}

// userNSFile returns a user namespace with the container's mapping, held by a child that
// waits on a pipe; release kills it. The namespace lives on as long as the file is open.
func (e *Engine) userNSFile(m *IDMap) (*os.File, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	defer r.Close()
	defer w.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	idm := []syscall.SysProcIDMap{{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}}
	p, err := os.StartProcess(self, []string{"berth-userns"}, &os.ProcAttr{
		Env:   []string{monitor.HelperEnv + "=" + helperHold},
		Files: []*os.File{r, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: idm, GidMappings: idm},
	})
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: make a user namespace: %w", err)
	}
	defer func() {
		p.Kill()
		p.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	return f, nil
}

// helperHold is the helper kind that only waits for its stdin to close: the holder of a
// user namespace while the engine opens it.
const helperHold = "hold"

// mountIDMapped mounts the snapshot at its rootfs for a container in a user namespace: an
// overlay whose image layers are idmapped mounts, so that the image's files, owned by root
// on disk and shared with other containers, belong to the container's root. The upper
// directory is the container's own: it is not idmapped (overlayfs creates its work
// directory with the mounter's ids, which an idmapped mount could not represent) but
// owned by the container's root on the host, and what the container writes is stored
// with its host ids. (An overlay mount cannot itself be idmapped; its layers can.)
func (e *Engine) mountIDMapped(lower []string, upper, work, target string, m *IDMap) error {
	if err := os.Chown(upper, int(m.HostID), int(m.HostID)); err != nil {
		return fmt.Errorf("--userns=auto: %w", err)
	}
	ns, err := e.userNSFile(m)
	if err != nil {
		return err
	}
	defer ns.Close()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	idmap := func(path string) (string, error) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return "", fmt.Errorf("--userns=auto: clone mount of %s: %w", path, err)
		}
		fds = append(fds, fd)
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
			return "", fmt.Errorf("--userns=auto: idmap %s: %w", path, err)
		}
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("--userns=auto: fsopen overlay: %w", err)
	}
	fds = append(fds, fs)
	for _, l := range lower {
		p, err := idmap(l)
		if err != nil {
			return err
		}
		if err := unix.FsconfigSetString(fs, "lowerdir+", p); err != nil {
			return fmt.Errorf("--userns=auto: overlay lowerdir+ %s: %w", l, err)
		}
	}
	for k, v := range map[string]string{"upperdir": upper, "workdir": work} {
		if err := unix.FsconfigSetString(fs, k, v); err != nil {
			return fmt.Errorf("--userns=auto: overlay %s %s: %w", k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return fmt.Errorf("--userns=auto: create overlay of idmapped layers: %w", err)
	}
	mfd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("--userns=auto: fsmount overlay: %w", err)
	}
	fds = append(fds, mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("--userns=auto: move overlay to %s: %w", target, err)
	}
	return nil
}

// allowTraversal lets a container's remapped root reach the paths the runtime mounts from
// inside its user namespace: search (not read) permission for others on each directory
// from the engine root down.
func (e *Engine) allowTraversal(paths ...string) error {
	for _, p := range paths {
		for d := p; strings.HasPrefix(d, e.Root) && len(d) >= len(e.Root); d = filepath.Dir(d) {
			var st unix.Stat_t
			if err := unix.Stat(d, &st); err != nil {
				return fmt.Errorf("--userns=auto: %w", err)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&0o001 == 0 {
				if err := unix.Chmod(d, st.Mode&0o7777|0o001); err != nil {
					return fmt.Errorf("--userns=auto: allow traversal of %s: %w", d, err)
				}
			}
			if d == e.Root {
				break
			}
		}
	}
	// Above the root the engine changes nothing; it says what is in the way.
	for d := filepath.Dir(e.Root); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err == nil && st.Mode&0o001 == 0 {
			return fmt.Errorf("--userns=auto: the container's root cannot reach the engine root %s: %s is not searchable by others (chmod o+x it)", e.Root, d)
		}
		if d == "/" {
			break
		}
	}
	return nil
}
