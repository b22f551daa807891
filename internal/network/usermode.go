package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ModeUser is a rootless container's network: a network namespace of its own (owned by its
// user namespace) whose only way out is a user-mode TCP/IP stack, slirp4netns, running as
// the user on the host. Published ports are slirp4netns' host forwards: sockets it listens
// on in the host's namespace, as the user.
//
// slirp4netns rather than pasta: Debian 12's slirp4netns (1.2.0) is the stack Podman 4 uses
// by default there, and adds and lists forwards at run time through its API socket with a
// reply per request, so a port that cannot be bound fails the start with the reason. The
// passt package of the same release is a 2023-03 snapshot from before pasta's port
// forwarding and namespace-exit handling settled (Podman made it the default only in 5.0).
const ModeUser Mode = "slirp4netns"

// Addresses slirp4netns gives the container with --configure (its defaults).
const (
	UserModeAddress = "10.0.2.100/24"
	UserModeGateway = "10.0.2.2"
	UserModeDNS     = "10.0.2.3"
	userModeTap     = "tap0"
)

// UserModeStack is a running slirp4netns serving one container.
type UserModeStack struct {
	Pid int
	// Start is the process's start time (field 22 of /proc/PID/stat), so that Stop never
	// signals a reused pid.
	Start  uint64
	Socket string
	Ports  []PortMapping
}

// StartUserMode starts slirp4netns for the network namespace of pid (the container's
// init, waiting to be started), in its own session so that it outlives the caller, waits
// until the namespace is configured and publishes ports. sock is its API socket (a unix
// socket path: under 108 bytes) and logPath its log. On error nothing is left running.
func StartUserMode(pid int, sock, logPath string, ports []PortMapping) (*UserModeStack, error) {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, errors.New("network slirp4netns: slirp4netns is not installed (a rootless container's network needs it: apt-get install slirp4netns, or use --network none or host)")
	}
	if len(sock) >= 108 {
		return nil, fmt.Errorf("network slirp4netns: API socket path %s is too long for a unix socket", sock)
	}
	os.Remove(sock)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network slirp4netns: %w", err)
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("network slirp4netns: %w", err)
	}
	defer rd.Close()
	cmd := exec.Command(bin, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp",
		"--api-socket", sock, "--ready-fd=3", strconv.Itoa(pid), userModeTap)
	cmd.ExtraFiles = []*os.File{wr}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("network slirp4netns: start %s: %w", bin, err)
	}
	wr.Close()
	st := &UserModeStack{Pid: cmd.Process.Pid, Socket: sock}
	st.Start, _ = procStart(st.Pid)
	// Reaped by whoever inherits it once this process exits; until then a failure is
	// reaped here.
	fail := func(err error) (*UserModeStack, error) {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(sock)
		log, _ := os.ReadFile(logf.Name())
		if s := strings.TrimSpace(string(log)); s != "" {
			err = fmt.Errorf("%w (slirp4netns: %s)", err, lastLine(s))
		}
		return nil, fmt.Errorf("network slirp4netns for pid %d: %w", pid, err)
	}
	b := make([]byte, 1)
	if n, _ := rd.Read(b); n != 1 || b[0] != '1' {
		return fail(errors.New("it exited before configuring the namespace"))
	}
	for _, p := range ports {
		got, err := st.addForward(p)
		if err != nil {
			return fail(err)
		}
		st.Ports = append(st.Ports, got)
	}
	return st, nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// addForward publishes one port through the API socket. A host port of 0 takes one the
