package engine

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

const webScript = "mkdir -p /www; echo served by $(hostname) > /www/index.html; exec httpd -f -p 80 -h /www"

// --network none, host, bridge, a user network (names and aliases), container:NAME, -p,
// -P, --add-host and --dns.
func TestNetworkModes(t *testing.T) {
	h := newHarness(t)
	// Only lo, and it is up (the init sets it up: runtime.AnnotationLoopback).
	if r := h.run("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link | cut -d: -f2 | tr -d ' '; ip -o link show lo | grep -c '<LOOPBACK,UP'"); r.stdout != "lo\n1\n" {
		t.Errorf("--network none: %s", r)
	}
	// container:NAME of a none container: the same namespace (its lo, its listener)
	// and its files.
	h.ok("run", "-d", "--name", "lonely", "--network", "none", "--add-host", "peer:10.9.9.9", "busybox", "sh", "-c",
		"mkdir -p /www; echo from lonely > /www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www")
	eventually(t, 5*time.Second, "lonely's listener", func() bool {
		return strings.Contains(h.run("exec", "lonely", "netstat", "-ltn").stdout, "127.0.0.1:8080")
	})
	r0 := h.run("run", "--rm", "--network", "container:lonely", "busybox", "sh", "-c", "wget -qO- http://127.0.0.1:8080/; grep peer /etc/hosts; hostname")
	if want := "from lonely\n10.9.9.9\tpeer\n" + h.inspect("lonely", "{{.Config.Hostname}}") + "\n"; r0.stdout != want {
		t.Errorf("--network container:NAME of a none container: %s, want stdout %q", r0, want)
	}
	h.ok("rm", "-f", "lonely")
	host, _ := os.Hostname()
	hostLinks, _ := net.Interfaces()
	r := h.run("run", "--rm", "--network", "host", "busybox", "sh", "-c", "hostname; ip -o link | wc -l")
	if f := strings.Fields(r.stdout); len(f) != 2 || f[0] != host || f[1] != fmt.Sprint(len(hostLinks)) {
		t.Errorf("--network host: %s (host %s with %d links)", r, host, len(hostLinks))
	}
	// The default bridge: an address, a route out, a published port reachable on the
	// host's loopback.
	port := freePort(t)
	h.ok("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox", "sh", "-c", webScript)
	webIP := h.inspect("web", "{{.NetworkSettings.IPAddress}}")
	if net.ParseIP(webIP) == nil {
		t.Fatalf("web's address: %q", webIP)
	}
	var body string
	eventually(t, 5*time.Second, "the published port to answer", func() bool {
		b, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		body = b
		return err == nil
	})
	if want := "served by " + h.inspect("web", "{{.Config.Hostname}}") + "\n"; body != want {
		t.Errorf("published port: %q, want %q", body, want)
	}
	if out := h.ok("port", "web"); out != fmt.Sprintf("80/tcp -> 127.0.0.1:%d\n", port) {
		t.Errorf("port: %q", out)
	}
	if ps := h.ok("ps", "--format", "{{.Ports}}"); ps != fmt.Sprintf("127.0.0.1:%d->80/tcp\n", port) {
		t.Errorf("ps PORTS: %q", ps)
	}
	if r := h.run("run", "--rm", "busybox", "wget", "-qO-", "http://"+webIP+"/"); !strings.HasPrefix(r.stdout, "served by") {
		t.Errorf("container to container on the default bridge: %s", r)
	}
	// A user network: peers by name and alias.
	h.ok("network", "create", "appnet")
	t.Cleanup(func() { h.run("network", "rm", "appnet") })
	h.ok("run", "-d", "--name", "api", "--network", "appnet", "--network-alias", "backend", "busybox", "sh", "-c", webScript)
	for _, name := range []string{"api", "backend"} {
		var r result
		eventually(t, 5*time.Second, "the server on appnet", func() bool {
			r = h.run("run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-", "http://"+name+"/")
			return r.code == 0
		})
		if !strings.HasPrefix(r.stdout, "served by") {
			t.Errorf("wget http://%s/ on appnet: %s", name, r)
		}
	}
	if got := h.inspect("api", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"); got != "appnet" {
		t.Errorf("api's networks: %q", got)
	}
	// container:NAME shares web's stack: its loopback is web's.
	r = h.run("run", "--rm", "--network", "container:web", "busybox", "wget", "-qO-", "http://127.0.0.1/")
	if !strings.HasPrefix(r.stdout, "served by") {
		t.Errorf("--network container:web: %s", r)
	}
	r = h.run("run", "--rm", "--network", "container:nosuch", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("--network container:nosuch: %s", r)
	}
	// -P publishes the exposed ports on ports the kernel picks.
	h.ok("run", "-d", "--name", "auto", "-P", "--expose", "80", "busybox", "sh", "-c", webScript)
	out := h.ok("port", "auto", "80")
	m := regexp.MustCompile(`^0\.0\.0\.0:(\d+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("port auto 80: %q", out)
	}
	eventually(t, 5*time.Second, "the -P port to answer", func() bool {
		_, err := httpGet("http://127.0.0.1:" + m[1] + "/")
		return err == nil
	})
	// --add-host and --dns land in the container's files.
	r = h.run("run", "--rm", "--add-host", "db.local:10.1.2.3", "--dns", "192.0.2.53", "--dns-search", "example.org", "busybox",
		"sh", "-c", "grep db.local /etc/hosts; cat /etc/resolv.conf")
	if !strings.Contains(r.stdout, "10.1.2.3\tdb.local") || !strings.Contains(r.stdout, "nameserver 192.0.2.53") || !strings.Contains(r.stdout, "search example.org") {
		t.Errorf("--add-host/--dns: %s", r)
	}
	// Stopping detaches: the port is free again, and a network in use cannot go.
	h.ok("stop", "-t", "0", "web")
	if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Errorf("the published port still answers after stop")
	}
	if r := h.run("network", "rm", "appnet"); r.code == 0 {
		t.Errorf("network rm of a network in use: %s", r)
	}
	h.ok("rm", "-f", "api")
	h.ok("network", "rm", "appnet")
	// Conflicting options, as on Docker.
	r = h.run("run", "--rm", "--network", "host", "-p", "80:80", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "conflicting options") {
		t.Errorf("--network host -p: %s", r)
	}
}
