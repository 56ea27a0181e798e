package cache

import (
	"sync"
	"time"
)

// Breaker states.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// Breaker is a consecutive-failure circuit breaker. While the backend
// answers it is closed. After Failures consecutive failures it opens: calls
// are refused at once (ErrBreakerOpen) so that a dead or hung backend costs
// a message microseconds instead of a timeout. After Cooldown one call is
// let through as a probe (half-open); its success closes the breaker, its
// failure opens it for another Cooldown.
type Breaker struct {
	failures int
	cooldown time.Duration
	onChange func(state string)
	now      func() time.Time

	mu       sync.Mutex
	state    string
	fails    int
	openedAt time.Time
	probing  bool
}

// NewBreaker returns a closed breaker. onChange (may be nil) is called, not
// under the breaker's lock, on every state change.
func NewBreaker(failures int, cooldown time.Duration, onChange func(state string)) *Breaker {
	if failures < 1 {
		failures = 1
	}
	return &Breaker{failures: failures, cooldown: cooldown, onChange: onChange, now: time.Now, state: BreakerClosed}
}

// Allow reports whether a call may go to the backend. When it returns true
// the caller must report the outcome with Done.
func (b *Breaker) Allow() bool {
	b.mu.Lock()
	switch b.state {
	case BreakerClosed:
		b.mu.Unlock()
		return true
	case BreakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			b.mu.Unlock()
			return false
		}
		b.state, b.probing = BreakerHalfOpen, true
		b.mu.Unlock()
		b.notify(BreakerHalfOpen)
		return true
	default: // half-open: one probe at a time
		if b.probing {
			b.mu.Unlock()
			return false
		}
		b.probing = true
		b.mu.Unlock()
		return true
	}
}

// Done reports the outcome of an allowed call: ok is false when the backend
// failed (not for a caller's own cancellation).
func (b *Breaker) Done(ok bool) {
	b.mu.Lock()
	var changed string
	if ok {
		b.fails = 0
		if b.state != BreakerClosed {
			b.state, changed = BreakerClosed, BreakerClosed
		}
		b.probing = false
	} else {
		b.fails++
		if b.state == BreakerHalfOpen || (b.state == BreakerClosed && b.fails >= b.failures) {
			b.state, changed = BreakerOpen, BreakerOpen
			b.openedAt = b.now()
		}
		b.probing = false
	}
	b.mu.Unlock()
	if changed != "" {
		b.notify(changed)
	}
}

// Cancel releases an allowed call whose outcome says nothing about the
// backend (the caller gave up): a half-open probe slot is freed, counts stay.
func (b *Breaker) Cancel() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// State returns the current state.
func (b *Breaker) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *Breaker) notify(s string) {
	if b.onChange != nil {
		b.onChange(s)
	}
}
