package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const hostCgroupRoot = "/sys/fs/cgroup"

// mountCgroup gives the container a read-only (as configured) view of its own cgroups.
// With a cgroup namespace of its own the hierarchies are mounted afresh (their root is then
// the container's cgroup); otherwise the container's directories are bind-mounted.
// On v1 the view is a tmpfs with one directory per hierarchy, as on a host.
func (r *Root) mountCgroup(dest string, opts mountOptions) error {
	paths := r.cfg.CgroupPaths
	if v2, ok := paths[""]; ok && len(paths) == 1 {
		if r.cfg.NewCgroupNS {
			target, err := r.mkTarget(dest, true)
			if err != nil {
				return err
			}
			defer target.Close()
			if err := unix.Mount("cgroup2", fdPath(target), "cgroup2", opts.flags, ""); err == nil {
				return nil
			}
		}
		return r.bindMount(specs.Mount{Source: v2, Destination: dest}, dest,
			mountOptions{bind: true, flags: opts.flags})
	}
	target, err := r.mkTarget(dest, true)
	if err != nil {
		return err
	}
	defer target.Close()
	tmpfsFlags := opts.flags &^ unix.MS_RDONLY
	if err := unix.Mount("tmpfs", fdPath(target), "tmpfs", tmpfsFlags, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for cgroup hierarchies: %w", err)
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The tmpfs was made just now and only we can write in it: plain mkdirat is safe, and
	// cheaper than a resolver built for directories an image controls.
	view, err := r.open(dest)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if name := hierarchyDir(paths[k]); name != "" {
			if err := unix.Mkdirat(int(view.Fd()), name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				view.Close()
				return fmt.Errorf("create %s/%s: %w", dest, name, err)
			}
		}
	}
	view.Close()
	for _, k := range keys {
		host := paths[k]
		name := hierarchyDir(host)
		if name == "" {
			continue
		}
		sub := filepath.Join(dest, name)
		if r.cfg.NewCgroupNS {
			if err := r.mountHierarchy(sub, k, opts.flags); err == nil {
				continue
			}
		}
		if err := r.bindMount(specs.Mount{Source: host, Destination: sub}, sub,
			mountOptions{bind: true, flags: opts.flags}); err != nil {
			return fmt.Errorf("cgroup hierarchy %s: %w", name, err)
		}
	}
	if opts.flags&unix.MS_RDONLY != 0 {
		mnt, err := r.open(dest)
		if err != nil {
			return err
		}
		defer mnt.Close()
		return remountBind(mnt, opts.flags)
	}
	return nil
}

func (r *Root) mountHierarchy(sub, key string, flags uintptr) error {
	t, err := r.mkTarget(sub, true)
	if err != nil {
		return err
	}
	defer t.Close()
	switch {
	case key == "":
		return unix.Mount("cgroup2", fdPath(t), "cgroup2", flags, "")
	case strings.HasPrefix(key, "name="):
		return unix.Mount("cgroup", fdPath(t), "cgroup", flags, "none,"+key)
	default:
		return unix.Mount("cgroup", fdPath(t), "cgroup", flags, key)
	}
}

// hierarchyDir is the directory name a hierarchy is mounted under on the host, such as
// "memory", "cpu,cpuacct" or "unified".
func hierarchyDir(path string) string {
	rel, err := filepath.Rel(hostCgroupRoot, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return ""
	}
	return strings.SplitN(rel, "/", 2)[0]
}
