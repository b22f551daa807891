package main

import (
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The health check's timer. The monitor only keeps time: at each interval it runs `berth
// healthcheck run --from-monitor ID`, which runs the check in the container with its
// timeout and records the result in the container's directory. The monitor waits for it
// through a pidfd in its poll loop, and schedules the next check an interval after the
// last ended, as Docker does; during the start period, until a check passes, at the start
// interval instead. No check runs while the container is stopped or waits for a restart;
// the berth command skips a paused one.

// healthSched is the container's schedule (health=INTERVAL,START-PERIOD,START-INTERVAL).
type healthSched struct {
	interval, startPeriod, startInterval time.Duration
}

// healthState is the monitor's side of the checks of the current run.
type healthState struct {
	sched   *healthSched
	at      time.Time // the next check, when not zero
	runAt   time.Time // when the init started, for the start period
	passed  bool      // a check of this run passed
	pid     int       // the running check, 0 if none
	pidfd   int
	devnull int
	// The check's command, made once: a check allocates nothing (see forkExec).
	args *execArgs
}

func parseHealthArg(v string) (*healthSched, bool) {
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return nil, false
	}
	var d [3]time.Duration
	for i, s := range f {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, false
		}
		d[i] = time.Duration(n)
	}
	if d[0] <= 0 || d[2] <= 0 {
		return nil, false
	}
	return &healthSched{interval: d[0], startPeriod: d[1], startInterval: d[2]}, true
}

// healthStarted begins the checks of a new run.
func (m *mon) healthStarted() {
	if m.hc.sched == nil {
		return
	}
	m.hc.runAt = time.Now()
	m.hc.passed = false
	m.healthSchedule()
}

// healthStopped ends them; a check still running ends on its own (its container is gone,
// and it records nothing for a run that is over).
func (m *mon) healthStopped() {
	m.hc.at = time.Time{}
}

func (m *mon) healthSchedule() {
	d := m.hc.sched.interval
	if !m.hc.passed && time.Since(m.hc.runAt) < m.hc.sched.startPeriod {
		d = m.hc.sched.startInterval
	}
	m.hc.at = time.Now().Add(d)
}

// healthDue runs the check if it is time.
func (m *mon) healthDue() {
	if m.hc.at.IsZero() || m.hc.pid != 0 || time.Now().Before(m.hc.at) {
		return
	}
	m.hc.at = time.Time{}
	if m.initPid <= 0 {
		return
	}
	if m.hc.devnull < 0 {
		fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			logf("health check: open /dev/null: %s", err.Error())
			m.healthSchedule()
			return
		}
		m.hc.devnull = fd
	}
	// Its errors go to our stderr, the monitor's log.
	if m.hc.args == nil {
		m.hc.args = newExecArgs(m.exe, []string{"berth", "healthcheck", "run", "--from-monitor", m.id},
			append(syscall.Environ(), "GOGC=off"))
	}
	pid, err := forkExec(m.hc.args, m.hc.devnull)
	if err != nil {
		logf("health check: start %s: %s", m.exe, err.Error())
		m.healthSchedule()
		return
	}
	m.hc.pid = pid
	m.hc.pidfd = -1
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		unix.CloseOnExec(fd)
		m.hc.pidfd = fd
	}
}

// healthDone takes the exit status of the check's berth: 0 the check passed, 1 it failed,
// anything else it did not run (skipped, or an error, in the log).
func (m *mon) healthDone(ws unix.WaitStatus) {
	m.hc.pid = 0
	if m.hc.pidfd >= 0 {
		unix.Close(m.hc.pidfd)
		m.hc.pidfd = -1
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		m.hc.passed = true
	}
	if m.initPid > 0 {
		m.healthSchedule()
	}
	// The SIGCHLD handler's and the fork's look-ups in the binary's tables faulted back
	// in much of the read-only data that dropText had let go (file pages come back 64 KiB
	// at a time): 0.6 MiB more RSS at a check a second. Let go of it again.
	if m.dropAt.IsZero() {
		dropText()
	}
}
