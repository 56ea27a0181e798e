package cache

import (
	"sync"
	"time"
)

// Flood control uses a sliding-window estimate over two fixed windows, the
// same arithmetic in every backend (the Redis one runs it in a script):
//
//	rate = count(this window) + count(previous window) × (1 − elapsed/window)
//
// A counted message that brings the rate above the limit puts the key
// (recipient or client IP) into the strict state for StrictFor; that message
// gets FloodEntered. The first query after the strict state ran out gets
// FloodLeft. Only queries with Count set add to the rate.

// windowPos returns the index of the fixed window holding now and the
// fraction of it already elapsed, in [0,1).
func windowPos(now time.Time, window time.Duration) (idx int64, elapsed float64) {
	n := now.UnixNano()
	w := int64(window)
	idx = n / w
	return idx, float64(n%w) / float64(w)
}

// WindowPos is windowPos for the backends.
func WindowPos(now time.Time, window time.Duration) (int64, float64) { return windowPos(now, window) }

// SlidingRate is the estimate above.
func SlidingRate(cur, prev int64, elapsed float64) float64 {
	return float64(cur) + float64(prev)*(1-elapsed)
}

// Replayed reports whether bounces exceed the tag's budget. With no record
// of recipients (rcpts == 0) replay cannot be judged and it is false.
func Replayed(rcpts, bounces int64, slack int) bool {
	return rcpts > 0 && bounces > rcpts+int64(slack)
}

// FloodResult is one counter's verdict.
type FloodResult struct {
	Strict, Entered, Left bool
}

// FloodCounter is the in-process implementation of one kind of flood
// counter (per recipient or per client IP), used by the memory and embedded
// stores. Safe for concurrent use.
type FloodCounter struct {
	limit     int
	window    time.Duration
	strictFor time.Duration

	mu        sync.Mutex
	m         map[string]*floodEntry
	lastPrune time.Time
}

type floodEntry struct {
	idx         int64
	cur, prev   int64
	strictUntil time.Time // zero: not strict, nor left unreported
}

// NewFloodCounter returns a counter; limit < 0 disables it.
func NewFloodCounter(limit int, window, strictFor time.Duration) *FloodCounter {
	return &FloodCounter{limit: limit, window: window, strictFor: strictFor, m: make(map[string]*floodEntry)}
}

// Hit looks at (and when count is set, counts) one message for key.
func (f *FloodCounter) Hit(key string, count bool, now time.Time) FloodResult {
	if f == nil || f.limit < 0 || key == "" {
		return FloodResult{}
	}
	idx, elapsed := windowPos(now, f.window)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prune(now)
	e := f.m[key]
	if e == nil {
		if !count {
			return FloodResult{}
		}
		e = &floodEntry{idx: idx}
		f.m[key] = e
	}
	switch {
	case idx == e.idx:
	case idx == e.idx+1:
		e.prev, e.cur, e.idx = e.cur, 0, idx
	case idx > e.idx:
		e.prev, e.cur, e.idx = 0, 0, idx
	}
	if count && idx == e.idx {
		e.cur++
	}
	var r FloodResult
	if !e.strictUntil.IsZero() {
		if now.Before(e.strictUntil) {
			r.Strict = true
			return r
		}
		r.Left = true
		e.strictUntil = time.Time{}
	}
	if count && SlidingRate(e.cur, e.prev, elapsed) > float64(f.limit) && f.strictFor > 0 {
		e.strictUntil = now.Add(f.strictFor)
		r.Strict, r.Entered = true, true
	}
	return r
}

// prune drops idle entries at most once a window. Called with f.mu held.
func (f *FloodCounter) prune(now time.Time) {
	if now.Sub(f.lastPrune) < f.window {
		return
	}
	f.lastPrune = now
	idx, _ := windowPos(now, f.window)
	for k, e := range f.m {
		if e.idx < idx-1 && e.strictUntil.IsZero() {
			delete(f.m, k)
		}
	}
}

// Len returns the number of tracked keys (for tests).
func (f *FloodCounter) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

// Flood is the pair of counters a store keeps.
type Flood struct {
	Recipient, Client *FloodCounter
}

// NewFlood builds both counters from the configuration.
func NewFlood(c FloodConfig) *Flood {
	return &Flood{
		Recipient: NewFloodCounter(c.RecipientLimit, c.Window, c.StrictFor),
		Client:    NewFloodCounter(c.ClientLimit, c.Window, c.StrictFor),
	}
}

// Apply runs both counters for q and fills the flood fields of f.
func (fl *Flood) Apply(h *Hasher, q InboundQuery, f *InboundFacts) {
	var r, c FloodResult
	if q.Recipient != "" {
		r = fl.Recipient.Hit(h.FloodRecipient(q.Recipient, q.Delimiter), q.Count, q.Now)
	}
	if q.ClientIP != "" {
		c = fl.Client.Hit(h.ClientIP(q.ClientIP), q.Count, q.Now)
	}
	f.RecipientStrict, f.ClientStrict = r.Strict, c.Strict
	f.FloodEntered = r.Entered || c.Entered
	f.FloodLeft = r.Left || c.Left
}
