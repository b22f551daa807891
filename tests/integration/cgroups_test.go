package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64(v int64) *int64 { return &v }

type event struct {
	Type string         `json:"type"`
	ID   string         `json:"id"`
	Data *cgroups.Stats `json:"data"`
}

func (r *rt) stats(id string) *cgroups.Stats {
	r.t.Helper()
	var ev event
	out := r.mustOK("events", "--stats", id)
	if err := json.Unmarshal([]byte(out), &ev); err != nil || ev.Type != "stats" || ev.Data == nil {
		r.t.Fatalf("events --stats %s: %q (%v)", id, out, err)
	}
	return ev.Data
}

// A 32 MiB limit OOM-kills a process that allocates 100 MiB, and `events` reports it.
func TestMemoryLimitOOMKillAndEvent(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 0.5; dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; echo dd-exit=$? > /tmp/result; sleep 60`)
	b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(32 << 20)}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "oom")
	events := exec.Command(runtimeBin, "--root", r.root, "events", "--interval", "1s", "oom")
	stdout, _ := events.StdoutPipe()
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { events.Process.Kill(); events.Wait() }()
	sawOOM := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == "oom" && ev.ID == "oom" {
				sawOOM <- true
				return
			}
		}
		sawOOM <- false
	}()
	select {
	case ok := <-sawOOM:
		if !ok {
			t.Fatal("events ended without an oom event")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no oom event within 15 s")
	}
	waitFor(t, "dd's result", func() bool {
		b, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "result"))
		return len(b) > 0
	})
	res, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "result"))
	if got := strings.TrimSpace(string(res)); got != "dd-exit=137" {
		t.Errorf("the 100 MiB allocation ended with %s, want dd-exit=137 (SIGKILL by the OOM killer)", got)
	}
	s := r.stats("oom")
	if s.Memory.OOMKills < 1 || s.Memory.Usage.Limit != 32<<20 {
		t.Errorf("memory stats: oomKills %d, limit %d", s.Memory.OOMKills, s.Memory.Usage.Limit)
	}
	if st := r.state("oom"); st.Status != runtime.StatusRunning {
		t.Errorf("the container's init should survive its child's OOM kill; status %s", st.Status)
	}
}

// A pids limit of 20 stops a fork loop; the host is unaffected.
func TestPidsLimitStopsForkLoop(t *testing.T) {
	r := newRT(t)
	// ash gives up at the first failed fork: the loop runs in a child shell, and the
	// container's own shell then needs no fork at all.
	b := newBundle(t, `sh -c 'i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null; echo started > /tmp/done; exec sleep 60`)
	b.Spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(20)}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "pids")
	waitFor(t, "the fork loop", func() bool {
		_, err := os.Stat(filepath.Join(b.rootfs(), "tmp", "done"))
		return err == nil
	})
	pids := r.pids("pids")
	if len(pids) > 20 || len(pids) < 15 {
		t.Errorf("the container has %d processes under a limit of 20", len(pids))
	}
	if s := r.stats("pids"); s.Pids.Limit != 20 || s.Pids.Current > 20 {
		t.Errorf("pids stats %+v", s.Pids)
	}
	if out, err := exec.Command(busyboxBin, "true").CombinedOutput(); err != nil {
		t.Errorf("the host cannot fork: %v %s", err, out)
	}
}

func (r *rt) pids(id string) []int {
	r.t.Helper()
	var pids []int
	out := r.mustOK("ps", "--format", "json", id)
	if err := json.Unmarshal([]byte(out), &pids); err != nil {
		r.t.Fatalf("ps --format json: %q: %v", out, err)
	}
	return pids
}

