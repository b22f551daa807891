package engine

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// Info is a container as ps and inspect see it: its record and its state, checked
// against the kernel.
type Info struct {
	Container *Container
	State     State
	// Health is the health check's state (nil without one).
	Health *Health
}

// Running tells whether the container's init runs (paused included).
func (i *Info) Running() bool {
	return i.State.Status == StatusRunning || i.State.Status == StatusPaused
}

// Inspect returns one container.
func (e *Engine) Inspect(ref string) (*Info, error) {
	id, err := e.Resolve(ref)
	if err != nil {
		return nil, err
	}
	info, err := e.info(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotFoundError{Ref: ref}
	}
	return info, err
}

// List returns every container, newest first.
func (e *Engine) List() ([]*Info, error) {
	ids, err := e.ids()
	if err != nil {
		return nil, err
	}
	out := make([]*Info, 0, len(ids))
	for _, id := range ids {
		info, err := e.info(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sortByCreated(out)
	return out, nil
}

// info reads a container without locking it (both files are replaced by rename, so each
// read is whole) and checks what the state says against the kernel.
func (e *Engine) info(id string) (*Info, error) {
	dir := e.dir(id)
	c := &Container{}
	if err := readJSON(filepath.Join(dir, recordFile), c); err != nil {
		return nil, err
	}
	st := &State{Status: StatusCreated}
	if err := readJSON(filepath.Join(dir, stateFile), st); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	e.live(c, st, dir)
	return &Info{Container: c, State: *st, Health: e.health(dir, c, st)}, nil
}

// live corrects a state that processes which died could not update: a running container
// whose init is gone has exited (with the code its monitor recorded, if any); a restarting
// one whose monitor is gone will not restart.
func (e *Engine) live(c *Container, st *State, dir string) {
	monitorUp := st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart)
	switch st.Status {
	case StatusRunning:
		if alive(st.Pid, st.PidStart) {
			if cg, err := e.cgroupOf(c, st); err == nil {
				if frozen, err := cg.Frozen(); err == nil && frozen {
					st.Status = StatusPaused
				}
			}
			return
		}
		code, finished, ok := readExitFile(filepath.Join(dir, monitor.ExitFile))
		switch {
		case ok:
			st.ExitCode, st.FinishedAt = code, finished
		case monitorUp:
			// The monitor is between reaping the init and recording it.
			return
		default:
			st.ExitCode = 255
			st.Error = "the container's monitor died before it; its exit code is unknown"
		}
		st.Status = StatusExited
		st.Pid = 0
	case StatusRestarting:
		if !monitorUp {
			st.Status = StatusExited
		}
	}
}
