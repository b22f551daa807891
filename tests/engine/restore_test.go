package engine

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// After a reboot, `berth system restore` (what contrib/systemd/berth-restore.service
// runs at boot) brings back the containers a daemon would: --restart always, and
// unless-stopped unless the user stopped it; not the others. They run again, ps says Up,
// and running it again changes nothing.
func TestRestoreAfterReboot(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "1000")
	h.ok("run", "-d", "--name", "unless", "--restart", "unless-stopped", "--network", "none", "busybox", "sh", "-c", "echo up; exec sleep 1000")
	h.ok("run", "-d", "--name", "stopped", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	h.ok("stop", "-t", "0", "stopped")
	h.ok("run", "-d", "--name", "plain", "busybox", "sleep", "1000")
	old := map[string]int{}
	for _, n := range []string{"always", "unless", "plain"} {
		old[n] = h.state(n).Pid
	}

	h.reboot()
	for _, n := range []string{"always", "unless", "plain"} {
		if st := h.state(n); st.Status != "exited" {
			t.Fatalf("after the reboot %s is %s, want exited", n, st.Status)
		}
	}

	out := h.ok("system", "restore")
	got := strings.Fields(out)
	sort.Strings(got)
	if strings.Join(got, " ") != "always unless" {
		t.Errorf("system restore started %q, want always and unless", out)
	}
	for _, n := range []string{"always", "unless"} {
		st := h.state(n)
		if st.Status != "running" || st.Pid == old[n] {
			t.Errorf("%s after restore: %+v (pid before the reboot %d)", n, st, old[n])
		}
	}
	for _, n := range []string{"stopped", "plain"} {
		if st := h.state(n); st.Status != "exited" {
			t.Errorf("%s after restore is %s, want exited", n, st.Status)
		}
	}
	ps := h.ok("ps", "--format", "{{.Names}} {{.Status}}")
	for _, n := range []string{"always", "unless"} {
		if !regexp.MustCompile(`(?m)^` + n + ` Up `).MatchString(ps) {
			t.Errorf("ps does not show %s Up:\n%s", n, ps)
		}
	}
	// The restored containers work: exec, their logs go on, and their monitors apply the
	// policy again (a crash is restarted).
	if r := h.run("exec", "always", "cat", "/proc/1/cmdline"); !strings.Contains(r.stdout, "sleep") {
		t.Errorf("exec into the restored container: %s", r)
	}
	eventually(t, 5*time.Second, "the restored container's log", func() bool {
		return strings.Count(h.ok("logs", "unless"), "up") == 2
	})
	pid := h.state("always").Pid
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, "the restored container to be restarted by its monitor", func() bool {
		st := h.state("always")
		return st.Status == "running" && st.Pid != pid
	})
	if out := h.ok("system", "restore"); strings.TrimSpace(out) != "" {
		t.Errorf("a second restore started %q", out)
	}
}

// reboot does to the harness's containers what a reboot of the machine does: their
// processes (inits and monitors) are killed, their mounts (rootfs, network namespaces)
// gone, and so are the runtime's records (on the /run tmpfs) and their cgroups. The
// engine's store (/var/lib/berth) is what survives.
func (h *harness) reboot() {
	h.t.Helper()
	ids := strings.Fields(h.ok("ps", "-aq", "--no-trunc"))
	var inits []int
	for _, id := range ids {
		if st := h.state(id); st.Pid > 0 {
			inits = append(inits, st.Pid)
		}
	}
	// The monitors first: one that saw its init die would clean up after it meanwhile.
	kill := func(pids []int) {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		eventually(h.t, 10*time.Second, "the killed processes to go", func() bool {
			for _, pid := range pids {
				if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
					return false
				}
			}
			return true
		})
	}
	kill(monitorPids(h.root))
	kill(inits)
	mounts := mountsUnder(filepath.Dir(h.root))
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			h.t.Fatalf("reboot: unmount %s: %v (of %q)", mounts[i], err, mounts)
		}
	}
	ents, _ := os.ReadDir(h.runtimeRoot)
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(h.runtimeRoot, e.Name())); err != nil {
			h.t.Fatalf("reboot: %v", err)
		}
	}
	for _, id := range ids {
		for _, d := range cgroupDirs(id) {
			if err := syscall.Rmdir(d); err != nil {
				h.t.Fatalf("reboot: rmdir %s: %v", d, err)
			}
		}
	}
}
