package engine

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/network"
	"github.com/berth-containers/berth/internal/runtime"
)

// `--network none` is handled by the engine alone: the runtime makes the network
// namespace with the others (no bind mount to make and undo), its init sets lo up
// (runtime.AnnotationLoopback; with another runtime the engine does it once the init waits,
// loUpIn), and the engine writes the three files in the container's directory. There is
// nothing to share with other containers, so the network manager (its lock, its state
// file, and the netlink dump of its repair pass, 1.5-3 ms per run) stays out of it.

// Names of the none-mode files in the container's directory.
const (
	noneHosts    = "hosts"
	noneResolv   = "resolv.conf"
	noneHostname = "hostname"
)

// setupNone writes the files; the runtime makes the namespace (in.NetnsPath is empty).
func (e *Engine) setupNone(l *lockedDir, c *Container, in *specInputs) (*NetworkState, error) {
	in.LoUp = true
	hostname := c.Config.Hostname
	if hostname == "" {
		hostname = short(c.ID)
	}
	res := &network.Result{ContainerID: c.ID, Mode: network.ModeNone,
		HostsPath: l.path(noneHosts), ResolvConfPath: l.path(noneResolv), HostnamePath: l.path(noneHostname)}
	for _, f := range []struct{ path, text string }{
		{res.HostsPath, network.HostsLocalOnly},
		{res.ResolvConfPath, network.ResolvConf("/etc/resolv.conf")},
		{res.HostnamePath, hostname + "\n"},
	} {
		// Rewritten whole on every run, so a restart does not add --add-host twice.
		if err := os.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			return nil, fmt.Errorf("network none: %w", err)
		}
	}
	in.Files = map[string]string{"/etc/hosts": res.HostsPath, "/etc/resolv.conf": res.ResolvConfPath,
		"/etc/hostname": res.HostnamePath}
	if err := e.customizeNetFiles(c, res); err != nil {
		return nil, err
	}
	return &NetworkState{Mode: string(network.ModeNone), HostsPath: res.HostsPath, ResolvPath: res.ResolvConfPath,
		HostnamePath: res.HostnamePath}, nil
}

// joinNone shares the network namespace of the running none-mode container tc (its
// init's), and its hosts and resolv.conf files, as --network container:NAME does with
// any other.
func joinNone(tc *Container, tst *State, in *specInputs) (*NetworkState, error) {
	if tst.Network == nil || tst.Network.HostsPath == "" {
		return nil, fmt.Errorf("network container:%s: its network is not recorded", short(tc.ID))
	}
	in.NetnsPath = fmt.Sprintf("/proc/%d/ns/net", tst.Pid)
	in.Files = map[string]string{"/etc/hosts": tst.Network.HostsPath, "/etc/resolv.conf": tst.Network.ResolvPath}
	return &NetworkState{Mode: string(network.ModeContainer), HostsPath: tst.Network.HostsPath,
		ResolvPath: tst.Network.ResolvPath}, nil
}

// isNone tells whether the container's network mode is none.
func isNone(c *Container) bool {
	mode, _, err := network.ParseMode(c.Networks)
	return err == nil && mode == network.ModeNone
}

// loUpIn sets lo up in the network namespace of process pid, from a thread that joins
// it and is then left locked, so the Go runtime retires it rather than reuse it there.
func loUpIn(pid int) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		p := "/proc/" + strconv.Itoa(pid) + "/ns/net"
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("network none: open %s: %w", p, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("network none: join %s: %w", p, err)
			return
		}
		errc <- runtime.LoopbackUp()
	}()
	return <-errc
}
