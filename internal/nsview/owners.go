package nsview

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Owner says whose a namespace is: the host's initial namespaces, or a container's.
type Owner struct {
	Host bool
	// Runtime made the container: berth, runc, crun, containerd, docker, podman, cri-o.
	Runtime string
	ID      string
	// Name is the engine's name for the container; the id when the engine gave none.
	Name string
	// Source is the state file the container was found in, or "cgroup" when it was
	// recognised only by its processes' cgroup path.
	Source string
}

// HostOwner owns the host's initial namespaces.
var HostOwner = &Owner{Host: true, Name: "host"}

// ShortID is the first 12 characters of a long hexadecimal id, as Docker shows ids; other
// ids are shown whole.
func ShortID(id string) string {
	if len(id) >= 32 && isHex(id) {
		return id[:12]
	}
	return id
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// String is the CONTAINER column: "host", the short id, "name (short id)" once the
// engine names containers, and a "runtime:" prefix for containers berth did not run.
func (o *Owner) String() string {
	if o == nil {
		return ""
	}
	if o.Host {
		return "host"
	}
	label := ShortID(o.ID)
	if o.Name != "" && o.Name != o.ID {
		label = o.Name + " (" + label + ")"
	}
	if o.Runtime != "" && o.Runtime != "berth" {
		label = o.Runtime + ":" + label
	}
	return label
}

// NameFunc gives the engine's name for a container id; ok is false when it knows none.
type NameFunc func(runtime, id string) (name string, ok bool)

var (
	nameMu    sync.RWMutex
	nameFuncs []NameFunc
)

// RegisterNameFunc lets the engine put its container names on berth ns's output. Until one
// is registered, a container's name is its id.
func RegisterNameFunc(f NameFunc) {
	nameMu.Lock()
	nameFuncs = append(nameFuncs, f)
	nameMu.Unlock()
}

func lookupName(runtime, id string) string {
	nameMu.RLock()
	defer nameMu.RUnlock()
	for _, f := range nameFuncs {
		if name, ok := f(runtime, id); ok && name != "" {
			return name
		}
	}
	return id
}

// StateFormat is the layout of a runtime's per-container state directory.
type StateFormat int

const (
	// FormatBerth is berth-runtime's <root>/<id>/state.json (internal/runtime Record).
	FormatBerth StateFormat = iota + 1
	// FormatRunc is runc's (libcontainer's) <root>/<id>/state.json.
	FormatRunc
	// FormatCrun is crun's <root>/<id>/status plus <root>/<id>/config.json.
	FormatCrun
)

// StateDir is a runtime's state root.
type StateDir struct {
	// Runtime labels the containers found here.
	Runtime string
	Dir     string
	Format  StateFormat
	// Nested roots hold one directory per namespace first, as containerd's
	// /run/containerd/runc/<namespace>/<id>; the namespace "moby" is Docker's.
	Nested bool
}

// DefaultBerthRoot is berth-runtime's --root: $BERTH_RUNTIME_ROOT, else /run/berth.
func DefaultBerthRoot() string {
	if r := os.Getenv("BERTH_RUNTIME_ROOT"); r != "" {
		return r
	}
	return "/run/berth"
}

// DefaultStateDirs are berth's root and the default roots of runc, crun, containerd (which
// Docker uses too) and Docker's older runc root. Podman runs runc or crun with their
// default roots; its containers are recognised by their bundle path.
func DefaultStateDirs() []StateDir {
	return StateDirsWithBerthRoot(DefaultBerthRoot())
}

// StateDirsWithBerthRoot is DefaultStateDirs with another berth root.
func StateDirsWithBerthRoot(root string) []StateDir {
	return []StateDir{
		{Runtime: "berth", Dir: root, Format: FormatBerth},
		{Runtime: "runc", Dir: "/run/runc", Format: FormatRunc},
		{Runtime: "crun", Dir: "/run/crun", Format: FormatCrun},
		{Runtime: "containerd", Dir: "/run/containerd/runc", Format: FormatRunc, Nested: true},
		{Runtime: "docker", Dir: "/run/docker/runtime-runc/moby", Format: FormatRunc},
	}
}

// Container is a live container found in a runtime's state and checked against /proc.
type Container struct {
	Owner
	// Pid is the container's init in our pid namespace.
	Pid       int
	StartTime uint64
	// Created holds the namespace types the container made itself (not joined).
	Created TypeSet
	// Namespaces are the live inodes of the init's namespaces, by type.
	Namespaces [numTypes]uint64
	// CgroupPaths is what the runtime recorded, by hierarchy ("" for cgroup v2).
	CgroupPaths map[string]string
}

// berthRecord is the part of internal/runtime's Record that berth ns reads. It is declared
// here, not imported, so that berth ns keeps working whatever else the runtime adds.
type berthRecord struct {
	ID            string `json:"id"`
	Pid           int    `json:"pid"`
	InitStartTime uint64 `json:"initStartTime"`
	Namespaces    []struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"namespaces"`
	CgroupPaths map[string]string `json:"cgroupPaths"`
	Runtime     string            `json:"runtime"`
	Annotations map[string]string `json:"annotations"`
}

// ownedAnnotation is runtime.AnnotationOwnedNamespaces (not imported: nsview reads the
// records of several runtimes and depends on none of them).
const ownedAnnotation = "org.berth.namespaces.owned"

// flexUint accepts a number or a string holding one: runc wrote init_process_start as a
// string in old releases.
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an unsigned number: %s", b)
	}
	*f = flexUint(v)
	return nil
}

type runcState struct {
	ID        string   `json:"id"`
	InitPid   int      `json:"init_process_pid"`
	InitStart flexUint `json:"init_process_start"`
	Config    struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
		Labels []string `json:"labels"`
	} `json:"config"`
	CgroupPaths map[string]string `json:"cgroup_paths"`
}

type crunStatus struct {
	Pid        int      `json:"pid"`
	StartTime  flexUint `json:"process-start-time"`
	CgroupPath string   `json:"cgroup-path"`
	Bundle     string   `json:"bundle"`
}

type ociConfig struct {
	Linux struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

// ReadContainers reads every container record under dirs. Records of containers that are
// not running, or whose pid now belongs to another process, are left out; records that
// cannot be parsed come back as warnings. A state root that does not exist is no error.
func ReadContainers(dirs []StateDir) (containers []*Container, warnings []string) {
	for _, d := range dirs {
		roots := []string{d.Dir}
		if d.Nested {
			roots = subdirs(d.Dir)
		}
		for _, root := range roots {
			runtime := d.Runtime
			if d.Nested && d.Runtime == "containerd" && filepath.Base(root) == "moby" {
				runtime = "docker"
			}
			for _, dir := range subdirs(root) {
				c, err := readContainer(d.Format, runtime, dir)
				if err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						warnings = append(warnings, err.Error())
					}
					continue
				}
				if c == nil || !c.alive() {
					continue
				}
				containers = append(containers, c)
			}
		}
	}
	return containers, warnings
}

func subdirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// readContainer parses one state directory; nil without error when it holds no process.
func readContainer(format StateFormat, runtime, dir string) (*Container, error) {
	c := &Container{Owner: Owner{Runtime: runtime, ID: filepath.Base(dir)}}
	addCreated := func(typ, path string) error {
		if path != "" {
			return nil
		}
		t, err := ParseType(typ)
		if err != nil {
			return err
		}
		c.Created = c.Created.With(t)
		return nil
	}
	switch format {
	case FormatBerth:
		path := filepath.Join(dir, "state.json")
		var r berthRecord
		if err := readJSON(path, &r); err != nil {
			return nil, err
		}
		if r.ID != "" {
			c.ID = r.ID
		}
		if r.Runtime != "" {
			c.Runtime = r.Runtime
		}
		c.Pid, c.StartTime, c.CgroupPaths, c.Source = r.Pid, r.InitStartTime, r.CgroupPaths, path
		for _, n := range r.Namespaces {
			if err := addCreated(n.Type, n.Path); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		if owned := r.Annotations[ownedAnnotation]; owned != "" {
			for _, typ := range strings.Split(owned, ",") {
				if err := addCreated(strings.TrimSpace(typ), ""); err != nil {
					return nil, fmt.Errorf("%s: annotation %s: %w", path, ownedAnnotation, err)
				}
			}
		}
	case FormatRunc:
		path := filepath.Join(dir, "state.json")
		var r runcState
		if err := readJSON(path, &r); err != nil {
			return nil, err
		}
		if r.ID != "" {
			c.ID = r.ID
		}
		c.Pid, c.StartTime, c.CgroupPaths, c.Source = r.InitPid, uint64(r.InitStart), r.CgroupPaths, path
		for _, n := range r.Config.Namespaces {
			if err := addCreated(n.Type, n.Path); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		for _, l := range r.Config.Labels {
			if b, ok := strings.CutPrefix(l, "bundle="); ok && isPodmanBundle(b) {
				c.Runtime = "podman"
			}
		}
	case FormatCrun:
		path := filepath.Join(dir, "status")
		var st crunStatus
		if err := readJSON(path, &st); err != nil {
			return nil, err
		}
		c.Pid, c.StartTime, c.Source = st.Pid, uint64(st.StartTime), path
		if isPodmanBundle(st.Bundle) {
			c.Runtime = "podman"
		}
		var cfg ociConfig
		if err := readJSON(filepath.Join(dir, "config.json"), &cfg); err != nil {
			return nil, err
		}
		for _, n := range cfg.Linux.Namespaces {
			if err := addCreated(n.Type, n.Path); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
			}
		}
	default:
		return nil, fmt.Errorf("%s: unknown state format %d", dir, format)
	}
	if c.Pid <= 0 {
		return nil, nil
	}
	c.Name = lookupName(c.Runtime, c.ID)
	return c, nil
}

func isPodmanBundle(b string) bool {
	return strings.Contains(b, "/overlay-containers/") || strings.Contains(b, "/libpod/")
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// alive checks that the recorded pid is still the container's init (same start time, not
// a zombie) and reads its namespaces.
func (c *Container) alive() bool {
	st, err := readStat(c.Pid)
	if err != nil || st.startTime != c.StartTime || st.state == 'Z' || st.state == 'X' {
		return false
	}
	var r nsReader
	if err := r.read(c.Pid, AllTypes, &c.Namespaces); err != nil {
		return false
	}
	return true
}

// attribute labels the host's namespaces, then those each live container created, then
// (for namespaces still unclaimed) those whose processes sit in a cgroup that a known
// runtime names after a container.
func (s *Snapshot) attribute(dirs []StateDir) {
	for _, ino := range s.Host {
		if ns := s.byIno[ino]; ns != nil && ino != 0 {
			ns.Container = HostOwner
		}
	}
	s.Containers, s.Warnings = ReadContainers(dirs)
	known := make(map[string]bool, len(s.Containers))
	for _, c := range s.Containers {
		known[c.ID] = true
		for _, t := range c.Created.Types() {
			ino := c.Namespaces[t]
			if ino == 0 || ino == s.Host[t] {
				continue
			}
			if ns := s.byIno[ino]; ns != nil && ns.Container == nil {
				ns.Container = &c.Owner
			}
		}
	}
	cache := make(map[int]*Owner)
	for _, ns := range s.Namespaces {
		if ns.Container != nil || ns.Pid == 0 {
			continue
		}
		o, seen := cache[ns.Pid]
		if !seen {
			o = ownerFromCgroup(ns.Pid)
			if o != nil && known[o.ID] {
				o = nil // a container with a record claims only what it created
			}
			cache[ns.Pid] = o
		}
		if o != nil {
			ns.Container = o
		}
	}
}

// cgroupPatterns recognise the cgroup paths other engines give their containers. They are
// compiled on first use: compiled at package init (`{64}` expands to 64 states each), they
// cost every berth command, not only `berth ns`, 0.1-0.2 ms before main.
var cgroupPatterns = sync.OnceValue(func() []cgroupPattern {
	return []cgroupPattern{
		{"docker", regexp.MustCompile(`(?:/docker-|/docker/)([0-9a-f]{64})(?:\.scope)?(?:/|$)`)},
		{"podman", regexp.MustCompile(`/libpod-([0-9a-f]{64})(?:\.scope)?(?:/|$)`)},
		{"containerd", regexp.MustCompile(`/cri-containerd-([0-9a-f]{64})(?:\.scope)?(?:/|$)`)},
		{"cri-o", regexp.MustCompile(`/crio-([0-9a-f]{64})(?:\.scope)?(?:/|$)`)},
	}
})

type cgroupPattern struct {
	runtime string
	re      *regexp.Regexp
}

func ownerFromCgroup(pid int) *Owner {
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			continue
		}
		path := line[i+1:]
		for _, p := range cgroupPatterns() {
			if m := p.re.FindStringSubmatch(path); m != nil {
				return &Owner{Runtime: p.runtime, ID: m[1], Name: lookupName(p.runtime, m[1]), Source: "cgroup"}
			}
		}
	}
	return nil
}
