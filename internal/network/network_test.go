package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func ipAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func mustAttach(t *testing.T, m *Manager, a Attachment) *Result {
	t.Helper()
	res, err := m.Attach(context.Background(), a)
	if err != nil {
		t.Fatalf("attach %s: %v", a.ContainerID, err)
	}
	return res
}

func TestNoneHasOnlyLoopback(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	res := mustAttach(t, m, Attachment{ContainerID: "none1", Networks: []string{"none"}, NetnsPath: ns})
	if res.Mode != ModeNone || len(res.Interfaces) != 0 {
		t.Fatalf("mode %s, interfaces %v; want none and no interface", res.Mode, res.Interfaces)
	}
	c := newCtr(t, "none1", ns, res, "ip -o link; ip -o -4 addr; ip route; cat /etc/hostname")
	out, err := c.run()
	if err != nil {
		t.Fatalf("container: %v: %s", err, out)
	}
	var links []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.HasSuffix(f[0], ":") && strings.HasSuffix(f[1], ":") {
			links = append(links, strings.TrimSuffix(f[1], ":"))
			if f[1] == "lo:" && !strings.Contains(l, "UP") {
				t.Errorf("lo is not up: %s", l)
			}
		}
	}
	if len(links) != 1 || links[0] != "lo" {
		t.Errorf("links in the container: %v, want only lo\n%s", links, out)
	}
	if !strings.Contains(out, "inet 127.0.0.1/8") {
		t.Errorf("lo has no 127.0.0.1/8:\n%s", out)
	}
	if !strings.Contains(out, "none1") {
		t.Errorf("/etc/hostname is not the container's:\n%s", out)
	}
	if err := m.Detach("none1"); err != nil {
		t.Fatal(err)
	}
}

