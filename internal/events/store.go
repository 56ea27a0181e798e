package events

import (
	"context"
	"time"
)

// Query selects events, newest first.
type Query struct {
	Since, Until time.Time // zero: unbounded
	Sender       string    // our user, exact (lower case); "" any
	Recipient    string    // the remote address (or its hash), exact; "" any
	Reason       string    // "" any
	Kind         Kind      // "" any
	SendingHost  string    // our sending host (Event.SendingHost), exact; "" any
	Hard         *bool     // nil any
	Limit        int       // at most this many (0: DefaultLimit; never more than MaxLimit)
}

// Query bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Suppression is a recipient that hard-bounced often enough that our
// senders should stop mailing it.
type Suppression struct {
	Recipient  string    `json:"recipient"`
	HardCount  int       `json:"hard_bounces"`
	LastReason string    `json:"last_reason"`
	Last       time.Time `json:"last"`
	Senders    []string  `json:"senders,omitempty"` // our users who mailed it (at most 10)
}

// SuppressionQuery selects suppression candidates.
type SuppressionQuery struct {
	Since   time.Time // hard bounces counted from then (zero: the whole retention)
	MinHard int       // at least this many hard bounces (default 1)
	Limit   int       // at most this many (0: DefaultLimit; never more than MaxLimit)
}

// Reader reads stored events (the store's implementation, or the daemon's
// HTTP API for the command line).
type Reader interface {
	Events(ctx context.Context, q Query) ([]Event, error)
	Suppressions(ctx context.Context, q SuppressionQuery) ([]Suppression, error)
}

// Writer stores events. AppendEvents is called from a background
// goroutine, with batches.
type Writer interface {
	AppendEvents(ctx context.Context, es []Event) error
}

// Store is both.
type Store interface {
	Reader
	Writer
}

// Match reports whether e is selected by q (ignoring the limit).
func (q Query) Match(e Event) bool {
	switch {
	case !q.Since.IsZero() && e.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	case q.Sender != "" && e.Sender != q.Sender:
		return false
	case q.Recipient != "" && e.Recipient != q.Recipient:
		return false
	case q.Reason != "" && e.Reason != q.Reason:
		return false
	case q.Kind != "" && e.Kind != q.Kind:
		return false
	case q.SendingHost != "" && e.SendingHost != q.SendingHost:
		return false
	case q.Hard != nil && e.Hard != *q.Hard:
		return false
	}
	return true
}

// Cap returns the effective limit.
func Cap(limit int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > MaxLimit:
		return MaxLimit
	}
	return limit
}