// kernel picks now (slirp4netns needs a number).
func (s *UserModeStack) addForward(p PortMapping) (PortMapping, error) {
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return p, fmt.Errorf("publish %d/%s: slirp4netns forwards tcp and udp only", p.ContainerPort, proto)
	}
	host := "0.0.0.0"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	if p.HostPort == 0 {
		port, err := freePort(proto, host)
		if err != nil {
			return p, fmt.Errorf("publish %d/%s: pick a host port: %w", p.ContainerPort, proto, err)
		}
		p.HostPort = port
	}
	req := map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
		"proto": proto, "host_addr": host, "host_port": p.HostPort, "guest_port": p.ContainerPort}}
	var resp struct {
		Return map[string]any `json:"return"`
		Error  *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := s.call(req, &resp); err != nil {
		return p, fmt.Errorf("publish %s:%d->%d/%s: %w", host, p.HostPort, p.ContainerPort, proto, err)
	}
	if resp.Error != nil {
		return p, fmt.Errorf("publish %s:%d->%d/%s: slirp4netns: %s (is the port in use?)", host, p.HostPort, p.ContainerPort, proto, resp.Error.Desc)
	}
	p.Protocol = proto
	return p, nil
}

func (s *UserModeStack) call(req, resp any) error {
	c, err := net.DialTimeout("unix", s.Socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("slirp4netns API socket %s: %w", s.Socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("slirp4netns API socket %s: %w", s.Socket, err)
	}
	// slirp4netns answers once and closes only when the client does: read one object.
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(resp); err != nil {
		return fmt.Errorf("slirp4netns API socket %s: read reply: %w", s.Socket, err)
	}
	return nil
}

func freePort(proto, host string) (uint16, error) {
	addr := net.JoinHostPort(host, "0")
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// StopUserMode ends a slirp4netns started by StartUserMode, if it still runs (its start
// time says it is the same process), and waits until it is gone so that its ports are
// free when this returns.
func StopUserMode(pid int, start uint64, socket string) error {
	if socket != "" {
		defer os.Remove(socket)
	}
	if pid <= 0 {
		return nil
	}
	if cur, err := procStart(pid); err != nil || (start != 0 && cur != start) {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("slirp4netns %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(fd)
	// Checked again through the pidfd: the pid cannot be reused while it is open.
	if cur, err := procStart(pid); err != nil || (start != 0 && cur != start) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("slirp4netns %d: kill: %w", pid, err)
	}
	// It is not our child (its starter exited): wait for the pidfd to become readable,
	// which it does when the process exits.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, err := unix.Poll(pfd, 1000)
		if err == unix.EINTR {
			continue
		}
		if n > 0 || err != nil {
			return nil
		}
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	return nil
}

// procStart reads a process's start time in clock ticks.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// UserModeFiles writes a rootless container's hosts, resolv.conf and hostname files into
// dir: its slirp4netns address, slirp4netns' DNS forwarder (it reaches the host's
// resolver, loopback ones included), or for --network host the host's files, for none
// localhost only.
func UserModeFiles(dir string, mode Mode, hostname, name string) (hosts, resolv, hostnameFile string, err error) {
	hosts, resolv, hostnameFile = filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hostname")
	var h strings.Builder
	h.WriteString(hostsHeader)
	self := hostname
	if name != "" && name != hostname {
		self += " " + name
	}
	var r string
	switch mode {
	case ModeUser:
		a := netip.MustParsePrefix(UserModeAddress).Addr()
		fmt.Fprintf(&h, "%s\t%s\n", a, self)
		_, other := readResolv("/etc/resolv.conf")
		var b strings.Builder
		fmt.Fprintf(&b, "nameserver %s\n", UserModeDNS)
		for _, l := range other {
			b.WriteString(l + "\n")
		}
		r = b.String()
	case ModeHost:
		hb, _ := os.ReadFile("/etc/hosts")
		h.Reset()
		h.Write(hb)
		rb, _ := os.ReadFile("/etc/resolv.conf")
		r = string(rb)
		hostname = hostHostname()
	default:
		fmt.Fprintf(&h, "127.0.0.1\t%s\n", self)
		r = resolvConfFor("/etc/resolv.conf")
	}
	for _, f := range []struct{ path, data string }{{hosts, h.String()}, {resolv, r}, {hostnameFile, hostname + "\n"}} {
		if err := os.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			return "", "", "", fmt.Errorf("network files: write %s: %w", f.path, err)
		}
	}
	return hosts, resolv, hostnameFile, nil
}
