package nsview

import (
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// Need says which details a Scan gathers beyond the inode, type, process count and lowest
// pid of each namespace. Each costs syscalls per namespace, so callers ask only for what
// they print.
type Need uint

const (
	// NeedProcess reads the PPID, UID and command line of each namespace's lowest pid.
	NeedProcess Need = 1 << iota
	// NeedRelations asks the kernel for each namespace's owner user namespace and, for pid
	// and user namespaces, its parent (NS_GET_USERNS, NS_GET_PARENT).
	NeedRelations
	// NeedGhosts adds the owners and parents that no process is in any more (implies
	// NeedRelations); the tree views need them to hang their children on.
	NeedGhosts
	// NeedNetNSID asks rtnetlink for each network namespace's id (RTM_GETNSID).
	NeedNetNSID
	// NeedNSFS lists where each namespace is bind-mounted (nsfs mounts in mountinfo).
	NeedNSFS
)

// Options configure a Scan.
type Options struct {
	// Types restricts the scan; zero means every type.
	Types TypeSet
	// Need selects the extra details.
	Need Need
	// StateDirs are where container records are looked for; nil means DefaultStateDirs().
	StateDirs []StateDir
	// NoOwners skips container attribution altogether.
	NoOwners bool
}

// Namespace is one namespace as the kernel reports it.
type Namespace struct {
	Inode  uint64
	Type   Type
	NProcs int
	// Pid is the lowest pid in the namespace; 0 when no process is in it (a namespace kept
	// alive by a bind mount, an open descriptor or a child namespace).
	Pid int
	// Parent (pid and user namespaces) and Owner (the owning user namespace) are inodes;
	// 0 when unknown, not applicable or outside what this process may see. Filled with
	// NeedRelations.
	Parent, Owner uint64
	// NetNSID is the id rtnetlink gives this network namespace as seen from ours;
	// NetNSIDUnassigned when it has none, and NetNSIDUnknown when not asked or not a
	// network namespace.
	NetNSID int
	// NSFS lists the paths the namespace is bind-mounted on (NeedNSFS).
	NSFS []string
	// Container is the owner of the namespace: a container that created it, or the host
	// for the initial namespaces; nil when neither is known.
	Container *Owner

	ownerUID int // the owning user namespace's creator, for namespaces without a process
	relDone  bool
}

// NetNSID values that are not ids.
const (
	NetNSIDUnassigned = -1
	NetNSIDUnknown    = -2
)

// Process is what a Snapshot knows about a namespace's lowest pid.
type Process struct {
	Pid, PPid int
	UID       int // -1 when unknown
	Command   string
	StartTime uint64
	ok        bool
}

type procNS struct {
	pid int
	ns  [numTypes]uint64
}

// Snapshot is the namespaces of the host at one moment.
type Snapshot struct {
	// Namespaces are sorted by inode, as lsns prints them.
	Namespaces []*Namespace
	// Host holds the inodes of the host's initial namespaces, by type.
	Host [numTypes]uint64
	// Containers are the live containers whose records were found.
	Containers []*Container
	// Warnings are container records that could not be read; the scan goes on without them.
	Warnings []string

	types TypeSet
	byIno map[uint64]*Namespace
	procs []procNS
	info  map[int]*Process
	nsfs  map[uint64][]string // bind mounts by inode
}

// Scan reads every process's namespaces from /proc and, as opts asks, the details of each
// namespace and its container.
func Scan(opts Options) (*Snapshot, error) {
	types := opts.Types
	if types == 0 {
		types = AllTypeSet
	}
	list := types.Types()
	pids, err := listPids()
	if err != nil {
		return nil, err
	}
	// The kernel lists /proc in pid order; NamespacesOf relies on it, so make sure.
	sort.Ints(pids)
	s := &Snapshot{
		types: types,
		byIno: make(map[uint64]*Namespace, 64),
		procs: make([]procNS, 0, len(pids)),
		info:  make(map[int]*Process),
	}
	var r nsReader
	for _, pid := range pids {
		p := procNS{pid: pid}
		if err := r.read(pid, list, &p.ns); err != nil {
			return nil, err
		}
		seen := false
		for _, t := range list {
			ino := p.ns[t]
			if ino == 0 {
				continue
			}
			seen = true
			ns := s.byIno[ino]
			if ns == nil {
				ns = &Namespace{Inode: ino, Type: t, Pid: pid, NetNSID: NetNSIDUnknown}
				s.byIno[ino] = ns
				s.Namespaces = append(s.Namespaces, ns)
			} else if pid < ns.Pid {
				ns.Pid = pid
			}
			ns.NProcs++
		}
		if seen {
			s.procs = append(s.procs, p)
		}
	}
	s.findHost()

	need := opts.Need
	if need&NeedGhosts != 0 {
		need |= NeedRelations
	}
	var mounts []nsfsMount
	mounts, err = readNSFSMounts()
	if err != nil {
		return nil, err
	}
	s.addPersistent(mounts, need)
	if need&NeedRelations != 0 {
		s.readRelations(need&NeedGhosts != 0)
	}
	sort.Slice(s.Namespaces, func(i, j int) bool { return s.Namespaces[i].Inode < s.Namespaces[j].Inode })
	if need&NeedNSFS != 0 {
		for _, m := range mounts {
			if ns := s.byIno[m.ino]; ns != nil && !contains(ns.NSFS, m.target) {
				ns.NSFS = append(ns.NSFS, m.target)
			}
		}
	}
	if need&NeedNetNSID != 0 && types.Has(Net) {
		s.readNetNSIDs()
	}
	if need&NeedProcess != 0 {
		for _, ns := range s.Namespaces {
			if ns.Pid != 0 {
				s.Process(ns.Pid)
			}
		}
	}
	if !opts.NoOwners {
		dirs := opts.StateDirs
		if dirs == nil {
			dirs = DefaultStateDirs()
		}
		s.attribute(dirs)
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Lookup returns the namespace with that inode, or nil.
func (s *Snapshot) Lookup(ino uint64) *Namespace { return s.byIno[ino] }

// NamespacesOf returns the inodes of pid's namespaces as the scan saw them (0 for types
// not scanned or not readable); ok is false when the scan did not see pid.
func (s *Snapshot) NamespacesOf(pid int) (ns [numTypes]uint64, ok bool) {
	i := sort.Search(len(s.procs), func(i int) bool { return s.procs[i].pid >= pid })
	if i < len(s.procs) && s.procs[i].pid == pid {
		return s.procs[i].ns, true
	}
	return ns, false
}

// Pids lists the processes the scan saw in the namespace, ascending.
func (s *Snapshot) Pids(ns *Namespace) []int {
	var out []int
	for _, p := range s.procs {
		if p.ns[ns.Type] == ns.Inode {
			out = append(out, p.pid)
		}
	}
	return out
}

// Process returns the PPID, UID, command and start time of pid, read once and cached. A
// process that exited since the scan comes back with only its pid.
func (s *Snapshot) Process(pid int) *Process {
	if p := s.info[pid]; p != nil {
		return p
	}
	p := &Process{Pid: pid, UID: -1}
	s.info[pid] = p
	st, err := readStat(pid)
	if err != nil {
		return p
	}
	p.PPid, p.StartTime, p.ok = st.ppid, st.startTime, true
	if uid, err := procUID(pid); err == nil {
		p.UID = uid
	}
	p.Command = procCommand(pid)
	return p
}

// findHost takes the initial namespaces from kthreadd (pid 2 with parent 0), whose
// namespaces are the kernel's own, or else from pid 1; a type neither shows stays 0.
func (s *Snapshot) findHost() {
	refs := []int{}
	if st, err := readStat(2); err == nil && st.ppid == 0 {
		refs = append(refs, 2)
	}
	refs = append(refs, 1)
	for _, pid := range refs {
		ns, ok := s.NamespacesOf(pid)
		if !ok {
			continue
		}
		for t := range ns {
			if s.Host[t] == 0 {
				s.Host[t] = ns[t]
			}
		}
	}
}

// openNS opens a namespace to ask the kernel about it: through its lowest pid, or through
// one of its bind mounts when no process is in it.
func (s *Snapshot) openNS(ns *Namespace, mounts []string) (int, error) {
	var path string
	if ns.Pid != 0 {
		path = fmt.Sprintf("%s/%d/ns/%s", procRoot, ns.Pid, ns.Type)
	} else if len(mounts) > 0 {
		path = mounts[0]
	} else {
		return -1, fmt.Errorf("namespace %s:[%d] has neither a process nor a mount", ns.Type, ns.Inode)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// A pid can be reused between the scan and now; the inode tells.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != ns.Inode {
		unix.Close(fd)
		return -1, fmt.Errorf("open %s: no longer namespace %d", path, ns.Inode)
	}
	return fd, nil
}
