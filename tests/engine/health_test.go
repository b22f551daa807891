package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// healthDoc is inspect's State.Health.
type healthDoc struct {
	Status        string
	FailingStreak int
	Log           []struct {
		Start, End time.Time
		ExitCode   int
		Output     string
	}
}

// health reads the container's State.Health; nil when inspect has none.
func (h *harness) health(ref string) *healthDoc {
	h.t.Helper()
	out := h.inspect(ref, "{{json .State.Health}}")
	if out == "null" {
		return nil
	}
	var d healthDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		h.t.Fatalf("inspect %s: State.Health: %v: %s", ref, err, out)
	}
	return &d
}

// waitHealth polls inspect until the status is want, and returns the Health then.
func (h *harness) waitHealth(ref, want string, timeout time.Duration) *healthDoc {
	h.t.Helper()
	var d *healthDoc
	eventually(h.t, timeout, ref+" to be "+want, func() bool {
		d = h.health(ref)
		return d != nil && d.Status == want
	})
	return d
}

// psStatus is ps's STATUS column for the container.
func (h *harness) psStatus(ref string) string {
	h.t.Helper()
	return strings.TrimSpace(h.ok("ps", "-a", "--filter", "name=^"+ref+"$", "--format", "{{.Status}}"))
}

// psNames lists the names ps shows with the filters.
func (h *harness) psNames(filters ...string) []string {
	h.t.Helper()
	args := []string{"ps", "--format", "{{.Names}}"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	return strings.Fields(h.ok(args...))
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// A check that fails goes starting -> unhealthy after --health-retries failures, and
// healthy once it passes; ps shows it, and filters by it; the log keeps 5 entries; the
// monitor stays under its memory budget; nothing is checked while paused or stopped; a
// new run starts again at "starting".
func TestHealthStatusTransitions(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "c", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-retries", "2",
		"busybox", "sleep", "1000")
	// The first check runs an interval after the start.
	if d := h.health("c"); d == nil || d.Status != "starting" || d.FailingStreak != 0 || len(d.Log) != 0 {
		t.Fatalf("health right after the start: %+v", d)
	}
	if s := h.psStatus("c"); !regexp.MustCompile(`^Up .* \(health: starting\)$`).MatchString(s) {
		t.Errorf("ps status while starting: %q", s)
	}
	if got := h.psNames("health=starting"); len(got) != 1 || got[0] != "c" {
		t.Errorf("ps --filter health=starting: %v", got)
	}
	d := h.waitHealth("c", "unhealthy", 15*time.Second)
	if d.FailingStreak < 2 || len(d.Log) < 2 {
		t.Errorf("unhealthy after 2 retries: %+v", d)
	}
	for _, l := range d.Log {
		if l.ExitCode != 1 || l.End.Before(l.Start) || l.Start.IsZero() {
			t.Errorf("a failed check's log entry: %+v", l)
		}
	}
	if s := h.psStatus("c"); !strings.HasSuffix(s, " (unhealthy)") {
		t.Errorf("ps status when unhealthy: %q", s)
	}
	if got := h.psNames("health=unhealthy"); len(got) != 1 || got[0] != "c" {
		t.Errorf("ps --filter health=unhealthy: %v", got)
	}
	if got := h.psNames("health=healthy"); len(got) != 0 {
		t.Errorf("ps --filter health=healthy while unhealthy: %v", got)
	}
	if h.inspect("c", "{{.State.Status}}") != "running" {
		t.Errorf("an unhealthy container is not stopped (Docker's default)")
	}

	h.ok("exec", "c", "touch", "/tmp/ok")
	d = h.waitHealth("c", "healthy", 5*time.Second)
	if d.FailingStreak != 0 || d.Log[len(d.Log)-1].ExitCode != 0 {
		t.Errorf("healthy: %+v", d)
	}
	if s := h.psStatus("c"); !regexp.MustCompile(`^Up .* \(healthy\)$`).MatchString(s) {
		t.Errorf("ps status when healthy: %q", s)
	}
	if got := h.psNames("health=healthy"); len(got) != 1 || got[0] != "c" {
		t.Errorf("ps --filter health=healthy: %v", got)
	}
	if r := h.run("ps", "--filter", "health=sick"); r.code == 0 || !strings.Contains(r.stderr, "Unrecognised filter value for health: sick") {
		t.Errorf("ps --filter health=sick: %s", r)
	}
	// Docker keeps the last 5 results: wait until the two failures are gone from it.
	eventually(t, 15*time.Second, "5 passing checks in the log", func() bool {
		d = h.health("c")
		if len(d.Log) > 5 {
			t.Fatalf("%d log entries, Docker keeps 5", len(d.Log))
		}
		for _, l := range d.Log {
			if l.ExitCode != 0 {
				return false
			}
		}
		return len(d.Log) == 5
	})
	// The monitor ran 7 checks or more by now; it is still within its budget.
	if rss := rssKiB(t, monitorOf(t, h, "c")); rss > 2048 {
		t.Errorf("the monitor of a container checked every second has %d KiB resident, over 2 MiB", rss)
	}

	// Paused: no checks.
	h.ok("pause", "c")
	before := len(h.health("c").Log)
	last := h.health("c").Log[before-1].Start
	time.Sleep(2500 * time.Millisecond)
	d = h.health("c")
	if got := d.Log[len(d.Log)-1].Start; !got.Equal(last) {
		t.Errorf("a check ran while paused, at %v", got)
	}
	if s := h.psStatus("c"); !strings.HasSuffix(s, "(Paused)") {
		t.Errorf("ps status when paused: %q", s)
	}
	if r := h.run("healthcheck", "run", "c"); r.code != 125 || !strings.Contains(r.stderr, "is paused") {
		t.Errorf("healthcheck run on a paused container: %s", r)
	}
	h.ok("unpause", "c")
	eventually(t, 5*time.Second, "a check after unpause", func() bool {
		d = h.health("c")
		return d.Log[len(d.Log)-1].Start.After(last)
	})

	// Stopped: no checks, and Docker's "unhealthy" for checks that stopped.
	h.ok("stop", "-t", "1", "c")
	d = h.health("c")
	if d == nil || d.Status != "unhealthy" {
		t.Errorf("health of the stopped container: %+v", d)
	}
	last = d.Log[len(d.Log)-1].Start
	time.Sleep(2500 * time.Millisecond)
	if got := h.health("c").Log; !got[len(got)-1].Start.Equal(last) {
		t.Errorf("a check ran after the stop, at %v", got[len(got)-1].Start)
	}
	if r := h.run("healthcheck", "run", "c"); r.code != 125 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("healthcheck run on a stopped container: %s", r)
	}
	if s := h.psStatus("c"); !strings.HasPrefix(s, "Exited") || strings.Contains(s, "health") {
		t.Errorf("ps status when stopped: %q", s)
	}

	// A new run starts over: starting, then healthy (/tmp/ok is still in its rootfs).
	h.ok("start", "c")
	if d := h.health("c"); d == nil || d.Status != "starting" || d.FailingStreak != 0 {
		t.Errorf("health right after a restart: %+v", d)
	}
	h.waitHealth("c", "healthy", 5*time.Second)
}

