package network

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	ok := []struct {
		in   string
		want string
	}{
		{"18080:80", "80/tcp -> 0.0.0.0:18080"},
		{"127.0.0.1:18080:80", "80/tcp -> 127.0.0.1:18080"},
		{"0.0.0.0:53:53/udp", "53/udp -> 0.0.0.0:53"},
		{"80", "80/tcp -> 0.0.0.0:0"},
		{"127.0.0.1::80/TCP", "80/tcp -> 127.0.0.1:0"},
		{"8000-8001:80-81", "80/tcp -> 0.0.0.0:8000,81/tcp -> 0.0.0.0:8001"},
		{"7000-7001", "7000/tcp -> 0.0.0.0:0,7001/tcp -> 0.0.0.0:0"},
	}
	for _, c := range ok {
		pms, err := ParsePublish(c.in)
		if err != nil {
			t.Errorf("ParsePublish(%q): %v", c.in, err)
			continue
		}
		var got []string
		for _, p := range pms {
			got = append(got, p.String())
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("ParsePublish(%q) = %s, want %s", c.in, strings.Join(got, ","), c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "no container port"},
		{"80/sctp", "not tcp or udp"},
		{"x:80", "not a port number"},
		{"70000:80", "not a port number"},
		{"80:0", "not a port number"},
		{"1.2.3:80:80", "not an IP address"},
		{"[::1]:80:80", "IPv6"},
		{"::1:80:80", "IPv6"},
		{"8000-8002:80-81", "differ in length"},
		{"90-80", "ends before it starts"},
	}
	for _, c := range bad {
		_, err := ParsePublish(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.in)) {
			t.Errorf("ParsePublish(%q): %v; want an error naming the value and %q", c.in, err, c.want)
		}
	}
}

func TestExposedPorts(t *testing.T) {
	got, err := ExposedPorts(map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8080": {}})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, fmt.Sprintf("%d/%s:%d", p.ContainerPort, p.Protocol, p.HostPort))
	}
	if strings.Join(s, " ") != "53/udp:0 80/tcp:0 8080/tcp:0" {
		t.Errorf("ExposedPorts = %v", s)
	}
	if _, err := ExposedPorts(map[string]struct{}{"132/sctp": {}}); err == nil {
		t.Error("sctp accepted")
	}
}

func TestParseMode(t *testing.T) {
	for _, c := range []struct {
		in     []string
		mode   Mode
		target string
	}{
		{nil, ModeBridge, ""}, {[]string{"none"}, ModeNone, ""}, {[]string{"host"}, ModeHost, ""},
		{[]string{"container:web"}, ModeContainer, "web"}, {[]string{"a", "b"}, ModeBridge, ""},
	} {
		m, tg, err := ParseMode(c.in)
		if err != nil || m != c.mode || tg != c.target {
			t.Errorf("ParseMode(%v) = %s %q %v", c.in, m, tg, err)
		}
	}
	for _, in := range [][]string{{"host", "a"}, {"container:"}, {""}} {
		if _, _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%v) accepted", in)
		}
	}
}

func TestAllocatorWrapsAndSkipsUsed(t *testing.T) {
	n := &Network{ID: "n", Name: "small", Subnet: netip.MustParsePrefix("10.9.9.0/29"), Gateway: netip.MustParseAddr("10.9.9.1")}
	st := &state{Networks: map[string]*Network{"n": n}, Containers: map[string]*record{}}
	var got []string
	for i := 0; i < 5; i++ {
		a, err := allocate(st, n)
		if err != nil {
			t.Fatal(err)
		}
		st.Containers[a.String()] = &record{Endpoints: []endpoint{{NetworkID: "n", Address: a}}}
		got = append(got, a.String())
	}
	// .0 is the network, .1 the gateway, .7 the broadcast: five host addresses remain.
	if strings.Join(got, " ") != "10.9.9.2 10.9.9.3 10.9.9.4 10.9.9.5 10.9.9.6" {
		t.Errorf("allocated %v", got)
	}
	if _, err := allocate(st, n); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("full network: %v", err)
	}
	// Freed addresses come back only after the cursor wraps.
	delete(st.Containers, "10.9.9.3")
	delete(st.Containers, "10.9.9.5")
	a, _ := allocate(st, n)
	if a.String() != "10.9.9.3" {
		t.Errorf("after wrap got %s, want 10.9.9.3", a)
	}
}

func TestWriteInPlaceKeepsInode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := writeInPlace(p, "a long first version\nline two\n"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := writeInPlace(p, "short\n"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) {
		t.Error("the file was replaced, not rewritten in place")
	}
	if b, _ := os.ReadFile(p); string(b) != "short\n" {
		t.Errorf("content %q", b)
	}
}

func TestResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# comment\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nnameserver fd00::1\nsearch example.org\noptions edns0\n"), 0o644)
	got := resolvConfFor(p)
	if got != "nameserver 10.1.1.1\nsearch example.org\noptions edns0\n" {
		t.Errorf("resolv.conf:\n%s", got)
	}
	os.WriteFile(p, []byte("nameserver 127.0.0.1\n"), 0o644)
	if got := resolvConfFor(p); !strings.Contains(got, "nameserver 8.8.8.8") {
		t.Errorf("only a loopback server: got\n%s\nwant the public fallback", got)
	}
}

func TestCreateValidation(t *testing.T) {
	m := testManager(t)
	if _, err := m.Create("v1", CreateOptions{Subnet: "10.79.250.0/24", Gateway: "10.79.250.254", Internal: true}); err != nil {
		t.Fatal(err)
	}
	info, err := m.Inspect("v1")
	if err != nil || info.Gateway.String() != "10.79.250.254" || !info.Internal {
		t.Fatalf("inspect v1: %+v %v", info, err)
	}
	for _, c := range []struct {
		name string
		o    CreateOptions
		want string
	}{
		{"v1", CreateOptions{}, "already exists"},
		{"bridge", CreateOptions{}, "predefined"},
		{"bad name", CreateOptions{}, "invalid network name"},
		{"v2", CreateOptions{Subnet: "10.79.250.128/25"}, "overlaps network v1"},
		{"v2", CreateOptions{Subnet: "10.79.251.1/24"}, "host bits set"},
		{"v2", CreateOptions{Subnet: "fd00::/64"}, "not IPv4"},
		{"v2", CreateOptions{Subnet: "10.79.252.0/24", Gateway: "10.79.253.1"}, "not a host address"},
		{"v2", CreateOptions{Gateway: "10.79.253.1"}, "needs --subnet"},
	} {
		if _, err := m.Create(c.name, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %s %+v: %v; want %q", c.name, c.o, err, c.want)
		}
	}
	// A subnet the host routes already is refused.
	routes, _ := hostRoutes()
	for _, r := range routes {
		if r.Addr().Is4() && r.Bits() >= 8 && r.Bits() <= 30 && !userPool.Overlaps(r) {
			if _, err := m.Create("v3", CreateOptions{Subnet: r.String()}); err == nil || !strings.Contains(err.Error(), "host's route") {
				t.Errorf("create on the host's %s: %v", r, err)
			}
			break
		}
	}
	if err := m.Remove("v1"); err != nil {
		t.Fatal(err)
	}
}

func TestHostAndSharedModes(t *testing.T) {
	m := testManager(t)
	ctx := context.Background()
	host, err := m.Attach(ctx, Attachment{ContainerID: "h1", Networks: []string{"host"}})
	if err != nil {
		t.Fatal(err)
	}
	hostsFile, _ := os.ReadFile("/etc/hosts")
	hn, _ := os.Hostname()
	if host.Mode != ModeHost || host.Hosts != string(hostsFile) || strings.TrimSpace(host.Hostname) != hn || host.NetnsPath != "" {
		t.Errorf("host mode result: %+v", host)
	}
	ns := newNetns(t)
	owner := mustAttach(t, m, Attachment{ContainerID: "own1", Name: "owner", NetnsPath: ns})
	shared, err := m.Attach(ctx, Attachment{ContainerID: "sh1", Networks: []string{"container:owner"}})
	if err != nil {
		t.Fatal(err)
	}
	if shared.NetnsPath != ns || shared.HostsPath != owner.HostsPath || len(shared.Interfaces) != 1 ||
		shared.Interfaces[0].Address != owner.Interfaces[0].Address {
		t.Errorf("container:owner result %+v; want owner's namespace, files and address", shared)
	}
	if p, err := m.NetnsOf("owner"); err != nil || p != ns {
		t.Errorf("NetnsOf(owner) = %q, %v", p, err)
	}
	if _, err := m.Attach(ctx, Attachment{ContainerID: "sh2", Networks: []string{"container:owner"}, Ports: []PortMapping{{ContainerPort: 80}}}); err == nil {
		t.Error("ports accepted with container: mode")
	}
	// The owner goes: so does the container that shared its stack.
	if err := m.Detach("own1"); err != nil {
		t.Fatal(err)
	}
	st, _ := m.load()
	if _, ok := st.Containers["sh1"]; ok {
		t.Error("sh1 still attached after its owner was detached")
	}
	if err := m.Detach("h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(host.HostsPath); err == nil {
		t.Error("host-mode files left after detach")
	}
}
