package runtime

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Status is a container's lifecycle status as the OCI runtime spec names it.
type Status string

const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// State is what `berth-runtime state` prints: the OCI state plus the fields runc adds
// (rootfs, created, owner), in runc's order and spelling.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

// AnnotationOwnedNamespaces lists (comma-separated OCI types) namespaces that a container
// joins by path but that were made for it alone, such as the network namespace the engine
// prepares; `berth ns` attributes them to the container like the ones it creates.
const AnnotationOwnedNamespaces = "org.berth.namespaces.owned"

// Record is the on-disk record of one container, <root>/<id>/state.json. It is written
// atomically (temporary file, fsync-free rename) under the container's lock. Readers outside
// this package (berth ns, the engine) may rely on the fields below; new fields are only added.
type Record struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`

	// Pid is the container's init process in the host's pid namespace (0 until known).
	Pid int `json:"pid"`
	// InitStartTime is field 22 of /proc/<pid>/stat when the init was started, so a reused
	// pid is never mistaken for the container.
	InitStartTime uint64 `json:"initStartTime"`
	// Creating is true from the moment the id is reserved until create finished; a record
	// left with Creating=true belongs to a create that died and `delete` cleans it up.
	Creating bool `json:"creating"`

	// Namespaces are the ones the container was configured with (path set when joined).
	Namespaces []specs.LinuxNamespace `json:"namespaces"`
	// CgroupPaths maps each cgroup hierarchy (v1 subsystem name, or "" for the v2 unified
	// hierarchy) to the container's cgroup directory, as absolute host paths.
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
	// Runtime names the runtime that made the record ("berth").
	Runtime string `json:"runtime"`
	// Poststart and Poststop are the config's hooks that run after create, kept here so
	// that start and delete need not read the config.
	Poststart []specs.Hook `json:"poststart,omitempty"`
	Poststop  []specs.Hook `json:"poststop,omitempty"`
}
