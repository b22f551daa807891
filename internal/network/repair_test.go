package network

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func nftTable(t *testing.T, m *Manager) string {
	t.Helper()
	st, err := m.load()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("nft", "list", "table", "ip", tableName(st.Instance)).CombinedOutput()
	return string(out)
}

// A process killed in the middle of Attach leaves a veth and an "attaching" record; the
// next command removes both and frees the address.
func TestRepairAfterKilledAttach(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BERTH_NETTEST_CHILD=kill-after-veth", "BERTH_NETTEST_ROOT="+m.Root(),
		"BERTH_NETTEST_ID=killed1", "BERTH_NETTEST_NETNS="+ns, "BERTH_NETTEST_NETWORKS=bridge")
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("the child was to be killed midway; it ended with %v", err)
	}
	st, err := m.load()
	if err != nil {
		t.Fatal(err)
	}
	r := st.Containers["killed1"]
	if r == nil || r.State != stateAttaching {
		t.Fatalf("record after the kill: %+v; want one still attaching", r)
	}
	veth := r.Endpoints[0].HostVeth
	addr := r.Endpoints[0].Address
	if !linkExists(veth) {
		t.Fatalf("veth %s was not made before the kill", veth)
	}
	// Any mutating call repairs; Repair is the explicit one.
	if err := m.Repair(); err != nil {
		t.Fatal(err)
	}
	if linkExists(veth) {
		t.Errorf("veth %s left after repair", veth)
	}
	st, _ = m.load()
	if _, ok := st.Containers["killed1"]; ok {
		t.Errorf("record of the killed attach left after repair")
	}
	if _, err := os.Stat(m.containerDir("killed1")); err == nil {
		t.Errorf("files of the killed attach left after repair")
	}
	// Its address is free again: the allocator moves on, so check the used set.
	for _, o := range st.Containers {
		for _, ep := range o.Endpoints {
			if ep.Address == addr {
				t.Errorf("address %s still allocated to %s", addr, o.ContainerID)
			}
		}
	}
}

// A container whose namespace vanished without a Detach (the engine died with it) is
// detached by the next command: its port becomes free and its rule goes.
func TestRepairAfterVanishedContainer(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	ports, _ := ParsePublish("127.0.0.1:18081:80/udp")
	res := mustAttach(t, m, Attachment{ContainerID: "ghost", NetnsPath: ns, Ports: ports})
	if !strings.Contains(nftTable(t, m), `"c:ghost"`) {
		t.Fatalf("no rule for ghost's port:\n%s", nftTable(t, m))
	}
	// The namespace goes (its last reference was the bind mount); the kernel deletes the
	// veth pair with it, in the background.
	if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the veth to go with its namespace", func() bool { return !linkExists(res.Interfaces[0].HostVeth) })
	ns2 := newNetns(t)
	res2 := mustAttach(t, m, Attachment{ContainerID: "next", NetnsPath: ns2, Ports: ports})
	if len(res2.Ports) != 1 || res2.Ports[0].HostPort != 18081 {
		t.Errorf("port 18081/udp not reusable after repair: %v", res2.Ports)
	}
	table := nftTable(t, m)
	if strings.Contains(table, `"c:ghost"`) || !strings.Contains(table, `"c:next"`) {
		t.Errorf("after repair, the rules are:\n%s\nwant next's and not ghost's", table)
	}
	if err := m.Detach("next"); err != nil {
		t.Fatal(err)
	}
}

// Repair rewrites the firewall from the state when someone removed berth's table.
func TestRepairRestoresFirewall(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	ports, _ := ParsePublish("18082:80")
	mustAttach(t, m, Attachment{ContainerID: "fw1", NetnsPath: ns, Ports: ports})
	st, _ := m.load()
	if out, err := exec.Command("nft", "delete", "table", "ip", tableName(st.Instance)).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
	if err := m.Repair(); err != nil {
		t.Fatal(err)
	}
	table := nftTable(t, m)
	for _, want := range []string{"tcp dport 18082 dnat to 10.", "masquerade", `"c:fw1"`} {
		if !strings.Contains(table, want) {
			t.Errorf("repaired table lacks %q:\n%s", want, table)
		}
	}
	if err := m.Detach("fw1"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(nftTable(t, m), "dnat") {
		t.Errorf("DNAT rule left after detach:\n%s", nftTable(t, m))
	}
}

func TestAttachErrorsLeaveNothing(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	ctx := context.Background()
	cases := []struct {
		a    Attachment
		want string
	}{
		{Attachment{ContainerID: "e1", NetnsPath: ns, Networks: []string{"nosuch"}}, "no such network: nosuch"},
		{Attachment{ContainerID: "e2", NetnsPath: ns, Networks: []string{"none", "bridge"}}, "cannot be combined"},
		{Attachment{ContainerID: "e3", NetnsPath: "/proc/self/ns/mnt"}, "not a network namespace"},
		{Attachment{ContainerID: "e4", NetnsPath: "/proc/self/ns/net"}, "host's network namespace"},
		{Attachment{ContainerID: "e5"}, "no network namespace given"},
		{Attachment{ContainerID: "bad id!", NetnsPath: ns}, "invalid container id"},
		{Attachment{ContainerID: "e6", NetnsPath: ns, Networks: []string{"host"}, Ports: []PortMapping{{HostPort: 1, ContainerPort: 1}}}, "cannot be published in host network mode"},
		{Attachment{ContainerID: "e7", Networks: []string{"container:nobody"}}, `no container "nobody"`},
	}
	for _, c := range cases {
		_, err := m.Attach(ctx, c.a)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("attach %+v: %v; want an error with %q", c.a, err, c.want)
		}
	}
	// A host port that a host process holds is refused.
	l, err := netlinkListen(t)
	if err != nil {
		t.Fatal(err)
	}
	ports := []PortMapping{{HostPort: l, ContainerPort: 80, Protocol: "tcp"}}
	if _, err := m.Attach(ctx, Attachment{ContainerID: "e8", NetnsPath: ns, Ports: ports}); err == nil || !strings.Contains(err.Error(), "in use on the host") {
		t.Errorf("publish of a host-held port: %v; want in use on the host", err)
	}
	st, _ := m.load()
	if len(st.Containers) != 0 {
		t.Errorf("failed attaches left records: %v", st.Containers)
	}
	out, _ := inNetns(ns, "ip", "-o", "link").CombinedOutput()
	if strings.Count(string(out), "\n") != 1 {
		t.Errorf("failed attaches left links in the namespace:\n%s", out)
	}
}

// netlinkListen holds a TCP port on the host, as a host server would, until cleanup.
func netlinkListen(t *testing.T) (uint16, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	t.Cleanup(func() { l.Close() })
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}
