package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// The default network's subnet is the first of these the host does not route already.
// 172.17.0.0/16 (Docker's) and 10.88.0.0/16 (Podman's) are left alone, so berth runs
// beside them.
var defaultSubnets = []string{"10.77.0.0/16", "10.76.0.0/16", "10.75.0.0/16", "10.74.0.0/16"}

// User networks without --subnet get a /24 from this pool.
var userPool = netip.MustParsePrefix("10.78.0.0/15")

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// subnetTaken says why p cannot be used, or "".
func subnetTaken(st *state, routes []netip.Prefix, p netip.Prefix) string {
	for _, n := range st.Networks {
		if overlaps(n.Subnet, p) {
			return fmt.Sprintf("it overlaps network %s (%s)", n.Name, n.Subnet)
		}
	}
	for _, r := range routes {
		if overlaps(r, p) {
			return fmt.Sprintf("it overlaps the host's route to %s", r)
		}
	}
	return ""
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (^uint32(0) >> p.Bits())
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// ensureDefault adds the default network's record if there is none yet. Its bridge is
// made at the first attach.
func ensureDefault(st *state) error {
	for _, n := range st.Networks {
		if n.IsDefault() {
			return nil
		}
	}
	routes, err := hostRoutes()
	if err != nil {
		return fmt.Errorf("network: choose the default subnet: %w", err)
	}
	var subnet netip.Prefix
	for _, s := range defaultSubnets {
		p := netip.MustParsePrefix(s)
		if subnetTaken(st, routes, p) == "" {
			subnet = p
			break
		}
	}
	if !subnet.IsValid() {
		return fmt.Errorf("network: no free subnet for the default network: %s are all routed on this host", strings.Join(defaultSubnets, ", "))
	}
	// berth0, unless another state root's default network has it.
	name := ""
	for i := 0; i < 100 && name == ""; i++ {
		cand := fmt.Sprintf("%s%d", BridgePrefix, i)
		if _, err := netlink.LinkByName(cand); err == nil {
			continue
		}
		taken := false
		for _, n := range st.Networks {
			taken = taken || n.Bridge == cand
		}
		if !taken {
			name = cand
		}
	}
	if name == "" {
		return fmt.Errorf("network: no free bridge name %s0-%s99 for the default network", BridgePrefix, BridgePrefix)
	}
	n := &Network{ID: randomHex(32), Name: DefaultNetwork, Driver: "bridge", Subnet: subnet,
		Gateway: subnet.Addr().Next(), Bridge: name, MTU: uplinkMTU(), Created: time.Now().UTC()}
	st.Networks[n.ID] = n
	return nil
}

// newNetwork validates a create request and returns the network's record.
func newNetwork(st *state, name string, opts CreateOptions) (*Network, error) {
	if err := checkName("network", name); err != nil {
		return nil, err
	}
	if name == DefaultNetwork || name == HostNetwork || name == NoneNetwork {
		return nil, fmt.Errorf("network %s is predefined and cannot be created", name)
	}
	if strings.HasPrefix(name, "container:") {
		return nil, fmt.Errorf("invalid network name %q", name)
	}
	for _, n := range st.Networks {
		if n.Name == name {
			return nil, fmt.Errorf("network %s already exists (id %s)", name, shortID(n.ID))
		}
	}
	routes, err := hostRoutes()
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	var subnet netip.Prefix
	if opts.Subnet != "" {
		p, err := netip.ParsePrefix(opts.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network %s: invalid subnet %q: %v", name, opts.Subnet, err)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("network %s: subnet %s is not IPv4 (containers have IPv4 only)", name, p)
		}
		if p.Bits() < 8 || p.Bits() > 30 {
			return nil, fmt.Errorf("network %s: subnet %s: the prefix must be between /8 and /30", name, p)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("network %s: subnet %s has host bits set (did you mean %s?)", name, p, p.Masked())
		}
		if why := subnetTaken(st, routes, p); why != "" {
			return nil, fmt.Errorf("network %s: subnet %s cannot be used: %s", name, p, why)
		}
		subnet = p
	} else {
		if opts.Gateway != "" {
			return nil, fmt.Errorf("network %s: --gateway needs --subnet", name)
		}
		base := userPool.Addr().As4()
		start := binary.BigEndian.Uint32(base[:])
		count := uint32(1) << (24 - userPool.Bits())
		for i := uint32(0); i < count; i++ {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], start+i<<8)
			p := netip.PrefixFrom(netip.AddrFrom4(b), 24)
			if subnetTaken(st, routes, p) == "" {
				subnet = p
				break
			}
		}
		if !subnet.IsValid() {
			return nil, fmt.Errorf("network %s: no free /24 left in %s: pass --subnet", name, userPool)
		}
	}
	gw := subnet.Addr().Next()
	if opts.Gateway != "" {
		g, err := netip.ParseAddr(opts.Gateway)
		if err != nil || !g.Is4() {
			return nil, fmt.Errorf("network %s: invalid gateway %q: not an IPv4 address", name, opts.Gateway)
		}
		if !subnet.Contains(g) || g == subnet.Addr() || g == broadcast(subnet) {
			return nil, fmt.Errorf("network %s: gateway %s is not a host address of subnet %s", name, g, subnet)
		}
		gw = g
	}
	id := randomHex(32)
	return &Network{ID: id, Name: name, Driver: "bridge", Subnet: subnet, Gateway: gw, Internal: opts.Internal,
		Bridge: BridgePrefix + "-" + id[:9], MTU: uplinkMTU(), Created: time.Now().UTC()}, nil
}

