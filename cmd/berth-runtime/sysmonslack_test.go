package main

import (
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const sysmonSlackNS = 10000000 // SYSMON_SLACK_NS in sysmonslack.c

// TestMain serves the child of TestSysmonSlackOnlyOnSysmon: this test binary links
// sysmonslack.c as berth-runtime does.
func TestMain(m *testing.M) {
	if os.Getenv("_BERTH_SLACK_PROBE") == "1" {
		reportSlacks()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// reportSlacks prints "main N", "thread N" for every other thread, and "child N" for a
// process it starts, each N a timer slack in ns.
func reportSlacks() {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/timerslack_ns")
		if err != nil {
			fmt.Println("error", err)
			return
		}
		what := "thread"
		if e.Name() == strconv.Itoa(self) {
			what = "main"
		}
		fmt.Println(what, strings.TrimSpace(string(b)))
	}
	out, err := exec.Command("/bin/cat", "/proc/self/timerslack_ns").Output()
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("child", strings.TrimSpace(string(out)))
}

// TestSysmonSlackOnlyOnSysmon runs this binary with a timer slack of its own and checks
// that the raised slack went to one thread besides the main one (sysmon), and that the
// main thread, every other thread and a process it starts keep the slack it was given.
func TestSysmonSlackOnlyOnSysmon(t *testing.T) {
	const given = 123456
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	before, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatalf("prctl PR_GET_TIMERSLACK: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, given, 0, 0, 0); err != nil {
		t.Fatalf("prctl PR_SET_TIMERSLACK: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(before), 0, 0, 0)
	// Started from this locked thread, the child begins with its slack.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "_BERTH_SLACK_PROBE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v: %s", err, out)
	}
	var main, raised, others, child int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		what, v, _ := strings.Cut(l, " ")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("probe said %q", l)
		}
		switch {
		case what == "main" && n == given:
			main++
		case what == "thread" && n == sysmonSlackNS:
			raised++
		case what == "thread" && n == given:
			others++
		case what == "child" && n == given:
			child++
		default:
			t.Errorf("probe: %q: want %d (or %d for one thread)", l, given, sysmonSlackNS)
		}
	}
	if main != 1 || raised != 1 || others < 1 || child != 1 {
		t.Errorf("probe: main thread %d, raised threads %d, other threads %d, child %d; want 1, 1, >=1, 1:\n%s", main, raised, others, child, out)
	}
}
