package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/berth-containers/berth/internal/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupOf locks a container for a cgroup operation and loads its manager.
func (r *Runtime) cgroupOf(id string, shared bool) (*handle, *Record, cgroups.Manager, error) {
	h, err := r.lock(id, shared)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := h.read()
	if err != nil {
		h.unlock()
		return nil, nil, nil, err
	}
	cg, err := cgroups.Load(rec.CgroupPaths)
	if err != nil {
		h.unlock()
		return nil, nil, nil, fmt.Errorf("container %s: %w", id, err)
	}
	return h, rec, cg, nil
}

// Pause freezes every process of a running container.
func (r *Runtime) Pause(id string) error {
	h, rec, cg, err := r.cgroupOf(id, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	if st := r.status(h, rec); st != StatusRunning {
		return fmt.Errorf("container %s: cannot pause a container that is %s", id, st)
	}
	if err := cg.Freeze(); err != nil {
		return fmt.Errorf("container %s: pause: %w", id, err)
	}
	return nil
}

// Resume thaws a paused container.
func (r *Runtime) Resume(id string) error {
	h, rec, cg, err := r.cgroupOf(id, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	if st := r.status(h, rec); st != StatusPaused {
		return fmt.Errorf("container %s: cannot resume a container that is %s", id, st)
	}
	if err := cg.Thaw(); err != nil {
		return fmt.Errorf("container %s: resume: %w", id, err)
	}
	return nil
}

// Update applies new resources to a live container and records them in its config.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	h, rec, cg, err := r.cgroupOf(id, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	if st := r.status(h, rec); st == StatusStopped || st == StatusCreating {
		return fmt.Errorf("container %s: cannot update a container that is %s", id, st)
	}
	if err := cg.Update(res); err != nil {
		return fmt.Errorf("container %s: update: %w", id, err)
	}
	spec, err := h.spec()
	if err != nil {
		return err
	}
	spec.Linux.Resources = mergeResources(spec.Linux.Resources, res)
	return writeJSON(h.path(configFile), spec)
}

// Spec returns the OCI config a container was created with (with any later updates).
func (r *Runtime) Spec(id string) (*specs.Spec, error) {
	h, err := r.lock(id, true)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	return h.spec()
}

func (h *handle) spec() (*specs.Spec, error) {
	return h.readSpec(func(b []byte) (*specs.Spec, error) {
		spec := &specs.Spec{}
		return spec, json.Unmarshal(b, spec)
	})
}

// linuxSpec reads the stored config without the other platforms' sections (decodeSpec), for
// exec, which only reads it; update writes it back, and Spec returns it, whole.
func (h *handle) linuxSpec() (*specs.Spec, error) { return h.readSpec(decodeSpec) }

func (h *handle) readSpec(decode func([]byte) (*specs.Spec, error)) (*specs.Spec, error) {
	b, err := os.ReadFile(h.path(configFile))
	if err != nil {
		return nil, fmt.Errorf("container %s: read stored config: %w", h.id, err)
	}
	spec, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("container %s: stored config is corrupt: %w", h.id, err)
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	return spec, nil
}

// mergeResources overlays the sections update sets on the recorded ones.
func mergeResources(old, upd *specs.LinuxResources) *specs.LinuxResources {
	if old == nil {
		c := *upd
		return &c
	}
	m := *old
	if upd.Memory != nil {
		m.Memory = upd.Memory
	}
	if upd.CPU != nil {
		m.CPU = upd.CPU
	}
	if upd.Pids != nil {
		m.Pids = upd.Pids
	}
	if upd.BlockIO != nil {
		m.BlockIO = upd.BlockIO
	}
	if upd.HugepageLimits != nil {
		m.HugepageLimits = upd.HugepageLimits
	}
	if upd.Unified != nil {
		m.Unified = upd.Unified
	}
	if upd.Devices != nil {
		m.Devices = upd.Devices
	}
	return &m
}

// Pids lists the processes of a container, from its cgroup.
func (r *Runtime) Pids(id string) ([]int, error) {
	h, _, cg, err := r.cgroupOf(id, true)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	pids, err := cg.Pids()
	if err != nil {
		return nil, fmt.Errorf("container %s: list processes: %w", id, err)
	}
	return pids, nil
}

// Event is one line of `events`, in runc's shape.
type Event struct {
	Type string         `json:"type"`
	ID   string         `json:"id"`
	Data *cgroups.Stats `json:"data,omitempty"`
}

// Stats reads a container's cgroup counters.
func (r *Runtime) Stats(id string) (*cgroups.Stats, error) {
	h, rec, cg, err := r.cgroupOf(id, true)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	if st := r.status(h, rec); st == StatusStopped {
		return nil, fmt.Errorf("container %s: cannot read the stats of a container that is %s", id, st)
	}
	s, err := cg.Stats()
	if err != nil {
		return nil, fmt.Errorf("container %s: stats: %w", id, err)
	}
	return s, nil
}

// oomPoll is how often Events looks for new OOM kills between stats events.
const oomPoll = 200 * time.Millisecond

// Events sends a stats event every interval and an oom event whenever the kernel OOM-kills
// a process of the container (seen within oomPoll), until ctx ends or the container stops.
func (r *Runtime) Events(ctx context.Context, id string, interval time.Duration, emit func(Event) error) error {
	if interval <= 0 {
		return fmt.Errorf("container %s: events interval %v must be positive", id, interval)
	}
	var lastOOM uint64
	first := true
	nextStats := time.Now()
	for {
		s, err := r.Stats(id)
		if err != nil {
			if st, serr := r.State(id); serr == nil && st.Status == StatusStopped {
				return nil
			}
			return err
		}
		if !first && s.Memory.OOMKills > lastOOM {
			if err := emit(Event{Type: "oom", ID: id}); err != nil {
				return err
			}
		}
		lastOOM, first = s.Memory.OOMKills, false
		if !time.Now().Before(nextStats) {
			if err := emit(Event{Type: "stats", ID: id, Data: s}); err != nil {
				return err
			}
			nextStats = time.Now().Add(interval)
		}
		wait := min(oomPoll, time.Until(nextStats))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