// `berth healthcheck run` runs one check by hand: exit 0 and "healthy", 1 and
// "unhealthy"; the output of the check (stdout and stderr) is kept, up to 4096 bytes; at
// the timeout the check is killed and recorded as a failure.
func TestHealthcheckRun(t *testing.T) {
	h := newHarness(t)
	// An interval of an hour: only the checks run by hand happen.
	h.ok("run", "-d", "--name", "ok", "--health-cmd", "echo fine; echo also >&2", "--health-interval", "1h", "busybox", "sleep", "1000")
	h.ok("run", "-d", "--name", "bad", "--health-cmd", "echo broken; exit 3", "--health-interval", "1h", "--health-retries", "1", "busybox", "sleep", "1000")
	h.ok("run", "-d", "--name", "slow", "--health-cmd", "sleep 100", "--health-interval", "1h", "--health-timeout", "300ms", "busybox", "sleep", "1000")
	h.ok("run", "-d", "--name", "loud", "--health-cmd", "yes | head -c 10000", "--health-interval", "1h", "busybox", "sleep", "1000")
	h.ok("run", "-d", "--name", "plain", "busybox", "sleep", "1000")

	if r := h.run("healthcheck", "run", "ok"); r.code != 0 || r.stdout != "healthy\n" {
		t.Errorf("healthcheck run of a passing check: %s", r)
	}
	d := h.health("ok")
	if d.Status != "healthy" || len(d.Log) != 1 || d.Log[0].ExitCode != 0 || d.Log[0].Output != "fine\nalso\n" {
		t.Errorf("after a passing check: %+v", d)
	}

	if r := h.run("healthcheck", "run", "bad"); r.code != 1 || r.stdout != "unhealthy\n" {
		t.Errorf("healthcheck run of a failing check: %s", r)
	}
	d = h.health("bad")
	if d.Status != "unhealthy" || d.FailingStreak != 1 || len(d.Log) != 1 || d.Log[0].ExitCode != 3 || d.Log[0].Output != "broken\n" {
		t.Errorf("after a failing check (retries 1): %+v", d)
	}

	start := time.Now()
	r := h.run("healthcheck", "run", "slow")
	took := time.Since(start)
	if r.code != 1 || r.stdout != "unhealthy\n" || took > 5*time.Second {
		t.Errorf("healthcheck run of a check that times out: %s after %v", r, took)
	}
	d = h.health("slow")
	if len(d.Log) != 1 || d.Log[0].ExitCode != -1 || d.Log[0].Output != "Health check exceeded timeout (300ms)" ||
		d.Log[0].End.Sub(d.Log[0].Start) < 300*time.Millisecond || d.FailingStreak != 1 || d.Status != "starting" {
		t.Errorf("after a check that timed out (1 of 3 retries): %+v", d)
	}
	// The check's process was killed.
	if ps := h.ok("exec", "slow", "ps", "-o", "args"); strings.Contains(ps, "sleep 100\n") {
		t.Errorf("the timed-out check still runs:\n%s", ps)
	}

	if r := h.run("healthcheck", "run", "loud"); r.code != 0 {
		t.Errorf("healthcheck run loud: %s", r)
	}
	if d = h.health("loud"); len(d.Log) != 1 || d.Log[0].Output != strings.Repeat("y\n", 2048) {
		t.Errorf("a check's output of 10000 bytes is kept as %d bytes", len(d.Log[0].Output))
	}

	if r := h.run("healthcheck", "run", "plain"); r.code != 125 || !strings.Contains(r.stderr, "has no defined healthcheck") {
		t.Errorf("healthcheck run without a check: %s", r)
	}
	if d := h.health("plain"); d != nil {
		t.Errorf("State.Health of a container without a check: %+v", d)
	}
	if got := h.psNames("health=none"); len(got) != 1 || got[0] != "plain" {
		t.Errorf("ps --filter health=none: %v", got)
	}
	if r := h.run("healthcheck", "run", "nosuch"); r.code != 125 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("healthcheck run of a missing container: %s", r)
	}
}

