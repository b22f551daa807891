package network

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const hostsHeader = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::	ip6-localnet
ff00::	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// HostsLocalOnly is the /etc/hosts of a container without a network: localhost only.
const HostsLocalOnly = hostsHeader

// ResolvConf is the host's resolv.conf at hostResolv as a container in its own network
// namespace can use it (see resolvConfFor).
func ResolvConf(hostResolv string) string { return resolvConfFor(hostResolv) }

// hostsFor is a container's /etc/hosts: localhost, its own addresses with its hostname
// and name, and on user networks every other member under its name, aliases and short
// id. This is berth's name resolution: no DNS server, the files are rewritten in place
// whenever membership changes.
func hostsFor(st *state, r *record) string {
	var b strings.Builder
	b.WriteString(hostsHeader)
	self := []string{r.Hostname}
	if r.Name != "" && r.Name != r.Hostname {
		self = append(self, r.Name)
	}
	for _, ep := range r.Endpoints {
		fmt.Fprintf(&b, "%s\t%s\n", ep.Address, strings.Join(self, " "))
	}
	type line struct {
		ip    netip.Addr
		names string
	}
	var peers []line
	for _, ep := range r.Endpoints {
		n := st.Networks[ep.NetworkID]
		if n == nil || n.IsDefault() {
			continue
		}
		for _, o := range st.membersOf(n.ID) {
			if o.ContainerID == r.ContainerID || o.State != stateAttached {
				continue
			}
			for _, oep := range o.Endpoints {
				if oep.NetworkID != n.ID {
					continue
				}
				names := []string{}
				if o.Name != "" {
					names = append(names, o.Name)
				}
				names = append(names, oep.Aliases...)
				names = append(names, shortID(o.ContainerID))
				peers = append(peers, line{oep.Address, strings.Join(names, " ")})
			}
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].ip.Less(peers[j].ip) })
	for _, p := range peers {
		fmt.Fprintf(&b, "%s\t%s\n", p.ip, p.names)
	}
	return b.String()
}

// resolvConfFor is the host's resolv.conf as a container in its own network namespace
// can use it: loopback nameservers (a local caching resolver, systemd-resolved's
// 127.0.0.53) are unreachable from there and are dropped; systemd-resolved's upstream
// list is used in their place when there is one; with no server left, Docker's
// fallback (Google's public resolvers) is written so name lookups fail loudly rather
// than silently hang on nothing. IPv6 servers are dropped: containers have IPv4 only.
func resolvConfFor(hostResolv string) string {
	servers, other := readResolv(hostResolv)
	keep := filterServers(servers)
	if len(keep) == 0 && len(servers) > 0 {
		if up, _ := readResolv("/run/systemd/resolve/resolv.conf"); len(up) > 0 {
			keep = filterServers(up)
		}
	}
	if len(keep) == 0 {
		keep = []string{"8.8.8.8", "8.8.4.4"}
	}
	var b strings.Builder
	for _, s := range keep {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func filterServers(servers []string) []string {
	var keep []string
	for _, s := range servers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.IsLoopback() || !a.Is4() {
			continue
		}
		keep = append(keep, s)
	}
	return keep
}

// readResolv splits a resolv.conf into nameservers and the search/domain/options lines.
func readResolv(path string) (servers, other []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) > 1 {
				servers = append(servers, fields[1])
			}
		case "search", "domain", "options":
			other = append(other, strings.Join(fields, " "))
		}
	}
	return servers, other
}

// writeFiles writes a container's three files (hosts, resolv.conf, hostname).
func (m *Manager) writeFiles(r *record, hosts, resolv, hostname string) error {
	dir := m.containerDir(r.ContainerID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("network: container %s: %w", r.ContainerID, err)
	}
	for name, data := range map[string]string{"hosts": hosts, "resolv.conf": resolv, "hostname": hostname} {
		if err := writeInPlace(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("network: container %s: %w", r.ContainerID, err)
		}
	}
	return nil
}

// writeInPlace replaces a file's contents without replacing the file: containers see it
// through a bind mount of this very inode, so a rename would go unseen. A reader never
// sees it empty: the new text is written over the old (padded with newlines to the old
// length when shorter), and only then is the file cut to length.
func writeInPlace(path, data string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	buf := []byte(data)
	if old := fi.Size(); old > int64(len(buf)) {
		pad := make([]byte, old)
		copy(pad, buf)
		for i := len(buf); i < len(pad); i++ {
			pad[i] = '\n'
		}
		buf = pad
	} else if old == int64(len(buf)) {
		cur := make([]byte, old)
		if n, _ := f.ReadAt(cur, 0); n == len(cur) && string(cur) == data {
			return nil
		}
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	return nil
}

// updatePeers rewrites the hosts file of every attached container on the user networks
// in ids.
func (m *Manager) updatePeers(st *state, ids map[string]bool) error {
	done := map[string]bool{}
	for id := range ids {
		n := st.Networks[id]
		if n == nil || n.IsDefault() {
			continue
		}
		for _, r := range st.membersOf(id) {
			if done[r.ContainerID] || r.State != stateAttached {
				continue
			}
			done[r.ContainerID] = true
			p := filepath.Join(m.containerDir(r.ContainerID), "hosts")
			if err := writeInPlace(p, hostsFor(st, r)); err != nil {
				return fmt.Errorf("network: update /etc/hosts of container %s: %w", r.ContainerID, err)
			}
		}
	}
	return nil
}

func hostHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}
