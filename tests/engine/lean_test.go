package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/image/imagetest"
)

// bin/berth is the lean build: the registry, compression and archive code is in berth-full
// alone (internal/image/lean.go). What a user sees is one program: a run of an image that
// must be pulled first, and the image commands, are berth-full's work, handed over before
// anything is done; and without berth-full the lean build still runs a container whose
// image is there, and says what is missing for the rest.
func TestLeanBuildHandsOff(t *testing.T) {
	// What each build links, from the module list Go writes into every binary.
	heavy := []string{"github.com/klauspost/compress", "github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec"}
	for _, b := range []struct {
		name string
		want bool
	}{{"berth", false}, {"berth-full", true}} {
		out, err := exec.Command("go", "version", "-m", filepath.Join(binDir, b.name)).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m %s: %v: %s", b.name, err, out)
		}
		for _, m := range heavy {
			if got := strings.Contains(string(out), "\t"+m+"\t"); got != b.want {
				t.Errorf("%s links %s: %v, want %v", b.name, m, got, b.want)
			}
		}
	}

	h := newHarness(t)
	reg := imagetest.StartRegistry(t, "")
	ref := reg.Ref("lean/bb:v1")
	dg := imagetest.Push(t, ref, imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform()))
	r := h.run("run", "--rm", "--network", "none", ref, "sh", "-c", "echo pulled-and-ran")
	if r.code != 0 || r.stdout != "pulled-and-ran\n" {
		t.Fatalf("run of an image to pull: %s", r)
	}
	if n := strings.Count(r.stderr, "Unable to find image"); n != 1 {
		t.Errorf("run of an image to pull said %d times that it was not found: %q", n, r.stderr)
	}
	if out := h.ok("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, ref+"\n") {
		t.Errorf("images after the pull lacks %s:\n%s", ref, out)
	}

	// A digest reference is berth-full's to parse: inspect hands it over rather than say
	// there is no such object.
	byTag := h.ok("inspect", "--format", "{{.Id}}", ref)
	if byDigest := h.ok("inspect", "--format", "{{.Id}}", reg.Ref("lean/bb")+"@"+dg.String()); byDigest != byTag || !strings.HasPrefix(byTag, "sha256:") {
		t.Errorf("inspect by digest gave %q, by tag %q", byDigest, byTag)
	}

	// The lean build alone, as if berth-full were not installed.
	lone := t.TempDir()
	for _, b := range []string{"berth", "berth-runtime", "berth-monitor"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lone, b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	loneRun := func(args ...string) result {
		cmd := exec.Command(filepath.Join(lone, "berth"), args...)
		cmd.Env = append(os.Environ(), h.env...)
		cmd.Env = append(cmd.Env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		r := result{stdout: o.String(), stderr: e.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("berth %v: %v", args, err)
		}
		return r
	}
	if r := loneRun("run", "--rm", "--network", "none", "busybox", "echo", "lean-alone"); r.code != 0 || r.stdout != "lean-alone\n" {
		t.Errorf("the lean build alone, run of an image it has: %s", r)
	}
	for _, args := range [][]string{{"pull", ref}, {"run", "--rm", reg.Ref("lean/other:v1"), "true"}, {"images"}} {
		r := loneRun(args...)
		if r.code != 125 || !strings.Contains(r.stderr, "needs berth-full") || r.stdout != "" {
			t.Errorf("the lean build alone, %v: %s; want exit 125 naming berth-full", args, r)
		}
	}
}
