package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Health checks, as Docker runs them, without a daemon: the container's monitor keeps the
// timer and runs `berth healthcheck run ID` at each interval (cmd/berth-monitor/health.go);
// that command runs the test through Exec, with the timeout, and records the result in
// health.json in the container's directory, under the container's lock. The status is
// "starting" until a check passes or Retries checks in a row fail (failures within the
// start period do not count), then "healthy" or "unhealthy". Nothing acts on it: as on
// Docker, an unhealthy container is neither killed nor restarted.

// HealthConfig is Docker's Config.Healthcheck. Test is ["NONE"], ["CMD", args...] or
// ["CMD-SHELL", command]; an empty Test inherits the image's. Zero durations and retries
// mean the defaults (DefaultHealth*).
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// Docker's defaults, and the shortest duration it accepts.
const (
	DefaultHealthInterval      = 30 * time.Second
	DefaultHealthTimeout       = 30 * time.Second
	DefaultHealthStartInterval = 5 * time.Second
	DefaultHealthRetries       = 3
	MinimumHealthDuration      = time.Millisecond
	// HealthLogEntries and HealthOutputMax bound what is kept of the checks, as Docker does.
	HealthLogEntries = 5
	HealthOutputMax  = 4096
)

// Health statuses, Docker's; HealthNone is ps's filter value for a container without one.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
	HealthNone      = "none"
)

// Health is Docker's State.Health.
type Health struct {
	Status        string         `json:"Status"`
	FailingStreak int            `json:"FailingStreak"`
	Log           []HealthResult `json:"Log"`
}

// HealthResult is one check: ExitCode 0 passed, anything else failed (-1: the check could
// not run, or exceeded its timeout).
type HealthResult struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// healthFile is health.json: the Health of the run that started at Run. A record of an
// earlier run is that run's: the current one is "starting" until its first result.
type healthFile struct {
	Health
	Run time.Time `json:"Run"`
}

const healthFileName = "health.json"

// Active tells whether the config asks for checks.
func (h *HealthConfig) Active() bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func (h *HealthConfig) interval() time.Duration {
	return orDefault(h.Interval, DefaultHealthInterval)
}

func (h *HealthConfig) timeout() time.Duration { return orDefault(h.Timeout, DefaultHealthTimeout) }

func (h *HealthConfig) retries() int {
	if h.Retries == 0 {
		return DefaultHealthRetries
	}
	return h.Retries
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ValidateHealthConfig checks a Healthcheck as Docker's daemon does, in its words.
func ValidateHealthConfig(h *HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v != 0 && d.v < MinimumHealthDuration {
			return usagef("%s in Healthcheck cannot be less than %s", d.name, MinimumHealthDuration)
		}
	}
	if h.Retries < 0 {
		return usagef("Retries in Healthcheck cannot be negative")
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 || h.Test[1] == "" {
				return usagef("Healthcheck %s needs a command", h.Test[0])
			}
		default:
			return usagef("unknown type of Healthcheck test %q: want NONE, CMD or CMD-SHELL", h.Test[0])
		}
	}
	return nil
}

// mergeHealthConfig is Docker's: the command line's values win, the image's fill in what
// they leave unset.
func mergeHealthConfig(user *HealthConfig, img *v1.HealthConfig) *HealthConfig {
	if img == nil {
		return user
	}
	if user == nil {
		return &HealthConfig{Test: img.Test, Interval: img.Interval, Timeout: img.Timeout,
			StartPeriod: img.StartPeriod, Retries: img.Retries}
	}
	h := *user
	if len(h.Test) == 0 {
		h.Test = img.Test
	}
	if h.Interval == 0 {
		h.Interval = img.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = img.Timeout
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = img.StartPeriod
	}
	if h.Retries == 0 {
		h.Retries = img.Retries
	}
	return &h
}

