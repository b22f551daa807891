// Package network gives containers their network stacks: the none, host, bridge and
// container:NAME modes, user-defined bridge networks, an address allocator that is safe
// across processes, outbound NAT, published ports, and the /etc/hosts, /etc/resolv.conf and
// /etc/hostname each container sees.
//
// It talks to the kernel directly: rtnetlink (vishvananda/netlink) for bridges, veth pairs,
// addresses and routes, and nf_tables netlink (google/nftables) for NAT and filtering, all in
// one table per state root. No daemon and no per-port proxy process: the engine calls
// Attach before it starts a container and Detach when it stops, and every mutating call
// first repairs whatever a killed process left behind.
package network

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the built-in networks, as Docker spells them.
const (
	DefaultNetwork = "bridge"
	HostNetwork    = "host"
	NoneNetwork    = "none"
)

// Kernel object names. Every bridge berth makes starts with BridgePrefix, and every host end
// of a veth pair with VethPrefix, so leftovers are recognisable at a glance.
const (
	BridgePrefix = "berth"
	VethPrefix   = "bv"
)

// Mode is how a container gets its network stack.
type Mode string

const (
	// ModeNone is a new network namespace with only lo, up.
	ModeNone Mode = "none"
	// ModeHost is the host's namespace: no isolation, the host's files.
	ModeHost Mode = "host"
	// ModeBridge is a new namespace with one veth per bridge network (the default network
	// or user networks).
	ModeBridge Mode = "bridge"
	// ModeContainer shares the network namespace and files of another container.
	ModeContainer Mode = "container"
)

// Network is a bridge network: the default "bridge" or one made by Create.
type Network struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Driver   string       `json:"driver"`
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`
	Internal bool         `json:"internal,omitempty"`
	// Bridge is the Linux bridge device.
	Bridge string `json:"bridge"`
	// MTU of the bridge and veths: the host's uplink MTU when it is below 1500, so
	// containers do not send packets the uplink must fragment or drop.
	MTU     int       `json:"mtu,omitempty"`
	Created time.Time `json:"created"`
	// Last is the address handed out most recently; the allocator goes on from there, so
	// a freed address is reused as late as possible (stale ARP and conntrack entries
	// for it have time to expire).
	Last netip.Addr `json:"last,omitzero"`
}

// IsDefault tells whether n is the default bridge network, on which containers do not
// find each other by name (as on Docker's).
func (n *Network) IsDefault() bool { return n.Name == DefaultNetwork }

// CreateOptions are the options of `berth network create`.
type CreateOptions struct {
	// Subnet in CIDR form; empty picks a free /24.
	Subnet string
	// Gateway inside Subnet; empty takes its first address.
	Gateway string
	// Internal networks have no route out of the host and no NAT.
	Internal bool
}

// Attachment is what the engine knows about a container when it connects it.
type Attachment struct {
	// ContainerID is the full container id (required).
	ContainerID string
	// Name is the container's name: other containers on a user network find it by it.
	Name string
	// Hostname for /etc/hostname and /etc/hosts; empty means the first 12 characters of
	// the id.
	Hostname string
	// NetnsPath is the container's network namespace (a bind-mounted nsfs file or
	// /proc/PID/ns/net); Pid may be given instead. Not needed for the host and
	// container: modes.
	NetnsPath string
	Pid       int
	// Networks: one of "none", "host", "container:NAME|ID", or bridge networks ("bridge"
	// and user networks, by name or id). Empty means "bridge".
	Networks []string
	// Aliases are more names under which the container is found on user networks.
	Aliases []string
	// Ports to publish (see ParsePublish); HostPort 0 picks a free port.
	Ports []PortMapping
}

// Interface is one of the container's interfaces on a bridge network.
type Interface struct {
	Network   string       `json:"network"`
	NetworkID string       `json:"networkID"`
	IfName    string       `json:"ifName"`
	HostVeth  string       `json:"hostVeth"`
	Address   netip.Prefix `json:"address"`
	Gateway   netip.Addr   `json:"gateway"`
	MAC       string       `json:"mac"`
}

// Result is what Attach did, and what the engine puts into the container.
type Result struct {
	ContainerID string `json:"containerID"`
	Mode        Mode   `json:"mode"`
	// NetnsPath is the namespace to join, for ModeContainer.
	NetnsPath  string        `json:"netnsPath,omitempty"`
	Interfaces []Interface   `json:"interfaces,omitempty"`
	Ports      []PortMapping `json:"ports,omitempty"`
	// The contents of the container's /etc/hosts, /etc/resolv.conf and /etc/hostname.
	Hosts      string `json:"-"`
	ResolvConf string `json:"-"`
	Hostname   string `json:"-"`
	// Files holding those contents, kept by the manager: the engine bind-mounts them. The
	// hosts file is rewritten in place whenever a container joins or leaves a user
	// network the container is on.
	HostsPath      string `json:"hostsPath"`
	ResolvConfPath string `json:"resolvConfPath"`
	HostnamePath   string `json:"hostnamePath"`
}

// IPs lists the container's addresses, one per bridge network.
func (r *Result) IPs() []netip.Addr {
	var ips []netip.Addr
	for _, i := range r.Interfaces {
		ips = append(ips, i.Address.Addr())
	}
	return ips
}

// DefaultRoot is the engine's state root: $BERTH_ROOT, or /var/lib/berth.
func DefaultRoot() string {
	if r := os.Getenv("BERTH_ROOT"); r != "" {
		return r
	}
	return "/var/lib/berth"
}

// validName is ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ without package regexp, whose compile at
// package init cost every berth command (the engine imports this package).
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return s != ""
}

func checkName(kind, s string) error {
	if len(s) > 128 || !validName(s) {
		return fmt.Errorf("invalid %s name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128", kind, s)
	}
	return nil
}

// ParseMode reads a container's --network values: the mode, and for ModeContainer the
// container whose stack is shared.
func ParseMode(networks []string) (Mode, string, error) {
	if len(networks) == 0 {
		return ModeBridge, "", nil
	}
	for _, n := range networks {
		special := n == NoneNetwork || n == HostNetwork || strings.HasPrefix(n, "container:")
		if special && len(networks) > 1 {
			return "", "", fmt.Errorf("network %q cannot be combined with other networks (%s)", n, strings.Join(networks, ", "))
		}
		switch {
		case n == NoneNetwork:
			return ModeNone, "", nil
		case n == HostNetwork:
			return ModeHost, "", nil
		case strings.HasPrefix(n, "container:"):
			target := strings.TrimPrefix(n, "container:")
			if target == "" {
				return "", "", fmt.Errorf("network %q: the container name or id is missing after \"container:\"", n)
			}
			return ModeContainer, target, nil
		case n == "":
			return "", "", fmt.Errorf("empty network name")
		}
	}
	return ModeBridge, "", nil
}

// containerDir holds a container's hosts, resolv.conf and hostname files.
func (m *Manager) containerDir(id string) string {
	return filepath.Join(m.dir, "containers", id)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
