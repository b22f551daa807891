package cgroups

import (
	"fmt"
	"strings"
)

// DefaultParent is the cgroup, in every hierarchy, under which containers without a
// linux.cgroupsPath get their own directory named after the container id.
const DefaultParent = "/berth"

// cgroupSpec is linux.cgroupsPath after validation: either one absolute cgroup path used in
// every hierarchy, or a path relative to the calling process's own cgroup in each.
type cgroupSpec struct {
	abs string
	rel string
}

func parseCgroupPath(cfg Config) (cgroupSpec, error) {
	p := cfg.Path
	if p == "" {
		if err := validID(cfg.ID); err != nil {
			return cgroupSpec{}, err
		}
		return cgroupSpec{abs: DefaultParent + "/" + cfg.ID}, nil
	}
	if strings.ContainsRune(p, 0) {
		return cgroupSpec{}, fmt.Errorf("cgroups: linux.cgroupsPath %q holds a NUL byte", p)
	}
	if !strings.HasPrefix(p, "/") && strings.Count(p, ":") == 2 {
		return cgroupSpec{}, fmt.Errorf("cgroups: linux.cgroupsPath %q has the systemd form slice:prefix:name: %w: the systemd cgroup driver is not supported, give a cgroupfs path (absolute, or relative to the runtime's cgroup)", p, ErrUnsupported)
	}
	if strings.HasPrefix(p, "/") {
		abs, err := joinInside("/", p)
		if err != nil {
			return cgroupSpec{}, fmt.Errorf("cgroups: linux.cgroupsPath %q: %w", p, err)
		}
		return cgroupSpec{abs: abs}, nil
	}
	// Checked here against an empty base so a path that is wrong everywhere fails before
	// any hierarchy is looked at; the real check is against each own cgroup.
	return cgroupSpec{rel: p}, nil
}

// resolve gives the cgroup path in one hierarchy; own is the caller's cgroup there.
func (s cgroupSpec) resolve(own string) (string, error) {
	if s.abs != "" {
		return s.abs, nil
	}
	p, err := joinInside(own, s.rel)
	if err != nil {
		return "", fmt.Errorf("cgroups: linux.cgroupsPath %q relative to the runtime's cgroup %s: %w", s.rel, own, err)
	}
	return p, nil
}

// joinInside joins rel onto the cgroup path base, refusing a ".." that climbs above the
// hierarchy root and a result that is the root itself (which holds every process on the
// host and cannot take limits).
func joinInside(base, rel string) (string, error) {
	var parts []string
	for _, c := range strings.Split(base, "/") {
		if c != "" && c != "." {
			parts = append(parts, c)
		}
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", fmt.Errorf(`".." climbs above the hierarchy root`)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("resolves to the hierarchy root, which cannot be a container's cgroup")
	}
	return "/" + strings.Join(parts, "/"), nil
}

func validID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("cgroups: empty container id and no linux.cgroupsPath")
	case id == "." || id == "..", strings.ContainsAny(id, "/\x00"):
		return fmt.Errorf("cgroups: container id %q cannot name a cgroup directory", id)
	}
	return nil
}
