package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/berth-containers/berth/internal/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// AnnotationRootfsOverlay asks for an overlay on root.path, mounted by the container's init
// in its new mount namespace as the first rootfs step (see rootfs.OverlayAnnotation).
const AnnotationRootfsOverlay = rootfs.OverlayAnnotation

// rootfsOverlay returns the checked mount data of the AnnotationRootfsOverlay annotation, ""
// when the spec has none. It runs in create before anything is made, so a bad value leaves
// nothing behind; with stat, the directories are checked too, for an error that names them
// (the Go init, handed a spec create checked, parses only).
func rootfsOverlay(spec *specs.Spec, stat bool) (string, error) {
	v, ok := spec.Annotations[AnnotationRootfsOverlay]
	if !ok {
		return "", nil
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("annotation %s=%q: %w", AnnotationRootfsOverlay, v, err)
	}
	newMountNS, userNS := false, false
	if spec.Linux != nil {
		for _, n := range spec.Linux.Namespaces {
			switch n.Type {
			case specs.MountNamespace:
				newMountNS = n.Path == ""
			case specs.UserNamespace:
				userNS = true
			}
		}
	}
	if !newMountNS {
		return fail(errors.New("the overlay is mounted in the container's new mount namespace, and the spec has none (a \"mount\" namespace without a path)"))
	}
	data, err := rootfs.ParseOverlay(v, userNS)
	if err != nil {
		return fail(err)
	}
	if !stat {
		return data, nil
	}
	for _, opt := range strings.Split(data, ",") {
		key, val, _ := strings.Cut(opt, "=")
		if val == "" {
			continue
		}
		for _, p := range strings.Split(val, ":") {
			st, err := os.Stat(p)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", key, err))
			}
			if !st.IsDir() {
				return fail(fmt.Errorf("%s %s is not a directory", key, p))
			}
		}
	}
	return data, nil
}
