package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// OverlayAnnotation asks the runtime to mount an overlay on the bundle's rootfs directory in
// the container's new mount namespace, before anything else is built there. Its value is the
// overlay's mount data: lowerdir=A[:B...][,upperdir=C,workdir=D][,userxattr], absolute
// host paths.
//
// It exists for an unprivileged engine: an overlay it mounted itself (in a user namespace
// of its own) would live in a mount namespace the runtime never sees, while the container's
// init is root of the user namespace that owns the container's new mount namespace, which
// is what the kernel asks of an overlay mount (since 5.11).
const OverlayAnnotation = "org.berth.rootfs.overlay"

// maxOverlayData is what mount(2) takes as option data: one page, NUL included.
const maxOverlayData = 4095

// maxOverlayLowers is overlayfs' own limit on the stack (OVL_MAX_STACK).
const maxOverlayLowers = 500

// ParseOverlay checks an OverlayAnnotation value strictly and returns the mount data the init
// passes to mount(2): lowerdir (required), upperdir and workdir (both or neither) and
// userxattr, nothing else; every path absolute, clean, free of the characters overlayfs'
// option parser treats specially. In a user namespace userxattr is added when missing: the
// rootless layer unpacker marks opaque directories with user.overlay.opaque, and trusted.*
// xattrs are the host root's.
func ParseOverlay(value string, userNS bool) (string, error) {
	if value == "" {
		return "", errors.New("empty value: want lowerdir=DIR[:DIR...][,upperdir=DIR,workdir=DIR][,userxattr]")
	}
	var lowers []string
	var upper, work string
	seen := map[string]bool{}
	userxattr := false
	for _, opt := range strings.Split(value, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		if seen[key] {
			return "", fmt.Errorf("option %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "userxattr":
			if hasVal {
				return "", fmt.Errorf("option %q takes no value", opt)
			}
			userxattr = true
			continue
		case "lowerdir", "upperdir", "workdir":
			if !hasVal || val == "" {
				return "", fmt.Errorf("option %q has no path", key)
			}
		default:
			return "", fmt.Errorf("option %q is not one of lowerdir, upperdir, workdir, userxattr", opt)
		}
		paths := []string{val}
		if key == "lowerdir" {
			paths = strings.Split(val, ":")
		} else if strings.Contains(val, ":") {
			return "", fmt.Errorf("%s %q: a ':' is only allowed between lower directories", key, val)
		}
		for _, p := range paths {
			if err := checkOverlayPath(p); err != nil {
				return "", fmt.Errorf("%s: %w", key, err)
			}
		}
		switch key {
		case "lowerdir":
			lowers = paths
		case "upperdir":
			upper = val
		case "workdir":
			work = val
		}
	}
	if len(lowers) == 0 {
		return "", errors.New("lowerdir is required")
	}
	if len(lowers) > maxOverlayLowers {
		return "", fmt.Errorf("lowerdir has %d directories, overlayfs stacks at most %d", len(lowers), maxOverlayLowers)
	}
	if (upper == "") != (work == "") {
		return "", errors.New("upperdir and workdir go together")
	}
	if upper == "" && len(lowers) < 2 {
		// The kernel refuses a read-only overlay of one layer; say so before it does.
		return "", errors.New("without upperdir, lowerdir needs at least two directories")
	}
	all := map[string]string{}
	for _, l := range lowers {
		if k, ok := all[l]; ok {
			return "", fmt.Errorf("%s appears twice (lowerdir and %s)", l, k)
		}
		all[l] = "lowerdir"
	}
	if upper != "" {
		if k, ok := all[upper]; ok {
			return "", fmt.Errorf("upperdir %s is also a %s", upper, k)
		}
		if upper == work {
			return "", fmt.Errorf("upperdir and workdir are the same directory %s", upper)
		}
		if k, ok := all[work]; ok {
			return "", fmt.Errorf("workdir %s is also a %s", work, k)
		}
	}
	data := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work
	}
	if userxattr || userNS {
		data += ",userxattr"
	}
	if len(data) > maxOverlayData {
		return "", fmt.Errorf("mount data is %d bytes, more than the %d mount(2) takes", len(data), maxOverlayData)
	}
	return data, nil
}

// checkOverlayPath refuses what overlayfs' option parser would read differently from how it
// is written here: it splits on ',' and ':' and unescapes '\'.
func checkOverlayPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("%q is not a clean path (want %q)", p, filepath.Clean(p))
	}
	if p == "/" {
		return errors.New("the host's / cannot be an overlay directory")
	}
	for _, c := range p {
		if c == '\\' || c == '=' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("%q contains %q, which overlayfs' options do not carry as written", p, c)
		}
	}
	return nil
}

// mountOverlay mounts the overlay on the rootfs directory, in the container's mount namespace.
func mountOverlay(rootfs, data string) error {
	if err := unix.Mount("overlay", rootfs, "overlay", 0, data); err != nil {
		return OverlayError(rootfs, data, err)
	}
	return nil
}

// OverlayError is the error of a failed overlay mount on the rootfs: the annotation, the
// mount data and the errno, with a hint where the errno has a usual cause.
func OverlayError(rootfs, data string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EINVAL):
		hint = " (a kernel before 5.11 cannot mount overlayfs in a user namespace; the filesystem under upperdir may not support it either)"
	case errors.Is(err, unix.EPERM):
		hint = " (the init must be root of the user namespace that owns the container's mount namespace)"
	case errors.Is(err, unix.ENODEV):
		hint = " (this kernel has no overlayfs)"
	}
	return fmt.Errorf("annotation %s: mount overlay on %s (data %q): %w%s", OverlayAnnotation, rootfs, data, err, hint)
}
