package cache

import (
	"slices"
	"sync"
	"time"
)

// MaxGaps bounds the gaps reported in InboundFacts (and kept in a store):
// beyond it the two closest are merged into one, which only widens a gap.
const MaxGaps = 32

// HistoryOptions configure how a Recorder keeps the store's history.
type HistoryOptions struct {
	// Shared is set when other processes use the store (Redis): a record
	// that waited here while the store did not answer was invisible to
	// them, so the outage becomes a gap for the fleet.
	Shared bool
}

func (o *HistoryOptions) defaults() {}

// history is the Recorder's record of the store's gaps.
type history struct {
	r  *Recorder
	o  HistoryOptions
	mu sync.Mutex
	// gaps known here (merged).
	gaps []Window
}

func newHistory(r *Recorder, o HistoryOptions) *history {
	return &history{r: r, o: o}
}

func (h *history) addGap(w Window) {
	h.mu.Lock()
	h.gaps = MergeWindows(append(h.gaps, w), time.Time{}, MaxGaps)
	h.mu.Unlock()
}

func (h *history) close() {}

func (h *history) unsaved() int { return 0 }

// Gaps returns the store's gaps as of now: those known to this process
// (including the span of records it gave up), merged, ending within
// MaxTTL of now, at most MaxGaps.
func (r *Recorder) Gaps(now time.Time) []Window {
	var ws []Window
	if r.hist != nil {
		r.hist.mu.Lock()
		ws = append(ws, r.hist.gaps...)
		r.hist.mu.Unlock()
	}
	r.mu.Lock()
	if r.lost.n > 0 {
		ws = append(ws, Window{From: r.lost.from, To: r.lost.to})
	}
	r.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	return MergeWindows(ws, now, MaxGaps)
}

// MergeWindows sorts ws, merges those that overlap or touch (within a
// second), drops those that ended more than MaxTTL before now (unless now
// is zero), and merges the two closest until at most max are left. It
// reuses ws.
func MergeWindows(ws []Window, now time.Time, max int) []Window {
	out := ws[:0]
	for _, w := range ws {
		if w.To.Before(w.From) {
			w.From, w.To = w.To, w.From
		}
		if !now.IsZero() && w.To.Before(now.Add(-MaxTTL)) {
			continue
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Window) int { return a.From.Compare(b.From) })
	m := out[:0]
	for _, w := range out {
		if n := len(m); n > 0 && !w.From.After(m[n-1].To.Add(time.Second)) {
			if w.To.After(m[n-1].To) {
				m[n-1].To = w.To
			}
			continue
		}
		m = append(m, w)
	}
	for max > 0 && len(m) > max {
		best := 0
		for i := 1; i < len(m)-1; i++ {
			if m[i+1].From.Sub(m[i].To) < m[best+1].From.Sub(m[best].To) {
				best = i
			}
		}
		m[best].To = m[best+1].To
		m = slices.Delete(m, best+1, best+2)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
