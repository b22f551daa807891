package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// begin takes the exclusive lock, loads the state and repairs what killed processes
// left. Every mutating method starts with it.
func (m *Manager) begin() (*state, *firewall, func(), error) {
	unlock, err := m.lock(true)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := m.load()
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	fw, err := newFirewall(st.Instance)
	if err != nil {
		unlock()
		return nil, nil, nil, fmt.Errorf("network: %w", err)
	}
	if err := m.repairLocked(st, fw); err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return st, fw, unlock, nil
}

// Create makes a user network: its record, its bridge and its firewall rules.
func (m *Manager) Create(name string, opts CreateOptions) (*Network, error) {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	n, err := newNetwork(st, name, opts)
	if err != nil {
		return nil, err
	}
	st.Networks[n.ID] = n
	if err := m.save(st); err != nil {
		return nil, err
	}
	if _, err := m.ensureInfra(st, fw, n); err != nil {
		// Nothing half-made: the bridge and rules go with the record.
		rmErr := m.removeInfra(fw, n)
		delete(st.Networks, n.ID)
		if saveErr := m.save(st); saveErr != nil || rmErr != nil {
			return nil, errors.Join(err, rmErr, saveErr)
		}
		return nil, err
	}
	c := *n
	return &c, nil
}

// ensureInfra makes sure n's bridge, the table and n's rules are in the kernel.
func (m *Manager) ensureInfra(st *state, fw *firewall, n *Network) (int, error) {
	idx, created, err := ensureBridge(n)
	if err != nil {
		return 0, err
	}
	if !n.Internal {
		if err := enableForwarding(); err != nil {
			return 0, err
		}
	}
	ok, err := fw.exists()
	if err != nil {
		return 0, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if !ok {
		if err := fw.rebuild(st); err != nil {
			return 0, fmt.Errorf("network %s: %w", n.Name, err)
		}
		return idx, nil
	}
	if created {
		// A bridge that had to be made again may have lost its rules too, or not:
		// replace them.
		tag := networkTag(n.ID)
		if _, err := fw.deleteTagged(func(t string) bool { return t == tag }, fw.post, fw.fwd); err != nil {
			return 0, fmt.Errorf("network %s: %w", n.Name, err)
		}
		fw.queueNetwork(n)
		if err := fw.conn.Flush(); err != nil {
			return 0, fmt.Errorf("network %s: nftables: add rules: %w", n.Name, err)
		}
	}
	return idx, nil
}

func (m *Manager) removeInfra(fw *firewall, n *Network) error {
	var errs []error
	if err := deleteLink(n.Bridge); err != nil {
		errs = append(errs, fmt.Errorf("network %s: bridge: %w", n.Name, err))
	}
	tag := networkTag(n.ID)
	if _, err := fw.deleteTagged(func(t string) bool { return t == tag }, fw.post, fw.fwd); err != nil {
		errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
	}
	return errors.Join(errs...)
}

// InUseError is returned by Remove for a network that containers are still on.
type InUseError struct {
	Network    string
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s is in use by %d container(s): %s; disconnect or remove them first",
		e.Network, len(e.Containers), strings.Join(e.Containers, ", "))
}

// Remove deletes a user network (by name, id or id prefix): its bridge, its rules, its
// record. It fails with an *InUseError while containers are attached to it.
func (m *Manager) Remove(ref string) error {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if ref == HostNetwork || ref == NoneNetwork {
		return fmt.Errorf("network %s is predefined and cannot be removed", ref)
	}
	n, err := st.findNetwork(ref)
	if err != nil {
		return err
	}
	if n.IsDefault() {
		return fmt.Errorf("network %s is predefined and cannot be removed", n.Name)
	}
	if members := st.membersOf(n.ID); len(members) > 0 {
		var names []string
		for _, r := range members {
			names = append(names, displayName(r))
		}
		sort.Strings(names)
		return &InUseError{Network: n.Name, Containers: names}
	}
	if err := m.removeInfra(fw, n); err != nil {
		return err
	}
	delete(st.Networks, n.ID)
	return m.save(st)
}

