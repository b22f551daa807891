package engine

import (
	"time"
)

// Container is a container's record, <root>/containers/<id>/container.json. Its fields
// carry Docker's names, so `berth inspect` is this record (plus State and the network
// settings) in Docker's JSON shape. It is written at create and changed only by rename.
type Container struct {
	ID      string    `json:"Id"`
	Created time.Time `json:"Created"`
	// Path and Args are the program the container runs (entrypoint and command merged).
	Path string   `json:"Path"`
	Args []string `json:"Args"`
	// Name has no leading slash here; inspect adds Docker's.
	Name string `json:"Name"`
	// Image is the image's id (sha256:<config digest>); ImageDigest its manifest digest,
	// under which the snapshot leases the layers.
	Image       string          `json:"Image"`
	ImageDigest string          `json:"ImageDigest"`
	Config      ContainerConfig `json:"Config"`
	HostConfig  HostConfig      `json:"HostConfig"`
	// Mounts are the volumes, binds and tmpfs mounts as resolved at create.
	Mounts []MountPoint `json:"Mounts"`
	// Networks are the networks to attach to: HostConfig.NetworkMode first, then the
	// other --network values.
	Networks []string `json:"Networks,omitempty"`
	// NetworkAliases are the extra names on user networks (--network-alias).
	NetworkAliases []string `json:"NetworkAliases,omitempty"`
	// UserNSMap is the id range of --userns=auto: container 0.. maps to host HostID...
	UserNSMap *IDMap `json:"UserNSMap,omitempty"`
}

// IDMap is one range of a user namespace's mapping.
type IDMap struct {
	ContainerID uint32 `json:"ContainerID"`
	HostID      uint32 `json:"HostID"`
	Size        uint32 `json:"Size"`
}

// ContainerConfig is Docker's container Config: what the container runs, merged from the
// image and the command line at create.
type ContainerConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
}

// HostConfig is Docker's HostConfig: how the container is run on this host.
type HostConfig struct {
	Binds           []string                 `json:"Binds"`
	LogConfig       LogConfig                `json:"LogConfig"`
	NetworkMode     string                   `json:"NetworkMode"`
	PortBindings    map[string][]PortBinding `json:"PortBindings"`
	RestartPolicy   RestartPolicy            `json:"RestartPolicy"`
	AutoRemove      bool                     `json:"AutoRemove"`
	CapAdd          []string                 `json:"CapAdd"`
	CapDrop         []string                 `json:"CapDrop"`
	DNS             []string                 `json:"Dns"`
	DNSOptions      []string                 `json:"DnsOptions"`
	DNSSearch       []string                 `json:"DnsSearch"`
	ExtraHosts      []string                 `json:"ExtraHosts"`
	Privileged      bool                     `json:"Privileged"`
	PublishAllPorts bool                     `json:"PublishAllPorts"`
	ReadonlyRootfs  bool                     `json:"ReadonlyRootfs"`
	SecurityOpt     []string                 `json:"SecurityOpt"`
	Tmpfs           map[string]string        `json:"Tmpfs,omitempty"`
	UsernsMode      string                   `json:"UsernsMode"`
	PidMode         string                   `json:"PidMode"`
	IpcMode         string                   `json:"IpcMode"`
	UTSMode         string                   `json:"UTSMode"`
	ShmSize         int64                    `json:"ShmSize"`
	Runtime         string                   `json:"Runtime"`
	Memory          int64                    `json:"Memory"`
	MemorySwap      int64                    `json:"MemorySwap"`
	NanoCpus        int64                    `json:"NanoCpus"`
	CPUShares       int64                    `json:"CpuShares"`
	CpusetCpus      string                   `json:"CpusetCpus"`
	PidsLimit       *int64                   `json:"PidsLimit"`
	Ulimits         []Ulimit                 `json:"Ulimits"`
	Devices         []DeviceMapping          `json:"Devices"`
	Sysctls         map[string]string        `json:"Sysctls,omitempty"`
	Init            *bool                    `json:"Init,omitempty"`
	Mounts          []Mount                  `json:"Mounts,omitempty"`
}

// LogConfig is the log driver (json-file or none) and its options (max-size, max-file).
type LogConfig struct {
	Type   string            `json:"Type"`
	Config map[string]string `json:"Config"`
}

