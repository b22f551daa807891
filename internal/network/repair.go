package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netlink"
)

// repairLocked undoes what killed processes and vanished containers left, with the
// lock held. It is cheap (one link dump and the state already read) and runs at the
// start of every mutating call, so "the next command repairs":
//
//   - a record still "attaching" was left by a process killed during Attach (the lock
//     is held for the whole of an attach, so no live process can own one): undone;
//   - a record "connecting" lost its last endpoint the same way: that endpoint goes;
//   - a bridged container whose host veths are all gone has lost its network namespace
//     (the kernel deletes a veth pair with the namespace of either end): it is detached,
//     which frees its addresses and port rules and updates its peers' hosts files;
//   - a none-mode container whose namespace file is gone or names another namespace,
//     and a container:NAME container whose owner is gone, are detached;
//   - a container directory without a record is removed.
func (m *Manager) repairLocked(st *state, fw *firewall) error {
	links, err := linkList()
	if err != nil {
		return fmt.Errorf("network: repair: list links: %w", err)
	}
	have := make(map[string]bool, len(links))
	for _, l := range links {
		have[l.Attrs().Name] = true
	}
	ids := make([]string, 0, len(st.Containers))
	for id := range st.Containers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	changed := false
	var errs []error
	for _, id := range ids {
		r := st.Containers[id]
		if r == nil {
			continue // undone with the container it shared
		}
		stale := false
		switch {
		case r.State == stateAttaching:
			stale = true
		case r.State == stateConnecting:
			last := r.Endpoints[len(r.Endpoints)-1]
			r.State = stateAttached
			if err := m.dropEndpoint(st, fw, r, last.NetworkID); err != nil {
				errs = append(errs, fmt.Errorf("network: repair: container %s: %w", id, err))
				r.State = stateConnecting
				continue
			}
			changed = true
		case r.Mode == ModeBridge && len(r.Endpoints) > 0:
			var gone []string
			for _, ep := range r.Endpoints {
				if !have[ep.HostVeth] {
					gone = append(gone, ep.NetworkID)
				}
			}
			if len(gone) == len(r.Endpoints) {
				stale = true
				break
			}
			for _, nid := range gone {
				if err := m.dropEndpoint(st, fw, r, nid); err != nil {
					errs = append(errs, fmt.Errorf("network: repair: container %s: %w", id, err))
				}
				changed = true
			}
		case r.Mode == ModeBridge || r.Mode == ModeNone:
			stale = !sameNetns(r.NetnsPath, r.NetnsDev, r.NetnsIno)
		case r.Mode == ModeContainer:
			stale = st.Containers[r.SharedWith] == nil
		}
		if !stale {
			continue
		}
		changed = true
		for _, o := range st.Containers {
			if o.SharedWith == id {
				if err := m.undo(st, fw, o); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := m.undo(st, fw, r); err != nil {
			errs = append(errs, err)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(m.dir, "containers")); err == nil {
		for _, e := range ents {
			if _, ok := st.Containers[e.Name()]; !ok {
				if err := os.RemoveAll(filepath.Join(m.dir, "containers", e.Name())); err != nil {
					errs = append(errs, fmt.Errorf("network: repair: %w", err))
				}
			}
		}
	}
	if changed {
		if err := m.save(st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Repair does what every mutating call does first (see repairLocked), and also makes
// the kernel agree with the state: the firewall table is rewritten from the state in one
// transaction (rules someone deleted come back, rules of containers that are gone go),
// bridges of networks with containers are made again if missing, and veths on berth's
// bridges that no container owns are deleted.
func (m *Manager) Repair() error {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	brIdx := map[int]bool{}
	for _, n := range st.Networks {
		if len(st.membersOf(n.ID)) == 0 {
			if l, err := netlink.LinkByName(n.Bridge); err == nil {
				brIdx[l.Attrs().Index] = true
			}
			continue
		}
		idx, _, err := ensureBridge(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		brIdx[idx] = true
	}
	owned := map[string]bool{}
	for _, r := range st.Containers {
		for _, ep := range r.Endpoints {
			owned[ep.HostVeth] = true
		}
	}
	links, err := linkList()
	if err != nil {
		return fmt.Errorf("network: repair: list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "veth" && brIdx[a.MasterIndex] && !owned[a.Name] {
			if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("network: repair: delete stray veth %s: %w", a.Name, err))
			}
		}
	}
	if len(st.Networks) == 0 {
		if err := fw.remove(); err != nil {
			errs = append(errs, fmt.Errorf("network: repair: %w", err))
		}
	} else if err := fw.rebuild(st); err != nil {
		errs = append(errs, fmt.Errorf("network: repair: %w", err))
	}
	return errors.Join(errs...)
}

// Destroy removes every network of this state root (the default one included), their
// bridges, the firewall table and the state directory. It fails while containers are
// attached. Tests use it to leave nothing behind; an engine could offer it as a reset.
func (m *Manager) Destroy() error {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if len(st.Containers) > 0 {
		var names []string
		for _, r := range st.Containers {
			names = append(names, displayName(r))
		}
		sort.Strings(names)
		return fmt.Errorf("network: cannot destroy %s: containers are still attached: %v", m.dir, names)
	}
	var errs []error
	for _, n := range st.Networks {
		if err := deleteLink(n.Bridge); err != nil {
			errs = append(errs, fmt.Errorf("network %s: bridge: %w", n.Name, err))
		}
	}
	if err := fw.remove(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(m.dir); err != nil {
		return fmt.Errorf("network: remove %s: %w", m.dir, err)
	}
	return nil
}

// linkList lists the links, again when the kernel interrupted the dump (a link came or went
// meanwhile: netlink.ErrDumpInterrupted, whose partial list would make live veths look gone).
func linkList() ([]netlink.Link, error) {
	for tries := 0; ; tries++ {
		links, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || tries == 9 {
			return links, err
		}
	}
}