// healthMonitorArgs tells the monitor the container's check schedule:
// health=INTERVAL,START-PERIOD,START-INTERVAL in nanoseconds.
func healthMonitorArgs(c *Container) []string {
	h := c.Config.Healthcheck
	if !h.Active() {
		return nil
	}
	return []string{"health=" + strconv.FormatInt(int64(h.interval()), 10) + "," +
		strconv.FormatInt(int64(h.StartPeriod), 10) + "," +
		strconv.FormatInt(int64(orDefault(h.StartInterval, DefaultHealthStartInterval)), 10)}
}

// health is the container's Health as inspect and ps show it, nil without checks or before
// its first start. As on Docker, a container whose checks stopped (exited, paused) is
// "unhealthy"; a new run is "starting" until its first result.
func (e *Engine) health(dir string, c *Container, st *State) *Health {
	if !c.Config.Healthcheck.Active() || st.StartedAt.IsZero() {
		return nil
	}
	var f healthFile
	if err := readJSON(filepath.Join(dir, healthFileName), &f); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.warn("container %s: %v", short(c.ID), err)
	}
	h := f.Health
	if !f.Run.Equal(st.StartedAt) {
		h.Status, h.FailingStreak = HealthStarting, 0
	}
	if h.Log == nil {
		h.Log = []HealthResult{}
	}
	if st.Status != StatusRunning {
		h.Status = HealthUnhealthy
	}
	return &h
}

// ErrHealthcheckSkipped is returned by HealthcheckRun for the monitor (fromMonitor) when the
// container is paused or no longer running: no check ran, nothing was recorded.
var ErrHealthcheckSkipped = errors.New("health check skipped: the container is not running or is paused")

// HealthcheckRun runs the container's check once and records its result (`berth
// healthcheck run`, which the monitor runs at each interval). It reports whether the check
// passed. fromMonitor makes a paused or stopped container a quiet ErrHealthcheckSkipped.
func (e *Engine) HealthcheckRun(ref string, fromMonitor bool) (*HealthResult, bool, error) {
	l, err := e.lock(ref, true)
	if err != nil {
		return nil, false, err
	}
	c, st, err := l.read()
	l.unlock()
	if err != nil {
		return nil, false, err
	}
	hc := c.Config.Healthcheck
	if !hc.Active() {
		return nil, false, messagef("container %s has no defined healthcheck", c.Name)
	}
	running := st.Status == StatusRunning && st.Pid > 0 && alive(st.Pid, st.PidStart)
	if running {
		if cg, err := e.cgroupOf(c, st); err == nil {
			if frozen, _ := cg.Frozen(); frozen {
				if fromMonitor {
					return nil, false, ErrHealthcheckSkipped
				}
				return nil, false, messagef("container %s is paused, unpause it before a health check", c.Name)
			}
		}
	}
	if !running {
		if fromMonitor {
			return nil, false, ErrHealthcheckSkipped
		}
		return nil, false, messagef("container %s is not running", c.Name)
	}
	var cmd []string
	switch hc.Test[0] {
	case "CMD":
		cmd = hc.Test[1:]
	case "CMD-SHELL":
		cmd = []string{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
	}
	res := e.probe(c.ID, cmd, hc.timeout())
	passed := res.ExitCode == 0
	if err := e.recordHealth(c, st.StartedAt, res); err != nil {
		return res, passed, err
	}
	return res, passed, nil
}

// probe runs cmd in the container through Exec, its stdout and stderr into one pipe, of
// which the first HealthOutputMax bytes are kept; at the timeout the process is killed.
// The process is started detached, with this process as its subreaper, so that its pid
// (a pidfd) is ours to wait for with a timeout and to kill.
func (e *Engine) probe(id string, cmd []string, timeout time.Duration) *HealthResult {
	res := &HealthResult{Start: time.Now().UTC(), ExitCode: -1}
	fail := func(err error) *HealthResult {
		res.End, res.Output = time.Now().UTC(), err.Error()
		return res
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err))
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("pipe: %w", err))
	}
	defer pr.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pw.Close()
		return fail(err)
	}
	pidDir, err := os.MkdirTemp("", "berth-health-")
	if err != nil {
		pw.Close()
		devnull.Close()
		return fail(err)
	}
	defer os.RemoveAll(pidDir)
	pidFile := filepath.Join(pidDir, "pid")
	_, err = e.Exec(id, ExecOptions{Cmd: cmd, Detach: true, PidFile: pidFile, Stdio: [3]*os.File{devnull, pw, pw}})
	pw.Close()
	devnull.Close()
	if err != nil {
		return fail(err)
	}
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || pid <= 0 {
		return fail(fmt.Errorf("read the pid of the check from %s: %v", pidFile, errors.Join(err, perr)))
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fail(fmt.Errorf("pidfd_open %d: %w", pid, err))
	}
	defer unix.Close(pidfd)
	// Read the pipe here (no goroutine): what the check wrote before it exited is all in
	// the pipe once the pidfd says so.
	rfd := int(pr.Fd())
	unix.SetNonblock(rfd, true)
	var out []byte
	var buf [4096]byte
	drain := func() bool {
		for {
			n, err := unix.Read(rfd, buf[:])
			if n > 0 {
				if room := HealthOutputMax - len(out); room > 0 {
					out = append(out, buf[:min(n, room)]...)
				}
				continue
			}
			if err == unix.EINTR {
				continue
			}
			return err == nil // end of file
		}
	}
	deadline := res.Start.Add(timeout)
	timedOut, pipeDone := false, false
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		if !pipeDone {
			fds = append(fds, unix.PollFd{Fd: int32(rfd), Events: unix.POLLIN})
		}
		ms := -1
		if !timedOut {
			ms = max(int(time.Until(deadline)/time.Millisecond)+1, 0)
		}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			timedOut = true
			res.Output = "poll: " + err.Error()
			break
		}
		if len(fds) > 1 && fds[1].Revents != 0 && drain() {
			pipeDone = true
		}
		if fds[0].Revents != 0 {
			break
		}
		if n == 0 && !timedOut && !time.Now().Before(deadline) {
			// Docker kills the check's process too; its exit code is then not the result.
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			timedOut = true
		}
	}
	if !pipeDone {
		drain()
	}
	code := reapPid(pid)
	res.End = time.Now().UTC()
	switch {
	case timedOut && res.Output == "":
		res.Output = fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
	case timedOut:
	default:
		res.ExitCode, res.Output = code, string(out)
	}
	return res
}

