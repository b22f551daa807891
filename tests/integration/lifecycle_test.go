package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
)

func TestLifecycleStates(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `trap 'echo got-term > /tmp/term; exit 7' TERM; echo started > /tmp/started; while true; do sleep 0.05; done`)
	b.save(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.mustOK("create", "-b", b.Dir, "--pid-file", pidFile, "life")

	st := r.state("life")
	if st.Status != runtime.StatusCreated || st.Pid <= 0 || st.ID != "life" || st.Bundle != b.Dir {
		t.Fatalf("after create: %+v", st)
	}
	if st.Rootfs != b.rootfs() || st.OCIVersion == "" || st.Created.IsZero() {
		t.Errorf("state fields incomplete: %+v", st)
	}
	if pf, _ := os.ReadFile(pidFile); strings.TrimSpace(string(pf)) != itoa(st.Pid) {
		t.Errorf("--pid-file has %q, state says %d", pf, st.Pid)
	}
	if _, err := os.Stat(filepath.Join(b.rootfs(), "tmp", "started")); err == nil {
		t.Fatal("the user's program ran before start")
	}
	list := r.mustOK("list", "--format", "json")
	var states []runtime.State
	if err := json.Unmarshal([]byte(list), &states); err != nil || len(states) != 1 || states[0].ID != "life" {
		t.Errorf("list --format json: %q (%v)", list, err)
	}
	if q := strings.TrimSpace(r.mustOK("list", "-q")); q != "life" {
		t.Errorf("list -q: %q", q)
	}

	r.mustOK("start", "life")
	waitFor(t, "the program to start", func() bool {
		_, err := os.Stat(filepath.Join(b.rootfs(), "tmp", "started"))
		return err == nil
	})
	if st := r.state("life"); st.Status != runtime.StatusRunning {
		t.Fatalf("after start: %s", st.Status)
	}
	if _, stderr, code := r.exec("start", "life"); code == 0 || !strings.Contains(stderr, "running") {
		t.Errorf("a second start: exit %d, %q; want a clear refusal", code, stderr)
	}
	if _, stderr, code := r.exec("delete", "life"); code == 0 || !strings.Contains(stderr, "running") {
		t.Errorf("delete of a running container without --force: exit %d, %q", code, stderr)
	}

	r.mustOK("kill", "life", "SIGTERM")
	waitFor(t, "the container to stop", func() bool { return r.state("life").Status == runtime.StatusStopped })
	if got, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "term")); strings.TrimSpace(string(got)) != "got-term" {
		t.Errorf("the container did not see SIGTERM: %q", got)
	}
	if st := r.state("life"); st.Pid != 0 {
		t.Errorf("a stopped container reports pid %d, want 0", st.Pid)
	}
	if _, stderr, code := r.exec("kill", "life", "KILL"); code == 0 {
		t.Errorf("kill of a stopped container succeeded: %q", stderr)
	}
	r.mustOK("delete", "life")
	if _, _, code := r.exec("state", "life"); code == 0 {
		t.Error("state after delete still answers")
	}
	assertNoCgroup(t, "life")
	if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
		t.Errorf("state root not empty after delete: %v", ents)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestKillSignalForms(t *testing.T) {
	for _, sig := range []string{"KILL", "SIGKILL", "9"} {
		t.Run(sig, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, `sleep 60`)
			b.save(t)
			r.mustOK("run", "-d", "-b", b.Dir, "k")
			r.mustOK("kill", "k", sig)
			waitFor(t, "SIGKILL to take effect", func() bool { return r.state("k").Status == runtime.StatusStopped })
		})
	}
	r := newRT(t)
	b := newBundle(t, `sleep 60 & sleep 60 & wait`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "kall")
	r.mustOK("kill", "--all", "kall", "KILL")
	waitFor(t, "kill --all", func() bool { return r.state("kall").Status == runtime.StatusStopped })
	if _, stderr, code := r.exec("kill", "kall", "NOSUCHSIG"); code == 0 || !strings.Contains(stderr, "NOSUCHSIG") {
		t.Errorf("an unknown signal: exit %d, %q", code, stderr)
	}
}

