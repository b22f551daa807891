package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The firewall is one nftables table per state root, "ip berth_<instance>", which berth
// owns whole: nothing of the host's ruleset is edited, and deleting the table removes
// every rule berth made. Rules carry a comment naming their owner ("c:<container id>",
// "n:<network id>", "base"), by which they are found and deleted.
//
//	chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump published }
//	chain output      { type nat hook output priority dstnat;     fib daddr type local jump published }
//	chain published   { [ip daddr HOSTIP] meta l4proto P th dport HP dnat to CIP:CP   per port }
//	chain postrouting { type nat hook postrouting priority srcnat;
//	                    ip saddr SUBNET oifname != BRIDGE masquerade                   per network
//	                    ip saddr 127.0.0.0/8 oifname BRIDGE masquerade }               per network
//	chain forward     { type filter hook forward priority filter;
//	                    iifname BRIDGE oifname "berth*" oifname != BRIDGE drop          per network
//	                    internal: iifname BRIDGE oifname != BRIDGE drop, and the reverse }
type firewall struct {
	conn                     *nftables.Conn
	table                    *nftables.Table
	pre, out, pub, post, fwd *nftables.Chain
}

func tableName(instance string) string { return "berth_" + instance }

func newFirewall(instance string) (*firewall, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: tableName(instance), Family: nftables.TableFamilyIPv4}
	fw := &firewall{conn: c, table: t}
	fw.pre = &nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}
	fw.out = &nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}
	fw.pub = &nftables.Chain{Name: "published", Table: t}
	fw.post = &nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}
	fw.fwd = &nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter}
	return fw, nil
}

func tagOf(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func containerTag(id string) string { return "c:" + id }
func networkTag(id string) string   { return "n:" + id }

// exists tells whether the table is in the kernel.
func (fw *firewall) exists() (bool, error) {
	_, err := fw.conn.ListTableOfFamily(fw.table.Name, fw.table.Family)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("nftables: look up table %s: %w", fw.table.Name, err)
}

// rebuild replaces the whole table with what st says, in one transaction: packets see
// the old ruleset or the new one, never a part.
func (fw *firewall) rebuild(st *state) error {
	c := fw.conn
	c.AddTable(fw.table)
	c.DelTable(fw.table)
	c.AddTable(fw.table)
	for _, ch := range []*nftables.Chain{fw.pre, fw.out, fw.pub, fw.post, fw.fwd} {
		c.AddChain(ch)
	}
	fw.queueBase()
	for _, n := range st.Networks {
		fw.queueNetwork(n)
	}
	for _, r := range st.Containers {
		// An attaching container's rules come from its own attach, later in the same
		// locked call.
		if r.State == stateAttaching {
			continue
		}
		if err := fw.queuePorts(st, r); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: write table %s: %w", fw.table.Name, err)
	}
	return nil
}

func (fw *firewall) remove() error {
	ok, err := fw.exists()
	if err != nil || !ok {
		return err
	}
	fw.conn.DelTable(fw.table)
	if err := fw.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table %s: %w", fw.table.Name, err)
	}
	return nil
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func (fw *firewall) add(ch *nftables.Chain, tag string, exprs ...expr.Any) {
	fw.conn.AddRule(&nftables.Rule{Table: fw.table, Chain: ch, Exprs: exprs, UserData: comment(tag)})
}

func (fw *firewall) queueBase() {
	local := []expr.Any{
		&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: fw.pub.Name},
	}
	fw.add(fw.pre, "base", local...)
	fw.add(fw.out, "base", local...)
}

// ifname is an interface name as nftables compares it: NUL-padded to IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func matchIf(key expr.MetaKey, op expr.CmpOp, name []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: name},
	}
}

func matchSaddr(p netip.Prefix) []expr.Any {
	a := p.Masked().Addr().As4()
	mask := []byte{0, 0, 0, 0}
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func (fw *firewall) queueNetwork(n *Network) {
	tag := networkTag(n.ID)
	br := ifname(n.Bridge)
	if !n.Internal {
		fw.add(fw.post, tag, cat(matchSaddr(n.Subnet), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), []expr.Any{&expr.Masq{}})...)
		fw.add(fw.post, tag, cat(matchSaddr(netip.MustParsePrefix("127.0.0.0/8")), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), []expr.Any{&expr.Masq{}})...)
	}
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	// Networks are isolated from each other, as on Docker.
	fw.add(fw.fwd, tag, cat(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
		matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, []byte(BridgePrefix)),
		[]expr.Any{&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: br}}, drop)...)
	if n.Internal {
		fw.add(fw.fwd, tag, cat(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), drop)...)
		fw.add(fw.fwd, tag, cat(matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), matchIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br), drop)...)
	}
}

// queuePorts adds a container's DNAT rules, to its address on its first network.
func (fw *firewall) queuePorts(st *state, r *record) error {
	if len(r.Ports) == 0 {
		return nil
	}
	if len(r.Endpoints) == 0 {
		return fmt.Errorf("container %s publishes ports but has no bridge network", r.ContainerID)
	}
	pe := portEndpoint(st, r)
	if pe == nil {
		return nil
	}
	caddr := pe.Address.As4()
	for _, p := range r.Ports {
		proto := byte(unix.IPPROTO_TCP)
		if p.Protocol == "udp" {
			proto = unix.IPPROTO_UDP
		}
		var e []expr.Any
		if p.HostIP.IsValid() {
			h := p.HostIP.As4()
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: h[:]})
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p.HostPort)},
			&expr.Immediate{Register: 1, Data: caddr[:]},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		)
		fw.add(fw.pub, containerTag(r.ContainerID), e...)
	}
	return nil
}

// deleteTagged deletes the rules of chains whose owner tag match accepts (never the
// "base" ones) in one transaction, and returns how many went.
func (fw *firewall) deleteTagged(match func(tag string) bool, chains ...*nftables.Chain) (int, error) {
	n := 0
	for _, ch := range chains {
		rules, err := fw.conn.GetRules(fw.table, ch)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return n, fmt.Errorf("nftables: list chain %s of %s: %w", ch.Name, fw.table.Name, err)
		}
		for _, r := range rules {
			if t := tagOf(r); t != "" && t != "base" && match(t) {
				r.Table, r.Chain = fw.table, ch
				if err := fw.conn.DelRule(r); err != nil {
					return n, fmt.Errorf("nftables: delete rule %d of %s: %w", r.Handle, ch.Name, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := fw.conn.Flush(); err != nil {
		return 0, fmt.Errorf("nftables: delete rules of %s: %w", fw.table.Name, err)
	}
	return n, nil
}
