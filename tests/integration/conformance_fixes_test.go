package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Regression tests for what the OCI validation suite (make conformance) found.

// runtime-tools poststart_fail and poststop_fail: a failing poststart or poststop hook is a
// warning, and the hooks after it still run.
func TestFailingPoststartPoststopHookDoesNotStopTheRest(t *testing.T) {
	r := newRT(t)
	log := filepath.Join(t.TempDir(), "log")
	echo := func(s string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo " + s + " >> " + log}}
	}
	b := newBundle(t, "true")
	b.Spec.Hooks = &specs.Hooks{
		Poststart: []specs.Hook{{Path: "/bin/false"}, echo("poststart-2")},
		Poststop:  []specs.Hook{{Path: "/bin/false"}, echo("poststop-2")},
	}
	b.save(t)
	r.mustOK("create", "-b", b.Dir, "hooks-go-on")
	_, stderr, code := r.exec("start", "hooks-go-on")
	if code != 0 || !strings.Contains(stderr, "hooks.poststart[0]") {
		t.Errorf("start with a failing poststart hook: exit %d, %q; want success and a warning naming hooks.poststart[0]", code, stderr)
	}
	waitFor(t, "the container to stop", func() bool { return r.state("hooks-go-on").Status == runtime.StatusStopped })
	_, stderr, code = r.exec("delete", "hooks-go-on")
	if code != 0 || !strings.Contains(stderr, "hooks.poststop[0]") {
		t.Errorf("delete with a failing poststop hook: exit %d, %q; want success and a warning naming hooks.poststop[0]", code, stderr)
	}
	got, _ := os.ReadFile(log)
	if string(got) != "poststart-2\npoststop-2\n" {
		t.Errorf("the hooks after the failing ones wrote %q, want poststart-2 then poststop-2", got)
	}
}

// runtime-tools linux_ns_path ("set uts namespace by path"): a hostname is set in a UTS
// namespace the container joins by path, but never in the runtime's own.
func TestHostnameInJoinedUTSNamespace(t *testing.T) {
	r := newRT(t)
	hostBefore, _ := os.Hostname()
	holder := exec.Command("unshare", "--uts", "sleep", "1000")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare --uts: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	nsPath := fmt.Sprintf("/proc/%d/ns/uts", holder.Process.Pid)
	waitFor(t, "the holder's own UTS namespace", func() bool {
		a, _ := os.Readlink(nsPath)
		b, _ := os.Readlink("/proc/self/ns/uts")
		return a != "" && a != b
	})

	b := newBundle(t, "hostname")
	setUTS := func(path string) {
		for i, ns := range b.Spec.Linux.Namespaces {
			if ns.Type == specs.UTSNamespace {
				b.Spec.Linux.Namespaces[i].Path = path
			}
		}
	}
	setUTS(nsPath)
	b.Spec.Hostname = "joined-uts"
	if out := strings.TrimSpace(r.mustRun(b, "uts-joined")); out != "joined-uts" {
		t.Errorf("the container's hostname is %q, want joined-uts", out)
	}
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(holder.Process.Pid), "-u", "hostname").Output()
	if err != nil || strings.TrimSpace(string(out)) != "joined-uts" {
		t.Errorf("the joined namespace's hostname is %q (%v), want joined-uts", out, err)
	}

	setUTS(fmt.Sprintf("/proc/%d/ns/uts", os.Getpid()))
	b.save(t)
	_, stderr, code := r.exec("create", "-b", b.Dir, "uts-host")
	if code == 0 || !strings.Contains(stderr, "rename the host") {
		t.Errorf("a hostname in the runtime's own UTS namespace: exit %d, %q; want a refusal", code, stderr)
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Fatalf("the host's hostname changed from %q to %q", hostBefore, h)
	}
}

// Podman (its default seccomp profile): of two unconditional rules for one syscall, the first
// decides, as with runc and crun (libseccomp keeps the first); create used to refuse it.
func TestSeccompFirstUnconditionalRuleWins(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `nsenter --net=/etc/passwd true 2>&1; unshare -n true 2>&1; true`)
	for _, a := range []string{"nsenter", "unshare"} {
		if err := os.Symlink("busybox", filepath.Join(b.rootfs(), "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	eperm, eacces := uint(1), uint(13)
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"setns"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			{Names: []string{"setns", "unshare"}, Action: specs.ActErrno, ErrnoRet: &eacces},
		},
	}
	out := r.mustRun(b, "seccomp-first-wins")
	// setns on a file that is no namespace: EINVAL were it allowed; the first rule's EPERM.
	if !strings.Contains(out, "Operation not permitted") {
		t.Errorf("setns: %q; want the first rule's EPERM", out)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("unshare, named only by the second rule: %q; want its EACCES", out)
	}
	if strings.Contains(out, "Invalid argument") {
		t.Errorf("setns went through to the kernel: %q", out)
	}
}

// Podman and containerd's shim run `delete --force` after a create that failed: for a
// container that does not exist it succeeds, as runc's does; without --force it is an error.
func TestDeleteForceOfMissingContainer(t *testing.T) {
	r := newRT(t)
	if _, stderr, code := r.exec("delete", "--force", "never-created"); code != 0 {
		t.Errorf("delete --force of a container that does not exist: exit %d, %q; want success", code, stderr)
	}
	if _, stderr, code := r.exec("delete", "never-created"); code == 0 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("delete of a container that does not exist: exit %d, %q; want an error", code, stderr)
	}
}

// runtime-tools poststart: poststart hooks run after the user's program is executed, even
// when the init is still busy (here in a startContainer hook) after start released it.
func TestPoststartHookRunsAfterTheProgramIsExecuted(t *testing.T) {
	r := newRT(t)
	log := filepath.Join(t.TempDir(), "comm")
	b := newBundle(t, "exec sleep 1000")
	b.Spec.Hooks = &specs.Hooks{
		StartContainer: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "0.3"}}},
		Poststart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			`pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p'); cat /proc/$pid/comm > ` + log}}},
	}
	b.save(t)
	r.allowGoInit("poststart-after-exec") // its startContainer hook runs in the container
	r.mustOK("create", "-b", b.Dir, "poststart-after-exec")
	r.mustOK("start", "poststart-after-exec")
	if got, _ := os.ReadFile(log); strings.TrimSpace(string(got)) != "sleep" {
		t.Errorf("the poststart hook saw the container's process as %q, want sleep (the user's program)", got)
	}
}
