package harness

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Section is one numbered comparison of the benchmark: what was run, its results, or why it
// was not measured.
type Section struct {
	Number int
	Title  string
	// Setup says in a sentence or two what was run and how.
	Setup       string
	Comparisons []*Comparison
	// Metrics are the figures shown for this section (default wall, CPU, peak RSS).
	Metrics []Metric
	// NotMeasured, when set, is why the section has no figures.
	NotMeasured string
	Notes       []string
	// Extra holds tables of figures that are not contender comparisons (e.g. per-container
	// memory), already formatted as rows with a header.
	Extra []Table
}

// Table is a plain table of already formatted cells.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// Headline is one ratio drawn in the chart.
type Headline struct {
	Label string
	Ratio Summary
	// Target, when above zero, is the ratio berth aims for (drawn as a mark).
	Target float64
}

// Report is a whole benchmark run.
type Report struct {
	Env       [][2]string
	Sections  []*Section
	Headlines []Headline
}

func (s *Section) metrics() []Metric {
	if len(s.Metrics) > 0 {
		return s.Metrics
	}
	return []Metric{Wall, CPU, RSS}
}

// rows lays a section's comparisons out as table rows: one per operation and metric, each
// contender's median and range, then berth's paired ratio to each baseline.
func (s *Section) table() Table {
	var t Table
	if len(s.Comparisons) == 0 {
		return t
	}
	cs := s.Comparisons[0].Contenders
	t.Header = append([]string{"operation", "metric"}, cs...)
	for _, b := range cs[1:] {
		t.Header = append(t.Header, cs[0]+"/"+b)
	}
	for _, c := range s.Comparisons {
		ms := s.metrics()
		if len(c.Metrics) > 0 {
			ms = intersect(ms, c.Metrics)
		}
		for _, m := range ms {
			row := []string{c.Op + fmt.Sprintf(" (n=%d)", c.N()), m.Name}
			for i := range c.Contenders {
				sm := c.Summary(i, m)
				if sm.N == 0 {
					row = append(row, "-")
					continue
				}
				row = append(row, fmt.Sprintf("%s (%s–%s)", m.Format(sm.Median), m.Format(sm.Min), m.Format(sm.Max)))
			}
			for j := 1; j < len(c.Contenders); j++ {
				r := c.Ratio(j, m)
				if r.N == 0 || math.IsNaN(r.Median) {
					row = append(row, "-")
					continue
				}
				row = append(row, fmt.Sprintf("%.2f×", r.Median))
			}
			t.Rows = append(t.Rows, row)
		}
	}
	return t
}

func intersect(a, b []Metric) []Metric {
	var out []Metric
	for _, m := range a {
		for _, n := range b {
			if m.Name == n.Name {
				out = append(out, m)
			}
		}
	}
	return out
}

// WriteText prints the report as aligned plain-text tables.
func (r *Report) WriteText(w io.Writer) {
	for _, s := range r.Sections {
		fmt.Fprintf(w, "\n%d. %s\n", s.Number, s.Title)
		if s.NotMeasured != "" {
			fmt.Fprintf(w, "   not measured yet: %s\n", s.NotMeasured)
			continue
		}
		if t := s.table(); len(t.Rows) > 0 {
			writeAligned(w, t)
		}
		for _, t := range s.Extra {
			if t.Caption != "" {
				fmt.Fprintf(w, "   %s\n", t.Caption)
			}
			writeAligned(w, t)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "   note: %s\n", n)
		}
	}
	if len(r.Headlines) > 0 {
		fmt.Fprintf(w, "\nheadline ratios (median of paired ratios, berth / baseline; below 1 is berth faster or smaller)\n")
		for _, h := range r.Headlines {
			fmt.Fprintf(w, "   %-42s %.3f× (%.2f–%.2f)\n", h.Label, h.Ratio.Median, h.Ratio.Min, h.Ratio.Max)
		}
	}
}

func writeAligned(w io.Writer, t Table) {
	width := make([]int, len(t.Header))
	all := append([][]string{t.Header}, t.Rows...)
	for _, row := range all {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, row := range all {
		var b strings.Builder
		b.WriteString("   ")
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// Markdown renders the generated part of docs/benchmarks.md.
func (r *Report) Markdown(chart string) string {
	var b strings.Builder
	b.WriteString("### Where and when\n\n| | |\n| --- | --- |\n")
	for _, kv := range r.Env {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], mdEscape(kv[1]))
	}
	if chart != "" && len(r.Headlines) > 0 {
		fmt.Fprintf(&b, "\n![headline ratios](%s)\n", chart)
	}
	if len(r.Headlines) > 0 {
		b.WriteString("\n### Headline ratios\n\nMedian of the paired ratios berth / baseline (range over the pairs); below 1 means berth is faster or smaller.\n\n| comparison | ratio | range |\n| --- | --- | --- |\n")
		for _, h := range r.Headlines {
			fmt.Fprintf(&b, "| %s | %.3f× | %.2f–%.2f |\n", h.Label, h.Ratio.Median, h.Ratio.Min, h.Ratio.Max)
		}
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n### %d. %s\n\n", s.Number, s.Title)
		if s.NotMeasured != "" {
			fmt.Fprintf(&b, "Not measured yet: %s\n", s.NotMeasured)
			continue
		}
		if s.Setup != "" {
			fmt.Fprintf(&b, "%s\n\n", s.Setup)
		}
		if t := s.table(); len(t.Rows) > 0 {
			b.WriteString("Each cell: median (min–max). Ratio columns: median of the paired ratios.\n\n")
			writeMarkdownTable(&b, t)
		}
		for _, t := range s.Extra {
			if t.Caption != "" {
				fmt.Fprintf(&b, "\n%s\n", t.Caption)
			}
			b.WriteString("\n")
			writeMarkdownTable(&b, t)
		}
		if len(s.Notes) > 0 {
			b.WriteString("\n")
			for _, n := range s.Notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
	}
	return b.String()
}

func writeMarkdownTable(b *strings.Builder, t Table) {
	fmt.Fprintf(b, "| %s |\n|%s\n", strings.Join(mdRow(t.Header), " | "), strings.Repeat(" --- |", len(t.Header)))
	for _, row := range t.Rows {
		fmt.Fprintf(b, "| %s |\n", strings.Join(mdRow(row), " | "))
	}
}

func mdRow(r []string) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = mdEscape(c)
	}
	return out
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Markers delimit the part of docs/benchmarks.md that the harness writes; the prose around
// them (method, findings) is kept.
const (
	BeginMarker = "<!-- berth-bench:begin (generated by make bench; edits inside are overwritten) -->"
	EndMarker   = "<!-- berth-bench:end -->"
)

// UpdateMarkdown replaces the generated part of the file at path, creating the file with
// just that part if it does not exist.
func UpdateMarkdown(path, generated string) error {
	block := BeginMarker + "\n" + generated + "\n" + EndMarker + "\n"
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+block), 0o644)
	}
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, BeginMarker), strings.Index(s, EndMarker)
	if i < 0 || j < i {
		return os.WriteFile(path, []byte(strings.TrimRight(s, "\n")+"\n\n"+block), 0o644)
	}
	rest := s[j+len(EndMarker):]
	rest = strings.TrimPrefix(rest, "\n")
	return os.WriteFile(path, []byte(s[:i]+block+rest), 0o644)
}
