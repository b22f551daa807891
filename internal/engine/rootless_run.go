package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/network"
)

// UserModeState records a rootless container's slirp4netns.
type UserModeState struct {
	Pid    int    `json:"Pid"`
	Start  uint64 `json:"Start"`
	Socket string `json:"Socket"`
}

// OpenImageStore opens the image store at root as the engine would: for an unprivileged
// user its layers are unpacked and removed inside the user's user namespace.
func OpenImageStore(root string) (*image.Store, error) {
	if root == "" {
		root = DefaultRoot()
	}
	s, err := image.Open(root)
	if err != nil || !Rootless() {
		return s, err
	}
	e := &Engine{Root: s.Root(), rootless: true}
	s.SetLayerOps(e.layerOps())
	return s, nil
}

// removeAll removes a tree the containers may have written: through the user namespace
// when rootless.
func (e *Engine) removeAll(path string) error {
	if e.rootless {
		return e.removeAllRootless(path)
	}
	return os.RemoveAll(path)
}

// setupRootlessNetwork makes the rootless container's user namespace (and, unless it
// shares the host's network, its network namespace) in a holder, attaches slirp4netns for
// the default network, and writes the hosts, resolv.conf and hostname files.
func (e *Engine) setupRootlessNetwork(l *lockedDir, c *Container, in *specInputs) (*NetworkState, *nsHolder, error) {
	mode := rootlessNet
	switch c.HostConfig.NetworkMode {
	case "none":
		mode = network.ModeNone
	case "host":
		mode = network.ModeHost
	}
	hold, err := e.holdNamespaces(mode != network.ModeHost)
	if err != nil {
		return nil, nil, err
	}
	ns := &NetworkState{Mode: string(mode)}
	hostname := c.Config.Hostname
	if mode == network.ModeHost {
		in.HostNet = true
	}
	ns.HostsPath, ns.ResolvPath, ns.HostnamePath, err = network.UserModeFiles(l.dir, mode, hostname, c.Name)
	if err != nil {
		return nil, hold, err
	}
	in.Files = map[string]string{"/etc/hosts": ns.HostsPath, "/etc/resolv.conf": ns.ResolvPath}
	if mode != network.ModeHost {
		in.Files["/etc/hostname"] = ns.HostnamePath
	}
	if mode == rootlessNet {
		ports, err := portMappings(c)
		if err != nil {
			return nil, hold, err
		}
		// The API socket's path must fit a unix socket address: it lives in the
		// runtime root, in a directory the runtime's listing skips.
		sockDir := filepath.Join(e.RuntimeRoot, ".slirp4netns")
		if err := os.MkdirAll(sockDir, 0o700); err != nil {
			return nil, hold, fmt.Errorf("network slirp4netns: %w", err)
		}
		stack, err := network.StartUserMode(hold.Pid, filepath.Join(sockDir, c.ID[:16]+".sock"), l.path("slirp4netns.log"), ports)
		if err != nil {
			return nil, hold, err
		}
		ns.UserMode = &UserModeState{Pid: stack.Pid, Start: stack.Start, Socket: stack.Socket}
		for _, p := range stack.Ports {
			hip := ""
			if p.HostIP.IsValid() {
				hip = p.HostIP.String()
			}
			ns.Ports = append(ns.Ports, PortMap{HostIP: hip, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
		}
		ns.Interfaces = []NetworkInterface{{Network: string(rootlessNet), IfName: "tap0",
			Address: network.UserModeAddress, Gateway: network.UserModeGateway}}
	}
	return ns, hold, nil
}

// teardownRootlessNet stops the container's slirp4netns; its namespaces went with the
// container's processes.
func (e *Engine) teardownRootlessNet(c *Container, st *State) {
	if st.Network == nil || st.Network.UserMode == nil {
		return
	}
	um := st.Network.UserMode
	if err := network.StopUserMode(um.Pid, um.Start, um.Socket); err != nil {
		e.warn("container %s: %v", short(c.ID), err)
	}
}
