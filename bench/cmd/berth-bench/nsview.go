package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/berth-containers/berth/bench/harness"
)

// nsviewSection is section 6: `berth ns` against util-linux `lsns` on a host with extra
// processes, each in the host's namespaces, so both tools walk the same /proc.
func nsviewSection(cfg *config) (*harness.Section, error) {
	s := &harness.Section{Number: 6, Title: "Namespace view: berth ns vs lsns"}
	berth := cfg.bin("berth")
	if _, err := os.Stat(berth); err != nil {
		s.NotMeasured = fmt.Sprintf("%s is not built (make build)", berth)
		return s, nil
	}
	lsns, err := exec.LookPath("lsns")
	if err != nil {
		s.NotMeasured = "lsns (util-linux) is not installed"
		return s, nil
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("section 6: busybox is needed: %w", err)
	}
	var children []*os.Process
	defer func() {
		for _, p := range children {
			p.Kill()
		}
		for _, p := range children {
			p.Wait()
		}
	}()
	for i := 0; i < cfg.nsProcs; i++ {
		p, err := os.StartProcess(bb, []string{"sleep", "3600"}, &os.ProcAttr{
			Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		})
		if err != nil {
			return nil, fmt.Errorf("section 6: start sleeper %d: %w", i, err)
		}
		children = append(children, p)
	}
	// StartProcess returns once the child has exec'd, so /proc is settled for both tools.
	cmds := []struct {
		name string
		c    harness.Cmd
	}{
		{"berth ns", harness.Cmd{Argv: []string{berth, "ns"}}},
		{"lsns", harness.Cmd{Argv: []string{lsns}}},
	}
	c := harness.NewComparison("list all namespaces", cmds[0].name, cmds[1].name)
	for i := -cfg.warmup; i < cfg.nsN; i++ {
		for k := range cmds {
			x := cmds[(i+cfg.warmup+k)%len(cmds)]
			smp, err := harness.Run(x.c)
			if err != nil {
				return nil, fmt.Errorf("section 6: %w", err)
			}
			if i >= 0 {
				c.Add(x.name, smp)
			}
		}
	}
	s.Comparisons = []*harness.Comparison{c}
	s.Setup = fmt.Sprintf("%d extra `busybox sleep` processes running; `berth ns` and `lsns` (no options, output to /dev/null) "+
		"alternated, %d runs each after %d warm-up runs.", cfg.nsProcs, cfg.nsN, cfg.warmup)
	return s, nil
}
