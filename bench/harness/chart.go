package harness

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var (
	colFaster = color.RGBA{0x2e, 0x8b, 0x57, 0xff} // berth below parity
	colSlower = color.RGBA{0xc0, 0x39, 0x2b, 0xff} // berth above parity
	colInk    = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colGrid   = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	colTarget = color.RGBA{0x1f, 0x5f, 0xbf, 0xff}
)

// WriteChart draws the headline ratios as horizontal bars on a log scale around parity
// (1×): green to the left where berth is faster or smaller, red to the right where it is
// slower or larger, a thin line over the range of the paired ratios and a blue mark at the
// target.
func WriteChart(path, title string, hs []Headline) error {
	if len(hs) == 0 {
		return fmt.Errorf("chart %s: no ratios to draw", path)
	}
	reg, err := face(goregular.TTF, 15)
	if err != nil {
		return err
	}
	bold, err := face(gobold.TTF, 18)
	if err != nil {
		return err
	}
	small, err := face(goregular.TTF, 13)
	if err != nil {
		return err
	}
	const (
		width  = 1100
		left   = 380 // labels
		right  = 40
		top    = 70
		rowH   = 34
		bottom = 70
	)
	height := top + rowH*len(hs) + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	lo, hi := 0.5, 2.0
	for _, h := range hs {
		for _, v := range []float64{h.Ratio.Min, h.Ratio.Max, h.Ratio.Median, h.Target} {
			if v > 0 && !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	x := func(v float64) int {
		v = math.Min(math.Max(v, lo), hi)
		return left + int(float64(width-left-right)*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	text(img, bold, 20, 30, title, colInk)
	text(img, small, 20, 52, "median of paired ratios berth / baseline, log scale; line: range over the pairs; blue mark: the issue's target", colInk)

	// Grid and ticks at 1, 2 and 5 times each power of ten.
	axisY := top + rowH*len(hs) + 8
	for p := lo; p <= hi*1.0001; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := p * m
			if v > hi*1.0001 {
				break
			}
			gx := x(v)
			vline(img, gx, top-6, axisY, colGrid, 1)
			label := fmt.Sprintf("%g×", v)
			text(img, small, gx-textWidth(small, label)/2, axisY+18, label, colInk)
		}
	}
	vline(img, x(1), top-10, axisY, colInk, 2)
	text(img, small, x(1)-textWidth(small, "parity")/2, axisY+36, "parity", colInk)

	for i, h := range hs {
		cy := top + rowH*i + rowH/2
		text(img, reg, left-12-textWidth(reg, h.Label), cy+5, h.Label, colInk)
		m := h.Ratio.Median
		if math.IsNaN(m) || m <= 0 {
			continue
		}
		c := colFaster
		if m > 1 {
			c = colSlower
		}
		x0, x1 := x(1), x(m)
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		fill(img, image.Rect(x0, cy-10, max(x1, x0+2), cy+10), c)
		if h.Ratio.Min > 0 && h.Ratio.Max > 0 {
			fill(img, image.Rect(x(h.Ratio.Min), cy-1, x(h.Ratio.Max)+1, cy+1), colInk)
			vline(img, x(h.Ratio.Min), cy-5, cy+5, colInk, 1)
			vline(img, x(h.Ratio.Max), cy-5, cy+5, colInk, 1)
		}
		if h.Target > 0 {
			vline(img, x(h.Target), cy-14, cy+14, colTarget, 3)
		}
		label := fmt.Sprintf("%.2f×", m)
		lx := x(m) + 8
		if m < 1 {
			lx = x(m) - 8 - textWidth(small, label)
		}
		// Keep the value clear of the range line: put it above the bar.
		text(img, small, lx, cy-12, label, colInk)
	}

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return f.Close()
}

func face(ttf []byte, size float64) (font.Face, error) {
	ft, err := opentype.Parse(ttf)
	if err != nil {
		return nil, fmt.Errorf("chart: parse font: %w", err)
	}
	return opentype.NewFace(ft, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
}

func text(img draw.Image, f font.Face, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: f, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(f font.Face, s string) int { return font.MeasureString(f, s).Round() }

func fill(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

func vline(img draw.Image, x, y0, y1 int, c color.Color, w int) {
	fill(img, image.Rect(x-w/2, y0, x-w/2+w, y1), c)
}