func displayName(r *record) string {
	if r.Name != "" {
		return r.Name
	}
	return shortID(r.ContainerID)
}

// List returns the bridge networks (the default one first, then by name).
func (m *Manager) List() ([]NetworkInfo, error) {
	st, err := m.readState()
	if err != nil {
		return nil, err
	}
	var out []NetworkInfo
	for _, n := range st.Networks {
		out = append(out, infoOf(st, n))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IsDefault() != out[j].IsDefault() {
			return out[i].IsDefault()
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Inspect returns one network with its containers.
func (m *Manager) Inspect(ref string) (*NetworkInfo, error) {
	st, err := m.readState()
	if err != nil {
		return nil, err
	}
	n, err := st.findNetwork(ref)
	if err != nil {
		return nil, err
	}
	info := infoOf(st, n)
	return &info, nil
}

// readState is the state for reading, with the default network's record in it (made
// and saved on first use, so `ls` shows it from the start).
func (m *Manager) readState() (*state, error) {
	unlock, err := m.lock(false)
	if err != nil {
		return nil, err
	}
	st, err := m.load()
	unlock()
	if err != nil {
		return nil, err
	}
	for _, n := range st.Networks {
		if n.IsDefault() {
			return st, nil
		}
	}
	st, _, unlock, err = m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := ensureDefault(st); err != nil {
		return nil, err
	}
	return st, m.save(st)
}

// Attach gives a container its network: for the bridge mode, a veth pair per network with
// an address, the default route, NAT and published ports; for none, lo up; for host and
// container:NAME, only the files. It returns what the engine must put into the
// container. On failure nothing of the attachment is left.
func (m *Manager) Attach(ctx context.Context, a Attachment) (*Result, error) {
	if err := checkName("container id", a.ContainerID); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if a.Name != "" {
		if err := checkName("container", a.Name); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	for _, al := range a.Aliases {
		if err := checkName("alias", al); err != nil {
			return nil, fmt.Errorf("network: container %s: %w", a.ContainerID, err)
		}
	}
	mode, target, err := ParseMode(a.Networks)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", a.ContainerID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, fw, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if old, ok := st.Containers[a.ContainerID]; ok {
		return nil, fmt.Errorf("network: container %s is already attached (%s mode); detach it first", a.ContainerID, old.Mode)
	}
	if a.Name != "" {
		for _, o := range st.Containers {
			if o.Name == a.Name {
				return nil, fmt.Errorf("network: container name %s is already used by container %s", a.Name, shortID(o.ContainerID))
			}
		}
	}
	r := &record{ContainerID: a.ContainerID, Name: a.Name, Hostname: a.Hostname, Aliases: a.Aliases,
		Mode: mode, State: stateAttaching, Created: time.Now().UTC()}
	if r.Hostname == "" {
		r.Hostname = shortID(a.ContainerID)
	}
	if mode != ModeBridge && len(a.Ports) > 0 {
		return nil, fmt.Errorf("network: container %s: ports cannot be published in %s network mode", a.ContainerID, mode)
	}
	switch mode {
	case ModeHost:
		return m.attachHost(st, r, a)
	case ModeContainer:
		return m.attachShared(st, r, target)
	}
	nsPath := a.NetnsPath
	if nsPath == "" && a.Pid > 0 {
		nsPath = fmt.Sprintf("/proc/%d/ns/net", a.Pid)
	}
	if nsPath == "" {
		return nil, fmt.Errorf("network: container %s: no network namespace given (NetnsPath or Pid)", a.ContainerID)
	}
	ns, err := openNetns(nsPath)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", a.ContainerID, err)
	}
	defer ns.close()
	r.NetnsPath, r.NetnsDev, r.NetnsIno = nsPath, ns.dev, ns.ino
	for _, o := range st.Containers {
		if o.NetnsIno == ns.ino && o.NetnsDev == ns.dev && o.Mode != ModeContainer {
			return nil, fmt.Errorf("network: container %s: network namespace %s is already attached for container %s", a.ContainerID, nsPath, shortID(o.ContainerID))
		}
	}
	if mode == ModeNone {
		return m.attachNone(st, r, ns)
	}
	return m.attachBridge(ctx, st, fw, r, ns, a)
}

func (m *Manager) attachHost(st *state, r *record, a Attachment) (*Result, error) {
	if a.Hostname == "" {
		r.Hostname = hostHostname()
	}
	hosts, err := os.ReadFile(m.hostHosts)
	if err != nil {
		hosts = []byte(hostsHeader)
	}
	resolv, err := os.ReadFile(m.hostResolv)
	if err != nil {
		resolv = nil
	}
	return m.finishSimple(st, r, string(hosts), string(resolv), r.Hostname+"\n")
}

func (m *Manager) attachNone(st *state, r *record, ns *netnsRef) (*Result, error) {
	h, err := ns.nsHandle()
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", r.ContainerID, err)
	}
	defer h.Close()
	if err := loUp(h, ns.path); err != nil {
		return nil, fmt.Errorf("network: container %s: %w", r.ContainerID, err)
	}
	return m.finishSimple(st, r, hostsHeader, resolvConfFor(m.hostResolv), r.Hostname+"\n")
}

// finishSimple records a host or none attachment: there is no kernel object to undo,
// so the record is written attached straight away, after its files.
func (m *Manager) finishSimple(st *state, r *record, hosts, resolv, hostname string) (*Result, error) {
	r.State = stateAttached
	if err := m.writeFiles(r, hosts, resolv, hostname); err != nil {
		os.RemoveAll(m.containerDir(r.ContainerID))
		return nil, err
	}
	st.Containers[r.ContainerID] = r
	if err := m.save(st); err != nil {
		os.RemoveAll(m.containerDir(r.ContainerID))
		return nil, err
	}
	return m.resultOf(st, r, hosts, resolv, hostname), nil
}

func (m *Manager) attachShared(st *state, r *record, target string) (*Result, error) {
	t, err := st.findContainer(target)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: network container:%s: %w", r.ContainerID, target, err)
	}
	if t.SharedWith != "" {
		t = st.Containers[t.SharedWith]
		if t == nil {
			return nil, fmt.Errorf("network: container %s: container %s shares a container that is gone", r.ContainerID, target)
		}
	}
	if t.Mode == ModeHost {
		return nil, fmt.Errorf("network: container %s: container %s uses the host network: use --network host", r.ContainerID, target)
	}
	if t.NetnsPath != "" {
		if !sameNetns(t.NetnsPath, t.NetnsDev, t.NetnsIno) {
			return nil, fmt.Errorf("network: container %s: the network namespace of container %s (%s) is gone", r.ContainerID, target, t.NetnsPath)
		}
	}
	r.SharedWith, r.NetnsPath, r.NetnsDev, r.NetnsIno = t.ContainerID, t.NetnsPath, t.NetnsDev, t.NetnsIno
	r.Hostname = t.Hostname
	r.State = stateAttached
	st.Containers[r.ContainerID] = r
	if err := m.save(st); err != nil {
		return nil, err
	}
	return m.resultOf(st, r, "", "", ""), nil
}