// An image's HEALTHCHECK applies unless the command line overrides it: --health-cmd
// replaces its test (keeping its other settings), --no-healthcheck turns it off.
func TestHealthFromImage(t *testing.T) {
	h := newHarness(t)
	h.ok("import", "-c", `CMD ["sh"]`, "-c", `HEALTHCHECK --interval=1s --retries=1 CMD ["test", "-f", "/etc/passwd"]`, busyboxTar, "checked")
	if got := h.ok("image", "inspect", "-f", "{{json .Config.Healthcheck}}", "checked"); !strings.Contains(got, `"Test":["CMD","test","-f","/etc/passwd"]`) {
		t.Errorf("the image's Healthcheck: %s", got)
	}
	h.ok("run", "-d", "--name", "img", "checked", "sleep", "1000")
	if got := h.inspect("img", "{{json .Config.Healthcheck}}"); got != `{"Interval":1000000000,"Retries":1,"Test":["CMD","test","-f","/etc/passwd"]}` {
		t.Errorf("Config.Healthcheck from the image: %s", got)
	}
	h.waitHealth("img", "healthy", 10*time.Second)

	// The command line's test, the image's interval and retries: unhealthy after one failure.
	h.ok("run", "-d", "--name", "over", "--health-cmd", "false", "checked", "sleep", "1000")
	d := h.waitHealth("over", "unhealthy", 10*time.Second)
	if d.FailingStreak != 1 {
		t.Errorf("--health-cmd over the image's check: %+v", d)
	}

	h.ok("run", "-d", "--name", "off", "--no-healthcheck", "checked", "sleep", "1000")
	if got := h.inspect("off", "{{index .Config.Healthcheck.Test 0}}"); got != "NONE" {
		t.Errorf("--no-healthcheck: Config.Healthcheck.Test %s", got)
	}
	time.Sleep(2500 * time.Millisecond)
	if d := h.health("off"); d != nil {
		t.Errorf("--no-healthcheck: State.Health %+v", d)
	}
	if got := h.psNames("health=none"); len(got) != 1 || got[0] != "off" {
		t.Errorf("ps --filter health=none: %v", got)
	}
	if r := h.run("healthcheck", "run", "off"); r.code != 125 || !strings.Contains(r.stderr, "has no defined healthcheck") {
		t.Errorf("healthcheck run with --no-healthcheck: %s", r)
	}
}