// A quota of 0.2 CPU holds a busy loop near 20% over two seconds.
func TestCPUQuota(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `while :; do :; done`)
	period, quota := uint64(100000), int64(20000)
	b.Spec.Linux.Resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "cpu")
	time.Sleep(300 * time.Millisecond)
	s0, t0 := r.stats("cpu").CPU.Usage.Total, time.Now()
	time.Sleep(2 * time.Second)
	s1, t1 := r.stats("cpu").CPU.Usage.Total, time.Now()
	share := float64(s1-s0) / float64(t1.Sub(t0).Nanoseconds())
	if share < 0.12 || share > 0.30 {
		t.Errorf("a busy loop under a 0.2 CPU quota used %.0f%% of a CPU", share*100)
	}
	t.Logf("busy loop under quota 0.2: %.1f%% of a CPU", share*100)
}

// update raises a memory limit live: an allocation that the old limit killed now succeeds.
func TestUpdateMemoryLive(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `while true; do if [ -e /tmp/go ]; then rm /tmp/go; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $? >> /tmp/results; fi; sleep 0.05; done`)
	b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(32 << 20)}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "upd")
	results := filepath.Join(b.rootfs(), "tmp", "results")
	attempt := func(n int) string {
		os.WriteFile(filepath.Join(b.rootfs(), "tmp", "go"), nil, 0o644)
		waitFor(t, "the allocation", func() bool {
			b, _ := os.ReadFile(results)
			return strings.Count(string(b), "\n") >= n
		})
		b, _ := os.ReadFile(results)
		l := strings.Split(strings.TrimSpace(string(b)), "\n")
		return l[len(l)-1]
	}
	if got := attempt(1); got != "137" {
		t.Fatalf("64 MiB under a 32 MiB limit exited %s, want 137", got)
	}
	r.mustOK("update", "--memory", "128m", "--memory-swap", "128m", "upd")
	if got := r.stats("upd").Memory.Usage.Limit; got != 128<<20 {
		t.Errorf("memory limit after update is %d, want %d", got, 128<<20)
	}
	if got := attempt(2); got != "0" {
		t.Errorf("64 MiB under the raised 128 MiB limit exited %s, want 0", got)
	}
	// update --resources from stdin, as containerd sends it.
	res := r.execIn([]byte(`{"pids": {"limit": 33}}`), "update", "--resources", "-", "upd")
	if res.code != 0 {
		t.Fatalf("update --resources -: %s", res.stderr)
	}
	if got := r.stats("upd").Pids.Limit; got != 33 {
		t.Errorf("pids limit after update --resources is %d, want 33", got)
	}
	if _, stderr, code := r.exec("update", "--memory", "lots", "upd"); code == 0 || !strings.Contains(stderr, "lots") {
		t.Errorf("a bad size: exit %d, %q", code, stderr)
	}
}

// pause stops a counter and resume restarts it.
func TestPauseResume(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.02; done`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "pz")
	count := func() int {
		b, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	waitFor(t, "the counter", func() bool { return count() > 3 })
	r.mustOK("pause", "pz")
	if st := r.state("pz"); st.Status != runtime.StatusPaused {
		t.Fatalf("after pause: %s", st.Status)
	}
	c0 := count()
	time.Sleep(400 * time.Millisecond)
	if c1 := count(); c1 != c0 {
		t.Errorf("the counter moved from %d to %d while paused", c0, c1)
	}
	if _, stderr, code := r.exec("pause", "pz"); code == 0 || !strings.Contains(stderr, "paused") {
		t.Errorf("pause of a paused container: exit %d, %q", code, stderr)
	}
	r.mustOK("resume", "pz")
	if st := r.state("pz"); st.Status != runtime.StatusRunning {
		t.Fatalf("after resume: %s", st.Status)
	}
	waitFor(t, "the counter to move again", func() bool { return count() > c0+3 })
	// A paused container can be deleted with --force.
	r.mustOK("pause", "pz")
	r.mustOK("delete", "--force", "pz")
	assertNoCgroup(t, "pz")
}

func TestPsTable(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 61`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "pst")
	out := r.mustOK("ps", "pst")
	ls := strings.Split(strings.TrimSpace(out), "\n")
	if len(ls) != 2 || !strings.Contains(ls[0], "PID") || !strings.Contains(ls[1], "sleep 61") {
		t.Errorf("ps table:\n%s", out)
	}
}
