package web

import (
	"fmt"
	"strconv"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// Chart is a stacked bar chart drawn on the server as SVG: one bar per
// time bucket, one segment per verdict and reason. Each segment carries
// its line and count (data-line, data-count, and a <title> shown on
// hover), and the legend the totals, so the numbers are in the page, not
// only in the picture.
type Chart struct {
	ID            string
	Title         string
	Width, Height int
	PlotTop       int
	PlotBottom    int
	PlotLeft      int
	Bars          []Bar
	XLabels       []Label
	YLabels       []Label
	Legend        []LegendItem
	Total         int64
	Empty         bool
}

// Bar is one time bucket.
type Bar struct {
	X, W float64
	Segs []Seg
}

// Seg is one line's part of a bar.
type Seg struct {
	Y, H  float64
	Fill  string
	Line  string // "verdict/reason"
	Count int64
	Title string
}

// Label is an axis label.
type Label struct {
	X, Y float64
	Text string
}

// LegendItem is one line with its total.
type LegendItem struct {
	Fill    string
	Verdict string
	Reason  string
	Line    string
	Total   int64
}

var hues = map[string]int{
	"accept": 130, "quarantine": 30, "tempfail": 50, "reject": 0, stats.Signed: 210, stats.NotSigned: 265,
}

// colors gives each line a colour: the hue says the verdict (green
// accept, orange quarantine, yellow tempfail, red reject, blue signed,
// violet not signed), the lightness tells its reasons apart.
func colors(lines []stats.Line) []string {
	seen := map[string]int{}
	out := make([]string, len(lines))
	for i, l := range lines {
		h, ok := hues[l.Verdict]
		k := seen[l.Verdict]
		seen[l.Verdict]++
		light := 32 + (k*13)%45
		if !ok {
			out[i] = fmt.Sprintf("hsl(0 0%% %d%%)", 45+(k*10)%30)
			continue
		}
		out[i] = fmt.Sprintf("hsl(%d 65%% %d%%)", h, light)
	}
	return out
}

// newChart draws s. labelEvery is how many buckets apart the time labels
// stand; format is their time layout.
func newChart(id, title string, s stats.Series, labelEvery int, format string) Chart {
	const w, h, left, right, top, bottom = 920, 220, 48, 8, 10, 30
	c := Chart{ID: id, Title: title, Width: w, Height: h, PlotTop: top, PlotBottom: h - bottom, PlotLeft: left, Total: s.Total, Empty: s.Total == 0}
	n := len(s.Starts)
	if n == 0 {
		return c
	}
	fills := colors(s.Lines)
	for i, l := range s.Lines {
		c.Legend = append(c.Legend, LegendItem{Fill: fills[i], Verdict: l.Verdict, Reason: l.Reason, Line: l.Verdict + "/" + l.Reason, Total: l.Total})
	}
	var peak int64
	for i := 0; i < n; i++ {
		var sum int64
		for _, l := range s.Lines {
			sum += l.Counts[i]
		}
		peak = max(peak, sum)
	}
	ymax := niceMax(peak)
	plotW := float64(w - left - right)
	plotH := float64(h - top - bottom)
	bw := plotW / float64(n)
	gap := 0.0
	if bw > 4 {
		gap = bw * 0.15
	}
	for i := 0; i < n; i++ {
		b := Bar{X: float64(left) + float64(i)*bw + gap/2, W: bw - gap}
		y := float64(h - bottom)
		for j, l := range s.Lines {
			v := l.Counts[i]
			if v == 0 {
				continue
			}
			sh := float64(v) / float64(ymax) * plotH
			y -= sh
			b.Segs = append(b.Segs, Seg{Y: y, H: sh, Fill: fills[j], Line: l.Verdict + "/" + l.Reason, Count: v,
				Title: fmt.Sprintf("%s: %s %s: %d", s.Starts[i].Format("2006-01-02 15:04 UTC"), l.Verdict, l.Reason, v)})
		}
		if len(b.Segs) > 0 {
			c.Bars = append(c.Bars, b)
		}
		if labelEvery > 0 && i%labelEvery == 0 {
			c.XLabels = append(c.XLabels, Label{X: float64(left) + float64(i)*bw, Y: float64(h - bottom + 16), Text: s.Starts[i].Format(format)})
		}
	}
	for _, f := range []int64{0, ymax / 2, ymax} {
		c.YLabels = append(c.YLabels, Label{X: float64(left - 6), Y: float64(h-bottom) - float64(f)/float64(ymax)*plotH + 4, Text: strconv.FormatInt(f, 10)})
	}
	return c
}

// niceMax rounds a peak up to 1, 2 or 5 times a power of ten (at least
// 2, so that the middle label is a whole number).
func niceMax(v int64) int64 {
	if v < 2 {
		return 2
	}
	p := int64(1)
	for {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v && (m*p)%2 == 0 {
				return m * p
			}
		}
		p *= 10
	}
}

// Charts of the two ranges.
func dayChart(id, title string, s stats.Series) Chart {
	return newChart(id, title, s, 24, "15:04")
}

func monthChart(id, title string, s stats.Series) Chart {
	return newChart(id, title, s, 5, "01-02")
}

// chartFor draws a series whatever its width.
func chartFor(id, title string, s stats.Series, w time.Duration) Chart {
	n := len(s.Starts)
	switch {
	case w >= 24*time.Hour:
		return newChart(id, title, s, max(1, n/6), "01-02")
	case n <= 12:
		return newChart(id, title, s, 2, "15:04")
	case n <= 72:
		return newChart(id, title, s, 12, "15:04")
	}
	return dayChart(id, title, s)
}
