package image

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type layerState int32

const (
	stateWaiting layerState = iota
	stateDownloading
	stateExtracting
	stateComplete
	stateExists
	stateFailed
	statePushing
	statePushed
)

func (s layerState) String() string {
	return [...]string{"Waiting", "Downloading", "Extracting", "Pull complete", "Already exists", "Failed", "Pushing", "Pushed"}[s]
}

// Progress draws Docker-style per-layer progress on a terminal: one line per layer with a
// bar, bytes done and speed, redrawn in place. On anything but a terminal it stays silent.
type Progress struct {
	w      io.Writer
	tty    bool
	mu     sync.Mutex
	layers []*progressLayer
	drawn  int
	stop   chan struct{}
	done   chan struct{}
}

type progressLayer struct {
	id    string
	total int64
	n     atomic.Int64
	state atomic.Int32
	start time.Time
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// NewProgress returns a display writing to w, animated only when w is a terminal. A nil
// *Progress is valid and shows nothing.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w}
	if f, ok := w.(*os.File); ok && IsTerminal(f) {
		p.tty = true
	}
	return p
}

func (p *Progress) add(id string, total int64) *progressLayer {
	if p == nil {
		return nil
	}
	l := &progressLayer{id: id, total: total, start: time.Now()}
	p.mu.Lock()
	p.layers = append(p.layers, l)
	p.mu.Unlock()
	return l
}

// Printf writes a status line (such as "Digest: ...") above the layer lines.
func (p *Progress) Printf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *Progress) begin() {
	if p == nil || !p.tty {
		return
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.draw()
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

func (p *Progress) end() {
	if p == nil || p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
}

func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range p.layers {
		b.WriteString("\x1b[2K")
		b.WriteString(l.line())
		b.WriteByte('\n')
	}
	p.drawn = len(p.layers)
	io.WriteString(p.w, b.String())
}

func (l *progressLayer) line() string {
	st := layerState(l.state.Load())
	switch st {
	case stateDownloading, statePushing:
		n := l.n.Load()
		bar := ""
		if l.total > 0 {
			w := int(50 * n / l.total)
			if w > 50 {
				w = 50
			}
			bar = "[" + strings.Repeat("=", w)
			if w < 50 {
				bar += ">" + strings.Repeat(" ", 49-w)
			}
			bar += "] "
		}
		speed := float64(n) / time.Since(l.start).Seconds()
		return fmt.Sprintf("%s: %-11s %s%s/%s  %s/s", l.id, st, bar, HumanSize(n), HumanSize(l.total), HumanSize(int64(speed)))
	}
	return fmt.Sprintf("%s: %s", l.id, st)
}

func (l *progressLayer) set(s layerState) {
	if l == nil {
		return
	}
	if s == stateDownloading || s == statePushing {
		l.start = time.Now()
	}
	l.state.Store(int32(s))
}

func (l *progressLayer) reader(r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &progressReader{r: r, l: l}
}

type progressReader struct {
	r io.Reader
	l *progressLayer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.l.n.Add(int64(n))
	return n, err
}

// HumanSize formats bytes as Docker does: decimal units, three significant figures.
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	s := fmt.Sprintf("%.3g", f)
	if strings.Contains(s, "e") {
		s = fmt.Sprintf("%.0f", f)
	}
	return s + units[i]
}