func sameNetns(path string, dev, ino uint64) bool {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return false
	}
	return uint64(s.Dev) == dev && s.Ino == ino
}

func (m *Manager) attachBridge(ctx context.Context, st *state, fw *firewall, r *record, ns *netnsRef, a Attachment) (*Result, error) {
	refs := a.Networks
	if len(refs) == 0 {
		refs = []string{DefaultNetwork}
	}
	var nets []*Network
	seen := map[string]bool{}
	for _, ref := range refs {
		if ref == DefaultNetwork {
			if err := ensureDefault(st); err != nil {
				return nil, err
			}
		}
		n, err := st.findNetwork(ref)
		if err != nil {
			return nil, fmt.Errorf("network: container %s: %w", r.ContainerID, err)
		}
		if seen[n.ID] {
			return nil, fmt.Errorf("network: container %s: network %s given twice", r.ContainerID, n.Name)
		}
		seen[n.ID] = true
		nets = append(nets, n)
	}
	if len(a.Aliases) > 0 && nets[0].IsDefault() && len(nets) == 1 {
		return nil, fmt.Errorf("network: container %s: aliases work on user networks only, not on the default bridge", r.ContainerID)
	}
	for i, n := range nets {
		addr, err := allocate(st, n)
		if err != nil {
			return nil, fmt.Errorf("network: container %s: %w", r.ContainerID, err)
		}
		ep := endpoint{NetworkID: n.ID, IfName: fmt.Sprintf("eth%d", i), HostVeth: vethName(),
			Address: addr, MAC: macFor(addr).String()}
		if !n.IsDefault() {
			ep.Aliases = a.Aliases
		}
		r.Endpoints = append(r.Endpoints, ep)
	}
	if len(a.Ports) > 0 {
		if portEndpoint(st, r) == nil {
			return nil, fmt.Errorf("network: container %s: ports cannot be published on internal networks only", r.ContainerID)
		}
		ports, err := resolvePorts(st, a.Ports)
		if err != nil {
			return nil, fmt.Errorf("network: container %s: %w", r.ContainerID, err)
		}
		r.Ports = ports
	}
	// The intent is recorded before any kernel object exists; a process killed from
	// here on leaves a record that the next command undoes.
	st.Containers[r.ContainerID] = r
	if err := m.save(st); err != nil {
		delete(st.Containers, r.ContainerID)
		return nil, err
	}
	fail := func(err error) (*Result, error) {
		if uerr := m.undo(st, fw, r); uerr != nil {
			return nil, errors.Join(err, uerr)
		}
		if serr := m.save(st); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, err
	}
	if err := m.plumb(ctx, st, fw, r, ns, nets); err != nil {
		return fail(fmt.Errorf("network: container %s: %w", r.ContainerID, err))
	}
	r.State = stateAttached
	hosts, resolv, hostname := hostsFor(st, r), resolvConfFor(m.hostResolv), r.Hostname+"\n"
	if err := m.writeFiles(r, hosts, resolv, hostname); err != nil {
		r.State = stateAttaching
		return fail(err)
	}
	changed := map[string]bool{}
	for _, n := range nets {
		changed[n.ID] = true
	}
	if err := m.updatePeers(st, changed); err != nil {
		r.State = stateAttaching
		return fail(err)
	}
	if err := m.save(st); err != nil {
		r.State = stateAttaching
		return fail(err)
	}
	return m.resultOf(st, r, hosts, resolv, hostname), nil
}

