package network

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PortMapping publishes a container port on the host.
type PortMapping struct {
	// HostIP is the host address the port is published on; the zero Addr means all of
	// the host's addresses (loopback included).
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	// Protocol is "tcp" or "udp".
	Protocol string `json:"protocol"`
}

// String is Docker's `berth port` form: "80/tcp -> 0.0.0.0:18080".
func (p PortMapping) String() string {
	return fmt.Sprintf("%d/%s -> %s", p.ContainerPort, p.Protocol, netip.AddrPortFrom(p.hostIPOrAny(), p.HostPort))
}

func (p PortMapping) hostIPOrAny() netip.Addr {
	if p.HostIP.IsValid() {
		return p.HostIP
	}
	return netip.IPv4Unspecified()
}

// ParsePublish reads one -p/--publish value:
//
//	[hostIP:][hostPort:]containerPort[/tcp|/udp]
//
// where either port may be a range (8000-8009), hostIP may be empty ("127.0.0.1::80") and
// a missing host port means "pick a free one". A host range must be as long as the
// container range.
func ParsePublish(s string) ([]PortMapping, error) {
	bad := func(why string) error { return fmt.Errorf("invalid publish %q: %s", s, why) }
	spec, proto := s, "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		spec, proto = s[:i], strings.ToLower(s[i+1:])
		if proto != "tcp" && proto != "udp" {
			return nil, bad(fmt.Sprintf("protocol %q is not tcp or udp", s[i+1:]))
		}
	}
	var hostIP, hostPorts, ctrPorts string
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 1:
		ctrPorts = parts[0]
	case 2:
		hostPorts, ctrPorts = parts[0], parts[1]
	case 3:
		hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
	default:
		if strings.Contains(spec, "[") || strings.Count(spec, ":") > 2 {
			return nil, bad("IPv6 host addresses are not supported (containers have IPv4 only)")
		}
		return nil, bad("expected [hostIP:][hostPort:]containerPort[/proto]")
	}
	var ip netip.Addr
	if hostIP != "" {
		a, err := netip.ParseAddr(hostIP)
		if err != nil {
			return nil, bad(fmt.Sprintf("host address %q is not an IP address", hostIP))
		}
		if !a.Is4() {
			return nil, bad("IPv6 host addresses are not supported (containers have IPv4 only)")
		}
		if !a.IsUnspecified() {
			ip = a
		}
	}
	if ctrPorts == "" {
		return nil, bad("no container port")
	}
	cLo, cHi, err := parsePortRange(ctrPorts, false)
	if err != nil {
		return nil, bad("container port: " + err.Error())
	}
	var hLo, hHi uint16
	if hostPorts != "" {
		if hLo, hHi, err = parsePortRange(hostPorts, true); err != nil {
			return nil, bad("host port: " + err.Error())
		}
		if hHi-hLo != cHi-cLo {
			return nil, bad(fmt.Sprintf("host range %s and container range %s differ in length", hostPorts, ctrPorts))
		}
	}
	var out []PortMapping
	for i := 0; i <= int(cHi-cLo); i++ {
		pm := PortMapping{HostIP: ip, ContainerPort: cLo + uint16(i), Protocol: proto}
		if hLo != 0 {
			pm.HostPort = hLo + uint16(i)
		}
		out = append(out, pm)
	}
	return out, nil
}

func parsePortRange(s string, zeroOK bool) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parsePort(lo, zeroOK && !isRange)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return a, a, nil
	}
	b, err := parsePort(hi, false)
	if err != nil {
		return 0, 0, err
	}
	if b < a {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return a, b, nil
}

