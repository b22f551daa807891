package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
	"github.com/berth-containers/berth/internal/runtime"
)

// A start with the built-in runtime is driven by the berth command itself: it has the
// image, the config and the store open already, so it mounts, attaches and runs the
// runtime library's create in-process. Only the fork of the init is the monitor's (over
// its spawn socket, see package monitor), so that the init is the monitor's child and
// outlives us. If we are killed halfway, the monitor's start helper finishes or redoes
// the start (helperStart, resumeStart), so no container is lost.

// startHere starts the container whose directory l is locked; it unlocks it.
func (e *Engine) startHere(l *lockedDir, c *Container, st *State, rt ociRuntime, want byte) (*Session, error) {
	defer l.unlock()
	if movedByPid(c) {
		WarmCgroupAttach()
	}
	if pm := e.preMon; pm != nil {
		e.preMon = nil
		if pm.wait() {
			return e.startWithMonitor(l, c, st, rt, want, pm)
		}
	}
	var conn net.Conn
	var theirs *os.File
	var err error
	if want != 0 {
		if conn, theirs, err = socketpair(); err != nil {
			return nil, err
		}
		defer theirs.Close()
	}
	link, linkTheirs, err := newMonitorLink()
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	defer link.close()
	trace("start spawn")
	mpid, mstart, err := e.spawnMonitor(l, c, theirs, linkTheirs)
	trace("start spawned")
	linkTheirs.Close()
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	return e.startSpawned(l, c, st, rt, want, link, conn, mpid, mstart)
}

// startWithMonitor is startHere with the monitor BeginRun started: it gets its arguments
// (monitor.SpawnArgs) and the client end of the session if the run attaches.
func (e *Engine) startWithMonitor(l *lockedDir, c *Container, st *State, rt ociRuntime, want byte, pm *preMonitor) (*Session, error) {
	link := pm.link
	defer link.close()
	args := append(monitorArgs(c), "spawn-fd=3")
	var conn net.Conn
	if want != 0 {
		args, conn = append(args, "client-fd=4"), pm.client
	} else {
		pm.client.Close()
	}
	trace("start spawn")
	if err := link.send(monitor.SpawnArgs, strings.Join(args, "\x00")); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("container %s: its monitor (pid %d) is gone: %w", short(c.ID), pm.pid, err)
	}
	trace("start spawned")
	return e.startSpawned(l, c, st, rt, want, link, conn, pm.pid, pm.start)
}

// startSpawned goes on with a start once the monitor runs: the session, the create and
// the start, told to the monitor.
func (e *Engine) startSpawned(l *lockedDir, c *Container, st *State, rt ociRuntime, want byte, link *monitorLink, conn net.Conn, mpid int, mstart uint64) (*Session, error) {
	var err error
	st.MonitorPid, st.MonitorStart = mpid, mstart
	st.ManualStop = false
	var s *Session
	if conn != nil {
		if s, err = newSession(c.ID, conn, want); err != nil {
			link.send(monitor.SpawnFailed, "125 "+oneLine(err.Error()))
			return nil, err
		}
	}
	pid, err := e.startLocked(l, c, st, rt, [3]*os.File{}, link, mpid)
	if err != nil {
		code, msg := StartErrorCode(err), oneLine(err.Error())
		link.send(monitor.SpawnFailed, strconv.Itoa(code)+" "+msg)
		if s != nil {
			s.Close()
		}
		return nil, &StartError{Code: code, Msg: msg}
	}
	l.unlock()
	if err := link.send(monitor.SpawnStarted, strconv.Itoa(pid)); err != nil {
		e.warn("container %s: tell its monitor it started: %v", short(c.ID), err)
	}
	return s, nil
}

// resumeStart finishes, in the monitor's start helper, a first start whose berth was
// killed after the runtime created the init: the init waits (it is started) or runs
// already, and is our monitor's child. It reports false when there is no such init.
func (e *Engine) resumeStart(l *lockedDir, c *Container, st *State, rt ociRuntime) (int, bool) {
	b, ok := rt.(*builtinRuntime)
	if !ok {
		return 0, false
	}
	rs, err := b.rt.State(c.ID)
	if err != nil || (rs.Status != runtime.StatusCreated && rs.Status != runtime.StatusRunning) {
		return 0, false
	}
	if ppidOf(rs.Pid) != os.Getppid() {
		return 0, false
	}
	if rs.Status == runtime.StatusCreated {
		if err := b.rt.Start(c.ID); err != nil {
			return 0, false
		}
	}
	_, start, err := procStat(rs.Pid)
	if err != nil {
		return 0, false
	}
	st.Status = StatusRunning
	st.Pid, st.PidStart = rs.Pid, start
	st.MonitorPid = os.Getppid()
	if _, ms, err := procStat(st.MonitorPid); err == nil {
		st.MonitorStart = ms
	}
	st.StartedAt = time.Now().UTC()
	st.ExitCode, st.Error, st.OOMKilled, st.ManualStop = 0, "", false, false
	if err := l.writeState(st); err != nil {
		return 0, false
	}
	return rs.Pid, true
}

