package nsview

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/berth-containers/berth/internal/mountinfo"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Isolation is one container's isolation boundaries as the kernel enforces them, read from
// its init process.
type Isolation struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Runtime    string               `json:"runtime"`
	Pid        int                  `json:"pid"`
	StateFile  string               `json:"stateFile"`
	Namespaces []NamespaceIsolation `json:"namespaces"`
	Cgroups    []CgroupIsolation    `json:"cgroups"`
	Caps       map[string][]string  `json:"capabilities"`
	Seccomp    string               `json:"seccomp"`
	Filters    int                  `json:"seccompFilters"`
	NoNewPrivs bool                 `json:"noNewPrivs"`
	UIDMap     []IDMapping          `json:"uidMap"`
	GIDMap     []IDMapping          `json:"gidMap"`
	hostNS     [numTypes]uint64
	capsRaw    map[string]uint64 // kept to print "all"
}

// NamespaceIsolation is one namespace type of the container.
type NamespaceIsolation struct {
	Type  string `json:"type"`
	Inode uint64 `json:"inode"`
	// Isolation is "own" (the container created it), "shared with host", or
	// "shared with <container>" / "shared" for a namespace joined from elsewhere.
	Isolation string `json:"isolation"`
}

// CgroupIsolation is the container's cgroup in one hierarchy and the limits set there.
type CgroupIsolation struct {
	// Controllers are the hierarchy's controllers ("" for the cgroup v2 hierarchy).
	Controllers string  `json:"controllers"`
	Path        string  `json:"path"`
	Dir         string  `json:"dir,omitempty"`
	Limits      []Limit `json:"limits,omitempty"`
}

// Limit is one cgroup file and its value.
type Limit struct {
	File  string `json:"file"`
	Value string `json:"value"`
}

// IDMapping is one line of uid_map or gid_map.
type IDMapping struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
	Size        uint32 `json:"size"`
}

// FindContainer picks a container by exact id, engine name, "runtime:id", or a unique id
// prefix.
func FindContainer(list []*Container, ref string) (*Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("empty container name or id")
	}
	for _, c := range list {
		if c.ID == ref || c.Name == ref || c.Runtime+":"+c.ID == ref {
			return c, nil
		}
	}
	var match []*Container
	for _, c := range list {
		if strings.HasPrefix(c.ID, ref) {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("no running container %q", ref)
	}
	ids := make([]string, len(match))
	for i, c := range match {
		ids[i] = c.Runtime + ":" + c.ID
	}
	return nil, fmt.Errorf("container %q is ambiguous: %s", ref, strings.Join(ids, ", "))
}

// hostNamespaces reads the initial namespaces from kthreadd, else pid 1.
func hostNamespaces() [numTypes]uint64 {
	var host [numTypes]uint64
	var r nsReader
	refs := []int{1}
	if st, err := readStat(2); err == nil && st.ppid == 0 {
		refs = []int{2, 1}
	}
	for _, pid := range refs {
		var ns [numTypes]uint64
		if r.read(pid, AllTypes, &ns) != nil {
			continue
		}
		for t := range ns {
			if host[t] == 0 {
				host[t] = ns[t]
			}
		}
	}
	return host
}

// Inspect reads the isolation of the container ref (name or id) found under dirs. It is
// what `berth ns NAME` prints and what the engine's `inspect --isolation` calls.
func Inspect(ref string, dirs []StateDir) (*Isolation, error) {
	list, warnings := ReadContainers(dirs)
	c, err := FindContainer(list, ref)
	if err != nil {
		if len(warnings) > 0 {
			err = fmt.Errorf("%w (unreadable records: %s)", err, strings.Join(warnings, "; "))
		}
		return nil, err
	}
	return inspect(c, list)
}

