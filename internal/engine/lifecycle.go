package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/engine/monitor"
)

// Start starts a created or exited container: it starts the container's monitor and, with
// the built-in runtime, creates and starts the container itself while the monitor forks the
// init (spawn.go); another runtime, or a restart, goes through the monitor's start helper.
// With want != 0 the returned session is
// attached to the container's stdio from its first byte (run, start -a) and the caller
// reads the start result from it; otherwise Start waits for the result and returns a nil
// session. Starting a running container does nothing.
func (e *Engine) Start(ref string, want byte) (*Session, error) {
	if l := e.created; l != nil {
		c, pm := e.createdC, e.createdMon
		e.created, e.createdC, e.createdMon = nil, nil, nil
		if ref == l.id {
			// Made by this process's Create a moment ago and locked since: its record is
			// in hand and it has never run.
			rt, err := e.ociRuntime(c.HostConfig.Runtime)
			if err == nil {
				if _, ok := rt.(*builtinRuntime); ok {
					e.preMon = pm
					return e.startHere(l, c, &State{Status: StatusCreated}, rt, want)
				}
			}
		}
		pm.close()
		l.unlock()
	}
	l, err := e.lock(ref, false)
	if err != nil {
		return nil, err
	}
	id := l.id
	c, err := l.readContainer()
	if err != nil {
		l.unlock()
		return nil, err
	}
	st, err := l.readState()
	if err != nil {
		l.unlock()
		return nil, err
	}
	if st.Pid > 0 && alive(st.Pid, st.PidStart) {
		l.unlock()
		if want != 0 {
			return e.dialMonitor(id, want)
		}
		return nil, nil
	}
	if st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart) {
		switch st.Status {
		case StatusRestarting:
			l.unlock()
			return nil, fmt.Errorf("cannot start container %s: it is restarting (stop it first)", c.Name)
		case StatusExited, StatusRunning:
			if st.Status == StatusRunning && st.Pid <= 0 {
				l.unlock()
				return nil, fmt.Errorf("cannot start container %s: it is being started by another berth", c.Name)
			}
			// The last run is over (its init, checked above, is gone) and recorded, or
			// being recorded by its monitor's exit helper; the monitor is saying goodbye
			// to its clients. It holds nothing the new run needs, but one monitor at a
			// time.
			l.unlock()
			if !waitPidGone(st.MonitorPid, st.MonitorStart, 5*time.Second) {
				return nil, fmt.Errorf("cannot start container %s: the monitor %d of its last run does not exit", c.Name, st.MonitorPid)
			}
			return e.Start(ref, want)
		default:
			l.unlock()
			return nil, fmt.Errorf("cannot start container %s: it is being started by another berth", c.Name)
		}
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		l.unlock()
		return nil, err
	}
	if _, ok := rt.(*builtinRuntime); ok {
		return e.startHere(l, c, st, rt, want)
	}
	// Another runtime's init is the child of its create command, so the monitor must
	// run that: its helper does the whole start.
	conn, theirs, err := socketpair()
	if err != nil {
		l.unlock()
		return nil, err
	}
	trace("start spawn")
	pid, pstart, err := e.spawnMonitor(l, c, theirs, nil)
	trace("start spawned")
	theirs.Close()
	if err != nil {
		l.unlock()
		conn.Close()
		return nil, err
	}
	st.MonitorPid, st.MonitorStart = pid, pstart
	st.ManualStop = false
	if err := l.writeState(st); err != nil {
		e.warn("%v", err)
	}
	// The helper needs the lock.
	l.unlock()
	s, err := newSession(id, conn, want)
	if err != nil {
		return nil, err
	}
	if want != 0 {
		return s, nil
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			return nil, fmt.Errorf("container %s: its monitor went away before it started: %w", short(id), err)
		}
		switch ev.Type {
		case monitor.FrameStarted:
			return nil, nil
		case monitor.FrameStartError:
			return nil, ev.StartError()
		}
	}
}

// spawnMonitor starts berth-monitor for the container, detached in its own session, with
// its end of the client connection and of the spawn socket (each if not nil) as
// descriptors 3 and on.
func (e *Engine) spawnMonitor(l *lockedDir, c *Container, client, spawn *os.File) (int, uint64, error) {
	args := monitorArgs(c)
	files := []*os.File{}
	if client != nil {
		args = append(args, "client-fd="+strconv.Itoa(3+len(files)))
		files = append(files, client)
	}
	if spawn != nil {
		args = append(args, "spawn-fd="+strconv.Itoa(3+len(files)))
		files = append(files, spawn)
	}
	pid, start, err := e.startMonitor(l.dir, c.ID, args, files)
	if err != nil {
		return 0, 0, fmt.Errorf("container %s: %w", short(c.ID), err)
	}
	return pid, start, nil
}