// testHookAfterVeth runs after each veth is made; tests use it to list the veths they
// caused and to kill the process midway.
var testHookAfterVeth func(name string)

// plumb makes the kernel objects of r's endpoints in nets and its port rules.
func (m *Manager) plumb(ctx context.Context, st *state, fw *firewall, r *record, ns *netnsRef, nets []*Network) error {
	brIdx := make([]int, len(nets))
	for i, n := range nets {
		idx, err := m.ensureInfra(st, fw, n)
		if err != nil {
			return err
		}
		brIdx[i] = idx
	}
	h, err := ns.nsHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := loUp(h, ns.path); err != nil {
		return err
	}
	pe := portEndpoint(st, r)
	routed := hasDefaultRoute(st, r, len(r.Endpoints)-len(nets))
	for i, n := range nets {
		if err := ctx.Err(); err != nil {
			return err
		}
		ep := r.Endpoints[len(r.Endpoints)-len(nets)+i]
		var gw netip.Addr
		if !n.Internal && !routed {
			gw, routed = n.Gateway, true
		}
		if err := addVeth(ns, h, ep, n, brIdx[i], gw); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if testHookAfterVeth != nil {
			testHookAfterVeth(ep.HostVeth)
		}
	}
	if pe != nil && len(r.Ports) > 0 {
		if err := fw.queuePorts(st, r); err != nil {
			return err
		}
		if err := fw.conn.Flush(); err != nil {
			return fmt.Errorf("nftables: publish ports: %w", err)
		}
	}
	return nil
}