func inspect(c *Container, all []*Container) (*Isolation, error) {
	iso := &Isolation{ID: c.ID, Name: c.Name, Runtime: c.Runtime, Pid: c.Pid, StateFile: c.Source,
		hostNS: hostNamespaces()}
	others := make(map[uint64]*Owner)
	for _, o := range all {
		if o == c {
			continue
		}
		for _, t := range o.Created.Types() {
			if ino := o.Namespaces[t]; ino != 0 {
				others[ino] = &o.Owner
			}
		}
	}
	for _, t := range []Type{Mnt, UTS, IPC, Pid, Net, User, Cgroup, Time} {
		ino := c.Namespaces[t]
		if ino == 0 {
			continue // the kernel lacks the type, or the link is hidden
		}
		n := NamespaceIsolation{Type: t.String(), Inode: ino}
		switch {
		case ino == iso.hostNS[t]:
			n.Isolation = "shared with host"
		case c.Created.Has(t):
			n.Isolation = "own"
		case others[ino] != nil:
			n.Isolation = "shared with " + others[ino].String()
		default:
			n.Isolation = "shared"
		}
		iso.Namespaces = append(iso.Namespaces, n)
	}
	if err := iso.readStatus(c.Pid); err != nil {
		return nil, err
	}
	var err error
	if iso.UIDMap, err = readIDMap(c.Pid, "uid_map"); err != nil {
		return nil, err
	}
	if iso.GIDMap, err = readIDMap(c.Pid, "gid_map"); err != nil {
		return nil, err
	}
	if iso.Cgroups, err = readCgroups(c.Pid); err != nil {
		return nil, err
	}
	// The pid may have been reused while we read: check it is still the container's init.
	if !c.alive() {
		return nil, fmt.Errorf("container %s: init process %d exited while being inspected", c.ID, c.Pid)
	}
	return iso, nil
}

func (iso *Isolation) readStatus(pid int) error {
	path := fmt.Sprintf("%s/%d/status", procRoot, pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	iso.Caps = make(map[string][]string)
	iso.capsRaw = make(map[string]uint64)
	iso.Seccomp = "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			v, err := strconv.ParseUint(val, 16, 64)
			if err != nil {
				return fmt.Errorf("parse %s: %s %q: %w", path, key, val, err)
			}
			name := map[string]string{"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective",
				"CapBnd": "bounding", "CapAmb": "ambient"}[key]
			iso.Caps[name] = CapNames(v)
			iso.capsRaw[name] = v
		case "NoNewPrivs":
			iso.NoNewPrivs = val == "1"
		case "Seccomp":
			iso.Seccomp = map[string]string{"0": "disabled", "1": "strict", "2": "filter"}[val]
		case "Seccomp_filters":
			iso.Filters, _ = strconv.Atoi(val)
		}
	}
	return nil
}

func readIDMap(pid int, file string) ([]IDMapping, error) {
	path := fmt.Sprintf("%s/%d/%s", procRoot, pid, file)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []IDMapping
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var v [3]uint64
		for i := range f {
			if v[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("parse %s: %q: %w", path, line, err)
			}
		}
		out = append(out, IDMapping{uint32(v[0]), uint32(v[1]), uint32(v[2])})
	}
	return out, nil
}

type cgroupMount struct {
	root, point string
	controllers map[string]bool
	v2          bool
}

func readCgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open(procRoot + "/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("open mountinfo: %w", err)
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || (qf[0] != "cgroup" && qf[0] != "cgroup2") {
			continue
		}
		m := cgroupMount{root: mountinfo.Unescape(pf[3]), point: mountinfo.Unescape(pf[4]), v2: qf[0] == "cgroup2",
			controllers: make(map[string]bool)}
		for _, o := range strings.Split(qf[2], ",") {
			m.controllers[o] = true
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// cgroupLimitFiles are the files worth showing per controller, v1 and v2.
var cgroupLimitFiles = map[string][]string{
	"memory":  {"memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes"},
	"cpu":     {"cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"},
	"cpuset":  {"cpuset.cpus", "cpuset.mems"},
	"pids":    {"pids.max"},
	"blkio":   {"blkio.weight"},
	"freezer": {"freezer.state"},
	"devices": {"devices.list"},
	"":        {"memory.max", "memory.high", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max", "cpuset.cpus", "cpuset.mems", "io.max"},
}

func readCgroups(pid int) ([]CgroupIsolation, error) {
	path := fmt.Sprintf("%s/%d/cgroup", procRoot, pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, err
	}
	var out []CgroupIsolation
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		cg := CgroupIsolation{Controllers: parts[1], Path: parts[2]}
		ctrls := strings.Split(parts[1], ",")
		for _, m := range mounts {
			match := m.v2 == (parts[1] == "")
			for _, c := range ctrls {
				if c != "" && !m.controllers[c] {
					match = false
				}
			}
			if !match {
				continue
			}
			rel, ok := strings.CutPrefix(cg.Path, m.root)
			if !ok {
				continue // a mount of another part of the hierarchy
			}
			cg.Dir = filepath.Join(m.point, rel)
			break
		}
		if cg.Dir != "" {
			var files []string
			for _, c := range ctrls {
				files = append(files, cgroupLimitFiles[c]...)
			}
			if parts[1] == "" {
				files = append(files, cgroupLimitFiles[""]...)
				if hs, _ := filepath.Glob(filepath.Join(cg.Dir, "hugetlb.*.max")); hs != nil {
					for _, h := range hs {
						files = append(files, filepath.Base(h))
					}
				}
			}
			for _, f := range files {
				v, err := os.ReadFile(filepath.Join(cg.Dir, f))
				if err != nil {
					continue // the kernel lacks this knob
				}
				val := strings.TrimSpace(string(v))
				if f == "devices.list" {
					val = strings.ReplaceAll(val, "\n", "; ")
				}
				if val == "9223372036854771712" || val == "-1" && strings.HasSuffix(f, "quota_us") {
					val = "unlimited"
				}
				cg.Limits = append(cg.Limits, Limit{File: f, Value: val})
			}
		}
		out = append(out, cg)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Controllers < out[j].Controllers })
	return out, nil
}

// WriteJSON prints the isolation as one JSON object.
func (iso *Isolation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "   ")
	return enc.Encode(iso)
}

