// Package probe checks, for the tests of gostart and onep, how a test binary that links
// gostart's threads.c started its threads: it runs itself again as a probe that reports
// GOMAXPROCS and every thread's timer slack and CPUs.
package probe

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

// SysmonSlackNS is SYSMON_SLACK_NS in threads.c.
const SysmonSlackNS = 10000000

const probeEnv = "_BERTH_THREADS_PROBE"

// Main serves the probe child (call it from TestMain before m.Run): it prints "procs N"
// (GOMAXPROCS), then "main SLACK CPUS" for the main thread, "thread SLACK CPUS" for every
// other one and "child SLACK CPUS" for a process it starts, each SLACK a timer slack in ns
// and CPUS a Cpus_allowed_list, and exits.
func Main() {
	if os.Getenv(probeEnv) != "1" {
		return
	}
	report()
	os.Exit(0)
}

func report() {
	fmt.Println("procs", goruntime.GOMAXPROCS(0))
	self := os.Getpid()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	for _, e := range ents {
		slack, cpus, err := threadState("/proc/" + e.Name())
		if err != nil {
			fmt.Println("error", err)
			return
		}
		what := "thread"
		if e.Name() == strconv.Itoa(self) {
			what = "main"
		}
		fmt.Println(what, slack, cpus)
	}
	out, err := exec.Command("/bin/sh", "-c", "cat /proc/self/timerslack_ns; grep Cpus_allowed_list /proc/self/status").Output()
	if err != nil {
		fmt.Println("error", err)
		return
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		fmt.Println("error", strconv.Quote(string(out)))
		return
	}
	fmt.Println("child", f[0], f[2])
}

func threadState(dir string) (slack, cpus string, err error) {
	b, err := os.ReadFile(dir + "/timerslack_ns")
	if err != nil {
		return "", "", err
	}
	st, err := os.ReadFile(dir + "/status")
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(string(b)), strings.TrimSpace(v), nil
		}
	}
	return "", "", fmt.Errorf("%s/status has no Cpus_allowed_list", dir)
}

// Check runs this test binary as a probe with a timer slack of its own and checks what
// threads.c promises: GOMAXPROCS 1 with onep (else one P per CPU of the caller), the
// raised slack on one thread besides the main one (sysmon), and the given slack and CPUs
// on the main thread, every other thread and a process it starts.
func Check(t *testing.T, oneP bool) {
	t.Helper()
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
	_, cpus, err := threadState(fmt.Sprintf("/proc/%d", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	wantProcs := strconv.Itoa(set.Count())
	if oneP {
		// Narrowed on a multi-CPU host, and the only one on a single CPU.
		wantProcs = "1"
	}
	// Started from this locked thread, the child begins with its slack and CPUs.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v: %s", err, out)
	}
	var main, raised, others, child int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "procs":
			if f[1] != wantProcs {
				t.Errorf("probe: GOMAXPROCS %s, want %s", f[1], wantProcs)
			}
		case len(f) != 3 || f[2] != cpus:
			t.Errorf("probe: %q: want CPUs %s", l, cpus)
		case f[0] == "main" && f[1] == strconv.Itoa(given):
			main++
		case f[0] == "thread" && f[1] == strconv.Itoa(SysmonSlackNS):
			raised++
		case f[0] == "thread" && f[1] == strconv.Itoa(given):
			others++
		case f[0] == "child" && f[1] == strconv.Itoa(given):
			child++
		default:
			t.Errorf("probe: %q: want slack %d (or %d for one thread)", l, given, SysmonSlackNS)
		}
	}
	if main != 1 || raised != 1 || child != 1 {
		t.Errorf("probe: main thread %d, raised threads %d, other threads %d, child %d; want 1, 1, any, 1:\n%s", main, raised, others, child, out)
	}
}