// allocate hands out the next free address of n after the last one handed out. The
// caller holds the lock and records the address before releasing it, so no two
// containers ever get one address.
func allocate(st *state, n *Network) (netip.Addr, error) {
	used := map[netip.Addr]bool{n.Gateway: true}
	for _, r := range st.Containers {
		for _, ep := range r.Endpoints {
			if ep.NetworkID == n.ID {
				used[ep.Address] = true
			}
		}
	}
	first := n.Subnet.Masked().Addr().Next()
	last := broadcast(n.Subnet).Prev()
	a := n.Last
	if !a.IsValid() || !n.Subnet.Contains(a) {
		a = last
	}
	size := 1 << (32 - n.Subnet.Bits())
	for i := 0; i < size; i++ {
		a = a.Next()
		if a.Compare(last) > 0 || a.Compare(first) < 0 {
			a = first
		}
		if !used[a] {
			n.Last = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s (%s) has no free address left", n.Name, n.Subnet)
}

// NetworkInfo is a network with its attached containers, for `berth network inspect`.
type NetworkInfo struct {
	Network
	Containers []EndpointInfo `json:"containers"`
}

// EndpointInfo is one container on a network.
type EndpointInfo struct {
	ContainerID string       `json:"containerID"`
	Name        string       `json:"name"`
	IfName      string       `json:"ifName"`
	HostVeth    string       `json:"hostVeth"`
	Address     netip.Prefix `json:"address"`
	MAC         string       `json:"mac"`
	Aliases     []string     `json:"aliases,omitempty"`
}

func infoOf(st *state, n *Network) NetworkInfo {
	info := NetworkInfo{Network: *n, Containers: []EndpointInfo{}}
	for _, r := range st.membersOf(n.ID) {
		if r.State != stateAttached {
			continue
		}
		for _, ep := range r.Endpoints {
			if ep.NetworkID == n.ID {
				info.Containers = append(info.Containers, EndpointInfo{ContainerID: r.ContainerID, Name: r.Name,
					IfName: ep.IfName, HostVeth: ep.HostVeth, Address: netip.PrefixFrom(ep.Address, n.Subnet.Bits()),
					MAC: ep.MAC, Aliases: ep.Aliases})
			}
		}
	}
	sort.Slice(info.Containers, func(i, j int) bool { return info.Containers[i].Address.Addr().Less(info.Containers[j].Address.Addr()) })
	return info
}

// uplinkMTU is the MTU of the interface of the host's default route, at most 1500.
func uplinkMTU() int {
	mtu := 1500
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return mtu
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU > 0 && l.Attrs().MTU < mtu {
			mtu = l.Attrs().MTU
		}
	}
	return mtu
}