// Failures in the start period do not count, and the checks run at the start interval
// meanwhile; after it, the interval and the retries apply.
func TestHealthStartPeriod(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "sp", "--health-cmd", "false", "--health-interval", "700ms", "--health-retries", "1",
		"--health-start-period", "2s", "--health-start-interval", "150ms", "busybox", "sleep", "1000")
	var d *healthDoc
	eventually(t, 1800*time.Millisecond, "3 checks at the start interval", func() bool {
		d = h.health("sp")
		return len(d.Log) >= 3
	})
	if d.Status != "starting" || d.FailingStreak != 0 {
		t.Errorf("failures in the start period counted: %+v", d)
	}
	d = h.waitHealth("sp", "unhealthy", 5*time.Second)
	if d.FailingStreak != 1 {
		t.Errorf("after the start period: %+v", d)
	}
}

// Bad values fail at create with Docker's words and exit code 125, and leave nothing.
func TestHealthBadValues(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--health-interval", "-1s"}, "--health-interval cannot be negative"},
		{[]string{"--health-timeout", "-1s"}, "--health-timeout cannot be negative"},
		{[]string{"--health-start-period", "-1s"}, "--health-start-period cannot be negative"},
		{[]string{"--health-start-interval", "-1s"}, "--health-start-interval cannot be negative"},
		{[]string{"--health-retries", "-1"}, "--health-retries cannot be negative"},
		{[]string{"--health-cmd", "true", "--health-interval", "500us"}, "Interval in Healthcheck cannot be less than 1ms"},
		{[]string{"--health-cmd", "true", "--health-timeout", "10us"}, "Timeout in Healthcheck cannot be less than 1ms"},
		{[]string{"--health-cmd", "true", "--health-start-period", "10us"}, "StartPeriod in Healthcheck cannot be less than 1ms"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-interval", "often"}, `invalid argument "often" for "--health-interval" flag`},
	} {
		for _, verb := range []string{"create", "run"} {
			args := append(append([]string{verb, "--name", "bad"}, c.args...), "busybox", "true")
			if r := h.run(args...); r.code != 125 || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("berth %s: %s; want exit 125 and %q", strings.Join(args, " "), r, c.stderr)
			}
		}
	}
	if out := h.ok("ps", "-aq"); out != "" {
		t.Errorf("containers left by the failed creates: %q", out)
	}
	if r := h.run("import", "-c", "HEALTHCHECK --interval=soon CMD true", busyboxTar, "nope"); r.code == 0 || !strings.Contains(r.stderr, "HEALTHCHECK --interval") {
		t.Errorf("import with a bad HEALTHCHECK: %s", r)
	}
}