func TestUserNetworkNameResolution(t *testing.T) {
	m := testManager(t)
	n, err := m.Create("front", CreateOptions{Subnet: "10.79.200.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.Bridge, "berth-") {
		t.Errorf("bridge %q does not start with berth-", n.Bridge)
	}
	nsA, nsB := newNetns(t), newNetns(t)
	resA := mustAttach(t, m, Attachment{ContainerID: "aaaa0001", Name: "alpha", Networks: []string{"front"}, NetnsPath: nsA, Aliases: []string{"web"}})
	// alpha serves HTTP, then waits until beta appears in its /etc/hosts (which Attach of
	// beta rewrites in place, under alpha's bind mount) and pings it by name.
	a := newCtr(t, "alpha", nsA, resA, `httpd -p 80 -h /www && until grep -q beta /etc/hosts; do sleep 0.05; done; ping -c1 -W5 beta && echo ALPHA-REACHED-BETA; exec sleep 600`)
	a.start()
	resB := mustAttach(t, m, Attachment{ContainerID: "bbbb0002", Name: "beta", Networks: []string{"front"}, NetnsPath: nsB})
	b := newCtr(t, "beta", nsB, resB, `ping -c1 -W5 alpha && wget -q -O- http://alpha/ && wget -q -O- http://web/ && cat /etc/resolv.conf`)
	out, err := b.run()
	if err != nil {
		t.Fatalf("beta: %v\n%s\nbeta's hosts:\n%s", err, out, resB.Hosts)
	}
	if strings.Count(out, "hello from alpha") != 2 {
		t.Errorf("beta did not fetch alpha's page by name and by alias:\n%s", out)
	}
	if !strings.Contains(out, "nameserver") {
		t.Errorf("beta has no nameserver in resolv.conf:\n%s", out)
	}
	waitFor(t, "alpha to ping beta", func() bool { return strings.Contains(a.output(), "ALPHA-REACHED-BETA") })
	a.stop()
	if err := m.Detach("bbbb0002"); err != nil {
		t.Fatal(err)
	}
	hosts, _ := os.ReadFile(resA.HostsPath)
	if strings.Contains(string(hosts), "beta") {
		t.Errorf("alpha's hosts still names beta after beta was detached:\n%s", hosts)
	}
	// In use: rm fails and says by whom.
	var inUse *InUseError
	if err := m.Remove("front"); !errors.As(err, &inUse) || !strings.Contains(err.Error(), "alpha") {
		t.Errorf("remove of a network in use: %v; want an InUseError naming alpha", err)
	}
	if err := m.Detach("aaaa0001"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("front"); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Errorf("bridge %s still exists after network rm", n.Bridge)
	}
}

func TestPublishedPortFromLoopback(t *testing.T) {
	m := testManager(t)
	ns := newNetns(t)
	ports, err := ParsePublish("18080:80")
	if err != nil {
		t.Fatal(err)
	}
	res := mustAttach(t, m, Attachment{ContainerID: "web1", Name: "web1", NetnsPath: ns, Ports: ports})
	if len(res.Interfaces) != 1 || res.Interfaces[0].Network != DefaultNetwork || !strings.HasPrefix(res.Interfaces[0].HostVeth, VethPrefix) {
		t.Fatalf("interfaces %+v: want one on the default network with a %s* veth", res.Interfaces, VethPrefix)
	}
	c := newCtr(t, "web1", ns, res, "exec httpd -f -p 80 -h /www")
	c.start()
	wget := func(addr string) (string, error) {
		// busybox 1.35's wget -T crashes; the context bounds it instead.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "busybox", "wget", "-q", "-O-", "http://"+addr+"/").CombinedOutput()
		return string(out), err
	}
	waitFor(t, "httpd to answer on 127.0.0.1:18080", func() bool {
		out, err := wget("127.0.0.1:18080")
		return err == nil && strings.Contains(out, "hello from web1")
	})
	// And on the host's other addresses.
	addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
	tried := 0
	for _, a := range addrs {
		ip := ipAddr(a.IP)
		if ip.IsLoopback() || userPool.Contains(ip) || res.Interfaces[0].Address.Contains(ip) {
			continue
		}
		tried++
		if out, err := wget(ip.String() + ":18080"); err != nil || !strings.Contains(out, "hello from web1") {
			t.Errorf("wget %s:18080: %v %s", ip, err, out)
		}
	}
	if tried == 0 {
		t.Log("the host has no non-loopback IPv4 address to try")
	}
	got, err := m.Ports("web1")
	if err != nil || len(got) != 1 || got[0].String() != "80/tcp -> 0.0.0.0:18080" {
		t.Errorf("Ports(web1) = %v, %v; want [80/tcp -> 0.0.0.0:18080]", got, err)
	}
	// The port is taken now.
	ns2 := newNetns(t)
	if _, err := m.Attach(context.Background(), Attachment{ContainerID: "web2", NetnsPath: ns2, Ports: ports}); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Errorf("second publish of 18080: %v; want already published", err)
	}
	c.stop()
	if err := m.Detach("web1"); err != nil {
		t.Fatal(err)
	}
	if out, err := wget("127.0.0.1:18080"); err == nil {
		t.Errorf("127.0.0.1:18080 still answers after detach: %s", out)
	}
}

