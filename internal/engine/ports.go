package engine

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-containers/berth/internal/network"
)

// PortBindingsFrom turns -p values into Docker's PortBindings ("80/tcp" -> host sides).
func PortBindingsFrom(publish []string) (map[string][]PortBinding, error) {
	out := map[string][]PortBinding{}
	for _, p := range publish {
		maps, err := network.ParsePublish(p)
		if err != nil {
			return nil, &UsageError{Msg: err.Error()}
		}
		for _, m := range maps {
			k := strconv.Itoa(int(m.ContainerPort)) + "/" + m.Protocol
			b := PortBinding{}
			if m.HostIP.IsValid() {
				b.HostIP = m.HostIP.String()
			}
			if m.HostPort != 0 {
				b.HostPort = strconv.Itoa(int(m.HostPort))
			}
			out[k] = append(out[k], b)
		}
	}
	return out, nil
}

// portMappings is what the network manager publishes: -p's bindings, and with -P every
// exposed port that -p did not bind, on a port the kernel picks.
func portMappings(c *Container) ([]network.PortMapping, error) {
	var out []network.PortMapping
	keys := make([]string, 0, len(c.HostConfig.PortBindings))
	for k := range c.HostConfig.PortBindings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bound := map[string]bool{}
	for _, k := range keys {
		port, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		cp, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port binding %q: bad container port", k)
		}
		bound[port+"/"+proto] = true
		for _, b := range c.HostConfig.PortBindings[k] {
			m := network.PortMapping{ContainerPort: uint16(cp), Protocol: proto}
			if b.HostIP != "" {
				ip, err := netip.ParseAddr(b.HostIP)
				if err != nil {
					return nil, fmt.Errorf("port binding %q: bad host address %q", k, b.HostIP)
				}
				if !ip.IsUnspecified() {
					m.HostIP = ip
				}
			}
			if b.HostPort != "" {
				hp, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err != nil {
					return nil, fmt.Errorf("port binding %q: bad host port %q", k, b.HostPort)
				}
				m.HostPort = uint16(hp)
			}
			out = append(out, m)
		}
	}
	if c.HostConfig.PublishAllPorts {
		rest := map[string]struct{}{}
		for k := range c.Config.ExposedPorts {
			port, proto, _ := strings.Cut(k, "/")
			if proto == "" {
				proto = "tcp"
			}
			if !bound[port+"/"+proto] {
				rest[k] = struct{}{}
			}
		}
		more, err := network.ExposedPorts(rest)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}