// hasDefaultRoute tells whether one of r's first k endpoints already carries the
// default route (the first one on a non-internal network does).
func hasDefaultRoute(st *state, r *record, k int) bool {
	for _, ep := range r.Endpoints[:k] {
		if n := st.Networks[ep.NetworkID]; n != nil && !n.Internal {
			return true
		}
	}
	return false
}

// portEndpoint is the endpoint published ports lead to: the first on a network with a
// way out.
func portEndpoint(st *state, r *record) *endpoint {
	for i, ep := range r.Endpoints {
		if n := st.Networks[ep.NetworkID]; n != nil && !n.Internal {
			return &r.Endpoints[i]
		}
	}
	return nil
}

func (m *Manager) resultOf(st *state, r *record, hosts, resolv, hostname string) *Result {
	filesOf := r
	if r.SharedWith != "" {
		filesOf = st.Containers[r.SharedWith]
	}
	dir := m.containerDir(filesOf.ContainerID)
	res := &Result{ContainerID: r.ContainerID, Mode: r.Mode, Ports: append([]PortMapping(nil), r.Ports...),
		HostsPath: filepath.Join(dir, "hosts"), ResolvConfPath: filepath.Join(dir, "resolv.conf"), HostnamePath: filepath.Join(dir, "hostname")}
	if r.Mode == ModeContainer {
		res.NetnsPath = r.NetnsPath
		b1, _ := os.ReadFile(res.HostsPath)
		b2, _ := os.ReadFile(res.ResolvConfPath)
		b3, _ := os.ReadFile(res.HostnamePath)
		hosts, resolv, hostname = string(b1), string(b2), string(b3)
		res.Interfaces = interfacesOf(st, filesOf)
	} else {
		res.Interfaces = interfacesOf(st, r)
	}
	res.Hosts, res.ResolvConf, res.Hostname = hosts, resolv, hostname
	return res
}

func interfacesOf(st *state, r *record) []Interface {
	var out []Interface
	routed := false
	for _, ep := range r.Endpoints {
		n := st.Networks[ep.NetworkID]
		if n == nil {
			continue
		}
		i := Interface{Network: n.Name, NetworkID: n.ID, IfName: ep.IfName, HostVeth: ep.HostVeth,
			Address: netip.PrefixFrom(ep.Address, n.Subnet.Bits()), MAC: ep.MAC}
		if !n.Internal && !routed {
			i.Gateway, routed = n.Gateway, true
		}
		out = append(out, i)
	}
	return out
}

// undo removes everything of r: its veths, its port rules, its files and its record,
// and updates the hosts files of the containers it shared networks with. On a kernel
// error the record stays, so a later command tries again.
func (m *Manager) undo(st *state, fw *firewall, r *record) error {
	var errs []error
	alive := r.NetnsPath != "" && sameNetns(r.NetnsPath, r.NetnsDev, r.NetnsIno)
	for _, ep := range r.Endpoints {
		rm := setDown
		if alive {
			rm = deleteLink
		}
		if err := rm(ep.HostVeth); err != nil {
			errs = append(errs, fmt.Errorf("container %s: veth %s: %w", r.ContainerID, ep.HostVeth, err))
		}
	}
	if len(r.Ports) > 0 {
		tag := containerTag(r.ContainerID)
		if _, err := fw.deleteTagged(func(t string) bool { return t == tag }, fw.pub); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", r.ContainerID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network: %w", errors.Join(errs...))
	}
	if r.SharedWith == "" {
		if err := os.RemoveAll(m.containerDir(r.ContainerID)); err != nil {
			return fmt.Errorf("network: container %s: remove files: %w", r.ContainerID, err)
		}
	}
	delete(st.Containers, r.ContainerID)
	changed := map[string]bool{}
	for _, ep := range r.Endpoints {
		changed[ep.NetworkID] = true
	}
	return m.updatePeers(st, changed)
}

