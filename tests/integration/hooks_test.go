package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Every hook runs at its step, in order, with the state on stdin and its args and env.
func TestHooksOrderStateArgsEnv(t *testing.T) {
	r := newRT(t)
	logDir := t.TempDir()
	hook := func(kind, dir string) specs.Hook {
		return specs.Hook{
			Path: "/bin/sh",
			Args: []string{"sh", "-c", `cat > ` + dir + `/` + kind + `.json; echo "$0 $KIND $(cat /proc/self/ns/mnt 2>/dev/null; readlink /proc/self/ns/mnt)" >> ` + dir + `/order`, kind},
			Env:  []string{"KIND=" + kind, "PATH=/bin:/usr/bin"},
		}
	}
	b := newBundle(t, `echo ran >> /tmp/program`)
	b.Spec.Hooks = &specs.Hooks{
		//lint:ignore SA1019 prestart is deprecated but still supported
		Prestart:        []specs.Hook{hook("prestart", logDir)},
		CreateRuntime:   []specs.Hook{hook("createRuntime", logDir)},
		CreateContainer: []specs.Hook{hook("createContainer", logDir)},
		StartContainer:  []specs.Hook{hook("startContainer", "/tmp")},
		Poststart:       []specs.Hook{hook("poststart", logDir)},
		Poststop:        []specs.Hook{hook("poststop", logDir)},
	}
	b.Spec.Annotations = map[string]string{"k": "v"}
	b.save(t)
	r.allowGoInit("hooked") // createContainer and startContainer hooks run in the Go init
	r.mustOK("create", "-b", b.Dir, "hooked")
	pid := r.state("hooked").Pid
	r.mustOK("start", "hooked")
	waitFor(t, "the program", func() bool { return r.state("hooked").Status == "stopped" })
	r.mustOK("delete", "hooked")

	order, _ := os.ReadFile(filepath.Join(logDir, "order"))
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(string(order)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != f[1] {
			t.Errorf("hook line %q: args[1] and $KIND disagree", l)
			continue
		}
		kinds = append(kinds, f[0])
		// createRuntime runs in the runtime's mount namespace, createContainer in the container's.
		host := readlinkNs(t, "/proc/self/ns/mnt")
		if f[0] == "createRuntime" && !strings.Contains(l, host) {
			t.Errorf("createRuntime ran outside the runtime's mount namespace: %q", l)
		}
		if f[0] == "createContainer" && strings.Contains(l, host) {
			t.Errorf("createContainer ran in the host's mount namespace: %q", l)
		}
	}
	if got := strings.Join(kinds, ","); got != "prestart,createRuntime,createContainer,poststart,poststop" {
		t.Errorf("runtime-side hooks ran in the order %s", got)
	}
	inside, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "order"))
	if !strings.HasPrefix(string(inside), "startContainer startContainer") {
		t.Errorf("startContainer did not run inside the container: %q", inside)
	}
	prog, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "program"))
	if string(prog) != "ran\n" {
		t.Errorf("the program ran %q", prog)
	}
	var st specs.State
	raw, _ := os.ReadFile(filepath.Join(logDir, "createRuntime.json"))
	if err := json.Unmarshal(raw, &st); err != nil || st.ID != "hooked" || st.Pid != pid || st.Status != specs.StateCreating ||
		st.Bundle != b.Dir || st.Annotations["k"] != "v" {
		t.Errorf("createRuntime's state %q (%v), want id, pid %d, creating, bundle, annotations", raw, err, pid)
	}
	raw, _ = os.ReadFile(filepath.Join(logDir, "poststop.json"))
	if json.Unmarshal(raw, &st) != nil || st.Status != specs.StateStopped {
		t.Errorf("poststop's state %q", raw)
	}
}

func readlinkNs(t *testing.T, p string) string {
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A failing or hanging create-time hook fails create and leaves nothing behind; a failing
// poststart or poststop hook is only a warning.
func TestHookFailures(t *testing.T) {
	r := newRT(t)
	r.allowGoInit("hook-in-ctr")
	timeout := 1
	for name, hooks := range map[string]*specs.Hooks{
		"fails":     {CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo broken >&2; exit 3"}}}},
		"hangs":     {Prestart: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Timeout: &timeout}}},
		"in-ctr":    {CreateContainer: []specs.Hook{{Path: "/bin/false"}}},
		"no-binary": {CreateRuntime: []specs.Hook{{Path: "/nonexistent/hook"}}},
	} {
		b := newBundle(t, "true")
		b.Spec.Hooks = hooks
		b.save(t)
		_, stderr, code := r.exec("create", "-b", b.Dir, "hook-"+name)
		if code != 1 || !strings.Contains(stderr, "hooks.") {
			t.Errorf("%s: exit %d, %q; want a failure naming the hook", name, code, stderr)
		}
		if name == "hangs" && !strings.Contains(stderr, "timed out") {
			t.Errorf("a hook past its timeout: %q", stderr)
		}
		if name == "fails" && !strings.Contains(stderr, "broken") {
			t.Errorf("the hook's own message is missing: %q", stderr)
		}
		if _, err := os.Stat(filepath.Join(r.root, "hook-"+name)); err == nil {
			t.Errorf("%s: a failed create left its state", name)
		}
		assertNoCgroup(t, "hook-"+name)
	}
	b := newBundle(t, "true")
	b.Spec.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/false"}}}
	b.save(t)
	out, stderr, code := r.exec("run", "-b", b.Dir, "poststop-fails")
	if code != 0 || !strings.Contains(stderr, "poststop") {
		t.Errorf("a failing poststop hook: exit %d, %q %q; want success with a warning", code, out, stderr)
	}
}
