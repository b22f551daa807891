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

// dockerd with berth-runtime registered (--add-runtime berth=PATH) runs a busybox container
// with `docker run --runtime berth`: its output in docker logs, exec, top, pause and unpause,
// update of its memory limit, stop, rm; berth-runtime's state root proves it did the work.
func TestDocker(t *testing.T) {
	dockerd := need(t, "dockerd", "docker.io")
	// Debian's docker CLI, which matches its dockerd (another docker may come first in PATH).
	docker := "/usr/bin/docker"
	if _, err := os.Stat(docker); err != nil {
		docker = need(t, "docker", "docker.io")
	}
	need(t, "containerd", "containerd")
	dir := tempDir(t, "berth-dockerd-")
	removeIfMade(t, "/run/docker/plugins", "/run/docker", "/run/containerd/fifo", "/run/containerd/s", "/run/containerd")
	removeCgroupsIfMade(t, "docker")
	t.Cleanup(func() { cleanupDir(t, dir) })
	sock := filepath.Join(dir, "docker.sock")
	execRoot := filepath.Join(dir, "exec")
	cfg := filepath.Join(dir, "daemon.json")
	// dockerd 20.10 writes a trust key to /etc/docker/key.json unless told another path.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("{%q: %q}\n", "deprecated-key-path", filepath.Join(dir, "key.json"))), 0o644); err != nil {
		t.Fatal(err)
	}
	// No bridge and no iptables: this host's network is not the test's to change.
	d := startDaemon(t, filepath.Join(dir, "dockerd.log"), nil, dockerd,
		"--config-file", cfg, "--host", "unix://"+sock, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", execRoot, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
		"--add-runtime", "berth="+runtimeBin, "--storage-driver", "overlay2")
	waitSocket(t, d, sock)

	dk := func(args ...string) (string, error) {
		return run(t, 90*time.Second, nil, docker, append([]string{"--host", "unix://" + sock}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := dk(args...)
		if err != nil {
			t.Fatalf("%v\ndockerd's log:\n%s", err, d.logTail())
		}
		return out
	}
	eventually(t, "dockerd to answer", func() bool { _, err := dk("version"); return err == nil })
	if info := must("info", "--format", "{{json .Runtimes}}"); !strings.Contains(info, `"berth"`) {
		t.Fatalf("docker info does not list the berth runtime: %s", info)
	}
	must("load", "-i", imageTar)

	const name = "berth-docker"
	id := strings.TrimSpace(must("run", "-d", "--runtime", "berth", "--network", "none", "--name", name, imageRef,
		"sh", "-c", `echo hello from berth; trap "echo got TERM; exit 3" TERM; while true; do sleep 0.1; done`))
	eventually(t, "the container's first line in docker logs", func() bool {
		out, _ := dk("logs", name)
		return strings.Contains(out, "hello from berth")
	})
	if rt := strings.TrimSpace(must("inspect", "--format", "{{.HostConfig.Runtime}}", name)); rt != "berth" {
		t.Errorf("docker inspect: runtime %q, want berth", rt)
	}
	// dockerd's shim runs berth-runtime with --root <exec-root>/runtime-runc/moby (dockerd
	// 20.10 names the root after its default runtime, whichever binary it runs).
	recs, _ := filepath.Glob(filepath.Join(execRoot, "runtime-*", "moby", id, "state.json"))
	if len(recs) != 1 {
		t.Fatalf("berth-runtime's state root under %s has no record of the container: %v", execRoot, recs)
	}
	rec, err := os.ReadFile(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var record struct{ Runtime, ID string }
	if json.Unmarshal(rec, &record) != nil || record.Runtime != "berth" || record.ID != id {
		t.Fatalf("state.json in the runtime root is not berth's record of %s: %s", id, rec)
	}

	if out := must("exec", name, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline"); !strings.Contains(out, "exec-ok") {
		t.Errorf("docker exec: %q", out)
	}
	if top := must("top", name); !strings.Contains(top, "sleep") && !strings.Contains(top, "sh -c") {
		t.Errorf("docker top (runtime ps --format json): %q", top)
	}
	if _, err := dk("exec", name, "/no/such/program"); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("exec of a missing program: %v; want an error naming it", err)
	}
	must("pause", name)
	if st := strings.TrimSpace(must("inspect", "--format", "{{.State.Status}}", name)); st != "paused" {
		t.Errorf("after docker pause: status %q", st)
	}
	must("unpause", name)
	// docker update goes to the runtime as `update --resources -`.
	must("update", "--memory", "64m", "--memory-swap", "128m", name)
	memLimit := filepath.Join("/sys/fs/cgroup/memory/docker", id, "memory.limit_in_bytes")
	if b, err := os.ReadFile(memLimit); err != nil || strings.TrimSpace(string(b)) != "67108864" {
		t.Errorf("after docker update --memory 64m: %s has %q (%v)", memLimit, b, err)
	}

	must("stop", "-t", "10", name)
	if st := strings.TrimSpace(must("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)); st != "exited 3" {
		t.Errorf("after docker stop: %q, want exited 3 (the container's TERM trap)", st)
	}
	if out := must("logs", name); !strings.Contains(out, "got TERM") {
		t.Errorf("docker logs after stop: %q", out)
	}
	must("rm", name)
	if _, err := os.Stat(filepath.Dir(recs[0])); !os.IsNotExist(err) {
		t.Errorf("berth-runtime's state for %s is still there after docker rm (%v)", id, err)
	}
	if cg := cgroupsOf(id); len(cg) > 0 {
		t.Errorf("cgroups left after docker rm: %v", cg)
	}

	// docker run --rm in the foreground: exit status and output come back through dockerd.
	out, err := dk("run", "--rm", "--runtime", "berth", "--network", "none", imageRef, "sh", "-c", "echo foreground; exit 7")
	if err == nil || !strings.Contains(err.Error(), "exit status 7") || !strings.Contains(out, "foreground") {
		t.Errorf("docker run --rm with exit 7: %q, %v", out, err)
	}
	eventually(t, "docker run --rm to remove its container", func() bool {
		out, _ := dk("ps", "-aq")
		return strings.TrimSpace(out) == ""
	})

	d.stop()
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("processes still running after dockerd stopped: %v", pids)
	}
}
