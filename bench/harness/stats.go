package harness

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Metric picks one figure out of a sample.
type Metric struct {
	Name string
	Of   func(Sample) float64
	// Format shows a value of this metric with its unit.
	Format func(float64) string
}

// The three figures measured from outside every command.
var (
	Wall = Metric{"wall", func(s Sample) float64 { return float64(s.Wall) }, fmtDuration}
	CPU  = Metric{"cpu", func(s Sample) float64 { return float64(s.CPU) }, fmtDuration}
	RSS  = Metric{"peak rss", func(s Sample) float64 { return float64(s.MaxRSS) }, fmtBytes}
	// GroupCPU is the CPU of every host-side process of an engine (see CPUGroup).
	GroupCPU = Metric{"cpu, all engine processes", func(s Sample) float64 { return float64(s.GroupCPU) }, fmtDuration}
)

func fmtDuration(v float64) string {
	d := time.Duration(v)
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

func fmtBytes(v float64) string {
	switch {
	case v >= 100<<20:
		return fmt.Sprintf("%.0f MiB", v/(1<<20))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", v/1024)
	}
}

// Summary is the median and range of one metric over a series of samples.
type Summary struct {
	Median, Min, Max float64
	N                int
}

func summarize(vals []float64) Summary {
	if len(vals) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	v := append([]float64(nil), vals...)
	sort.Float64s(v)
	return Summary{Median: median(v), Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// median of sorted values; the mean of the middle two for an even count.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Comparison is one operation measured for several contenders, interleaved: iteration i of
// every contender ran back to back, so sample i of two contenders forms a pair.
type Comparison struct {
	Op         string
	Contenders []string
	// Metrics, when set, are the only figures that mean something for this operation
	// (e.g. no wall time for a process we only reaped).
	Metrics []Metric
	samples [][]Sample
}

// NewComparison starts an empty comparison; the first contender is the one the ratios are
// about (berth), the others are its baselines.
func NewComparison(op string, contenders ...string) *Comparison {
	return &Comparison{Op: op, Contenders: contenders, samples: make([][]Sample, len(contenders))}
}

// Add records contender's sample of the current iteration.
func (c *Comparison) Add(contender string, s Sample) {
	for i, name := range c.Contenders {
		if name == contender {
			c.samples[i] = append(c.samples[i], s)
			return
		}
	}
	panic("harness: unknown contender " + contender + " in " + c.Op)
}

// N is the number of samples of the contender with the fewest.
func (c *Comparison) N() int {
	n := -1
	for _, s := range c.samples {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return max(n, 0)
}

// Summary of one metric for contender i.
func (c *Comparison) Summary(i int, m Metric) Summary {
	vals := make([]float64, len(c.samples[i]))
	for k, s := range c.samples[i] {
		vals[k] = m.Of(s)
	}
	return summarize(vals)
}

// Ratio is the median, over the iterations, of contender 0's figure divided by contender
// j's figure in the same iteration (the paired ratio), with the range of those ratios.
func (c *Comparison) Ratio(j int, m Metric) Summary {
	a, b := c.samples[0], c.samples[j]
	var r []float64
	for i := 0; i < len(a) && i < len(b); i++ {
		if d := m.Of(b[i]); d > 0 {
			r = append(r, m.Of(a[i])/d)
		}
	}
	return summarize(r)
}
