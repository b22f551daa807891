package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// The first start of a container is driven by the berth command that asked for it: it has
// the image, the config and the store loaded already, and runs the runtime library's
// create itself. The monitor only forks the init on its behalf, so that the init is our
// child (we reap it and read its exit status), and gives it the stdio we own. The
// conversation is on a SOCK_SEQPACKET socket (spawn-fd), one message per packet (see
// package monitor, Spawn*). If that berth dies before it says how the start ended, the
// start helper takes over, as it does every start by a monitor alone: it finishes a
// create that got far enough (the init waits, or runs) and redoes one that did not.

// startSpawn makes the container's stdio and tells berth that we are ready.
func (m *mon) startSpawn() {
	ctr, closeAfter, ok := m.containerStdio()
	if !ok {
		return
	}
	m.spawnStdio, m.spawnClose = ctr, closeAfter
	if _, err := unix.Write(m.spawnFd, []byte{monitor.SpawnReady}); err != nil {
		m.spawnEnded()
		m.startHelper(monitor.HelperStart)
	}
}

// readSpawn serves one message of berth's.
func (m *mon) readSpawn() {
	oob := make([]byte, unix.CmsgSpace(4*monitor.SpawnMaxFDs))
	n, oobn, _, _, err := unix.Recvmsg(m.spawnFd, m.buf[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err == unix.EINTR || err == unix.EAGAIN {
		return
	}
	var fds []int
	if oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for i := range msgs {
				if got, perr := unix.ParseUnixRights(&msgs[i]); perr == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	if err != nil || n == 0 {
		m.spawnLost()
		return
	}
	msg := string(m.buf[1:n])
	switch m.buf[0] {
	case monitor.SpawnInit:
		m.spawnInit(msg, fds)
	case monitor.SpawnCreated:
		m.spawnCreated, _ = strconv.Atoi(msg)
	case monitor.SpawnStarted:
		pid, err := strconv.Atoi(msg)
		m.spawnEnded()
		reaped := m.reaped
		m.reaped = map[int]unix.WaitStatus{}
		if err != nil || pid <= 0 {
			m.startFailed("125 berth-monitor: berth reported a bad pid " + strconv.Quote(msg))
			return
		}
		m.started(pid, reaped)
	case monitor.SpawnFailed:
		m.spawnEnded()
		m.reaped = map[int]unix.WaitStatus{}
		m.startFailed(msg)
	default:
		logf("spawn: unknown message %s", strconv.Quote(msg))
		m.spawnLost()
	}
}

// spawnInit forks the init as berth asked: the descriptors are the executable, the
// cgroup (if the flag says so), then the init's descriptors from 3 on.
func (m *mon) spawnInit(msg string, fds []int) {
	f := strings.Split(msg, "\x00")
	reply := func(b []byte) {
		if _, err := unix.Write(m.spawnFd, b); err != nil {
			logf("spawn: reply: %s", err.Error())
		}
	}
	bad := func(why string) { reply(append([]byte{monitor.SpawnError}, "berth-monitor: spawn: "+why...)) }
	if len(f) < 2 || m.spawnStdio[0] == nil {
		bad("malformed request")
		return
	}
	argc, err := strconv.Atoi(f[1])
	if err != nil || argc < 1 || 2+argc > len(f) {
		bad("malformed argument count")
		return
	}
	need := 1
	if f[0] == "1" {
		need = 2
	}
	if len(fds) < need {
		bad("missing descriptors")
		return
	}
	files := make([]uintptr, 0, 3+len(fds))
	for _, f := range m.spawnStdio {
		files = append(files, f.Fd())
	}
	for _, fd := range fds[need:] {
		files = append(files, uintptr(fd))
	}
	sys := &syscall.SysProcAttr{}
	if need == 2 {
		sys.UseCgroupFD, sys.CgroupFD = true, fds[1]
	}
	// syscall's fork rather than os.StartProcess, whose first use forks a child more to
	// probe for pidfd support: the init is reaped by wait4 like any child.
	pid, _, err := syscall.StartProcess("/proc/self/fd/"+strconv.Itoa(fds[0]), f[2:2+argc], &syscall.ProcAttr{
		Env: f[2+argc:], Files: files, Sys: sys,
	})
	if err != nil {
		bad(err.Error())
		return
	}
	m.spawned = append(m.spawned, pid)
	if m.exeFd < 0 {
		// The executable is a read-only clone of berth-runtime, a detached mount that
		// goes when its last reference does, and that waits for an RCU grace period
		// (0.5-1 ms). Kept here, that last close is this monitor's exit rather than the
		// init's exec of the container's program or the berth CLI's create.
		m.exeFd, fds[0] = fds[0], -1
	}
	reply(append([]byte{monitor.SpawnPid}, strconv.Itoa(pid)...))
}

// spawnLost is berth gone without a word on how the start ended: killed, most likely.
// What it forked before the create was recorded is killed; the start helper then
// finishes or redoes the start, with the same stdio (an init that berth created has it
// already).
func (m *mon) spawnLost() {
	logf("the berth that started the container went away; the start helper takes over")
	if m.spawnCreated == 0 {
		for _, pid := range m.spawned {
			if _, gone := m.reaped[pid]; !gone {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	ctr, closeAfter := m.spawnStdio, m.spawnClose
	m.spawnClose = nil
	m.spawnEnded()
	m.runHelper(monitor.HelperStart, ctr, closeAfter[0])
	for _, f := range closeAfter {
		f.Close()
	}
}

// spawnEnded closes the socket and our copies of the container's stdio ends.
func (m *mon) spawnEnded() {
	for _, f := range m.spawnClose {
		f.Close()
	}
	m.spawnStdio, m.spawnClose, m.spawned = [3]*os.File{}, nil, nil
	if m.spawnFd >= 0 {
		unix.Close(m.spawnFd)
		m.spawnFd = -1
	}
}
