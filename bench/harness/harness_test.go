package harness

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func setup(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("the harness runs as root (it measures container runtimes)")
	}
	if err := Setup(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestRunMeasuresCPUWallAndSmallRSS(t *testing.T) {
	setup(t)
	s, err := Run(Cmd{Argv: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU < 50*time.Millisecond || s.Wall < s.CPU/2 {
		t.Errorf("busy loop: cpu %v wall %v, want cpu >= 50ms and wall not far below it", s.CPU, s.Wall)
	}
	// /bin/true is about 1 MiB resident; had the Go test binary forked it, its peak RSS
	// would start at the test binary's own size.
	s, err = Run(Cmd{Argv: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxRSS <= 0 || s.MaxRSS > 3<<20 {
		t.Errorf("/bin/true peak RSS %d bytes, want between 0 and 3 MiB", s.MaxRSS)
	}
}

func TestRunReportsFailureWithStderr(t *testing.T) {
	setup(t)
	_, err := Run(Cmd{Argv: []string{"sh", "-c", "echo boom >&2; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want an error with the exit status and the stderr", err)
	}
	_, err = Run(Cmd{Argv: []string{"/nonexistent/prog"}})
	if err == nil || !strings.Contains(err.Error(), "exit status 127") {
		t.Fatalf("got %v, want exit status 127 for a program that does not exist", err)
	}
}

func TestWaitPidReapsAnOrphan(t *testing.T) {
	setup(t)
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell leaves a busy child behind and exits: the child is reparented to us.
	script := "sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done' & echo $! > " + pidFile
	if _, err := Run(Cmd{Argv: []string{"/bin/sh", "-c", script}}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := WaitPid(pid, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU < 10*time.Millisecond || s.MaxRSS <= 0 {
		t.Errorf("orphan: cpu %v rss %d, want its busy loop's CPU and a peak RSS", s.CPU, s.MaxRSS)
	}
}

func TestPairedRatio(t *testing.T) {
	c := NewComparison("op", "a", "b")
	for _, v := range [][2]time.Duration{{10, 20}, {30, 30}, {40, 10}} {
		c.Add("a", Sample{Wall: v[0]})
		c.Add("b", Sample{Wall: v[1]})
	}
	r := c.Ratio(1, Wall)
	if r.N != 3 || r.Median != 1 || r.Min != 0.5 || r.Max != 4 {
		t.Errorf("paired ratio = %+v, want median 1 of {0.5, 1, 4}", r)
	}
	if m := c.Summary(0, Wall); m.Median != 30 || m.Min != 10 || m.Max != 40 {
		t.Errorf("summary = %+v", m)
	}
	if m := summarize([]float64{4, 1, 3, 2}); m.Median != 2.5 {
		t.Errorf("even median = %v, want 2.5", m.Median)
	}
	if m := summarize(nil); !math.IsNaN(m.Median) || m.N != 0 {
		t.Errorf("empty summary = %+v", m)
	}
}

func TestUpdateMarkdownKeepsTheProse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.md")
	doc := "# B\n\nmethod\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## Findings\n\nkept\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(p, "new table"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, want := range []string{"method", "new table", "## Findings\n\nkept"} {
		if !strings.Contains(got, want) {
			t.Errorf("updated file lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old") {
		t.Errorf("updated file still has the old generated part:\n%s", got)
	}
}

func TestWriteChartDrawsARowPerRatio(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.png")
	hs := []Headline{
		{Label: "x: a / b", Ratio: Summary{Median: 0.5, Min: 0.4, Max: 0.7, N: 3}, Target: 1},
		{Label: "y: a / c", Ratio: Summary{Median: 2.5, Min: 2, Max: 3, N: 3}},
	}
	if err := WriteChart(p, "title", hs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 70+2*34+70 {
		t.Errorf("chart is %v, want 1100 wide and one 34-pixel row per ratio", b)
	}
	// The row of a ratio below 1 has a green bar left of parity, the other a red bar right of it.
	if r, g, _, _ := img.At(700, 70+17).RGBA(); g <= r {
		t.Errorf("row 1 left of parity is not green")
	}
	if r, g, _, _ := img.At(780, 70+34+17).RGBA(); r <= g {
		t.Errorf("row 2 right of parity is not red")
	}
	if err := WriteChart(p, "t", nil); err == nil {
		t.Errorf("a chart without ratios was written")
	}
}
