package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-containers/berth/internal/atomicfile"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// state is the whole of the manager's memory, one JSON file replaced atomically (write a
// temporary file, rename). A process killed at any point leaves either the old or the new
// file, never a mix, and every kernel object is recorded here before it is made, so the
// next command can find and remove whatever a killed one left.
type state struct {
	// Instance names this state root's nftables table and its veths, so two roots on one
	// host (tests use temporary ones) never touch each other's objects.
	Instance   string              `json:"instance"`
	Networks   map[string]*Network `json:"networks"`
	Containers map[string]*record  `json:"containers"`
}

const (
	stateAttaching = "attaching"
	stateAttached  = "attached"
)

// record is one attached container.
type record struct {
	ContainerID string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	Hostname    string   `json:"hostname"`
	Aliases     []string `json:"aliases,omitempty"`
	Mode        Mode     `json:"mode"`
	// SharedWith is the container whose stack a ModeContainer container uses.
	SharedWith string `json:"sharedWith,omitempty"`
	NetnsPath  string `json:"netnsPath,omitempty"`
	// The namespace's identity when attached: a path that now names another namespace
	// (a reused pid) is told apart by it.
	NetnsDev uint64 `json:"netnsDev,omitempty"`
	NetnsIno uint64 `json:"netnsIno,omitempty"`
	// State is "attaching" while kernel objects are being made: a record left in that
	// state (only a killed process leaves one, as the lock is held throughout) is undone.
	State     string        `json:"state"`
	Endpoints []endpoint    `json:"endpoints,omitempty"`
	Ports     []PortMapping `json:"ports,omitempty"`
	Created   time.Time     `json:"created"`
}

type endpoint struct {
	NetworkID string     `json:"network"`
	IfName    string     `json:"ifName"`
	HostVeth  string     `json:"hostVeth"`
	Address   netip.Addr `json:"address"`
	MAC       string     `json:"mac"`
	Aliases   []string   `json:"aliases,omitempty"`
}

// Manager is a handle on the networks of one state root. Its methods may be called from
// many goroutines and processes at once: each takes the root's lock.
type Manager struct {
	root string
	dir  string
	// hostResolv and hostHosts are the host's files, read for new containers.
	hostResolv string
	hostHosts  string
}

// Open returns the manager of the networks under root/networks (root is the engine's
// state root, DefaultRoot() unless overridden), creating the directory on first use.
// It touches no kernel object.
func Open(root string) (*Manager, error) {
	if root == "" {
		return nil, errors.New("network: empty state root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("network: state root %q: %w", root, err)
	}
	m := &Manager{root: abs, dir: filepath.Join(abs, "networks"), hostResolv: "/etc/resolv.conf", hostHosts: "/etc/hosts"}
	if err := os.MkdirAll(filepath.Join(m.dir, "containers"), 0o700); err != nil {
		return nil, fmt.Errorf("network: create state directory: %w", err)
	}
	return m, nil
}

// Root is the state root the manager was opened on.
func (m *Manager) Root() string { return m.root }

// lock takes the root's lock: exclusive for any change, shared for reading.
func (m *Manager) lock(exclusive bool) (func(), error) {
	p := filepath.Join(m.dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network: open lock %s: %w", p, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network: flock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

func (m *Manager) statePath() string { return filepath.Join(m.dir, "state.json") }

// load reads the state; a missing file is a fresh state with a new instance id.
func (m *Manager) load() (*state, error) {
	st := &state{Networks: map[string]*Network{}, Containers: map[string]*record{}}
	data, err := os.ReadFile(m.statePath())
	if errors.Is(err, os.ErrNotExist) {
		st.Instance = randomHex(4)
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network: read state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("network: state file %s is corrupt: %w", m.statePath(), err)
	}
	if st.Instance == "" {
		return nil, fmt.Errorf("network: state file %s has no instance id", m.statePath())
	}
	if st.Networks == nil {
		st.Networks = map[string]*Network{}
	}
	if st.Containers == nil {
		st.Containers = map[string]*record{}
	}
	return st, nil
}

// save replaces the state file atomically. No fsync: the file must survive a killed
// process, not a power cut (after which every attachment is stale anyway and repair
// starts from the kernel's side).
func (m *Manager) save(st *state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("network: encode state: %w", err)
	}
	if err := atomicfile.Write(m.statePath(), data, 0o600); err != nil {
		return fmt.Errorf("network: replace state: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// findNetwork resolves a network by name, full id or unique id prefix.
func (st *state) findNetwork(ref string) (*Network, error) {
	for _, n := range st.Networks {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	var found *Network
	if len(ref) >= 3 {
		for _, n := range st.Networks {
			if len(n.ID) >= len(ref) && n.ID[:len(ref)] == ref {
				if found != nil {
					return nil, fmt.Errorf("network %q is ambiguous: matches %s and %s", ref, found.Name, n.Name)
				}
				found = n
			}
		}
	}
	if found == nil {
		return nil, &NotFoundError{Kind: "network", Ref: ref}
	}
	return found, nil
}

// findContainer resolves an attached container by name, full id or unique id prefix.
func (st *state) findContainer(ref string) (*record, error) {
	if r, ok := st.Containers[ref]; ok {
		return r, nil
	}
	for _, r := range st.Containers {
		if r.Name != "" && r.Name == ref {
			return r, nil
		}
	}
	var found *record
	for id, r := range st.Containers {
		if len(ref) >= 3 && len(id) >= len(ref) && id[:len(ref)] == ref {
			if found != nil {
				return nil, fmt.Errorf("container %q is ambiguous: matches %s and %s", ref, found.ContainerID, id)
			}
			found = r
		}
	}
	if found == nil {
		return nil, &NotFoundError{Kind: "container", Ref: ref}
	}
	return found, nil
}

// NotFoundError is returned for an unknown network or container.
type NotFoundError struct{ Kind, Ref string }

func (e *NotFoundError) Error() string {
	if e.Kind == "container" {
		return fmt.Sprintf("no container %q is attached to a network", e.Ref)
	}
	return fmt.Sprintf("no such %s: %s", e.Kind, e.Ref)
}

// membersOf lists the attached records with an endpoint on network id.
func (st *state) membersOf(id string) []*record {
	var out []*record
	for _, r := range st.Containers {
		for _, ep := range r.Endpoints {
			if ep.NetworkID == id {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
