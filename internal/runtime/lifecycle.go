package runtime

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/berth-containers/berth/internal/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// status works out the live status of a recorded container from the kernel: whether its
// init is still the process that was started, whether it is still waiting on exec.fifo,
// and whether its cgroup is frozen.
func (r *Runtime) status(h *handle, rec *Record) Status {
	if rec.Creating {
		return StatusCreating
	}
	if !Alive(rec.Pid, rec.InitStartTime) {
		return StatusStopped
	}
	if initWaiting(h) {
		return StatusCreated
	}
	if frozen, err := cgroups.IsFrozen(rec.CgroupPaths); err == nil && frozen {
		return StatusPaused
	}
	return StatusRunning
}

// initWaiting tells whether an init holds exec.fifo open, i.e. has not exec'd yet: opening
// a fifo for writing without blocking succeeds only while it has a reader.
func initWaiting(h *handle) bool {
	fd, err := unix.Open(h.path(fifoFile), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

func (r *Runtime) publicState(h *handle, rec *Record) *State {
	st := &State{
		OCIVersion:  specs.Version,
		ID:          rec.ID,
		Status:      r.status(h, rec),
		Bundle:      rec.Bundle,
		Rootfs:      rec.Rootfs,
		Created:     rec.Created,
		Annotations: rec.Annotations,
		Owner:       rec.Owner,
	}
	if st.Status != StatusStopped {
		st.Pid = rec.Pid
	}
	return st
}

// State returns a container's OCI state.
func (r *Runtime) State(id string) (*State, error) {
	h, err := r.lock(id, true)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	rec, err := h.read()
	if err != nil {
		return nil, err
	}
	return r.publicState(h, rec), nil
}

// List returns the state of every container, sorted by creation time.
func (r *Runtime) List() ([]*State, error) {
	ids, err := r.ids()
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, id := range ids {
		st, err := r.State(id)
		if errors.Is(err, ErrNotExist) {
			continue // deleted while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Start releases the user's program of a created container.
func (r *Runtime) Start(id string) error {
	_, err := r.start(id)
	return err
}

// start releases the init and returns its pid.
func (r *Runtime) start(id string) (int, error) {
	h, err := r.lock(id, false)
	if err != nil {
		return 0, err
	}
	defer h.unlock()
	rec, err := h.read()
	if err != nil {
		return 0, err
	}
	if st := r.status(h, rec); st != StatusCreated {
		return 0, fmt.Errorf("container %s: cannot start a container that is %s", id, st)
	}
	fd, err := unix.Open(h.path(fifoFile), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("container %s: init is not waiting on %s: %w", id, h.path(fifoFile), err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte{0}); err != nil {
		return 0, fmt.Errorf("container %s: release init: %w", id, err)
	}
	hooks := len(rec.Poststart) > 0
	if hooks {
		// Poststart hooks run once the user's program is executed, as the spec says.
		waitExeced(h.path(fifoFile))
	}
	os.Remove(h.path(fifoFile))
	if hooks {
		st := hookState(id, specs.StateRunning, rec.Pid, rec.Bundle, rec.Annotations)
		// The program runs already: the spec makes a failure a warning.
		runHooksWarn("poststart", rec.Poststart, st, func(err error) { r.warn("container %s: %v", id, err) })
	}
	return rec.Pid, nil
}

// waitExeced waits until no process holds exec.fifo open for reading: the init's descriptor
// closes on exec, so from then on the user's program runs (or the init has died). Only start
// with poststart hooks waits, a few milliseconds at most, checking with a backoff.
func waitExeced(fifo string) {
	delay := 20 * time.Microsecond
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return // ENXIO: no reader left
		}
		unix.Close(fd)
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// Kill sends sig to the container's init, or with all to every process in its cgroup.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	h, err := r.lock(id, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	rec, err := h.read()
	if err != nil {
		return err
	}
	st := r.status(h, rec)
	if st == StatusStopped || st == StatusCreating {
		return fmt.Errorf("container %s: cannot signal a container that is %s", id, st)
	}
	if all {
		cg, err := cgroups.Load(rec.CgroupPaths)
		if err != nil {
			return fmt.Errorf("container %s: %w", id, err)
		}
		pids, err := cg.Pids()
		if err != nil {
			return fmt.Errorf("container %s: list processes: %w", id, err)
		}
		for _, p := range pids {
			if err := unix.Kill(p, sig); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("container %s: kill %d with %v: %w", id, p, sig, err)
			}
		}
		if st == StatusPaused && sig == unix.SIGKILL {
			cg.Thaw()
		}
		return nil
	}
	fd, err := pidfd(rec.Pid, rec.InitStartTime)
	if err != nil {
		return fmt.Errorf("container %s: init %d: %w", id, rec.Pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("container %s: signal %v to init %d: %w", id, sig, rec.Pid, err)
	}
	return nil
}

// Delete removes a container: its processes (a created one, or any with force), cgroup and
// record. A record left by a create that died halfway is cleaned up the same way.
//
// With force, a container that does not exist is not an error, as with runc: clients clean
// up with `delete --force` after a create that failed, and must not be told it failed twice.
func (r *Runtime) Delete(id string, force bool) error {
	h, err := r.lock(id, false)
	if force && errors.Is(err, ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.unlock()
	rec, err := h.read()
	if errors.Is(err, ErrNotExist) {
		// A create died before writing its record: nothing else can exist yet.
		return h.remove()
	}
	if err != nil {
		return err
	}
	st := r.status(h, rec)
	if (st == StatusRunning || st == StatusPaused) && !force {
		return fmt.Errorf("container %s: cannot delete a container that is %s (stop it first, or use --force)", id, st)
	}
	if err := r.destroy(rec); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if len(rec.Poststop) > 0 && !rec.Creating {
		st := hookState(id, specs.StateStopped, 0, rec.Bundle, rec.Annotations)
		runHooksWarn("poststop", rec.Poststop, st, func(err error) { r.warn("container %s: %v", id, err) })
	}
	return h.remove()
}

// destroy kills what is left of a container and removes its cgroup.
func (r *Runtime) destroy(rec *Record) error {
	cg, err := cgroups.Load(rec.CgroupPaths)
	if err != nil {
		return err
	}
	if fd, err := pidfd(rec.Pid, rec.InitStartTime); err == nil {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		cg.Thaw()
		// The init's death takes its pid namespace with it; wait so the cgroup empties.
		if err := waitGone(fd, 5000); err != nil {
			unix.Close(fd)
			return fmt.Errorf("init %d did not die after SIGKILL: %w", rec.Pid, err)
		}
		unix.Close(fd)
	}
	if err := cg.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	return nil
}