// monitorArgs are the container's options on a monitor's command line, after the id.
func monitorArgs(c *Container) []string {
	var args []string
	if c.Config.Tty {
		args = append(args, "tty")
	}
	if c.Config.OpenStdin {
		args = append(args, "stdin")
	}
	if noLog(c) {
		args = append(args, "nolog")
	}
	if v := c.HostConfig.LogConfig.Config["max-size"]; v != "" {
		if n, err := ParseSize(v); err == nil && n > 0 {
			args = append(args, "log-size="+strconv.FormatInt(n, 10))
		}
	}
	if v := c.HostConfig.LogConfig.Config["max-file"]; v != "" {
		args = append(args, "log-files="+v)
	}
	return append(args, healthMonitorArgs(c)...)
}

// startMonitor starts berth-monitor for container id in dir, with args after the id and
// files as its descriptors from 3 on.
func (e *Engine) startMonitor(dir, id string, args []string, files []*os.File) (int, uint64, error) {
	mon, err := e.monitorExe()
	if err != nil {
		return 0, 0, err
	}
	self, err := e.exe()
	if err != nil {
		return 0, 0, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, monitor.MonitorLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, 0, err
	}
	defer devnull.Close()
	env := os.Environ()
	env = setEnv(env, "BERTH_ROOT", e.Root)
	env = setEnv(env, "BERTH_RUNTIME_ROOT", e.RuntimeRoot)
	env = setEnv(env, "GOMAXPROCS", "1")
	fds := []uintptr{devnull.Fd(), logf.Fd(), logf.Fd()}
	for _, f := range files {
		fds = append(fds, f.Fd())
	}
	// syscall's fork rather than os.StartProcess, whose first use forks a child more to
	// probe for pidfd support; the monitor is not ours to wait for.
	pid, _, err := syscall.StartProcess(mon, append([]string{"berth-monitor", self, id}, args...), &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: fds,
		Sys:   &sysProcAttrSetsid,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", mon, err)
	}
	_, start, _ := procStat(pid)
	return pid, start, nil
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

// NotRunningError is an operation that needs a running container.
type NotRunningError struct{ ID string }

func (e *NotRunningError) Error() string { return fmt.Sprintf("container %s is not running", e.ID) }

// Kill sends sig to the container's init.
func (e *Engine) Kill(ref string, sig unix.Signal) error {
	l, err := e.lock(ref, true)
	if err != nil {
		return err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return err
	}
	if st.Pid == 0 || !alive(st.Pid, st.PidStart) {
		return fmt.Errorf("cannot kill container: %s: %w", ref, &NotRunningError{ID: c.ID})
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if err := rt.kill(c.ID, sig, false); err != nil {
		return fmt.Errorf("cannot kill container: %s: %w", ref, err)
	}
	return nil
}

// DefaultStopTimeout is Docker's: seconds between the stop signal and SIGKILL.
const DefaultStopTimeout = 10

// Stop stops a running container: its stop signal, then SIGKILL after the timeout
// (seconds; nil means the container's own or 10; negative waits forever). It returns once
// the container is stopped and its run torn down. The restart policy does not bring it
// back.
func (e *Engine) Stop(ref string, timeout *int) error {
	l, err := e.lock(ref, false)
	if err != nil {
		return err
	}
	id := l.id
	c, err := l.readContainer()
	if err != nil {
		l.unlock()
		return err
	}
	st, err := l.readState()
	if err != nil {
		l.unlock()
		return err
	}
	running := st.Pid > 0 && alive(st.Pid, st.PidStart)
	monitorUp := st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart)
	if !running && !(st.Status == StatusRestarting && monitorUp) {
		l.unlock()
		if st.Status == StatusRunning || st.Status == StatusRestarting {
			return e.reconcile(id)
		}
		return nil
	}
	st.ManualStop = true
	if err := l.writeState(st); err != nil {
		l.unlock()
		return err
	}
	l.unlock()
	// Connected before the signal, so the exit cannot be missed.
	s, _ := e.dialMonitor(id, 0)
	if s != nil {
		defer s.Close()
	}
	if !running {
		// Restarting: the monitor's next start sees ManualStop and gives up.
		e.waitSession(s, -1)
		return nil
	}
	secs := DefaultStopTimeout
	if c.Config.StopTimeout != nil {
		secs = *c.Config.StopTimeout
	}
	if timeout != nil {
		secs = *timeout
	}
	sig := unix.SIGTERM
	if c.Config.StopSignal != "" {
		if s, err := ParseSignal(c.Config.StopSignal); err == nil {
			sig = s
		}
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if err := rt.kill(id, sig, false); err != nil && alive(st.Pid, st.PidStart) {
		return fmt.Errorf("cannot stop container: %s: %w", ref, err)
	}
	wait := time.Duration(secs) * time.Second
	if secs < 0 {
		wait = -1
	}
	if !waitPidGone(st.Pid, st.PidStart, wait) {
		// Rootless containers have no cgroup to find the others by; killing the init
		// of their pid namespace kills every process in it.
		if err := rt.kill(id, unix.SIGKILL, !e.rootless); err != nil && alive(st.Pid, st.PidStart) {
			return fmt.Errorf("cannot stop container: %s: %w", ref, err)
		}
		if !waitPidGone(st.Pid, st.PidStart, 30*time.Second) {
			return fmt.Errorf("cannot stop container: %s: the init %d survived SIGKILL", ref, st.Pid)
		}
	}
	if e.waitSession(s, 30*time.Second) {
		return nil
	}
	return e.reconcile(id)
}

// waitSession waits for the monitor's exit frame, or for the monitor to go; it reports
// whether the monitor said the run is over.
func (e *Engine) waitSession(s *Session, timeout time.Duration) bool {
	_, ok := e.waitExit(s, timeout)
	return ok
}

// waitExit is waitSession with the exit code (125 for a start that failed).
func (e *Engine) waitExit(s *Session, timeout time.Duration) (int, bool) {
	if s == nil {
		return 0, false
	}
	if timeout >= 0 {
		s.SetDeadline(time.Now().Add(timeout))
	}
	for {
		ev, err := s.Next()
		if err != nil {
			return 0, false
		}
		switch ev.Type {
		case monitor.FrameExit:
			return ev.ExitCode(), true
		case monitor.FrameStartError:
			return ev.StartError().Code, true
		}
	}
}

// reconcile makes the record true after the processes that should have updated it died:
// a run whose init and monitor are both gone is torn down and recorded as exited (with
// the code the monitor recorded, if it got that far).
func (e *Engine) reconcile(id string) error {
	for tries := 0; ; tries++ {
		l, err := e.lockID(id, false)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		c, err := l.readContainer()
		if err != nil {
			l.unlock()
			return err
		}
		st, err := l.readState()
		if err != nil {
			l.unlock()
			return err
		}
		if st.Status != StatusRunning && st.Status != StatusRestarting {
			l.unlock()
			return nil
		}
		if st.Pid > 0 && alive(st.Pid, st.PidStart) {
			l.unlock()
			return nil
		}
		if st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart) && tries < 100 {
			// The monitor is handling the exit; it needs the lock.
			l.unlock()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		code, finished, ok := readExitFile(l.path(monitor.ExitFile))
		if !ok {
			code, finished = 255, time.Now().UTC()
			st.Error = "the container's monitor died before it; its exit code is unknown"
		}
		e.teardown(l, c, st, nil)
		st.Status, st.ExitCode, st.FinishedAt = StatusExited, code, finished
		st.Pid, st.PidStart = 0, 0
		err = l.writeState(st)
		if err == nil && c.HostConfig.AutoRemove {
			err = e.removeLocked(l, c, true)
		}
		l.unlock()
		return err
	}
}

// Restart stops the container if it runs, then starts it.
func (e *Engine) Restart(ref string, timeout *int) error {
	if err := e.Stop(ref, timeout); err != nil {
		return err
	}
	_, err := e.Start(ref, 0)
	return err
}

// Wait blocks until the container stops and returns its exit code (Docker's `wait`).
func (e *Engine) Wait(ref string) (int, error) {
	id, err := e.Resolve(ref)
	if err != nil {
		return -1, err
	}
	for {
		s, _ := e.dialMonitor(id, 0)
		if s != nil {
			code, ok := e.waitExit(s, -1)
			s.Close()
			if ok {
				// The monitor's word, which stands even if the container is gone (--rm).
				return code, nil
			}
		}
		info, err := e.Inspect(id)
		if errors.Is(err, ErrNotFound) {
			return -1, err
		}
		if err != nil {
			return -1, err
		}
		switch info.State.Status {
		case StatusRunning, StatusPaused, StatusRestarting:
			if s == nil {
				// No monitor to wait on: wait for the init itself.
				if !waitPidGone(info.State.Pid, info.State.PidStart, time.Second) {
					continue
				}
				e.reconcile(id)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return info.State.ExitCode, nil
	}
}

// Remove deletes a container: its record, logs, snapshot and name, and with volumes its
// anonymous volumes. A running container needs force, which kills it first.
func (e *Engine) Remove(ref string, force, volumes bool) error {
	l, err := e.lock(ref, false)
	if err != nil {
		return err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return err
	}
	running := st.Pid > 0 && alive(st.Pid, st.PidStart)
	monitorUp := st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart)
	if (running || (st.Status == StatusRestarting && monitorUp)) && !force {
		state := "running"
		if !running {
			state = "restarting"
		}
		return fmt.Errorf("cannot remove container \"/%s\": container is %s: stop the container before removing or force remove", c.Name, state)
	}
	st.ManualStop = true
	if err := l.writeState(st); err != nil {
		return err
	}
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if running {
		// The monitor reaps the init and runs its exit helper, which waits for our lock
		// and then finds the container gone.
		rt.kill(c.ID, unix.SIGKILL, !e.rootless)
	}
	e.teardown(l, c, st, rt)
	if running && monitorUp {
		// The monitor reaps the init, drains its output into the log and writes the exit
		// file, all in the container's directory (its working directory): a removal that
		// started meanwhile would have files appear under it.
		waitForFile(l.path(monitor.ExitFile), 2*time.Second)
	}
	return e.removeLocked(l, c, volumes)
}

// waitForFile waits until path exists, at most limit. The monitor writes its exit file
// within a millisecond of the init's death, which the caller has already waited for.
func waitForFile(path string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// removeLocked deletes the stopped container's files. The directory is first renamed to
// .removing-<id>, so the container is gone at once for everyone and a removal that is
// killed halfway is finished by the next listing.
func (e *Engine) removeLocked(l *lockedDir, c *Container, volumes bool) error {
	_, err := e.removeLockedSnap(l, c, volumes, true, false)
	return err
}

// removeLockedSnap is removeLocked; without snapshot, the caller has removed the snapshot.
// With leave, the directory's files are not deleted: the directory is renamed to
// monitor.RemovedPfx+ID for the container's monitor to delete, and left says so.
func (e *Engine) removeLockedSnap(l *lockedDir, c *Container, volumes, snapshot, leave bool) (left bool, err error) {
	gone := filepath.Join(e.containersPath(), removingPfx+c.ID)
	if err := os.Rename(l.dir, gone); err != nil {
		return false, fmt.Errorf("remove container %s: %w", short(c.ID), err)
	}
	l.dir = gone
	e.releaseName(c.Name, c.ID)
	trace("remove renamed")
	return e.finishRemoval(gone, c, volumes, snapshot, leave)
}

const removingPfx = ".removing-"

// finishRemoval removes what the container has outside its directory, then the directory
// (see removeLockedSnap for leave).
func (e *Engine) finishRemoval(dir string, c *Container, volumes, snapshot, leave bool) (left bool, err error) {
	// The snapshot and the directory are removed side by side: each is a walk of
	// unlinks that waits on the filesystem.
	snapErr := make(chan error, 1)
	if !snapshot {
		snapErr <- nil
	} else {
		go func() {
			sn, err := e.snapshotter()
			if err == nil {
				err = sn.Remove(c.ID)
			}
			snapErr <- err
		}()
	}
	var errs []error
	if volumes {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Anonymous {
				if err := e.VolumeRemove(m.Name, true); err != nil {
					e.warn("container %s: remove anonymous volume %s: %v", short(c.ID), m.Name, err)
				}
			}
		}
	}
	if c.UserNSMap != nil {
		// A scan of every allocation: only for a container that has one.
		e.freeUserNS(c.ID)
	}
	if !e.rootless && isBuiltinRuntime(c.HostConfig.Runtime) {
		// A cgroup made early for a start that never reached the runtime's create (its
		// berth was killed): the runtime has no record of it.
		if rt, err := e.runtime(); err == nil {
			rt.RemoveOrphanCgroup(c.ID)
		}
	}
	if leave {
		left = os.Rename(dir, filepath.Join(filepath.Dir(dir), monitor.RemovedPfx+c.ID)) == nil
	}
	if !left {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	if err := <-snapErr; err != nil {
		errs = append(errs, err)
	}
	trace("remove snapshot removed")
	return left, errors.Join(errs...)
}

// deleteRemoved deletes a removed container's directory that its monitor did not (see
// monitor.RemovedPfx), unless a process holds it.
func (e *Engine) deleteRemoved(name string) {
	dir := filepath.Join(e.containersPath(), name)
	f := lockLeftover(dir)
	if f == nil {
		return
	}
	defer f.Close()
	os.RemoveAll(dir)
}

// lockLeftover opens a directory that a killed process may have left (.creating-,
// .removing-, .removed-) and takes its lock without waiting: nil when it is gone, or when
// a process holds it and is still at work on it.
func lockLeftover(dir string) *os.File {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		f.Close()
		return nil
	}
	return f
}

// finishAbandonedRemoval completes a removal whose process was killed.
func (e *Engine) finishAbandonedRemoval(id string) {
	dir := filepath.Join(e.containersPath(), removingPfx+id)
	f := lockLeftover(dir)
	if f == nil {
		return
	}
	defer f.Close()
	c := &Container{ID: id}
	readJSON(filepath.Join(dir, recordFile), c)
	c.ID = id
	if c.Name != "" {
		e.releaseName(c.Name, id)
	}
	e.finishRemoval(dir, c, c.HostConfig.AutoRemove, true, false)
}

// Pause freezes every process of the container.
func (e *Engine) Pause(ref string) error { return e.freeze(ref, true) }

// Unpause thaws a paused container.
func (e *Engine) Unpause(ref string) error { return e.freeze(ref, false) }

func (e *Engine) freeze(ref string, freeze bool) error {
	l, err := e.lock(ref, false)
	if err != nil {
		return err
	}
	defer l.unlock()
	c, st, err := l.read()
	if err != nil {
		return err
	}
	if st.Pid == 0 || !alive(st.Pid, st.PidStart) {
		return &NotRunningError{ID: c.ID}
	}
	cg, err := e.cgroupOf(c, st)
	if err != nil {
		return err
	}
	frozen, err := cg.Frozen()
	if err != nil {
		return fmt.Errorf("container %s: %w", short(c.ID), err)
	}
	if freeze {
		if frozen {
			return fmt.Errorf("container %s is already paused", short(c.ID))
		}
		return cg.Freeze()
	}
	if !frozen {
		return fmt.Errorf("container %s is not paused", short(c.ID))
	}
	return cg.Thaw()
}

// cgroupOf returns the running container's cgroup.
func (e *Engine) cgroupOf(c *Container, st *State) (cgroups.Manager, error) {
	rt, err := e.ociRuntime(c.HostConfig.Runtime)
	if err != nil {
		return nil, err
	}
	paths := rt.cgroupPaths(c.ID)
	if paths == nil {
		paths = cgroupPathsOf(st.Pid)
	}
	if paths == nil {
		return nil, fmt.Errorf("container %s: its cgroup is unknown", short(c.ID))
	}
	cg, err := cgroups.Load(paths)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", short(c.ID), err)
	}
	return cg, nil
}

// Rename gives a container a new name.
func (e *Engine) Rename(ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if err := ValidateName(name); err != nil {
		return &UsageError{Msg: err.Error()}
	}
	l, err := e.lock(ref, false)
	if err != nil {
		return err
	}
	defer l.unlock()
	c, err := l.readContainer()
	if err != nil {
		return err
	}
	if c.Name == name {
		return messagef("Renaming a container with the same name as its current name")
	}
	if err := e.claimName(name, c.ID); err != nil {
		return err
	}
	old := c.Name
	c.Name = name
	if err := l.writeContainer(c); err != nil {
		e.releaseName(name, c.ID)
		return err
	}
	e.releaseName(old, c.ID)
	return nil
}

// ParseSignal reads a signal as Docker takes it: a name with or without SIG, or a number.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, messagef("Invalid signal: %s", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && 34+n <= 64 {
			return unix.Signal(34 + n), nil
		}
	}
	return 0, messagef("Invalid signal: %s", s)
}

// sysProcAttrSetsid detaches the monitor from the caller's session and terminal.
var sysProcAttrSetsid = syscall.SysProcAttr{Setsid: true}
