package engine

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// InspectDoc is `berth inspect`'s document: Docker's shape, for the fields berth has.
type InspectDoc struct {
	ID              string          `json:"Id"`
	Created         string          `json:"Created"`
	Path            string          `json:"Path"`
	Args            []string        `json:"Args"`
	State           InspectState    `json:"State"`
	Image           string          `json:"Image"`
	ResolvConfPath  string          `json:"ResolvConfPath"`
	HostnamePath    string          `json:"HostnamePath"`
	HostsPath       string          `json:"HostsPath"`
	LogPath         string          `json:"LogPath"`
	Name            string          `json:"Name"`
	RestartCount    int             `json:"RestartCount"`
	Driver          string          `json:"Driver"`
	Platform        string          `json:"Platform"`
	MountLabel      string          `json:"MountLabel"`
	ProcessLabel    string          `json:"ProcessLabel"`
	AppArmorProfile string          `json:"AppArmorProfile"`
	ExecIDs         []string        `json:"ExecIDs"`
	HostConfig      HostConfig      `json:"HostConfig"`
	GraphDriver     GraphDriver     `json:"GraphDriver"`
	Mounts          []MountPoint    `json:"Mounts"`
	Config          ContainerConfig `json:"Config"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
}

// InspectState is Docker's State object.
type InspectState struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int    `json:"Pid"`
	ExitCode   int    `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`

	Health *Health `json:"Health,omitempty"`
}

// GraphDriver names the storage driver and its directories.
type GraphDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

// NetworkSettings is Docker's, for the fields berth has.
type NetworkSettings struct {
	Bridge      string                     `json:"Bridge"`
	SandboxID   string                     `json:"SandboxID"`
	SandboxKey  string                     `json:"SandboxKey"`
	Ports       map[string][]PortBinding   `json:"Ports"`
	Gateway     string                     `json:"Gateway"`
	IPAddress   string                     `json:"IPAddress"`
	IPPrefixLen int                        `json:"IPPrefixLen"`
	MacAddress  string                     `json:"MacAddress"`
	Networks    map[string]*EndpointConfig `json:"Networks"`
}

// EndpointConfig is one network of NetworkSettings.Networks.
type EndpointConfig struct {
	Aliases     []string `json:"Aliases"`
	NetworkID   string   `json:"NetworkID"`
	EndpointID  string   `json:"EndpointID"`
	Gateway     string   `json:"Gateway"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	MacAddress  string   `json:"MacAddress"`
}

// dockerTime is Docker's time format, with its zero for times not set.
func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Doc returns the inspect document of the container.
func (e *Engine) Doc(i *Info) *InspectDoc {
	c, st := i.Container, i.State
	d := &InspectDoc{
		ID: c.ID, Created: dockerTime(c.Created), Path: c.Path, Args: c.Args, Image: c.Image,
		LogPath: filepath.Join(e.dir(c.ID), monitor.LogFile(c.ID)), Name: "/" + c.Name,
		RestartCount: st.RestartCount, Driver: "overlay", Platform: "linux", ExecIDs: nil,
		HostConfig: c.HostConfig, Config: c.Config,
	}
	if d.Args == nil {
		d.Args = []string{}
	}
	if noLog(c) {
		d.LogPath = ""
	}
	d.State = InspectState{
		Status: st.Status, Running: st.Status == StatusRunning || st.Status == StatusPaused,
		Paused: st.Status == StatusPaused, Restarting: st.Status == StatusRestarting,
		OOMKilled: st.OOMKilled, Dead: st.Status == StatusDead, ExitCode: st.ExitCode, Error: st.Error,
		StartedAt: dockerTime(st.StartedAt), FinishedAt: dockerTime(st.FinishedAt),
	}
	if d.State.Running {
		d.State.Pid = st.Pid
	}
	d.State.Health = i.Health
	snap := filepath.Join(e.Root, "snapshots", c.ID)
	d.GraphDriver = GraphDriver{Name: "overlay", Data: map[string]string{
		"MergedDir": filepath.Join(snap, "rootfs"), "UpperDir": filepath.Join(snap, "upper"), "WorkDir": filepath.Join(snap, "work")}}
	d.Mounts = make([]MountPoint, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		m.Anonymous, m.Options = false, nil
		d.Mounts = append(d.Mounts, m)
	}
	ns := NetworkSettings{Ports: map[string][]PortBinding{}, Networks: map[string]*EndpointConfig{}}
	for k := range c.Config.ExposedPorts {
		ns.Ports[k] = nil
	}
	if n := st.Network; n != nil && d.State.Running {
		d.HostsPath, d.ResolvConfPath, d.HostnamePath = n.HostsPath, n.ResolvPath, n.HostnamePath
		switch n.Mode {
		case "bridge":
			ns.SandboxKey = filepath.Join(e.dir(c.ID), "netns")
		case "none":
			// The runtime's: no bind mount holds it, its init does.
			ns.SandboxKey = "/proc/" + strconv.Itoa(st.Pid) + "/ns/net"
		}
		for _, p := range n.Ports {
			k := strconv.Itoa(int(p.ContainerPort)) + "/" + p.Protocol
			hip := p.HostIP
			if hip == "" {
				hip = "0.0.0.0"
			}
			ns.Ports[k] = append(ns.Ports[k], PortBinding{HostIP: hip, HostPort: strconv.Itoa(int(p.HostPort))})
		}
		for i, itf := range n.Interfaces {
			addr, bits, _ := strings.Cut(itf.Address, "/")
			plen, _ := strconv.Atoi(bits)
			ep := &EndpointConfig{NetworkID: itf.NetworkID, Gateway: itf.Gateway, IPAddress: addr, IPPrefixLen: plen, MacAddress: itf.MAC}
			if itf.Network != "bridge" {
				ep.Aliases = append([]string{c.Name, c.ID[:12]}, c.NetworkAliases...)
			}
			ns.Networks[itf.Network] = ep
			if i == 0 {
				ns.Gateway, ns.IPAddress, ns.IPPrefixLen, ns.MacAddress = itf.Gateway, addr, plen, itf.MAC
			}
		}
	}
	if len(ns.Networks) == 0 {
		for _, n := range c.Networks {
			if !strings.HasPrefix(n, "container:") {
				ns.Networks[n] = &EndpointConfig{}
			}
		}
	}
	d.NetworkSettings = ns
	return d
}
