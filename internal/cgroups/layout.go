package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/berth-containers/berth/internal/mountinfo"
)

// knownV1 are the v1 subsystems (and the one named hierarchy) a container gets a directory
// in. Other named hierarchies belong to somebody else and are left alone.
var knownV1 = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "blkio": true, "pids": true, "hugetlb": true, "net_cls": true,
	"net_prio": true, "perf_event": true, "rdma": true, "misc": true, "name=systemd": true,
}

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	// controllers are the v1 subsystems mounted together (e.g. cpu and cpuacct), with
	// "name=systemd" for the named one; empty for cgroup2.
	controllers []string
	// mountpoint is where it is mounted; root is the cgroup the mount shows at mountpoint
	// (mountinfo's 4th field: "/" unless a sub-tree was bind-mounted).
	mountpoint, root string
	v2               bool
}

// mounts is the host's cgroup layout as mountinfo shows it.
type mounts struct {
	layout Layout
	v1     []hierarchy // one per mounted v1 hierarchy that holds a known controller
	v2     *hierarchy  // the cgroup2 mount: all of it on Unified, the "unified" one on Hybrid
}

const mountinfoPath = "/proc/self/mountinfo"

// DetectLayout tells how the host mounts its cgroup hierarchies, from /proc/self/mountinfo.
func DetectLayout() (Layout, error) {
	m, err := readMounts()
	if err != nil {
		return 0, err
	}
	return m.layout, nil
}

// mountsCache keeps the layout for the life of the process: commands such as delete load
// a manager twice (status, then destroy), and mountinfo is long on busy hosts, while the
// cgroup mounts do not change under a running runtime. A failed read is not cached.
var mountsCache struct {
	sync.Mutex
	m *mounts
}

// readMounts returns the host's cgroup layout; the result is shared and must not be changed.
func readMounts() (*mounts, error) {
	mountsCache.Lock()
	defer mountsCache.Unlock()
	if mountsCache.m != nil {
		return mountsCache.m, nil
	}
	data, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("cgroups: read %s: %w", mountinfoPath, err)
	}
	m, err := parseMounts(data)
	if err != nil {
		return nil, err
	}
	mountsCache.m = m
	return m, nil
}

// parseMounts builds the layout from mountinfo text. The first mount of each hierarchy
// wins, except that a cgroup2 mount at /sys/fs/cgroup is always preferred: that is the
// mark of a unified host whatever else is bind-mounted around.
func parseMounts(data []byte) (*mounts, error) {
	m := &mounts{}
	seen := map[string]bool{}
	for len(data) > 0 {
		var line string
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = string(data[:i]), data[i+1:]
		} else {
			line, data = string(data), nil
		}
		// Only cgroup mounts matter: skip the rest without splitting them.
		if !strings.Contains(line, " - cgroup") {
			continue
		}
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre := strings.Fields(line[:sep])
		post := strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 1 {
			continue
		}
		fstype := post[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		h := hierarchy{root: mountinfo.Unescape(pre[3]), mountpoint: mountinfo.Unescape(pre[4])}
		if fstype == "cgroup2" {
			h.v2 = true
			if m.v2 == nil || (h.mountpoint == "/sys/fs/cgroup" && m.v2.mountpoint != "/sys/fs/cgroup") {
				hh := h
				m.v2 = &hh
			}
			continue
		}
		if len(post) < 3 {
			continue
		}
		for _, opt := range strings.Split(post[2], ",") {
			if knownV1[opt] {
				h.controllers = append(h.controllers, opt)
			}
		}
		if len(h.controllers) == 0 {
			continue
		}
		key := strings.Join(h.controllers, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		m.v1 = append(m.v1, h)
	}
	switch {
	case m.v2 != nil && m.v2.mountpoint == "/sys/fs/cgroup":
		m.layout = Unified
		m.v1 = nil
	case len(m.v1) > 0 && m.v2 != nil:
		m.layout = Hybrid
	case len(m.v1) > 0:
		m.layout = Legacy
	case m.v2 != nil:
		m.layout = Unified
	default:
		return nil, fmt.Errorf("cgroups: no cgroup or cgroup2 file system is mounted (%s)", mountinfoPath)
	}
	return m, nil
}

// v1Hierarchy finds the v1 hierarchy holding controller c.
func (m *mounts) v1Hierarchy(c string) *hierarchy {
	for i := range m.v1 {
		for _, cc := range m.v1[i].controllers {
			if cc == c {
				return &m.v1[i]
			}
		}
	}
	return nil
}

// ownCgroups reads /proc/self/cgroup: v1 controller (or "name=...") -> path, "" -> v2 path.
func ownCgroups() (map[string]string, error) {
	const p = "/proc/self/cgroup"
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cgroups: read %s: %w", p, err)
	}
	return parseProcCgroup(string(data))
}

func parseProcCgroup(data string) (map[string]string, error) {
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		if line == "" {
			continue
		}
		// hierarchy-id:controller-list:path; the path may itself hold ':'.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroups: malformed /proc/self/cgroup line %q", line)
		}
		if parts[0] == "0" && parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own, nil
}

// mountRelative turns a cgroup path from /proc/self/cgroup (rooted at the hierarchy root,
// or at the cgroup namespace root) into one rooted at what the mount shows, which differs
// when only a sub-tree is mounted.
func (h *hierarchy) mountRelative(cg string) (string, error) {
	if h.root == "/" {
		return cg, nil
	}
	rel, ok := strings.CutPrefix(cg, h.root)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", fmt.Errorf("cgroups: own cgroup %s is outside the part of the hierarchy mounted at %s (which shows %s)", cg, h.mountpoint, h.root)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}
