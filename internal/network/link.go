package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethName is a new host end name for a veth: "bv" and 13 random hex digits. It is
// recorded before the veth is made, so repair can find it; it is random rather than
// derived from the container so that a container attached again at once never meets
// the previous veth, which the kernel may still be deleting.
func vethName() string {
	return VethPrefix + randomHex(7)[:13]
}

// macFor derives a locally administered MAC from an IPv4 address, as Docker does: an
// address reused by a later container keeps its MAC, so neighbours' ARP caches stay right.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0xb7, b[0], b[1], b[2], b[3]}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().As4()
	return &net.IPNet{IP: net.IP(a[:]), Mask: net.CIDRMask(p.Bits(), 32)}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV)
}

// ensureBridge makes n's bridge if it is missing (first use, after a reboot, or after
// someone deleted it) and returns its index and whether it was made now.
func ensureBridge(n *Network) (int, bool, error) {
	if l, err := netlink.LinkByName(n.Bridge); err == nil {
		if l.Type() != "bridge" {
			return 0, false, fmt.Errorf("network %s: device %s exists and is a %s, not a bridge", n.Name, n.Bridge, l.Type())
		}
		return l.Attrs().Index, false, nil
	} else if !isNotFound(err) {
		return 0, false, fmt.Errorf("network %s: look up bridge %s: %w", n.Name, n.Bridge, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = n.Bridge
	attrs.HardwareAddr = macFor(n.Gateway)
	attrs.MTU = n.MTU
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		return 0, false, fmt.Errorf("network %s: create bridge %s: %w", n.Name, n.Bridge, err)
	}
	fail := func(what string, err error) (int, bool, error) {
		netlink.LinkDel(br)
		return 0, false, fmt.Errorf("network %s: bridge %s: %s: %w", n.Name, n.Bridge, what, err)
	}
	gw := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: prefixToIPNet(gw)}); err != nil {
		return fail("add address "+gw.String(), err)
	}
	// Published ports are reached from 127.0.0.1 by DNAT in the output hook; the
	// rerouted packet still has a loopback source, which the kernel drops on a
	// non-loopback device unless route_localnet is set on it.
	if err := writeSysctl("net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return fail("enable route_localnet", err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fail("set up", err)
	}
	return br.Index, true, nil
}

// enableForwarding turns on IPv4 forwarding, which NAT to and from containers needs (as
// Docker does; it is a host-wide setting and is left on).
func enableForwarding() error {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return fmt.Errorf("network: enable IPv4 forwarding: %w", err)
	}
	return nil
}

func writeSysctl(name, value string) error {
	p := "/proc/sys/" + name
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// deleteLink removes a link by name; a link already gone is not an error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// netnsRef is an open network namespace with its identity.
type netnsRef struct {
	fd       netns.NsHandle
	dev, ino uint64
	path     string
}

func openNetns(path string) (*netnsRef, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a namespace file (nsfs)", path)
	}
	// An nsfs file of another type (a mount namespace) would be refused later with a
	// vaguer error.
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	r := &netnsRef{fd: netns.NsHandle(fd), dev: uint64(st.Dev), ino: st.Ino, path: path}
	// The calling thread's namespace is the one netlink talks to (a process's threads
	// can be in different ones).
	var hs unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &hs); err == nil {
		if hs.Ino == st.Ino && hs.Dev == st.Dev {
			r.close()
			return nil, fmt.Errorf("%s is the host's network namespace: use the host network mode instead", path)
		}
	}
	return r, nil
}

func (r *netnsRef) close() { unix.Close(int(r.fd)) }

// nsHandle opens a netlink socket inside the namespace: every later request on it acts
// there, without moving this thread.
func (r *netnsRef) nsHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(r.fd, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", r.path, err)
	}
	return h, nil
}

// loUp sets the namespace's loopback up (ifindex 1 in every network namespace).
func loUp(h *netlink.Handle, path string) error {
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", path, err)
	}
	return nil
}

// addVeth makes the veth pair of one endpoint: the host end on the bridge, the other end
// created directly inside the container's namespace under its final name (no move and
// rename), then addressed, up, and given the default route when gw is valid.
func addVeth(ns *netnsRef, h *netlink.Handle, ep endpoint, n *Network, brIndex int, gw netip.Addr) error {
	prefixBits := n.Subnet.Bits()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ep.HostVeth
	attrs.MTU = n.MTU
	attrs.Flags = net.FlagUp
	mac, _ := net.ParseMAC(ep.MAC)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ep.IfName, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(ns.fd)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s (peer %s in %s): %w", ep.HostVeth, ep.IfName, ns.path, err)
	}
	if err := netlink.LinkSetMasterByIndex(veth, brIndex); err != nil {
		return fmt.Errorf("attach veth %s to bridge (index %d): %w", ep.HostVeth, brIndex, err)
	}
	in, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ep.IfName, ns.path, err)
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(ep.Address, prefixBits))}
	if err := h.AddrAdd(in, addr); err != nil {
		return fmt.Errorf("add address %s to %s in %s: %w", addr.IPNet, ep.IfName, ns.path, err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("set %s up in %s: %w", ep.IfName, ns.path, err)
	}
	if gw.IsValid() {
		g := gw.As4()
		rt := &netlink.Route{LinkIndex: in.Attrs().Index, Gw: net.IP(g[:])}
		if err := h.RouteAdd(rt); err != nil {
			return fmt.Errorf("add default route via %s on %s in %s: %w", gw, ep.IfName, ns.path, err)
		}
	}
	return nil
}

// hostRoutes lists the IPv4 destinations the host routes already (its connected
// networks and static routes), which a new subnet must not overlap.
func hostRoutes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if ones == 0 || a.Unmap().IsLoopback() {
			continue
		}
		if r.Table == unix.RT_TABLE_LOCAL && ones == 32 {
			// The local table's host entries: covered by their connected routes.
			continue
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), ones).Masked())
	}
	return out, nil
}

// setDown sets a link down if it exists. A veth whose container namespace is gone (or
// going) is only set down: the kernel deletes the pair with the namespace, in the
// background, and deleting it here would cost a synchronize_net (15-30 ms) on the
// engine's stop path. Down, the host end carries nothing, so the address it had can be
// handed out again even if something still holds the old namespace.
func setDown(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkSetDown(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	return nil
}
