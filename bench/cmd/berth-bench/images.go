package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/berth-containers/berth/bench/harness"
)

// imageResults are section 5's per-tool times (ms, round by round), for the headlines.
var imageResults [][]float64
var imageTools []string

var (
	imageRow  = regexp.MustCompile(`^(\S.*?)\s+(\d+)ms\s+([0-9.]+)x\s+(.*)$`)
	imageHead = regexp.MustCompile(`^image: (.*)$`)
	snapRow   = regexp.MustCompile(`^snapshot \((.*)\): Prepare median (\S+), overlay mount median (\S+) \((\d+) runs\)`)
)

// imageSection is section 5: the Go benchmark in bench/images (berth pull vs podman pull vs
// skopeo copy + umoci unpack from a docker-registry on 127.0.0.1, then snapshot creation),
// run as it is and its figures reported here.
func imageSection(cfg *config) *harness.Section {
	s := &harness.Section{Number: 5, Title: "Images: pull + unpack from a local registry; snapshot creation"}
	for _, t := range []string{"podman", "skopeo", "umoci", "docker-registry"} {
		if _, err := exec.LookPath(t); err != nil {
			s.NotMeasured = t + " is not installed (hack/deps-bench.sh)"
			return s
		}
	}
	root, err := repoRoot()
	if err != nil {
		s.NotMeasured = err.Error()
		return s
	}
	cmd := exec.Command("go", "test", "-count=1", "-run", "XXX", "-bench", "PullUnpack", "-benchtime", "1x", "./bench/images/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ROUNDS="+strconv.Itoa(cfg.imageRounds))
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.NotMeasured = fmt.Sprintf("the benchmark failed: %v: %s", err, lastLines(string(out), 15))
		return s
	}
	tab := harness.Table{Header: []string{"tool", "median", "ratio to berth (medians)", "each round (ms)"}}
	imageResults, imageTools = nil, nil
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if m := imageHead.FindStringSubmatch(l); m != nil {
			s.Setup = "`go test -run XXX -bench PullUnpack -benchtime 1x ./bench/images/` (run by the harness; " +
				"`-image-rounds` sets its ROUNDS). A multi-layer image built by the benchmark (a busybox base, three layers of " +
				"2,000 small text files each, one layer with 24 MB of random data and 8 MB of text) is pushed to a " +
				"docker-registry on 127.0.0.1; each tool pulls it into an empty store and unpacks it, the tools alternating " +
				"round by round: `berth pull`, `podman pull` (overlay), `skopeo copy` + `umoci unpack`. Then berth's " +
				"snapshotter prepares and mounts a container root filesystem for the pulled image 200 times. Image: " + m[1] + "."
			continue
		}
		if m := imageRow.FindStringSubmatch(l); m != nil && m[1] != "tool" {
			var rounds []float64
			for _, f := range strings.Fields(m[4]) {
				v, _ := strconv.ParseFloat(f, 64)
				rounds = append(rounds, v)
			}
			imageResults = append(imageResults, rounds)
			imageTools = append(imageTools, m[1])
			tab.Rows = append(tab.Rows, []string{m[1], m[2] + " ms", m[3] + "×", strings.Join(strings.Fields(m[4]), ", ")})
			continue
		}
		if m := snapRow.FindStringSubmatch(l); m != nil {
			s.Extra = append(s.Extra, harness.Table{
				Caption: "Snapshot (container root filesystem) creation for the pulled image:",
				Header:  []string{"snapshotter", "Prepare (median)", "overlay mount (median)", "runs"},
				Rows:    [][]string{{m[1], m[2], m[3], m[4]}},
			})
		}
	}
	if len(tab.Rows) == 0 {
		s.NotMeasured = "the benchmark printed no table: " + lastLines(string(out), 15)
		return s
	}
	s.Extra = append([]harness.Table{tab}, s.Extra...)
	return s
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}

// repoRoot is the module root: the directory above the working one that holds go.mod.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "bench", "images")); err == nil {
				return d, nil
			}
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("bench/images not found above the working directory (run from the repository)")
		}
		d = p
	}
}

// imageHeadlines are berth pull's paired (round by round) ratios to the other tools.
func imageHeadlines() []harness.Headline {
	var hs []harness.Headline
	if len(imageResults) < 2 {
		return nil
	}
	for j := 1; j < len(imageResults); j++ {
		var r []float64
		for i := 0; i < len(imageResults[0]) && i < len(imageResults[j]); i++ {
			if imageResults[j][i] > 0 {
				r = append(r, imageResults[0][i]/imageResults[j][i])
			}
		}
		sm := summarize(r)
		hs = append(hs, harness.Headline{Label: "image pull wall: berth / " + strings.TrimSuffix(imageTools[j], " pull (overlay)"),
			Ratio: harness.Summary{Median: sm.Median, Min: sm.Min, Max: sm.Max, N: len(r)}})
	}
	return hs
}
