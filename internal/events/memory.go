package events

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemoryStore keeps events in memory (tests, and a daemon without a
// store). It holds at most Max events (the oldest go first).
type MemoryStore struct {
	Max int
	mu  sync.Mutex
	es  []Event
}

// AppendEvents implements Writer.
func (m *MemoryStore) AppendEvents(_ context.Context, es []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.es = append(m.es, es...)
	max := m.Max
	if max <= 0 {
		max = 100000
	}
	if over := len(m.es) - max; over > 0 {
		m.es = append([]Event(nil), m.es[over:]...)
	}
	return nil
}

// Events implements Reader.
func (m *MemoryStore) Events(_ context.Context, q Query) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for i := len(m.es) - 1; i >= 0 && len(out) < Cap(q.Limit); i-- {
		if q.Match(m.es[i]) {
			out = append(out, m.es[i])
		}
	}
	return out, nil
}

// Suppressions implements Reader.
func (m *MemoryStore) Suppressions(_ context.Context, q SuppressionQuery) ([]Suppression, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Suppress(m.es, q), nil
}

// Suppress computes suppression candidates from events (any order).
func Suppress(es []Event, q SuppressionQuery) []Suppression {
	hc := HardCounts{}
	for _, e := range es {
		if !e.Hard || e.Kind != KindBounce || (!q.Since.IsZero() && e.Time.Before(q.Since)) {
			continue
		}
		hc.Add(e.Recipient, 1, e.Time, e.Reason, e.Sender)
	}
	return hc.Candidates(q)
}

// HardCounts adds up hard bounces per recipient.
type HardCounts map[string]*Suppression

// Add counts n hard bounces of recipient, the last at last with reason,
// from senders.
func (hc HardCounts) Add(recipient string, n int, last time.Time, reason string, senders ...string) {
	s := hc[recipient]
	if s == nil {
		s = &Suppression{Recipient: recipient}
		hc[recipient] = s
	}
	s.HardCount += n
	if !last.Before(s.Last) {
		s.Last, s.LastReason = last, reason
	}
	for _, x := range senders {
		if x != "" && len(s.Senders) < 10 && !contains(s.Senders, x) {
			s.Senders = append(s.Senders, x)
		}
	}
}

// Candidates returns the recipients with at least q.MinHard hard bounces,
// most first, at most q's limit.
func (hc HardCounts) Candidates(q SuppressionQuery) []Suppression {
	min := q.MinHard
	if min < 1 {
		min = 1
	}
	var out []Suppression
	for _, s := range hc {
		if s.HardCount >= min {
			sort.Strings(s.Senders)
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HardCount != out[j].HardCount {
			return out[i].HardCount > out[j].HardCount
		}
		return out[i].Recipient < out[j].Recipient
	})
	if l := Cap(q.Limit); len(out) > l {
		out = out[:l]
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
