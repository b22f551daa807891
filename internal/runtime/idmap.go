package runtime

import (
	"fmt"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// isIDMapped tells whether a mount asks to be idmapped (the idmap or ridmap option, or
// mappings of its own).
func isIDMapped(m specs.Mount) (yes, recursive bool) {
	for _, o := range m.Options {
		switch o {
		case "idmap":
			yes = true
		case "ridmap":
			yes, recursive = true, true
		}
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		yes = true
	}
	return yes, recursive
}

// idmappedMounts prepares, in the runtime's own namespaces, a detached idmapped clone of
// every bind mount that asks for one: only a process privileged over the filesystem's user
// namespace (the host's) may idmap it, which the container's init is not. The init moves
// each into place. The result maps mount index to descriptor; the caller closes them.
func (r *Runtime) idmappedMounts(spec *specs.Spec, bundle string) (map[int]*os.File, error) {
	out := map[int]*os.File{}
	for i, m := range spec.Mounts {
		yes, recursive := isIDMapped(m)
		if !yes {
			continue
		}
		fail := func(err error) (map[int]*os.File, error) {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("mounts[%d] (idmapped bind of %s on %s): %w", i, m.Source, m.Destination, err)
		}
		uids, gids := m.UIDMappings, m.GIDMappings
		if len(uids) == 0 {
			uids = spec.Linux.UIDMappings
		}
		if len(gids) == 0 {
			gids = spec.Linux.GIDMappings
		}
		if len(uids) == 0 || len(gids) == 0 {
			return fail(fmt.Errorf("no mappings: give the mount uidMappings and gidMappings, or the container a user namespace"))
		}
		if m.Type != "bind" && !isBindOpt(m.Options) {
			return fail(fmt.Errorf("only bind mounts can be idmapped"))
		}
		src := m.Source
		if len(src) == 0 || src[0] != '/' {
			src = bundle + "/" + src
		}
		flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
		if err != nil {
			return fail(fmt.Errorf("open_tree %s: %w", src, err))
		}
		mnt := os.NewFile(uintptr(fd), "idmapped "+src)
		userns, err := holdUserNS(uids, gids)
		if err != nil {
			mnt.Close()
			return fail(err)
		}
		attrFlags := uint(unix.AT_EMPTY_PATH)
		if recursive {
			attrFlags |= unix.AT_RECURSIVE
		}
		err = unix.MountSetattr(fd, "", attrFlags,
			&unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())})
		userns.Close()
		if err != nil {
			mnt.Close()
			return fail(fmt.Errorf("mount_setattr MOUNT_ATTR_IDMAP (does %s's filesystem support idmapped mounts?): %w", src, err))
		}
		out[i] = mnt
	}
	return out, nil
}

func isBindOpt(opts []string) bool {
	for _, o := range opts {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// holdUserNS returns a descriptor of a new user namespace with the given mappings, made by a
// short-lived child of this binary (the C stage's _BERTH_HOLD mode).
func holdUserNS(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	conv := func(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, m := range ms {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		return out
	}
	p, err := os.StartProcess("/proc/self/exe", []string{"berth-runtime", "userns-holder"}, &os.ProcAttr{
		Env: []string{"_BERTH_HOLD=1"},
		Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: conv(uids), GidMappings: conv(gids)},
	})
	if err != nil {
		return nil, fmt.Errorf("start a user namespace for the mount's mappings: %w", err)
	}
	defer func() { p.Kill(); p.Wait() }()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	if err != nil {
		return nil, fmt.Errorf("open the mount's user namespace: %w", err)
	}
	return f, nil
}