// WriteText prints the isolation boundaries on one screen.
func (iso *Isolation) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	label := (&Owner{Runtime: iso.Runtime, ID: iso.ID, Name: iso.Name}).String()
	fmt.Fprintf(tw, "CONTAINER\t%s\n", label)
	fmt.Fprintf(tw, "ID\t%s\n", iso.ID)
	fmt.Fprintf(tw, "RUNTIME\t%s (%s)\n", iso.Runtime, iso.StateFile)
	fmt.Fprintf(tw, "PID\t%d\n", iso.Pid)
	tw.Flush()

	fmt.Fprintf(w, "\nNAMESPACE\n")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, n := range iso.Namespaces {
		fmt.Fprintf(tw, "  %s\t%s\t%s:[%d]\n", n.Type, n.Isolation, n.Type, n.Inode)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nCGROUP\n")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range iso.Cgroups {
		name := c.Controllers
		if name == "" {
			name = "(v2)"
		}
		var lim []string
		for _, l := range c.Limits {
			lim = append(lim, l.File+"="+l.Value)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, c.Path, strings.Join(lim, " "))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nCAPABILITIES\n")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, set := range []string{"effective", "permitted", "inheritable", "bounding", "ambient"} {
		fmt.Fprintf(tw, "  %s\t%s\n", set, capSummary(iso.Caps[set], iso.capsRaw[set]))
	}
	tw.Flush()

	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	seccomp := iso.Seccomp
	if iso.Seccomp == "filter" {
		seccomp = fmt.Sprintf("filter (%d filters)", iso.Filters)
	}
	fmt.Fprintf(tw, "\nSECCOMP\t%s\n", seccomp)
	nnp := "no"
	if iso.NoNewPrivs {
		nnp = "yes"
	}
	fmt.Fprintf(tw, "NO_NEW_PRIVS\t%s\n", nnp)
	fmt.Fprintf(tw, "UID MAP\t%s\n", mapSummary(iso.UIDMap))
	fmt.Fprintf(tw, "GID MAP\t%s\n", mapSummary(iso.GIDMap))
	return tw.Flush()
}

func capSummary(names []string, raw uint64) string {
	switch {
	case raw == 0:
		return "none"
	case raw&allCaps == allCaps:
		return fmt.Sprintf("all (%d)", len(names))
	}
	return strings.Join(names, " ")
}

func mapSummary(m []IDMapping) string {
	if len(m) == 1 && m[0].ContainerID == 0 && m[0].HostID == 0 && m[0].Size == 4294967295 {
		return "host ids (no mapping)"
	}
	if len(m) == 0 {
		return "none (no ids mapped)"
	}
	var parts []string
	for _, e := range m {
		parts = append(parts, fmt.Sprintf("%d-%d -> %d-%d", e.ContainerID, uint64(e.ContainerID)+uint64(e.Size)-1,
			e.HostID, uint64(e.HostID)+uint64(e.Size)-1))
	}
	return strings.Join(parts, ", ")
}
