package cache

import (
	"sync"
	"time"
)

// WriteHealth tracks whether writes succeed, for Health.WriteError: the
// last failure is reported until a write succeeds or WriteErrorWindow
// passes without another failure. The zero value is ready; safe for
// concurrent use.
type WriteHealth struct {
	mu       sync.Mutex
	err      error
	failedAt time.Time
}

// Done records the outcome of a write (err nil: success).
func (w *WriteHealth) Done(err error) {
	w.mu.Lock()
	if err == nil {
		w.err = nil
	} else {
		w.err, w.failedAt = err, time.Now()
	}
	w.mu.Unlock()
}

// Err is the current write failure, or nil.
func (w *WriteHealth) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil && time.Since(w.failedAt) > WriteErrorWindow {
		w.err = nil
	}
	return w.err
}
