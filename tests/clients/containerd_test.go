package clients

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerd runs a busybox container through its runc shim with berth-runtime as the
// runc binary (ctr run --runc-binary): run, exec, its log, ps, pause and resume, kill of one
// process and of all, delete; berth-runtime's state root and its --log prove it did the work.
func TestContainerd(t *testing.T) {
	containerd := need(t, "containerd", "containerd")
	ctr := need(t, "ctr", "containerd")
	need(t, "containerd-shim-runc-v2", "containerd")
	dir := tempDir(t, "berth-ctrd-")
	removeIfMade(t, "/run/containerd/fifo", "/run/containerd/s", "/run/containerd")
	removeCgroupsIfMade(t, "berth-test") // ctr's cgroup parent: the namespace
	t.Cleanup(func() { cleanupDir(t, dir) })
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, filepath.Join(dir, "containerd.log"), nil, containerd, "--config", cfgPath)
	waitSocket(t, d, sock)

	const ns = "berth-test"
	c := func(args ...string) (string, error) {
		return run(t, 60*time.Second, nil, ctr, append([]string{"--address", sock, "--namespace", ns}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := c(args...)
		if err != nil {
			t.Fatalf("%v\ncontainerd's log:\n%s", err, d.logTail())
		}
		return out
	}
	must("images", "import", imageTar)
	ref := strings.TrimSpace(must("images", "ls", "-q"))
	if !strings.Contains(ref, "berth-test/busybox") {
		t.Fatalf("ctr images import: the image is listed as %q", ref)
	}

	runtimeRoot := filepath.Join(dir, "berth-root")
	logFile := filepath.Join(dir, "container.log")
	const id = "berth-ctr"
	must("run", "-d", "--runc-binary", runtimeBin, "--runc-root", runtimeRoot, "--log-uri", "file://"+logFile,
		ref, id, "sh", "-c", `echo hello from berth; trap "echo got TERM; exit 3" TERM; while true; do sleep 0.1; done`)
	eventually(t, "the container's first line in its log", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "hello from berth")
	})

	// berth-runtime did the work: its state root has the container, as berth recorded it.
	rec, err := os.ReadFile(filepath.Join(runtimeRoot, ns, id, "state.json"))
	if err != nil {
		t.Fatalf("berth-runtime's state root has no record of the container: %v", err)
	}
	var record struct{ Runtime, ID string }
	if json.Unmarshal(rec, &record) != nil || record.Runtime != "berth" || record.ID != id {
		t.Fatalf("state.json in the runtime root is not berth's record of %s: %s", id, rec)
	}
	tasks := must("tasks", "ls")
	if !strings.Contains(tasks, id) || !strings.Contains(tasks, "RUNNING") {
		t.Fatalf("ctr tasks ls: %q, want %s RUNNING", tasks, id)
	}

	// The shim runs berth-runtime with --log <bundle>/log.json --log-format json, and reads
	// a failed command's error from there.
	if _, err := os.Stat(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", ns, id, "log.json")); err != nil {
		t.Errorf("no --log file in the task's bundle: %v", err)
	}
	if out := must("tasks", "exec", "--exec-id", "e1", id, "sh", "-c", "echo exec-ok; hostname; cat /proc/1/cmdline"); !strings.Contains(out, "exec-ok") || !strings.Contains(out, "sh") {
		t.Errorf("ctr tasks exec: %q", out)
	}
	ps := must("tasks", "ps", id)
	if len(strings.Split(strings.TrimSpace(ps), "\n")) < 2 {
		t.Errorf("ctr tasks ps (runtime ps --format json): %q, want the container's processes", ps)
	}
	must("tasks", "pause", id)
	if out := must("tasks", "ls"); !strings.Contains(out, "PAUSED") {
		t.Errorf("after pause: %q", out)
	}
	must("tasks", "resume", id)
	if out := must("tasks", "ls"); !strings.Contains(out, "RUNNING") {
		t.Errorf("after resume: %q", out)
	}
	// An error from berth-runtime reaches ctr's user through the shim, which reads --log.
	if _, err := c("tasks", "exec", "--exec-id", "e2", id, "/no/such/program"); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("exec of a missing program: %v; want an error naming it", err)
	}

	must("tasks", "kill", "-s", "SIGTERM", id)
	eventually(t, "the task to stop after SIGTERM", func() bool {
		out, _ := c("tasks", "ls")
		return strings.Contains(out, "STOPPED")
	})
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "got TERM") {
		t.Errorf("the container's log has no sign of SIGTERM: %q", b)
	}
	must("tasks", "rm", id)
	must("containers", "rm", id)
	if _, err := os.Stat(filepath.Join(runtimeRoot, ns, id)); !os.IsNotExist(err) {
		t.Errorf("berth-runtime's state for %s is still there after ctr containers rm (%v)", id, err)
	}
	if cg := cgroupsOf(id); len(cg) > 0 {
		t.Errorf("cgroups left after removal: %v", cg)
	}

	// A second container stopped with kill --all, through the shim's `kill --all`.
	must("run", "-d", "--runc-binary", runtimeBin, "--runc-root", runtimeRoot, "--null-io", ref, id+"-2", "sh", "-c", "sleep 1000 & sleep 1000")
	must("tasks", "kill", "--all", "-s", "SIGKILL", id+"-2")
	eventually(t, "the task to stop after kill --all", func() bool {
		out, _ := c("tasks", "ls")
		return strings.Contains(out, "STOPPED")
	})
	must("tasks", "rm", id+"-2")
	must("containers", "rm", id+"-2")
	if ents, _ := os.ReadDir(filepath.Join(runtimeRoot, ns)); len(ents) != 0 {
		t.Errorf("berth-runtime's state root still holds %d entries", len(ents))
	}

	d.stop()
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("shims still running after containerd stopped and the containers were removed: %v", pids)
	}
}