// outside makes a network namespace that plays a host on the internet: reachable from
// the host through a veth, with no route back to any container subnet, so an answer
// reaching a container proves masquerading.
func outside(t *testing.T) (ns string, addr netip.Addr) {
	t.Helper()
	ns = newNetns(t)
	name := fmt.Sprintf("bto%d", os.Getpid()%100000)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}, PeerName: "eth0"}
	fd, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	veth.PeerNamespace = netlink.NsFd(int(fd.Fd()))
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := deleteLink(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	hostAddr, _ := netlink.ParseAddr("198.51.100.1/24")
	if err := netlink.AddrAdd(veth, hostAddr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ip", "addr", "add", "198.51.100.2/24", "dev", "eth0"}, {"ip", "link", "set", "eth0", "up"}, {"ip", "link", "set", "lo", "up"}} {
		if out, err := inNetns(ns, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	return ns, netip.MustParseAddr("198.51.100.2")
}

func TestOutboundNAT(t *testing.T) {
	m := testManager(t)
	out, outAddr := outside(t)
	// The outside host serves a CGI script that answers with the client's address.
	www := t.TempDir()
	os.MkdirAll(www+"/cgi-bin", 0o755)
	os.WriteFile(www+"/cgi-bin/who", []byte("#!/usr/bin/busybox sh\necho 'Content-Type: text/plain'\necho\necho \"client=$REMOTE_ADDR\"\n"), 0o755)
	srv := inNetns(out, "busybox", "httpd", "-f", "-p", "8000", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	ns := newNetns(t)
	res := mustAttach(t, m, Attachment{ContainerID: "natc", NetnsPath: ns})
	c := newCtr(t, "natc", ns, res, fmt.Sprintf("ip route; timeout 5 wget -q -O- http://%s:8000/cgi-bin/who", outAddr))
	var got string
	// httpd may still be starting.
	waitFor(t, "the outside host to answer", func() bool {
		o, err := c.run()
		got = o
		return err == nil && strings.Contains(o, "client=")
	})
	if !strings.Contains(got, "default via "+res.Interfaces[0].Gateway.String()) {
		t.Errorf("no default route via the gateway in the container:\n%s", got)
	}
	// Masqueraded: the outside host saw the host's address, not the container's.
	// httpd shows an IPv4 client as "[::ffff:198.51.100.1]".
	if !strings.Contains(got, "198.51.100.1]") && !strings.Contains(got, "client=198.51.100.1\n") {
		t.Errorf("outside host saw %q; want the host's 198.51.100.1 (container is %s)", got, res.Interfaces[0].Address)
	}
	if err := m.Detach("natc"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAttachDistinctAddresses(t *testing.T) {
	const n = 30
	m := testManager(t)
	if _, err := m.Create("many", CreateOptions{Subnet: "10.79.100.0/24"}); err != nil {
		t.Fatal(err)
	}
	nss := make([]string, n)
	for i := range nss {
		nss[i] = newNetns(t)
	}
	// 30 processes attach at once, half to the default network and half to "many": the
	// lock is the only thing that keeps them apart.
	var wg sync.WaitGroup
	results := make([]*Result, n)
	errs := make([]error, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			netw := "bridge"
			if i%2 == 1 {
				netw = "many"
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "BERTH_NETTEST_CHILD=attach", "BERTH_NETTEST_ROOT="+m.Root(),
				fmt.Sprintf("BERTH_NETTEST_ID=par%02d", i), "BERTH_NETTEST_NETNS="+nss[i], "BERTH_NETTEST_NETWORKS="+netw)
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("child %d: %v: %s", i, err, exitStderr(err))
				return
			}
			var r Result
			errs[i] = json.Unmarshal(out, &r)
			results[i] = &r
		}(i)
	}
	wg.Wait()
	t.Logf("%d attaches in parallel processes took %v", n, time.Since(start))
	seen := map[netip.Addr]string{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		// The kernel's view, inside each namespace.
		out, err := inNetns(nss[i], "ip", "-o", "-4", "addr", "show", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in netns %d: %v: %s", i, err, out)
		}
		a := results[i].Interfaces[0].Address
		if !strings.Contains(string(out), a.String()) {
			t.Errorf("container %d: Result says %s, the kernel: %s", i, a, out)
		}
		if prev, dup := seen[a.Addr()]; dup {
			t.Errorf("address %s given to %s and par%02d", a.Addr(), prev, i)
		}
		seen[a.Addr()] = fmt.Sprintf("par%02d", i)
	}
	for i := 0; i < n; i++ {
		if err := m.Detach(fmt.Sprintf("par%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := m.Inspect("many")
	if err != nil || len(info.Containers) != 0 {
		t.Errorf("after detaching all, many has %v (%v)", info, err)
	}
}

func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
