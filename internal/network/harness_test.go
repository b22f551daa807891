package network

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/runtime"
)

var runtimeBin string

// veths are the host ends this test process made (child processes' are in the state).
var (
	vethsMu sync.Mutex
	veths   = map[string]bool{}
)

// The test binary doubles as a helper process: with BERTH_NETTEST_CHILD set it attaches
// one container from another process (to test the cross-process lock) or gets killed
// halfway through an attach (to test repair).
func TestMain(m *testing.M) {
	if mode := os.Getenv("BERTH_NETTEST_CHILD"); mode != "" {
		os.Exit(childMain(mode))
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "network tests make bridges, veths and nftables rules: they need root")
		os.Exit(1)
	}
	for _, p := range []string{"/usr/bin/busybox", "/usr/bin/nsenter", "/usr/sbin/nft"} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "network tests need %s: run hack/deps-network.sh\n", p)
			os.Exit(1)
		}
	}
	dir, err := os.MkdirTemp("", "berth-nettest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runtimeBin = filepath.Join(dir, "berth-runtime")
	build := exec.Command("go", "build", "-o", runtimeBin, "github.com/berth-containers/berth/cmd/berth-runtime")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build berth-runtime:", err)
		os.Exit(1)
	}
	testHookAfterVeth = func(name string) {
		vethsMu.Lock()
		veths[name] = true
		vethsMu.Unlock()
	}
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	code := m.Run()
	// Attach turns on IPv4 forwarding, as Docker does; the tests leave the host as found.
	os.WriteFile("/proc/sys/net/ipv4/ip_forward", fwd, 0o644)
	os.RemoveAll(dir)
	os.Exit(code)
}

func childMain(mode string) int {
	m, err := Open(os.Getenv("BERTH_NETTEST_ROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a := Attachment{ContainerID: os.Getenv("BERTH_NETTEST_ID"), NetnsPath: os.Getenv("BERTH_NETTEST_NETNS"),
		Networks: strings.Fields(os.Getenv("BERTH_NETTEST_NETWORKS"))}
	if mode == "kill-after-veth" {
		testHookAfterVeth = func(string) { unix.Kill(os.Getpid(), unix.SIGKILL) }
	}
	res, err := m.Attach(context.Background(), a)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// testManager opens a manager on a temporary root and, at cleanup, detaches what the
// test left, destroys the root's networks and checks that no kernel object of it is
// left.
func testManager(t *testing.T) *Manager {
	t.Helper()
	m, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st, err := m.load()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		ours := map[string]bool{}
		var subnets []netip.Prefix
		for _, n := range st.Networks {
			ours[n.Bridge] = true
			subnets = append(subnets, n.Subnet)
		}
		for id, r := range st.Containers {
			for _, ep := range r.Endpoints {
				ours[ep.HostVeth] = true
			}
			if err := m.Detach(id); err != nil {
				t.Errorf("cleanup: detach %s: %v", id, err)
			}
		}
		vethsMu.Lock()
		for v := range veths {
			ours[v] = true
		}
		vethsMu.Unlock()
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup: destroy: %v", err)
		}
		assertNothingLeft(t, st.Instance, ours, subnets)
	})
	return m
}

// berthLinks lists the links whose names berth uses (bridges and veth host ends).
func berthLinks(t *testing.T) map[string]bool {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range links {
		n := l.Attrs().Name
		if strings.HasPrefix(n, BridgePrefix) || strings.HasPrefix(n, VethPrefix) {
			out[n] = true
		}
	}
	return out
}

// assertNothingLeft fails if a bridge or veth of the test's (ours), a host address in
// its subnets, or its nftables table is left. Other packages' tests may run at the same
// time, so only the test's own objects are looked for.
func assertNothingLeft(t *testing.T, instance string, ours map[string]bool, subnets []netip.Prefix) {
	t.Helper()
	// The kernel deletes the veths of a dead namespace in the background.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for n := range berthLinks(t) {
			if ours[n] {
				left = append(left, n)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind: links %v", left)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Errorf("nft list tables: %v: %s", err, out)
	}
	if strings.Contains(string(out), tableName(instance)) {
		t.Errorf("left behind: nftables table %s", tableName(instance))
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		for _, p := range subnets {
			if p.Contains(ipAddr(a.IP)) {
				t.Errorf("left behind: host address %s on %s", a.IPNet, a.Label)
			}
		}
	}
}

// newNetns makes a network namespace bind-mounted on a file of the test's, as an engine
// would before it creates a container, and removes it at cleanup.
func newNetns(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "net")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		err = unix.Mount(src, p, "", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind %s on %s: %w", src, p, err)
		}
		// Back to the host's namespace before the thread serves other goroutines; if
		// that fails the thread stays locked and exits with this goroutine.
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr == nil {
			goruntime.UnlockOSThread()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// EINVAL: a test unmounted it already, to make the namespace go.
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmount netns %s: %v", p, err)
		}
	})
	return p
}

// inNetns runs a command in a network namespace of the test's.
func inNetns(ns string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns, "--"}, args...)...)
}

// ctr is a busybox container run by berth-runtime in a given network namespace, with
// the files Attach wrote bind-mounted where the engine will mount them.
type ctr struct {
	t      *testing.T
	id     string
	root   string
	bundle string
	out    string
}

func newCtr(t *testing.T, id, netns string, res *Result, script string) *ctr {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "echo", "ip", "ping", "wget", "httpd", "sleep", "grep", "hostname", "nslookup", "true", "timeout"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte("hello from "+id+"\n"), 0o644)
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		os.WriteFile(filepath.Join(rootfs, "etc", f), nil, 0o644)
	}
	spec := runtime.DefaultSpec(false)
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", script}
	spec.Root.Readonly = false
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = netns
		}
	}
	if res != nil {
		spec.Hostname = strings.TrimSpace(res.Hostname)
		for dst, src := range map[string]string{"/etc/hosts": res.HostsPath, "/etc/resolv.conf": res.ResolvConfPath, "/etc/hostname": res.HostnamePath} {
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
		}
	}
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &ctr{t: t, id: id, root: t.TempDir(), bundle: dir, out: filepath.Join(t.TempDir(), "out")}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(c.root, c.id)); err == nil {
			if out, err := exec.Command(runtimeBin, "--root", c.root, "delete", "--force", c.id).CombinedOutput(); err != nil {
				t.Errorf("cleanup: delete container %s: %v: %s", c.id, err, out)
			}
		}
	})
	return c
}

// run runs the container to its end and returns its output.
func (c *ctr) run() (string, error) {
	c.t.Helper()
	cmd := exec.Command(runtimeBin, "--root", c.root, "run", "-b", c.bundle, c.id)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("container %s: no end after 60s", c.id)
	}
}

// start runs the container in the background; its output goes to a file (a pipe would
// keep Wait waiting for the container).
func (c *ctr) start() {
	c.t.Helper()
	f, err := os.Create(c.out)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(runtimeBin, "--root", c.root, "run", "-d", "-b", c.bundle, c.id)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(c.out)
		c.t.Fatalf("start container %s: %v: %s", c.id, err, b)
	}
}

func (c *ctr) output() string {
	b, _ := os.ReadFile(c.out)
	return string(b)
}

// stop kills and deletes the container.
func (c *ctr) stop() {
	c.t.Helper()
	if out, err := exec.Command(runtimeBin, "--root", c.root, "delete", "--force", c.id).CombinedOutput(); err != nil {
		c.t.Fatalf("delete container %s: %v: %s", c.id, err, out)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