// reapPid waits for pid, reaping whatever else of ours exits meanwhile (the exec's stages).
func reapPid(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// recordHealth applies a result to health.json, Docker's way, unless the run it belongs
// to (started at run) is over.
func (e *Engine) recordHealth(c *Container, run time.Time, res *HealthResult) error {
	l, err := e.lockID(c.ID, false)
	if err != nil {
		return err
	}
	defer l.unlock()
	st, err := l.readState()
	if err != nil {
		return err
	}
	if !st.StartedAt.Equal(run) || st.Status != StatusRunning {
		return nil
	}
	var f healthFile
	if err := readJSON(l.path(healthFileName), &f); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.warn("container %s: %v (starting anew)", short(c.ID), err)
	}
	if !f.Run.Equal(run) {
		f.Status, f.FailingStreak, f.Run = HealthStarting, 0, run
	}
	hc := c.Config.Healthcheck
	if res.ExitCode == 0 {
		f.Status, f.FailingStreak = HealthHealthy, 0
	} else if !(f.Status == HealthStarting && res.Start.Sub(run) < hc.StartPeriod) {
		// Failures in the start period do not count while no check has passed.
		f.FailingStreak++
		if f.FailingStreak >= hc.retries() {
			f.Status = HealthUnhealthy
		}
	}
	f.Log = append(f.Log, *res)
	if n := len(f.Log); n > HealthLogEntries {
		f.Log = append([]HealthResult(nil), f.Log[n-HealthLogEntries:]...)
	}
	if f.Status == "" {
		f.Status = HealthStarting
	}
	if err := writeJSON(l.path(healthFileName), &f); err != nil {
		return fmt.Errorf("container %s: %w", short(c.ID), err)
	}
	return nil
}