func TestDeleteForceRunningAndCreated(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 60`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "fr")
	pid := r.state("fr").Pid
	r.mustOK("delete", "--force", "fr")
	if !gone(pid) {
		t.Errorf("init %d still alive after delete --force", pid)
	}
	assertNoCgroup(t, "fr")

	r.mustOK("create", "-b", b.Dir, "cr")
	pid = r.state("cr").Pid
	r.mustOK("delete", "cr") // a created container needs no --force, as with runc
	if !gone(pid) {
		t.Errorf("init %d of a created container still alive after delete", pid)
	}
	assertNoCgroup(t, "cr")
}

func TestRunExitCodeAndOutput(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo out; echo err >&2; exit 42`)
	b.save(t)
	out, stderr, code := r.exec("run", "-b", b.Dir, "exit42")
	if code != 42 || out != "out\n" || !strings.Contains(stderr, "err") {
		t.Errorf("run: exit %d, stdout %q, stderr %q; want 42, out, err", code, out, stderr)
	}
	// A pid namespace's init ignores SIGKILL from inside; the kill comes from outside.
	b = newBundle(t, `sleep 60`)
	b.save(t)
	go func() {
		waitFor(t, "the container to run", func() bool {
			out, _, code := r.exec("state", "killed")
			return code == 0 && strings.Contains(out, `"running"`)
		})
		r.exec("kill", "killed", "KILL")
	}()
	if _, _, code := r.exec("run", "-b", b.Dir, "killed"); code != 137 {
		t.Errorf("a container killed by SIGKILL: exit %d, want 137", code)
	}
	res := r.execIn([]byte("from-stdin\n"), "run", "-b", writeBundle(t, `read x; echo got=$x`), "stdin")
	if res.code != 0 || !strings.Contains(res.stdout, "got=from-stdin") {
		t.Errorf("stdin did not reach the container: %+v", res)
	}
	if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
		t.Errorf("run left containers behind: %v", ents)
	}
}

func writeBundle(t *testing.T, script string) string {
	b := newBundle(t, script)
	b.save(t)
	return b.Dir
}

// Two creates with one id at once: exactly one wins and the winner is intact.
func TestConcurrentCreateSameID(t *testing.T) {
	r := newRT(t)
	dir := writeBundle(t, `sleep 60`)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, codes[i] = r.exec("create", "-b", dir, "same")
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == 0 {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 4 concurrent creates with one id succeeded, want exactly 1 (codes %v)", ok, codes)
	}
	if st := r.state("same"); st.Status != runtime.StatusCreated {
		t.Errorf("the winning container is %s, want created", st.Status)
	}
	r.mustOK("start", "same")
	if st := r.state("same"); st.Status != runtime.StatusRunning {
		t.Errorf("the winning container is %s after start", st.Status)
	}
}

// A create killed with SIGKILL at any point leaves nothing that `delete` (or, for a
// create that died before it claimed its id, `list`) does not remove entirely.
func TestCreateKilledHalfwayThenDelete(t *testing.T) {
	r := newRT(t)
	dir := writeBundle(t, `sleep 60`)
	for i := 0; i < 16; i++ {
		id := "half" + itoa(i)
		cmd := exec.Command(runtimeBin, "--root", r.root, "create", "-b", dir, id)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A create takes a few milliseconds: spread the kills over all of it.
		time.Sleep(time.Duration(i) * 700 * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := os.Stat(filepath.Join(r.root, id)); err == nil {
			r.mustOK("delete", "--force", id)
		}
		assertNoCgroup(t, id)
		if _, err := os.Stat(filepath.Join(r.root, id)); err == nil {
			t.Errorf("%s: state directory left after delete", id)
		}
	}
	r.mustOK("list")
	if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("state root holds %v after delete and list", names)
	}
}
