package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/berth-containers/berth/bench/harness"
)

// engine is a contender of sections 2 and 3: a container engine driven through its command
// line, with a private store so that the benchmark neither sees nor touches the host's
// images and containers.
type engine interface {
	name() string
	// unavailable says why the engine cannot be measured on this host, or "" if it can.
	unavailable() string
	// prepare makes the image ref available locally from a rootfs tarball, so that no run
	// pulls (there is no network here).
	prepare(ref, rootfsTar string) error
	// runRm is a one-shot `run --rm` of ref with args, no network, never pulling.
	runRm(ref string, args ...string) harness.Cmd
	// runDetached starts a detached container called name.
	runDetached(name, ref string, args ...string) harness.Cmd
	// containerPid is the pid of the container's first process.
	containerPid(name string) (int, error)
	// helpers are the processes the engine keeps on the host for the container (a
	// monitor such as conmon, a shim): the per-container overhead besides the container.
	helpers(name string) ([]int, error)
	// remove removes the named containers, running or not.
	remove(names ...string) harness.Cmd
	// cleanup removes the engine's private store and stops anything it started.
	cleanup() error
}

// berthEngine is berth's own engine, `berth run`.
type berthEngine struct{ bin string }

func (e *berthEngine) name() string { return "berth" }

func (e *berthEngine) unavailable() string {
	if _, err := os.Stat(e.bin); err != nil {
		return e.bin + " is not built (make build)"
	}
	// The engine's commands are being written; until `berth run` exists there is nothing
	// to measure.
	if err := exec.Command(e.bin, "run", "--help").Run(); err != nil {
		return "the engine (`berth run`, images) does not exist yet: cmd/berth has only `ns` and `version`"
	}
	return ""
}

// berth's engine takes Docker's command line, so the forms below are Docker's.

func (e *berthEngine) prepare(ref, rootfsTar string) error {
	_, err := harness.Output(harness.Cmd{Argv: []string{e.bin, "import", rootfsTar, ref}})
	return err
}

func (e *berthEngine) runRm(ref string, args ...string) harness.Cmd {
	return harness.Cmd{Argv: append([]string{e.bin, "run", "--rm", "--network", "none", "--pull", "never", ref}, args...)}
}

func (e *berthEngine) runDetached(name, ref string, args ...string) harness.Cmd {
	return harness.Cmd{Argv: append([]string{e.bin, "run", "-d", "--name", name, "--network", "none", "--pull", "never", ref}, args...)}
}

func (e *berthEngine) containerPid(name string) (int, error) {
	return inspectPid([]string{e.bin, "inspect", "--format", "{{.State.Pid}}", name})
}

// helpers: berth is daemonless and aims to keep no process per container besides the
// container itself; whatever it does keep must be found here once it exists.
func (e *berthEngine) helpers(string) ([]int, error) { return nil, nil }

func (e *berthEngine) remove(names ...string) harness.Cmd {
	return harness.Cmd{Argv: append([]string{e.bin, "rm", "--force"}, names...)}
}

func (e *berthEngine) cleanup() error { return nil }

func inspectPid(argv []string) (int, error) {
	out, err := harness.Output(harness.Cmd{Argv: argv})
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(out, &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("%v: no pid in %q", argv, out)
	}
	return pid, nil
}

// engines are the contenders of sections 2 and 3, berth first.
func engines(cfg *config) []engine {
	return []engine{&berthEngine{bin: cfg.bin("berth")}}
}

// engineSection is section 2 (run --rm) or 3 (density). Every engine must be available to
// make a comparison; until berth's is, the section says why it is not measured.
func engineSection(cfg *config, num int) *harness.Section {
	s := &harness.Section{Number: num, Title: map[int]string{
		2: "Engine: run --rm busybox true",
		3: fmt.Sprintf("Density: %d detached sleep containers", cfg.density),
	}[num]}
	es := engines(cfg)
	if why := es[0].unavailable(); why != "" {
		s.NotMeasured = why
		return s
	}
	s.NotMeasured = "berth's engine exists but this section's baselines (Podman, Docker, containerd) are not wired in yet"
	return s
}

// imageSection is section 5: pull and unpack of a multi-layer image from a local registry.
func imageSection(cfg *config) *harness.Section {
	s := &harness.Section{Number: 5, Title: "Images: pull + unpack from a local registry; snapshot creation"}
	// The pull comparison exists as a Go benchmark against a local registry; it is not
	// folded into this harness yet.
	s.NotMeasured = "not in this harness yet; `go test -run XXX -bench PullUnpack -benchtime 1x ./bench/images/` " +
		"measures berth pull against podman pull and skopeo copy + umoci unpack (see the section below)"
	return s
}
