package nsview

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("these tests create namespaces and must run as root")
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (hack/deps-nsview.sh installs it): %v", name, err)
	}
	return p
}

// unshared is a process tree started by util-linux unshare: Outer is unshare itself and
// Init the forked child that runs busybox sleep inside every new namespace.
type unshared struct {
	Outer, Init int
	cmd         *exec.Cmd
}

// startUnshare runs `unshare <flags> --fork busybox sleep 1000` and waits until the forked
// child runs busybox. Both processes are killed when the test ends.
func startUnshare(t *testing.T, flags ...string) *unshared {
	t.Helper()
	requireTool(t, "unshare")
	bb := requireTool(t, "busybox")
	args := append(append([]string{}, flags...), "--fork", bb, "sleep", "1000")
	cmd := exec.Command("unshare", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A file, not a pipe: the sleeping child inherits it.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "unshare.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unshare %v: %v", args, err)
	}
	u := &unshared{Outer: cmd.Process.Pid, cmd: cmd}
	t.Cleanup(func() {
		if u.Init > 0 {
			// The child may be pid 1 of its namespace, which ignores SIGTERM.
			syscall.Kill(u.Init, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(u.Outer), "task", strconv.Itoa(u.Outer), "children"))
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			if c, _ := os.ReadFile(filepath.Join("/proc", f[0], "comm")); strings.TrimSpace(string(c)) == "busybox" {
				u.Init = pid
				return u
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	msg, _ := os.ReadFile(stderr.Name())
	t.Fatalf("unshare %v: no busybox child after 10s (stderr: %s)", args, msg)
	return nil
}

func startTime(t *testing.T, pid int) uint64 {
	t.Helper()
	st, err := readStat(pid)
	if err != nil {
		t.Fatalf("read start time of %d: %v", pid, err)
	}
	return st.startTime
}

func inodeOf(t *testing.T, pid int, typ Type) uint64 {
	t.Helper()
	var r nsReader
	var out [numTypes]uint64
	if err := r.read(pid, []Type{typ}, &out); err != nil || out[typ] == 0 {
		t.Fatalf("read /proc/%d/ns/%s: %v", pid, typ, err)
	}
	return out[typ]
}

type recordNS struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

// writeRecord writes <root>/<id>/state.json the way internal/runtime's Record is marshalled.
func writeRecord(t *testing.T, root, id string, pid int, start uint64, ns []recordNS) {
	t.Helper()
	rec := map[string]any{
		"id": id, "bundle": "/nonexistent", "rootfs": "/nonexistent", "created": time.Now(),
		"owner": "root", "pid": pid, "initStartTime": start, "started": true, "creating": false,
		"namespaces": ns, "runtime": "berth",
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// owned maps each namespace inode attributed to a container id to its type.
func owned(s *Snapshot, id string) map[uint64]Type {
	out := make(map[uint64]Type)
	for _, ns := range s.Namespaces {
		if ns.Container != nil && !ns.Container.Host && ns.Container.ID == id {
			out[ns.Inode] = ns.Type
		}
	}
	return out
}
