package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/network"
)

// TestNetworkCommands drives `berth network` and `berth port` on a temporary root, with
// one container attached through the library (the engine's part), and checks what a
// user sees, including that rm of a network in use fails and names the container.
func TestNetworkCommands(t *testing.T) {
	requireRootAndTools(t, "ip", "nft")
	root := t.TempDir()
	// Attach turns on IPv4 forwarding, as Docker does; the test leaves the host as found.
	if fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil {
		t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv4/ip_forward", fwd, 0o644) })
	}
	m, err := network.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	var id, instance string
	ns := fmt.Sprintf("berth-test-cli-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := m.Detach("c1"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del: %v: %s", err, out)
		}
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		out, _ := exec.Command("ip", "-o", "link").CombinedOutput()
		if br := "berth-" + strings.TrimSpace(id)[:9]; strings.Contains(string(out), br) {
			t.Errorf("bridge %s is left:\n%s", br, out)
		}
		if out, _ := exec.Command("nft", "list", "tables").CombinedOutput(); strings.Contains(string(out), instance) {
			t.Errorf("nftables table of %s left: %s", instance, out)
		}
	})
	run := func(args ...string) (string, string, error) {
		return berth(t, nil, append(args[:1:1], append([]string{"--root", root}, args[1:]...)...)...)
	}
	// `network` takes --root after its subcommand; `port` directly.
	netw := func(args ...string) (string, string, error) {
		return berth(t, nil, append([]string{"network", "--root", root}, args...)...)
	}
	id, stderr, err := netw("create", "--subnet", "10.79.66.0/24", "--gateway", "10.79.66.254", "cli1")
	if err != nil || len(strings.TrimSpace(id)) != 64 {
		t.Fatalf("create: %q %s %v", id, stderr, err)
	}
	var st struct{ Instance string }
	if b, err := os.ReadFile(root + "/networks/state.json"); err != nil || json.Unmarshal(b, &st) != nil || st.Instance == "" {
		t.Fatalf("no instance in the state: %v", err)
	}
	instance = "berth_" + st.Instance
	if _, stderr, err := netw("create", "cli1"); err == nil || !strings.Contains(stderr, "already exists") {
		t.Errorf("second create: %v %s", err, stderr)
	}
	if _, stderr, err := netw("create", "-d", "macvlan", "x"); err == nil || !strings.Contains(stderr, "only bridge") {
		t.Errorf("create -d macvlan: %v %s", err, stderr)
	}
	out, _, err := netw("ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bridge", "cli1", "10.79.66.0/24", "10.79.66.254", "host", "none"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls lacks %q:\n%s", want, out)
		}
	}
	ports, _ := network.ParsePublish("127.0.0.1:18099:80")
	if _, err := m.Attach(context.Background(), network.Attachment{ContainerID: "c1", Name: "web", NetnsPath: "/run/netns/" + ns,
		Networks: []string{"cli1"}, Ports: ports}); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := run("port", "web"); err != nil || strings.TrimSpace(out) != "80/tcp -> 127.0.0.1:18099" {
		t.Errorf("port web: %q %s %v", out, stderr, err)
	}
	if out, _, err := run("port", "web", "80"); err != nil || strings.TrimSpace(out) != "127.0.0.1:18099" {
		t.Errorf("port web 80: %q %v", out, err)
	}
	if _, stderr, err := run("port", "web", "81/udp"); err == nil || !strings.Contains(stderr, "no public port '81/udp'") {
		t.Errorf("port web 81/udp: %v %s", err, stderr)
	}
	if _, stderr, err := netw("rm", "cli1"); err == nil || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "web") {
		t.Errorf("rm of a network in use: %v %q", err, stderr)
	}
	// connect to the default network and back.
	if _, stderr, err := netw("connect", "bridge", "web"); err != nil {
		t.Fatalf("connect: %v %s", err, stderr)
	}
	link, _ := exec.Command("ip", "-n", ns, "-o", "-4", "addr").CombinedOutput()
	if !strings.Contains(string(link), "eth1") || !strings.Contains(string(link), "10.79.66.") {
		t.Errorf("after connect, the container's addresses are:\n%s", link)
	}
	out, _, _ = netw("inspect", "bridge")
	var infos []network.NetworkInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 || len(infos[0].Containers) != 1 || infos[0].Containers[0].Name != "web" {
		t.Errorf("inspect bridge: %v\n%s", err, out)
	}
	if _, stderr, err := netw("disconnect", "bridge", "web"); err != nil {
		t.Fatalf("disconnect: %v %s", err, stderr)
	}
	link, _ = exec.Command("ip", "-n", ns, "-o", "link").CombinedOutput()
	if strings.Contains(string(link), "eth1") {
		t.Errorf("eth1 left after disconnect:\n%s", link)
	}
	if err := m.Detach("c1"); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := netw("rm", "cli1", "nosuch"); err == nil || strings.TrimSpace(out) != "cli1" || !strings.Contains(stderr, "no such network: nosuch") {
		t.Errorf("rm cli1 nosuch: %q %q %v", out, stderr, err)
	}
}
