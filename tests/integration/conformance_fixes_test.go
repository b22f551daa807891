package integration

import (
	"os"
	"path/filepath"
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