func parsePort(s string, zeroOK bool) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// ExposedPorts turns an image's ExposedPorts keys ("80/tcp", "53/udp", "8080") into the
// mappings of -P: every port published on a host port picked at attach time.
func ExposedPorts(exposed map[string]struct{}) ([]PortMapping, error) {
	keys := make([]string, 0, len(exposed))
	for k := range exposed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []PortMapping
	for _, k := range keys {
		port, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" {
			// sctp and others are not published; Docker would need an sctp-aware NAT.
			return nil, fmt.Errorf("exposed port %q: protocol %q is not supported (tcp or udp)", k, proto)
		}
		lo, hi, err := parsePortRange(port, false)
		if err != nil {
			return nil, fmt.Errorf("exposed port %q: %w", k, err)
		}
		for p := int(lo); p <= int(hi); p++ {
			out = append(out, PortMapping{ContainerPort: uint16(p), Protocol: proto})
		}
	}
	return out, nil
}

// portsInUse lists the host ports already published by other containers.
func (st *state) portsInUse() map[portKey]string {
	used := map[portKey]string{}
	for id, r := range st.Containers {
		for _, p := range r.Ports {
			used[portKey{p.Protocol, p.HostPort}] = id
		}
	}
	return used
}

type portKey struct {
	proto string
	port  uint16
}

// resolvePorts checks the requested mappings against other containers' and the host's
// sockets, and picks free host ports for those without one.
func resolvePorts(st *state, req []PortMapping) ([]PortMapping, error) {
	used := st.portsInUse()
	out := make([]PortMapping, 0, len(req))
	for _, p := range req {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return nil, fmt.Errorf("publish %d/%s: protocol is not tcp or udp", p.ContainerPort, p.Protocol)
		}
		if p.ContainerPort == 0 {
			return nil, fmt.Errorf("publish: container port 0")
		}
		if p.HostIP.IsValid() && !p.HostIP.Is4() {
			return nil, fmt.Errorf("publish %s: IPv6 host addresses are not supported", p.HostIP)
		}
		if p.HostPort == 0 {
			port, err := pickHostPort(p, used)
			if err != nil {
				return nil, err
			}
			p.HostPort = port
		} else {
			// One host port per protocol, whatever the address: a mapping on 0.0.0.0 and
			// one on 127.0.0.1 for the same port would shadow each other.
			if owner, ok := used[portKey{p.Protocol, p.HostPort}]; ok {
				return nil, fmt.Errorf("publish %s: host port %d/%s is already published by container %s", p.hostIPOrAny(), p.HostPort, p.Protocol, shortID(owner))
			}
			if err := probeHostPort(p.hostIPOrAny(), p.HostPort, p.Protocol); err != nil {
				return nil, fmt.Errorf("publish %s:%d/%s: the port is in use on the host: %w", p.hostIPOrAny(), p.HostPort, p.Protocol, err)
			}
		}
		used[portKey{p.Protocol, p.HostPort}] = "(this container)"
		out = append(out, p)
	}
	return out, nil
}

// pickHostPort chooses a free host port in the kernel's ephemeral range, starting at a
// random point so concurrent engines rarely probe the same ports.
func pickHostPort(p PortMapping, used map[portKey]string) (uint16, error) {
	lo, hi := ephemeralRange()
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		port := uint16(lo + (start+i)%n)
		if _, taken := used[portKey{p.Protocol, port}]; taken {
			continue
		}
		if probeHostPort(p.hostIPOrAny(), port, p.Protocol) == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("publish %d/%s: no free host port in %d-%d", p.ContainerPort, p.Protocol, lo, hi)
}

func ephemeralRange() (int, int) {
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			b, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a > 0 && b >= a && b < 65536 {
				lo, hi = a, b
			}
		}
	}
	return lo, hi
}

// probeHostPort binds the port to see whether a host process holds it. DNAT would
// silently steal its traffic, so a published port that a host server already uses is
// refused, as Docker's proxy would fail to bind it.
func probeHostPort(ip netip.Addr, port uint16, proto string) error {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	// TIME_WAIT connections of an earlier user do not make the port busy.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	if err := unix.Bind(fd, sa); err != nil {
		if err == unix.EADDRNOTAVAIL {
			return fmt.Errorf("%s is not an address of this host", ip)
		}
		return fmt.Errorf("bind %s: %w", netip.AddrPortFrom(ip, port), err)
	}
	return nil
}
