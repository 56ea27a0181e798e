package cache

// The alerts' state (package alerts) lives in the store, so that a fleet
// raises, logs and sends each alert once: one host at a time evaluates
// the figures, the holder of a lease it takes and renews at every
// evaluation (AlertLease); it alone writes the state document
// (SaveAlerts, refused to anyone else); every host reads it (LoadAlerts)
// for its pages, its metrics and the responses it applies. An admin's
// request to clear an alert can come through any host (RequestAlertClear);
// the holder takes the requests (TakeAlertClears) at its next evaluation.
// When the holder stops, its lease runs out and another host takes over
// with the state as stored.
//
// Layout. Redis (one hash tag, so that the scripts' keys share a Cluster
// slot):
//
//	bm:{al}:lease    string: the holder, with the lease's TTL (SET NX PX)
//	bm:{al}:state    string: the state document (JSON), EX AlertStateKeep
//	bm:{al}:clear    hash: alert key → unix ms of the request
//
// Embedded store: bucket "alerts" with keys "lease" (8-byte expiry in unix
// ms, then the holder), "state", and a nested bucket "clear".

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// AlertStore is implemented by the stores of this module (and
// MemoryAlerts). Through a Recorder, assert it on Recorder.Store().
type AlertStore interface {
	// AlertLease takes the evaluation lease for holder for ttl, or renews
	// it when holder holds it; it reports whether holder holds it now.
	AlertLease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// SaveAlerts stores the state document, only while holder holds the
	// lease (ErrNotLeaseHolder otherwise). At most MaxAlertDoc bytes.
	SaveAlerts(ctx context.Context, holder string, doc []byte) error
	// LoadAlerts returns the stored state document (nil: none).
	LoadAlerts(ctx context.Context) ([]byte, error)
	// RequestAlertClear records an admin's request to clear the alert
	// named key, made at at. At most MaxAlertClears are kept (more are
	// refused).
	RequestAlertClear(ctx context.Context, key string, at time.Time) error
	// TakeAlertClears returns the requests and removes them.
	TakeAlertClears(ctx context.Context) (map[string]time.Time, error)
}

// Bounds and retention of the alerts' state.
const (
	MaxAlertDoc    = 1 << 20
	MaxAlertClears = 100
	MaxAlertKey    = 600
	// AlertStateKeep is how long a state document lives after its last
	// write (Redis): a fleet gone for good leaves nothing behind.
	AlertStateKeep = 40 * 24 * time.Hour
	// AlertClearKeep is how long unanswered clear requests live (Redis).
	AlertClearKeep = 24 * time.Hour
)

// ErrNotLeaseHolder is SaveAlerts' answer to a holder whose lease ran out
// (another host evaluates now).
var ErrNotLeaseHolder = errors.New("alerts: the evaluation lease is held by another host")

// CheckAlertDoc and CheckAlertClear check the bounds.
func CheckAlertDoc(doc []byte) error {
	if len(doc) > MaxAlertDoc {
		return fmt.Errorf("alerts: state of %d bytes, more than %d", len(doc), MaxAlertDoc)
	}
	return nil
}

// CheckAlertClear checks a clear request's key.
func CheckAlertClear(key string) error {
	if key == "" || len(key) > MaxAlertKey {
		return fmt.Errorf("alerts: clear request for a key of %d bytes", len(key))
	}
	return nil
}

// ErrTooManyClears is RequestAlertClear's answer when MaxAlertClears wait.
var ErrTooManyClears = errors.New("alerts: too many clear requests waiting")

// MemoryAlerts is an in-process AlertStore: the reference for the
// conformance suite, and the alerts of a daemon whose store keeps none
// (the memory backend). Lost on restart, not shared.
type MemoryAlerts struct {
	mu     sync.Mutex
	holder string
	until  time.Time
	doc    []byte
	clears map[string]time.Time
	now    func() time.Time
}

// NewMemoryAlerts returns an empty MemoryAlerts.
func NewMemoryAlerts() *MemoryAlerts {
	return &MemoryAlerts{clears: map[string]time.Time{}, now: time.Now}
}

// SetClock replaces the clock the lease is judged by (tests).
func (m *MemoryAlerts) SetClock(now func() time.Time) {
	m.mu.Lock()
	m.now = now
	m.mu.Unlock()
}

// AlertLease implements AlertStore.
func (m *MemoryAlerts) AlertLease(_ context.Context, holder string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.holder == holder || m.holder == "" || !now.Before(m.until) {
		m.holder, m.until = holder, now.Add(ttl)
		return true, nil
	}
	return false, nil
}

// SaveAlerts implements AlertStore.
func (m *MemoryAlerts) SaveAlerts(_ context.Context, holder string, doc []byte) error {
	if err := CheckAlertDoc(doc); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holder != holder || !m.now().Before(m.until) {
		return ErrNotLeaseHolder
	}
	m.doc = append([]byte(nil), doc...)
	return nil
}

// LoadAlerts implements AlertStore.
func (m *MemoryAlerts) LoadAlerts(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil, nil
	}
	return append([]byte(nil), m.doc...), nil
}

// RequestAlertClear implements AlertStore.
func (m *MemoryAlerts) RequestAlertClear(_ context.Context, key string, at time.Time) error {
	if err := CheckAlertClear(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.clears[key]; !ok && len(m.clears) >= MaxAlertClears {
		return ErrTooManyClears
	}
	m.clears[key] = at
	return nil
}

// TakeAlertClears implements AlertStore.
func (m *MemoryAlerts) TakeAlertClears(context.Context) (map[string]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.clears
	m.clears = map[string]time.Time{}
	return out, nil
}

var _ AlertStore = (*MemoryAlerts)(nil)