// ppidOf is a process's parent, 0 when it cannot be read.
func ppidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(string(f[1]))
	return n
}

// monitorLink is our end of a monitor's spawn socket.
type monitorLink struct {
	fd    int
	ready bool
	buf   [4096]byte
}

func newMonitorLink() (*monitorLink, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair for the monitor: %w", err)
	}
	return &monitorLink{fd: fds[0]}, os.NewFile(uintptr(fds[1]), "monitor-spawn"), nil
}

func (ml *monitorLink) close() {
	if ml.fd >= 0 {
		unix.Close(ml.fd)
		ml.fd = -1
	}
}

func (ml *monitorLink) send(typ byte, payload string) error {
	return ml.sendFDs(typ, payload, nil)
}

func (ml *monitorLink) sendFDs(typ byte, payload string, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	msg := append([]byte{typ}, payload...)
	for {
		err := unix.Sendmsg(ml.fd, msg, oob, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("send to the monitor: %w", err)
		}
		return nil
	}
}

// recv reads one message; the monitor gone is an error that points at its log.
func (ml *monitorLink) recv() (byte, string, error) {
	for {
		n, err := unix.Read(ml.fd, ml.buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("read from the monitor: %w", err)
		}
		if n == 0 {
			return 0, "", fmt.Errorf("the container's monitor exited (its errors are in %s in the container's directory)", monitor.MonitorLog)
		}
		return ml.buf[0], string(ml.buf[1:n]), nil
	}
}

// waitReady waits until the monitor has made the container's stdio.
func (ml *monitorLink) waitReady() error {
	if ml.ready {
		return nil
	}
	typ, msg, err := ml.recv()
	if err != nil {
		return err
	}
	if typ != monitor.SpawnReady {
		return fmt.Errorf("the container's monitor said %q, not ready", string(typ)+msg)
	}
	ml.ready = true
	return nil
}

// spawn is the runtime.Spawner that has the monitor fork the init.
func (ml *monitorLink) spawn(exe *os.File, argv, env []string, files []*os.File, cgroupFD int) (*os.Process, error) {
	if len(files) < 3 {
		return nil, fmt.Errorf("spawn the init: %d descriptors, want stdio and more", len(files))
	}
	if err := ml.waitReady(); err != nil {
		return nil, err
	}
	fds := []int{int(exe.Fd())}
	flag := "0"
	if cgroupFD >= 0 {
		fds, flag = append(fds, cgroupFD), "1"
	}
	for _, f := range files[3:] {
		fds = append(fds, int(f.Fd()))
	}
	if len(fds) > monitor.SpawnMaxFDs {
		return nil, fmt.Errorf("spawn the init: %d descriptors, at most %d", len(fds), monitor.SpawnMaxFDs)
	}
	fields := append([]string{flag, strconv.Itoa(len(argv))}, argv...)
	if err := ml.sendFDs(monitor.SpawnInit, strings.Join(append(fields, env...), "\x00"), fds); err != nil {
		return nil, fmt.Errorf("spawn the init: %w", err)
	}
	typ, msg, err := ml.recv()
	if err != nil {
		return nil, fmt.Errorf("spawn the init: %w", err)
	}
	switch typ {
	case monitor.SpawnPid:
		pid, err := strconv.Atoi(msg)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("spawn the init: the monitor sent a bad pid %q", msg)
		}
		// By pid alone, for Kill (os.FindProcess would first probe for pidfd support by
		// forking a child). The pid could be another process's only if the init died,
		// the monitor reaped it, and the pid was reused, in the moment since.
		return &os.Process{Pid: pid}, nil
	case monitor.SpawnError:
		return nil, fmt.Errorf("spawn the init: %s", msg)
	}
	return nil, fmt.Errorf("spawn the init: the monitor said %q", string(typ)+msg)
}
