package clients

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
)

// Podman with --runtime PATH runs a busybox container through conmon and berth-runtime:
// run, logs, exec, pause and unpause, stop, rm, and run --rm; berth-runtime's state proves
// it did the work. Everything Podman keeps is under a temporary directory; berth-runtime's
// state goes to its default root, as Podman passes it no --root, so the test only ever
// touches its own containers there.
func TestPodman(t *testing.T) {
	podman := need(t, "podman", "podman")
	need(t, "conmon", "conmon")
	dir := tempDir(t, "berth-podman-")
	removeCgroupsIfMade(t, "libpod_parent/conmon", "libpod_parent")
	t.Cleanup(func() { cleanupDir(t, dir) })
	// Podman as root asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, above this host's
	// hard limits, which the runtime (without CAP_SYS_RESOURCE) cannot raise: ask for what
	// the host allows. The rest keeps Podman's files, locks and events in dir.
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %[1]q
lock_type = "file"
static_dir = %[2]q
tmp_dir = %[3]q
volume_path = %[4]q
image_copy_tmp_dir = %[5]q

[network]
network_config_dir = %[6]q
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "root", "libpod"), filepath.Join(dir, "tmp"),
		filepath.Join(dir, "volumes"), filepath.Join(dir, "vartmp"), filepath.Join(dir, "net"))
	confPath := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"vartmp", "net"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	env := []string{"CONTAINERS_CONF=" + confPath}
	pm := func(args ...string) (string, error) {
		return run(t, 90*time.Second, env, podman, append([]string{"--root", filepath.Join(dir, "root"),
			"--runroot", filepath.Join(dir, "runroot"), "--runtime", runtimeBin, "--storage-driver", "overlay"}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := pm(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Cleanup(func() {
		// Our containers only (this root holds no other), then the storage's mounts.
		if out, err := pm("rm", "--all", "--force"); err != nil {
			t.Errorf("podman rm --all --force: %v: %s", err, out)
		}
		if out, err := pm("rmi", "--all", "--force"); err != nil {
			t.Errorf("podman rmi --all --force: %v: %s", err, out)
		}
	})

	must("load", "-i", imageTar)
	ref := strings.TrimSpace(must("images", "--format", "{{.Repository}}:{{.Tag}}"))
	if !strings.Contains(ref, "berth-test/busybox") {
		t.Fatalf("podman load: the image is listed as %q", ref)
	}

	const name = "berth-podman"
	id := strings.TrimSpace(must("run", "-d", "--pull", "never", "--network", "none", "--name", name, ref,
		"sh", "-c", `echo hello from berth; trap "echo got TERM; exit 3" TERM; while true; do sleep 0.1; done`))
	t.Cleanup(func() {
		// Should Podman fail to delete it, berth's default root must not keep our container.
		if _, err := os.Stat(filepath.Join(runtime.DefaultRoot, id)); err == nil {
			t.Errorf("berth-runtime's state for %s is left in %s", id, runtime.DefaultRoot)
			exec.Command(runtimeBin, "delete", "--force", id).Run()
		}
	})
	eventually(t, "the container's first line in podman logs", func() bool {
		out, _ := pm("logs", name)
		return strings.Contains(out, "hello from berth")
	})
	if rt := strings.TrimSpace(must("inspect", "--format", "{{.OCIRuntime}}", name)); rt != runtimeBin {
		t.Errorf("podman inspect: OCI runtime %q, want %s", rt, runtimeBin)
	}
	out, err := run(t, 10*time.Second, nil, runtimeBin, "state", id)
	if err != nil {
		t.Fatalf("berth-runtime has no state for the container in its default root: %v", err)
	}
	var st runtime.State
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status != runtime.StatusRunning {
		t.Fatalf("berth-runtime state %s: %q (%v), want running", id, out, err)
	}

	if out := must("exec", name, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline"); !strings.Contains(out, "exec-ok") {
		t.Errorf("podman exec: %q", out)
	}
	if _, err := pm("exec", name, "/no/such/program"); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("exec of a missing program: %v; want an error naming it", err)
	}
	must("pause", name)
	if s := strings.TrimSpace(must("inspect", "--format", "{{.State.Status}}", name)); s != "paused" {
		t.Errorf("after podman pause: status %q", s)
	}
	must("unpause", name)
	if s := strings.TrimSpace(must("inspect", "--format", "{{.State.Status}}", name)); s != "running" {
		t.Errorf("after podman unpause: status %q", s)
	}

	must("stop", "-t", "10", name)
	if s := strings.TrimSpace(must("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)); s != "exited 3" {
		t.Errorf("after podman stop: %q, want exited 3 (the container's TERM trap)", s)
	}
	if out := must("logs", name); !strings.Contains(out, "got TERM") {
		t.Errorf("podman logs after stop: %q", out)
	}
	must("rm", name)
	if _, err := os.Stat(filepath.Join(runtime.DefaultRoot, id)); !os.IsNotExist(err) {
		t.Errorf("berth-runtime's state for %s is still there after podman rm (%v)", id, err)
	}
	if cg := cgroupsOf(id); len(cg) > 0 {
		t.Errorf("cgroups left after podman rm: %v", cg)
	}

	out, err = pm("run", "--rm", "--pull", "never", "--network", "none", ref, "sh", "-c", "echo foreground; exit 7")
	if err == nil || !strings.Contains(err.Error(), "exit status 7") || !strings.Contains(out, "foreground") {
		t.Errorf("podman run --rm with exit 7: %q, %v", out, err)
	}
	if out := strings.TrimSpace(must("ps", "-aq")); out != "" {
		t.Errorf("podman ps -aq after run --rm: %q", out)
	}
}
