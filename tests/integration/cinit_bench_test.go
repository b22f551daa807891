package integration

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-containers/berth/bench/harness"
)

// BenchmarkRunTrueCInitVsGoInit measures `run` of /bin/true with the C init and with the
// Go init (org.berth.init=go), interleaved, from outside the runtime (wait4 of a small
// static spawner, as berth-bench does): user+sys CPU including children, and peak RSS; and
// the container init alone (create, start, then reaped as an orphan). Run it with
//
//	go test -run '^$' -bench RunTrueCInitVsGoInit -benchtime 30x ./tests/integration/
//
// Every figure is a median over b.N rounds; docs/init.md lists what it measured here.
func BenchmarkRunTrueCInitVsGoInit(b *testing.B) {
	dir := b.TempDir()
	if err := harness.Setup(dir); err != nil {
		b.Fatal(err)
	}
	if err := harness.BecomeSubreaper(); err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "state")
	variants := []struct{ name, bundle string }{{"C", ""}, {"Go", ""}}
	for i := range variants {
		bu := newBundle(b, "true")
		bu.Spec.Process.Args = []string{"/bin/true"}
		if variants[i].name == "Go" {
			bu.Spec.Annotations = map[string]string{"org.berth.init": "go"}
		}
		bu.save(b)
		variants[i].bundle = bu.Dir
	}
	rt := func(args ...string) harness.Cmd {
		return harness.Cmd{Argv: append([]string{runtimeBin, "--root", root}, args...)}
	}
	samples := map[string][]float64{}
	add := func(k string, v float64) { samples[k] = append(samples[k], v) }
	for i := 0; i < b.N; i++ {
		for _, v := range variants {
			id := fmt.Sprintf("bench-%s-%d", strings.ToLower(v.name), i)
			s, err := harness.Run(rt("run", "--bundle", v.bundle, id))
			if err != nil {
				b.Fatal(err)
			}
			add(v.name+"-run-cpu-ms", float64(s.CPU)/1e6)
			add(v.name+"-run-peak-MiB", float64(s.MaxRSS)/(1<<20))
			if _, err := harness.Run(rt("create", "--bundle", v.bundle, id)); err != nil {
				b.Fatal(err)
			}
			out, err := harness.Output(rt("state", id))
			if err != nil {
				b.Fatal(err)
			}
			var pid int
			if _, err := fmt.Sscanf(out[strings.Index(out, `"pid":`)+len(`"pid":`):], "%d", &pid); err != nil || pid <= 0 {
				b.Fatalf("state %s: no pid in %q", id, out)
			}
			if _, err := harness.Run(rt("start", id)); err != nil {
				b.Fatal(err)
			}
			s, err = harness.WaitPid(pid, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			add(v.name+"-init-cpu-ms", float64(s.CPU)/1e6)
			add(v.name+"-init-peak-MiB", float64(s.MaxRSS)/(1<<20))
			if _, err := harness.Run(rt("delete", id)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for k, v := range samples {
		sort.Float64s(v)
		b.ReportMetric(v[len(v)/2], k)
	}
	b.ReportMetric(0, "ns/op")
}
