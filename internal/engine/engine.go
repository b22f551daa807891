// Package engine is berth's daemonless container engine: Docker's container model (create,
// start, run, stop, rm, ps, logs, inspect, ...) over the image store, snapshots, the network
// manager and the runtime library, with no daemon.
//
// Each running container has a berth-monitor process (cmd/berth-monitor) that owns its
// stdio, writes its logs, reaps its init, records the exit and applies the restart policy.
// A start with the built-in runtime is driven by the berth command itself, which runs the
// runtime library's create in-process and has the monitor fork the init (spawn.go), so the
// init is the monitor's child; a foreground run also does the end-of-run work itself
// (FinishRun). Whatever no berth command is there to do (restarts, the end of a detached
// run, a start whose berth was killed, another runtime's start) the monitor has this
// engine's binary do as a helper (HelperStart, HelperRestart, HelperExited), so the
// monitor stays small. All state is in files
// under the engine root, changed atomically under per-container locks, and what a record
// says about a process is checked against the kernel whenever it is read, so any berth
// process (the CLI, a helper, the monitor) may be killed at any point without leaving a
// container that `ps` misreports.
package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/snapshot"
	"github.com/berth-containers/berth/internal/network"
	"github.com/berth-containers/berth/internal/runtime"
)

// Engine is the engine over one state root.
type Engine struct {
	// Root is the engine's state root (/var/lib/berth): images, snapshots, containers,
	// volumes, networks.
	Root string
	// RuntimeRoot is the runtime's state root (/run/berth), where `berth ns` finds the
	// containers.
	RuntimeRoot string
	// Exe is the berth binary the monitor runs as its helper; empty means this process's.
	Exe string
	// MonitorExe is berth-monitor; empty means the one next to Exe, then $PATH.
	MonitorExe string
	// Warn receives non-fatal problems (nil: standard error).
	Warn func(msg string)

	// rootless is set when an unprivileged user runs the engine (see rootless.go).
	rootless bool

	early earlyCgroups
	// created is the container this process's Create just made for an immediate Start
	// (CreateOptions.StartAfter), still locked, with its record.
	created    *lockedDir
	createdC   *Container
	createdMon *preMonitor
	// preMon is that container's monitor, for startHere.
	preMon *preMonitor
	once   struct {
		images   sync.Once
		snaps    sync.Once
		networks sync.Once
		runtime  sync.Once
	}
	images    *image.Store
	imagesErr error
	snaps     *snapshot.Snapshotter
	snapsErr  error
	nets      *network.Manager
	netsErr   error
	rt        *runtime.Runtime
	rtErr     error
}

// DefaultRuntimeRoot is the runtime state root unless $BERTH_RUNTIME_ROOT says otherwise;
// the same default as berth-runtime's and berth ns's.
func DefaultRuntimeRoot() string {
	if r := os.Getenv("BERTH_RUNTIME_ROOT"); r != "" {
		return r
	}
	return runtime.DefaultRootFor()
}

// Open returns the engine for root (image.DefaultRoot when empty), creating its
// directories.
func Open(root, runtimeRoot string) (*Engine, error) {
	if root == "" {
		root = DefaultRoot()
	}
	if runtimeRoot == "" {
		runtimeRoot = DefaultRuntimeRoot()
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("engine root %q: %w", root, err)
	}
	rabs, err := filepath.Abs(runtimeRoot)
	if err != nil {
		return nil, fmt.Errorf("runtime root %q: %w", runtimeRoot, err)
	}
	e := &Engine{Root: abs, RuntimeRoot: rabs, rootless: Rootless()}
	if e.rootless {
		if err := ensureRuntimeRoot(rabs); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{containersDir, namesDir, volumesDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Join(abs, d), err)
		}
	}
	return e, nil
}

func (e *Engine) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if e.Warn != nil {
		e.Warn(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "berth: warning: "+msg)
}

func (e *Engine) imageStore() (*image.Store, error) {
	e.once.images.Do(func() {
		e.images, e.imagesErr = image.Open(e.Root)
		if e.images != nil && e.rootless {
			e.images.SetLayerOps(e.layerOps())
		}
	})
	return e.images, e.imagesErr
}

func (e *Engine) snapshotter() (*snapshot.Snapshotter, error) {
	e.once.snaps.Do(func() {
		s, err := e.imageStore()
		if err != nil {
			e.snapsErr = err
			return
		}
		if e.rootless {
			e.snaps, e.snapsErr = e.rootlessSnapshotter(s)
			return
		}
		e.snaps, e.snapsErr = snapshot.New(s)
	})
	return e.snaps, e.snapsErr
}

func (e *Engine) networks() (*network.Manager, error) {
	e.once.networks.Do(func() { e.nets, e.netsErr = network.Open(e.Root) })
	return e.nets, e.netsErr
}

func (e *Engine) runtime() (*runtime.Runtime, error) {
	e.once.runtime.Do(func() {
		e.rt, e.rtErr = runtime.New(e.RuntimeRoot)
		if e.rt != nil {
			e.rt.Warn = func(msg string) { e.warn("%s", msg) }
			e.rt.Exe = e.initExe()
			// Every container of the engine carries one of a few profiles: compiled once.
			e.rt.SeccompCache = filepath.Join(e.Root, "cache", "seccomp")
		}
	})
	return e.rt, e.rtErr
}

func (e *Engine) exe() (string, error) {
	if e.Exe != "" {
		return e.Exe, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the berth binary: %w", err)
	}
	return p, nil
}

// monitorExe finds berth-monitor: MonitorExe, $BERTH_MONITOR, next to the berth binary,
// then $PATH.
func (e *Engine) monitorExe() (string, error) {
	if e.MonitorExe != "" {
		return e.MonitorExe, nil
	}
	if p := os.Getenv("BERTH_MONITOR"); p != "" {
		return p, nil
	}
	self, err := e.exe()
	if err == nil {
		p := filepath.Join(filepath.Dir(self), "berth-monitor")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("berth-monitor"); err == nil {
		return p, nil
	}
	return "", errors.New("berth-monitor was not found next to the berth binary nor in $PATH (build it: make build)")
}
