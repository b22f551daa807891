package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// exec joins every namespace of the container, its cgroup and its security profile, and
// returns the process's exit status.
func TestExecJoinsContainer(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 60`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "ex")
	initPid := r.state("ex").Pid
	script := nsInodes + `; [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo cg=same || echo cg=differs; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t' | tr : =; exit 7`
	out, stderr, code := r.exec("exec", "ex", "sh", "-c", script)
	if code != 7 {
		t.Fatalf("exec: exit %d, want 7 (stderr %q)", code, stderr)
	}
	kv := lines(out)
	for _, n := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
		if want := fmt.Sprint(mustIno(t, initPid, n)); kv[n] != want {
			t.Errorf("exec'd process's %s namespace %s, want the container's %s", n, kv[n], want)
		}
	}
	if kv["cg"] != "same" {
		t.Errorf("the exec'd process is not in the container's cgroup (%s)", kv["cg"])
	}
	if kv["CapEff"] != "00000000a80425fb" || kv["Seccomp"] != "2" || kv["NoNewPrivs"] != "1" {
		t.Errorf("exec'd process profile: CapEff %s Seccomp %s NoNewPrivs %s, want Docker's caps, a filter and no_new_privs",
			kv["CapEff"], kv["Seccomp"], kv["NoNewPrivs"])
	}
	pids := r.pids("ex")
	if len(pids) != 1 {
		t.Errorf("after exec the container's cgroup holds %v, want only the init", pids)
	}

	out, _, code = r.exec("exec", "-u", "1000:1000", "-e", "FOO=bar", "--cwd", "/tmp", "ex", "sh", "-c", `echo $(id -u):$(id -g) $FOO $(pwd)`)
	if code != 0 || strings.TrimSpace(out) != "1000:1000 bar /tmp" {
		t.Errorf("exec -u -e --cwd: exit %d, %q", code, out)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.mustOK("exec", "--detach", "--pid-file", pidFile, "ex", "sleep", "30")
	raw, _ := os.ReadFile(pidFile)
	found := false
	for _, p := range r.pids("ex") {
		if fmt.Sprint(p) == strings.TrimSpace(string(raw)) {
			found = true
		}
	}
	if !found {
		t.Errorf("--pid-file %q is not one of the container's processes %v", raw, r.pids("ex"))
	}
	proc, _ := json.Marshal(specs.Process{Args: []string{"sh", "-c", "echo from-process-json"}, Cwd: "/", Env: []string{"PATH=/bin"}})
	pf := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(pf, proc, 0o644)
	if out := r.mustOK("exec", "--process", pf, "ex"); strings.TrimSpace(out) != "from-process-json" {
		t.Errorf("exec --process: %q", out)
	}
	if _, stderr, code := r.exec("exec", "ex", "nosuchprog"); code == 0 || !strings.Contains(stderr, "nosuchprog") {
		t.Errorf("exec of a missing program: exit %d, %q", code, stderr)
	}
	r.mustOK("kill", "ex", "KILL")
	waitFor(t, "stop", func() bool { return r.state("ex").Status == "stopped" })
	if _, stderr, code := r.exec("exec", "ex", "true"); code != 1 || !strings.Contains(stderr, "stopped") {
		t.Errorf("exec into a stopped container: exit %d, %q", code, stderr)
	}
}

// exec into a user-namespaced container joins its user namespace too.
func TestExecUserNamespace(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 60`)
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	chownTree(t, b.rootfs(), 300000)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "exu")
	out := r.mustOK("exec", "exu", "sh", "-c", `echo -n x > /tmp/by-exec; cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'`)
	if !strings.Contains(out, "0 300000 65536") {
		t.Errorf("exec'd process's uid_map %q", out)
	}
	var st = mustStat(t, filepath.Join(b.rootfs(), "tmp", "by-exec"))
	if st.Uid != 300000 {
		t.Errorf("a file written by exec as root is owned by %d on the host, want 300000", st.Uid)
	}
}

// exec -t with --console-socket sends the pty master, as containerd's shim expects.
func TestExecTerminalConsoleSocket(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 60`)
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "ext")
	sock, masterCh := consoleListener(t)
	r.mustOK("exec", "-t", "-d", "--console-socket", sock, "ext", "sh", "-c", "tty; sleep 1")
	master := <-masterCh
	if master == nil {
		t.Fatal("no pty master arrived")
	}
	defer master.Close()
	out := readAll(t, master)
	if !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -t output %q lacks a pty name", out)
	}
}
