package cache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// MemoryStore is an in-process Store: the reference implementation of the
// semantics, used by tests (of this package and of the engine). Its state
// is lost on restart and not shared between processes, so it is not a
// production backend. It stores the same compact records as the others.
type MemoryStore struct {
	cfg   Config
	h     *Hasher
	flood *Flood

	mu        sync.Mutex
	msgs      map[[8]byte]memMsg
	tags      map[[8]byte]*memTag
	journal   memJournal
	lastSweep time.Time
	closed    bool
	// now is the clock used for expiry when a query has no Now.
	now func() time.Time
}

type memMsg struct {
	value   []byte
	expires time.Time
}

type memTag struct {
	rcpts, bounces int64
	expires        time.Time
}

// NewMemoryStore returns an empty MemoryStore (cfg gets WithDefaults).
func NewMemoryStore(cfg Config) *MemoryStore {
	cfg = cfg.WithDefaults()
	return &MemoryStore{
		cfg: cfg, h: NewHasher(cfg.Secret), flood: NewFlood(cfg.Flood),
		msgs: make(map[[8]byte]memMsg), tags: make(map[[8]byte]*memTag), now: time.Now,
	}
}

var errClosed = errors.New("store is closed")

func key8(d Digest) (k [8]byte) {
	copy(k[:], d[:8])
	return k
}

// RecordSent implements Store.
func (s *MemoryStore) RecordSent(ctx context.Context, m SentMessage) error {
	return s.RecordSentBatch(ctx, []SentMessage{m})
}

// RecordSentBatch implements Store. Messages that cannot be prepared (no
// Message-ID) are skipped.
func (s *MemoryStore) RecordSentBatch(ctx context.Context, ms []SentMessage) error {
	ps, err := PrepareBatch(s.h, ms, s.cfg.Retention)
	if werr := s.RecordPrepared(ctx, ps); werr != nil {
		return werr
	}
	return err
}

// Prepare implements Batcher.
func (s *MemoryStore) Prepare(m SentMessage) (PreparedSent, error) {
	return PrepareSent(s.h, m, s.cfg.Retention)
}

// StoreConfig implements Batcher.
func (s *MemoryStore) StoreConfig() Config { return s.cfg }

// RecordPrepared implements Batcher.
func (s *MemoryStore) RecordPrepared(ctx context.Context, ps []PreparedSent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Unavailable("memory", "record_sent", errClosed)
	}
	for i := range ps {
		p := &ps[i]
		s.sweep(p.Time)
		s.msgs[key8(p.ID)] = memMsg{value: p.Value, expires: p.Expires}
		if p.HasTag {
			k := key8(p.Tag)
			t := s.tags[k]
			if t == nil {
				t = &memTag{}
				s.tags[k] = t
			}
			t.rcpts += p.RcptN
			if p.Expires.After(t.expires) {
				t.expires = p.Expires
			}
		}
	}
	return nil
}

// PrepareBatch prepares every message it can; the error names those it
// could not (they are left out).
func PrepareBatch(h *Hasher, ms []SentMessage, defTTL time.Duration) ([]PreparedSent, error) {
	ps := make([]PreparedSent, 0, len(ms))
	var errs []error
	for _, m := range ms {
		p, err := PrepareSent(h, m, defTTL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

// Inbound implements Store.
func (s *MemoryStore) Inbound(ctx context.Context, q InboundQuery) (InboundFacts, error) {
	var f InboundFacts
	if q.Now.IsZero() {
		q.Now = s.now()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return f, Unavailable("memory", "inbound", errClosed)
	}
	ds, given := s.h.CleanMessageIDDigests(q.MessageIDs, MaxMessageIDs)
	for i, d := range ds {
		m, ok := s.msgs[key8(d)]
		if !ok || !q.Now.Before(m.expires) {
			continue
		}
		rec, err := DecodeRecord(m.value)
		if err != nil {
			continue
		}
		rec.Fill(s.h, q, given[i], &f)
		break
	}
	if tag := strings.ToLower(strings.TrimSpace(q.Tag)); tag != "" {
		tk := key8(s.h.TagDigest(tag))
		t := s.tags[tk]
		if t != nil && !q.Now.Before(t.expires) {
			delete(s.tags, tk)
			t = nil
		}
		if t == nil && q.Count {
			// Bounces to a tag without a record still count, in case the
			// record arrives late (another process); they expire with the
			// retention.
			t = &memTag{expires: q.Now.Add(s.cfg.Retention)}
			s.tags[tk] = t
		}
		if t != nil {
			if q.Count {
				t.bounces++
			}
			f.TagRecipients, f.TagBounces = t.rcpts, t.bounces
		}
		f.Replayed = Replayed(f.TagRecipients, f.TagBounces, s.cfg.ReplaySlack)
	}
	s.mu.Unlock()
	s.flood.Apply(s.h, q, &f)
	return f, nil
}

// sweep drops expired entries, at most once a minute. s.mu is held.
func (s *MemoryStore) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for k, m := range s.msgs {
		if !now.Before(m.expires) {
			delete(s.msgs, k)
		}
	}
	for k, t := range s.tags {
		if !now.Before(t.expires) {
			delete(s.tags, k)
		}
	}
}

// Ping implements Store.
func (s *MemoryStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Unavailable("memory", "ping", errClosed)
	}
	return nil
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// BreakerState implements Health; the memory store has no breaker.
func (s *MemoryStore) BreakerState() string { return BreakerClosed }

// DroppedRecords implements Health; the memory store drops nothing.
func (s *MemoryStore) DroppedRecords() uint64 { return 0 }

// WriteError implements Health; the memory store's writes do not fail.
func (s *MemoryStore) WriteError() error { return nil }

// memJournal is the memory store's history.
type memJournal struct {
	epoch string
	beats map[string]Beat
	gaps  []Window
}

// Epoch implements Journal.
func (s *MemoryStore) Epoch(ctx context.Context, newID string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", false, Unavailable("memory", "epoch", errClosed)
	}
	if s.journal.epoch == "" {
		s.journal.epoch = newID
		return newID, true, nil
	}
	return s.journal.epoch, false, nil
}

// LastBeat implements Journal.
func (s *MemoryStore) LastBeat(ctx context.Context, instance string) (Beat, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Beat{}, false, Unavailable("memory", "beat", errClosed)
	}
	b, ok := s.journal.beats[instance]
	return b, ok, nil
}

// SaveBeat implements Journal.
func (s *MemoryStore) SaveBeat(ctx context.Context, instance string, b Beat) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Unavailable("memory", "beat", errClosed)
	}
	if s.journal.beats == nil {
		s.journal.beats = make(map[string]Beat)
	}
	s.journal.beats[instance] = b
	return nil
}

// AddGaps implements Journal.
func (s *MemoryStore) AddGaps(ctx context.Context, ws []Window) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Unavailable("memory", "gaps", errClosed)
	}
	s.journal.gaps = MergeWindows(append(s.journal.gaps, ws...), time.Time{}, MaxStoredGaps)
	return nil
}

// Gaps implements Journal.
func (s *MemoryStore) Gaps(ctx context.Context, now time.Time) ([]Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, Unavailable("memory", "gaps", errClosed)
	}
	return MergeWindows(append([]Window(nil), s.journal.gaps...), now, MaxStoredGaps), nil
}

// Forget drops everything the store holds, as a Redis restarted without
// persistence does (for tests of the epoch).
func (s *MemoryStore) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = make(map[[8]byte]memMsg)
	s.tags = make(map[[8]byte]*memTag)
	s.journal = memJournal{}
}

var _ Journal = (*MemoryStore)(nil)