// Detach removes a container's network: veths (and so its addresses and routes), port
// rules, addresses in the allocator, files, and its entry in its peers' hosts files.
// Called after the container's namespace is gone (the engine's stop path), it only sets
// the veths down and leaves their deletion to the kernel, which does it in the
// background with the namespace; called while the namespace lives, it deletes them.
// Containers sharing its stack (container:NAME) are detached with it. Detaching a
// container that is not attached is not an error, so the engine may call it on every
// cleanup path.
func (m *Manager) Detach(containerID string) error {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	r, ok := st.Containers[containerID]
	if !ok {
		return nil
	}
	var errs []error
	for _, o := range st.Containers {
		if o.SharedWith == r.ContainerID {
			if err := m.undo(st, fw, o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := m.undo(st, fw, r); err != nil {
		errs = append(errs, err)
	}
	if err := m.save(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Connect attaches a running bridged container to one more network (`berth network
// connect`); the new interface is eth<N>.
func (m *Manager) Connect(ctx context.Context, container, network string, aliases []string) (*Result, error) {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := st.findContainer(container)
	if err != nil {
		return nil, fmt.Errorf("network connect: %w", err)
	}
	if r.Mode != ModeBridge {
		return nil, fmt.Errorf("network connect: container %s uses the %s network mode and cannot join a bridge network", displayName(r), r.Mode)
	}
	if network == DefaultNetwork {
		if err := ensureDefault(st); err != nil {
			return nil, err
		}
	}
	n, err := st.findNetwork(network)
	if err != nil {
		return nil, fmt.Errorf("network connect: %w", err)
	}
	for _, ep := range r.Endpoints {
		if ep.NetworkID == n.ID {
			return nil, fmt.Errorf("network connect: container %s is already on network %s", displayName(r), n.Name)
		}
	}
	for _, al := range aliases {
		if err := checkName("alias", al); err != nil {
			return nil, fmt.Errorf("network connect: %w", err)
		}
	}
	ns, err := openNetns(r.NetnsPath)
	if err != nil || ns.ino != r.NetnsIno || ns.dev != r.NetnsDev {
		if ns != nil {
			ns.close()
		}
		return nil, fmt.Errorf("network connect: the network namespace of container %s (%s) is gone", displayName(r), r.NetnsPath)
	}
	defer ns.close()
	addr, err := allocate(st, n)
	if err != nil {
		return nil, fmt.Errorf("network connect: %w", err)
	}
	used := map[string]bool{}
	for _, ep := range r.Endpoints {
		used[ep.IfName] = true
	}
	ifn := ""
	for i := 0; ifn == ""; i++ {
		if c := fmt.Sprintf("eth%d", i); !used[c] {
			ifn = c
		}
	}
	ep := endpoint{NetworkID: n.ID, IfName: ifn, HostVeth: vethName(), Address: addr, MAC: macFor(addr).String()}
	if !n.IsDefault() {
		ep.Aliases = aliases
	}
	// The whole record goes back to attaching: a kill from here is repaired by
	// dropping this one endpoint (see repairLocked).
	r.Endpoints = append(r.Endpoints, ep)
	r.State = stateConnecting
	if err := m.save(st); err != nil {
		return nil, err
	}
	err = m.plumbOne(ctx, st, fw, r, ns, n)
	if err == nil {
		r.State = stateAttached
		err = m.afterEndpointChange(st, fw, r, n.ID)
	}
	if err != nil {
		r.State = stateAttached
		if derr := m.dropEndpoint(st, fw, r, n.ID); derr != nil {
			err = errors.Join(err, derr)
		}
		if serr := m.save(st); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("network connect: container %s to %s: %w", displayName(r), n.Name, err)
	}
	if err := m.save(st); err != nil {
		return nil, err
	}
	dir := m.containerDir(r.ContainerID)
	resolv, _ := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	hostname, _ := os.ReadFile(filepath.Join(dir, "hostname"))
	return m.resultOf(st, r, hostsFor(st, r), string(resolv), string(hostname)), nil
}

// stateConnecting marks a record whose last endpoint is being added by Connect.
const stateConnecting = "connecting"

func (m *Manager) plumbOne(ctx context.Context, st *state, fw *firewall, r *record, ns *netnsRef, n *Network) error {
	idx, err := m.ensureInfra(st, fw, n)
	if err != nil {
		return err
	}
	h, err := ns.nsHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	ep := r.Endpoints[len(r.Endpoints)-1]
	var gw netip.Addr
	if !n.Internal && !hasDefaultRoute(st, r, len(r.Endpoints)-1) {
		gw = n.Gateway
	}
	if err := addVeth(ns, h, ep, n, idx, gw); err != nil {
		return err
	}
	if testHookAfterVeth != nil {
		testHookAfterVeth(ep.HostVeth)
	}
	return nil
}

// afterEndpointChange rewrites the files and port rules after an endpoint on network id
// was added or removed.
func (m *Manager) afterEndpointChange(st *state, fw *firewall, r *record, id string) error {
	if len(r.Ports) > 0 {
		tag := containerTag(r.ContainerID)
		if _, err := fw.deleteTagged(func(t string) bool { return t == tag }, fw.pub); err != nil {
			return err
		}
		if portEndpoint(st, r) != nil {
			if err := fw.queuePorts(st, r); err != nil {
				return err
			}
			if err := fw.conn.Flush(); err != nil {
				return fmt.Errorf("nftables: publish ports: %w", err)
			}
		}
	}
	if err := writeInPlace(filepath.Join(m.containerDir(r.ContainerID), "hosts"), hostsFor(st, r)); err != nil {
		return err
	}
	return m.updatePeers(st, map[string]bool{id: true})
}

// dropEndpoint removes r's endpoint on network id (its veth, and with it the address
// and routes inside the container).
func (m *Manager) dropEndpoint(st *state, fw *firewall, r *record, id string) error {
	for i, ep := range r.Endpoints {
		if ep.NetworkID != id {
			continue
		}
		if err := deleteLink(ep.HostVeth); err != nil {
			return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
		}
		r.Endpoints = append(r.Endpoints[:i:i], r.Endpoints[i+1:]...)
		return m.afterEndpointChange(st, fw, r, id)
	}
	return nil
}

// Disconnect takes a container off one network (`berth network disconnect`).
func (m *Manager) Disconnect(container, network string) error {
	st, fw, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := st.findContainer(container)
	if err != nil {
		return fmt.Errorf("network disconnect: %w", err)
	}
	n, err := st.findNetwork(network)
	if err != nil {
		return fmt.Errorf("network disconnect: %w", err)
	}
	on := false
	for _, ep := range r.Endpoints {
		on = on || ep.NetworkID == n.ID
	}
	if !on {
		return fmt.Errorf("network disconnect: container %s is not on network %s", displayName(r), n.Name)
	}
	if err := m.dropEndpoint(st, fw, r, n.ID); err != nil {
		return fmt.Errorf("network disconnect: container %s from %s: %w", displayName(r), n.Name, err)
	}
	return m.save(st)
}

// Ports returns a container's published ports (`berth port`).
func (m *Manager) Ports(container string) ([]PortMapping, error) {
	unlock, err := m.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := m.load()
	if err != nil {
		return nil, err
	}
	r, err := st.findContainer(container)
	if err != nil {
		return nil, err
	}
	if r.SharedWith != "" {
		if t := st.Containers[r.SharedWith]; t != nil {
			r = t
		}
	}
	return append([]PortMapping(nil), r.Ports...), nil
}

// NetnsOf returns the network namespace path of an attached container, for the engine
// to join for --network container:NAME.
func (m *Manager) NetnsOf(container string) (string, error) {
	unlock, err := m.lock(false)
	if err != nil {
		return "", err
	}
	defer unlock()
	st, err := m.load()
	if err != nil {
		return "", err
	}
	r, err := st.findContainer(container)
	if err != nil {
		return "", err
	}
	if r.Mode == ModeHost {
		return "", fmt.Errorf("container %s uses the host network", displayName(r))
	}
	if !sameNetns(r.NetnsPath, r.NetnsDev, r.NetnsIno) {
		return "", fmt.Errorf("the network namespace of container %s (%s) is gone", displayName(r), r.NetnsPath)
	}
	return r.NetnsPath, nil
}
