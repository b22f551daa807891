package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-containers/berth/internal/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRootFor is the state root for the calling user: /run/berth for root, and
// $XDG_RUNTIME_DIR/berth (or /tmp/berth-<uid>) for anyone else, as runc does.
func DefaultRootFor() string {
	if os.Geteuid() == 0 {
		return DefaultRoot
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "berth")
	}
	return fmt.Sprintf("/tmp/berth-%d", os.Geteuid())
}

// newCgroup makes the container's cgroup manager. Root always gets one. An unprivileged user
// gets one only where the host delegates a writable cgroup; otherwise the container runs
// without a cgroup, unless it asked for limits, which then fail with the reason.
func newCgroup(id string, spec *specs.Spec) (cgroups.Manager, error) {
	res := effectiveResources(spec)
	if os.Geteuid() != 0 {
		// The device rules are an eBPF program on cgroup v2, which only a privileged
		// process may attach; the container's user namespace cannot make device nodes
		// anyway.
		res.Devices = nil
	}
	cg, err := cgroups.New(cgroups.Config{ID: id, Path: spec.Linux.CgroupsPath, Resources: res})
	if os.Geteuid() == 0 {
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		return cg, nil
	}
	if err == nil && cgroupWritable(cg) {
		return cg, nil
	}
	if limits(spec.Linux.Resources) {
		layout, _ := cgroups.DetectLayout()
		why := "no cgroup is delegated to this user"
		if err != nil {
			why = err.Error()
		}
		return nil, fmt.Errorf("linux.resources: limits need a cgroup, and %s (%s; only cgroup v2 with delegation gives an unprivileged user one)", why, layout)
	}
	return cgroups.None(), nil
}

// cgroupWritable tells whether the user may create the container's cgroup in every hierarchy.
func cgroupWritable(cg cgroups.Manager) bool {
	for _, p := range cg.Paths() {
		dir := p
		for {
			parent := filepath.Dir(dir)
			if _, err := os.Stat(dir); err == nil || parent == dir {
				break
			}
			dir = parent
		}
		if unix.Access(dir, unix.W_OK) != nil {
			return false
		}
	}
	return len(cg.Paths()) > 0
}

// limits tells whether resources asks for anything beyond the device rules (which an
// unprivileged container cannot use anyway: it has no mknod in its user namespace).
func limits(r *specs.LinuxResources) bool {
	if r == nil {
		return false
	}
	c := *r
	c.Devices = nil
	empty := specs.LinuxResources{}
	return fmt.Sprint(c) != fmt.Sprint(empty)
}