// PortBinding is one host side of a published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// RestartPolicy is --restart: "no", "always", "unless-stopped" or "on-failure" with
// MaximumRetryCount (0: no limit).
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// Ulimit is one --ulimit.
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// DeviceMapping is one --device.
type DeviceMapping struct {
	PathOnHost        string `json:"PathOnHost"`
	PathInContainer   string `json:"PathInContainer"`
	CgroupPermissions string `json:"CgroupPermissions"`
}

// Mount is one --mount (and the resolved form of -v and --tmpfs).
type Mount struct {
	Type     string `json:"Type"` // bind, volume, tmpfs
	Source   string `json:"Source,omitempty"`
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
	// TmpfsSize and TmpfsMode are tmpfs' size in bytes and mode (0 for the defaults).
	TmpfsSize int64  `json:"TmpfsSize,omitempty"`
	TmpfsMode uint32 `json:"TmpfsMode,omitempty"`
	// BindPropagation is rprivate (default), private, rshared, shared, rslave or slave.
	BindPropagation string `json:"BindPropagation,omitempty"`
}

// MountPoint is a mount as `inspect` shows it.
type MountPoint struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
	// Anonymous volumes go with the container on `rm -v` and --rm (inspect leaves it out).
	Anonymous bool `json:"Anonymous,omitempty"`
	// Options are tmpfs' mount options (inspect leaves them out).
	Options []string `json:"Options,omitempty"`
}

// Status names, Docker's.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// State is <root>/containers/<id>/state.json, replaced atomically under the container's
// lock. What it says about a live process is checked against the kernel on every read
// (see (*Engine).status), so it stays true when a process that should have updated it was
// killed.
type State struct {
	Status string `json:"Status"`
	// Pid and PidStart (field 22 of /proc/PID/stat) identify the init while it runs.
	Pid      int    `json:"Pid"`
	PidStart uint64 `json:"PidStart,omitempty"`
	// MonitorPid and MonitorStart identify the container's berth-monitor.
	MonitorPid   int       `json:"MonitorPid,omitempty"`
	MonitorStart uint64    `json:"MonitorStart,omitempty"`
	ExitCode     int       `json:"ExitCode"`
	Error        string    `json:"Error"`
	OOMKilled    bool      `json:"OOMKilled"`
	StartedAt    time.Time `json:"StartedAt"`
	FinishedAt   time.Time `json:"FinishedAt"`
	RestartCount int       `json:"RestartCount"`
	// RestartDelayMs is the delay before the last restart, doubled for the next one.
	RestartDelayMs int64 `json:"RestartDelayMs,omitempty"`
	// ManualStop is set by stop (and kill's restart suppression): the restart policy does
	// not bring the container back, except for "always" at the next start.
	ManualStop bool `json:"ManualStop,omitempty"`
	// Network is what the network manager did for the current run.
	Network *NetworkState `json:"Network,omitempty"`
	// Mounted is true while the snapshot is mounted on the host.
	Mounted bool `json:"Mounted,omitempty"`
	// Runtime is the OCI runtime that runs the container ("" for the built-in one).
	Runtime string `json:"Runtime,omitempty"`
}

// NetworkState is the part of a network attachment that inspect and ps show.
type NetworkState struct {
	Mode         string             `json:"Mode"`
	Interfaces   []NetworkInterface `json:"Interfaces,omitempty"`
	Ports        []PortMap          `json:"Ports,omitempty"`
	HostsPath    string             `json:"HostsPath,omitempty"`
	ResolvPath   string             `json:"ResolvPath,omitempty"`
	HostnamePath string             `json:"HostnamePath,omitempty"`
	// UserMode is a rootless container's slirp4netns, stopped by teardown.
	UserMode *UserModeState `json:"UserMode,omitempty"`
}

// NetworkInterface is the container's address on one network.
type NetworkInterface struct {
	Network   string `json:"Network"`
	NetworkID string `json:"NetworkID"`
	IfName    string `json:"IfName"`
	Address   string `json:"Address"` // CIDR
	Gateway   string `json:"Gateway"`
	MAC       string `json:"MAC"`
}

// PortMap is one published port as it was bound.
type PortMap struct {
	HostIP        string `json:"HostIP"`
	HostPort      uint16 `json:"HostPort"`
	ContainerPort uint16 `json:"ContainerPort"`
	Protocol      string `json:"Protocol"`
}
