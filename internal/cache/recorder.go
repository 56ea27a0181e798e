package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher is implemented by the stores of this module. The Recorder uses
// it to hash a record once, when it is queued (Prepare), to write records
// already hashed (RecordPrepared), and to spool them to disk without any
// plain text. A Store without it gets whole SentMessages through
// RecordSentBatch and is not spooled.
type Batcher interface {
	Prepare(m SentMessage) (PreparedSent, error)
	RecordPrepared(ctx context.Context, ps []PreparedSent) error
	// StoreConfig is the store's configuration with its secret loaded.
	StoreConfig() Config
}

// RecorderOptions configure a Recorder. Zero values take the defaults.
type RecorderOptions struct {
	// MaxBatch is the most records written in one batch (256); MaxDelay the
	// longest a record waits for others to share its batch (100 ms: a
	// bbolt commit costs about half a millisecond of CPU with its two
	// fdatasyncs, so at a few hundred messages a second batches of 20 ms
	// spent a few percent of a core on commits; a queued record is
	// evidence all the same, and a crash's loss is covered by a gap).
	MaxBatch int
	MaxDelay time.Duration
	// MaxPending bounds the records kept in memory, queued or waiting for
	// the store to answer again (100,000: about 20 MB). Beyond it new
	// records are given up (counted, logged in the interval's summary, and
	// their time span becomes a gap).
	MaxPending int
	// SpoolPath, when set (the embedded store: <data_dir>/outbox.spool),
	// is where Close writes the records it could not write, and where
	// NewRecorder reloads them. Only stores that implement Batcher are
	// spooled (digests only, no plain text).
	SpoolPath string
	// FlushTimeout bounds Close's last attempt to write what is pending
	// (5 s).
	FlushTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed batches
	// (100 ms doubling to 1 s: a failing call costs little, the breaker
	// makes it instant, and records should reach the fleet soon after the
	// store answers again).
	RetryMin, RetryMax time.Duration
	// LogEvery is the interval of the summary line logged while records
	// fail or are given up (1 minute): never one line per record.
	LogEvery time.Duration
	Logger   *slog.Logger
	// OnGiveUp is called (not under a lock) with the number of records
	// given up, for metrics.
	OnGiveUp func(n int)
	// ReplaySlack is used for pending records' tag counts when the store
	// does not implement Batcher (default DefaultReplaySlack).
	ReplaySlack int

	// The store's history (gaps): see history.go.
	HistoryOptions
}

func (o *RecorderOptions) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 100 * time.Millisecond
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 100_000
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Second
	}
	if o.LogEvery <= 0 {
		o.LogEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReplaySlack == 0 {
		o.ReplaySlack = DefaultReplaySlack
	}
	o.HistoryOptions.defaults()
}

// Recorder writes the records of signed mail in the background, in
// batches, and never loses one silently. It wraps a Store and is itself a
// Store (and a Health), so that it can replace the store in the services:
//
//   - Record (and RecordSent, RecordSentBatch) queue a record and return at
//     once; they never block and never fail.
//   - A writer goroutine writes batches of up to MaxBatch records, waiting
//     at most MaxDelay for a batch to fill: one transaction (embedded
//     store: one pair of fdatasyncs) or one pipeline (Redis) per batch.
//   - A batch that fails stays queued and is retried with backoff while
//     the store does not answer (or cannot write); records beyond
//     MaxPending are given up and counted, and their span becomes a gap.
//   - Inbound looks at the queued records too: a record not yet written is
//     evidence all the same, and its recipients count for its tag.
//   - Close writes what it can within FlushTimeout, spools the rest (when
//     SpoolPath is set) for the next start, and closes the store.
//
// With HistoryOptions it also keeps the store's history: see history.go.
type Recorder struct {
	st    Store
	b     Batcher // nil: a foreign Store, written with RecordSentBatch
	h     *Hasher
	ret   time.Duration
	slack int
	o     RecorderOptions
	log   *slog.Logger

	mu       sync.Mutex
	queue    []*pendingRec // FIFO from head
	head     int
	byID     map[[8]byte]*pendingRec
	tagN     map[[8]byte]int64
	closed   bool
	spooled  int // records reloaded from the spool, not yet written
	lost     lostSpan
	failedAt time.Time // first failure of the current outage (zero: none)

	kick  chan struct{}
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	health   WriteHealth
	givenUp  atomic.Uint64
	written  atomic.Uint64
	batches  atomic.Uint64
	failures atomic.Uint64

	hist *history
}

type pendingRec struct {
	p  PreparedSent
	m  *SentMessage // for stores without Batcher
	at time.Time    // when queued
}

// lostSpan is the time span of records given up since it was last saved
// as a gap.
type lostSpan struct {
	n        int
	from, to time.Time
}

func (l *lostSpan) add(t time.Time) {
	end := t.Add(time.Second) // records keep whole seconds
	if l.n == 0 || t.Before(l.from) {
		l.from = t
	}
	if l.n == 0 || end.After(l.to) {
		l.to = end
	}
	l.n++
}

// NewRecorder wraps st and starts its writer (and, with HistoryOptions,
// its history keeper). Records spooled by the previous Close are queued
// first. The Recorder owns st: Close closes it.
func NewRecorder(st Store, opts RecorderOptions) *Recorder {
	opts.defaults()
	r := &Recorder{st: st, o: opts, log: opts.Logger,
		byID: make(map[[8]byte]*pendingRec), tagN: make(map[[8]byte]int64),
		kick: make(chan struct{}, 1), flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		slack: opts.ReplaySlack, ret: DefaultRetention}
	if b, ok := st.(Batcher); ok {
		r.b = b
		cfg := b.StoreConfig()
		r.h, r.slack, r.ret = NewHasher(cfg.Secret), cfg.ReplaySlack, cfg.Retention
	} else {
		r.h = NewHasher(nil)
	}
	spoolLost := false
	if opts.SpoolPath != "" && r.b != nil {
		ps, err := readSpool(opts.SpoolPath)
		if err != nil {
			spoolLost = true
			r.log.Warn("sent records spooled at the last stop could not be read; their time span counts as a gap", "path", opts.SpoolPath, "err", err)
		}
		for i := range ps {
			r.enqueue(&pendingRec{p: ps[i], at: time.Now()})
		}
		r.spooled = len(ps)
		if len(ps) > 0 {
			r.log.Info("sent records reloaded from the spool", "records", len(ps), "path", opts.SpoolPath)
		}
	}
	r.hist = newHistory(r, opts.HistoryOptions, spoolLost)
	go r.run()
	return r
}

// Record queues m. It never blocks and never fails: a record that cannot
// be kept is given up and counted.
func (r *Recorder) Record(m SentMessage) {
	pr := &pendingRec{at: time.Now()}
	var err error
	if r.b != nil {
		pr.p, err = r.b.Prepare(m)
	} else {
		pr.p, err = PrepareSent(r.h, m, r.ret)
		mc := m
		pr.m = &mc
	}
	if err != nil {
		r.log.Debug("sent record not queued", "err", err)
		return
	}
	r.mu.Lock()
	if r.closed || r.pendingLocked() >= r.o.MaxPending {
		r.lost.add(pr.p.Time)
		r.mu.Unlock()
		r.gaveUp(1)
		return
	}
	r.enqueueLocked(pr)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Recorder) gaveUp(n int) {
	r.givenUp.Add(uint64(n))
	if r.o.OnGiveUp != nil {
		r.o.OnGiveUp(n)
	}
}

func (r *Recorder) enqueue(pr *pendingRec) {
	r.mu.Lock()
	r.enqueueLocked(pr)
	r.mu.Unlock()
}

func (r *Recorder) enqueueLocked(pr *pendingRec) {
	r.queue = append(r.queue, pr)
	r.byID[key8(pr.p.ID)] = pr
	if pr.p.HasTag {
		r.tagN[key8(pr.p.Tag)] += pr.p.RcptN
	}
}

func (r *Recorder) pendingLocked() int { return len(r.queue) - r.head }

// Pending returns the number of records queued or waiting for a retry.
func (r *Recorder) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pendingLocked()
}

// batch returns up to max records from the head of the queue (they stay
// queued until written) and the time the oldest was queued.
func (r *Recorder) batch(max int) ([]*pendingRec, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(max, r.pendingLocked())
	if n == 0 {
		return nil, time.Time{}
	}
	b := append([]*pendingRec(nil), r.queue[r.head:r.head+n]...)
	return b, b[0].at
}

// remove drops the first n records (a batch that was written). It
// reports when the last record reloaded from the spool is gone.
func (r *Recorder) remove(n int) (spoolDone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pr := range r.queue[r.head : r.head+n] {
		k := key8(pr.p.ID)
		if r.byID[k] == pr {
			delete(r.byID, k)
		}
		if pr.p.HasTag {
			tk := key8(pr.p.Tag)
			if r.tagN[tk] -= pr.p.RcptN; r.tagN[tk] <= 0 {
				delete(r.tagN, tk)
			}
		}
	}
	clear(r.queue[r.head : r.head+n])
	r.head += n
	if r.head == len(r.queue) {
		r.queue, r.head = r.queue[:0], 0
	} else if r.head > 1024 && r.head*2 > len(r.queue) {
		r.queue = append(r.queue[:0:0], r.queue[r.head:]...)
		r.head = 0
	}
	if r.spooled > 0 {
		r.spooled = max(0, r.spooled-n)
		return r.spooled == 0
	}
	return false
}

func (r *Recorder) writeBatch(b []*pendingRec) error {
	ctx, cancel := context.WithTimeout(context.Background(), BatchTimeout)
	defer cancel()
	var err error
	if r.b != nil {
		ps := make([]PreparedSent, len(b))
		for i, pr := range b {
			ps[i] = pr.p
		}
		err = r.b.RecordPrepared(ctx, ps)
	} else {
		ms := make([]SentMessage, len(b))
		for i, pr := range b {
			ms[i] = *pr.m
		}
		err = r.st.RecordSentBatch(ctx, ms)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = nil // a record the store refuses (no Message-ID) is not retried
		}
	}
	r.health.Done(err)
	return err
}

// run is the writer: batches, retries with backoff, the summary line.
func (r *Recorder) run() {
	defer close(r.done)
	var (
		waiters  []chan struct{}
		backoff  time.Duration
		retryAt  time.Time
		stopping bool
		deadline time.Time // of the last flush at stop
		sum      summary
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	logTick := time.NewTicker(r.o.LogEvery)
	defer logTick.Stop()
	wait := func(d time.Duration) {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(d, 0))
		select {
		case <-r.kick:
		case ch := <-r.flush:
			waiters = append(waiters, ch)
		case <-r.stop:
			if !stopping {
				stopping, deadline = true, time.Now().Add(r.o.FlushTimeout)
			}
		case <-timer.C:
		case <-logTick.C:
			r.logSummary(&sum)
		}
	}
	for {
		b, oldest := r.batch(r.o.MaxBatch)
		if len(b) == 0 {
			for _, ch := range waiters {
				close(ch)
			}
			waiters = waiters[:0]
			if stopping {
				r.logSummary(&sum)
				return
			}
			wait(time.Hour)
			continue
		}
		now := time.Now()
		if stopping && now.After(deadline) {
			r.logSummary(&sum)
			return
		}
		urgent := stopping || len(waiters) > 0
		if now.Before(retryAt) {
			if stopping {
				wait(min(retryAt.Sub(now), deadline.Sub(now)))
			} else {
				wait(retryAt.Sub(now))
			}
			continue
		}
		if !urgent && len(b) < r.o.MaxBatch && now.Sub(oldest) < r.o.MaxDelay {
			wait(r.o.MaxDelay - now.Sub(oldest))
			continue
		}
		err := r.writeBatch(b)
		if err != nil {
			r.hist.storeError()
			r.failures.Add(1)
			sum.failed++
			sum.lastErr = err
			r.mu.Lock()
			if r.failedAt.IsZero() {
				r.failedAt = b[0].p.Time
			}
			r.mu.Unlock()
			backoff = min(max(2*backoff, r.o.RetryMin), r.o.RetryMax)
			retryAt = time.Now().Add(backoff)
			continue
		}
		if r.remove(len(b)) && r.o.SpoolPath != "" {
			removeSpool(r.o.SpoolPath, r.log)
		}
		r.written.Add(uint64(len(b)))
		r.batches.Add(1)
		sum.written += len(b)
		if backoff > 0 {
			backoff, retryAt = 0, time.Time{}
			r.recovered(b)
		}
	}
}

// recovered runs after the first batch written following failures: the
// outage becomes a gap for the fleet when the store is shared (the other
// processes could not see these records while they waited here).
func (r *Recorder) recovered(b []*pendingRec) {
	r.mu.Lock()
	from := r.failedAt
	r.failedAt = time.Time{}
	to := b[len(b)-1].p.Time
	if n := r.pendingLocked(); n > 0 {
		to = r.queue[len(r.queue)-1].p.Time
	}
	r.mu.Unlock()
	r.log.Info("store writes recovered; writing the records kept meanwhile", "pending", r.Pending())
	if r.o.Shared && !from.IsZero() {
		r.hist.addGap(Window{From: from, To: to})
	}
}

// summary is what the writer logs once per interval.
type summary struct {
	written, failed int
	givenUp         uint64
	lastErr         error
}

func (r *Recorder) logSummary(s *summary) {
	given := r.givenUp.Load()
	newGiven := given - s.givenUp
	s.givenUp = given
	if s.failed == 0 && newGiven == 0 {
		s.written = 0
		return
	}
	attrs := []any{"written", s.written, "failed_batches", s.failed, "given_up", newGiven, "given_up_total", given, "pending", r.Pending()}
	if s.lastErr != nil {
		attrs = append(attrs, "err", s.lastErr)
	}
	r.log.Warn("sent records: store writes failing; records kept and retried", attrs...)
	s.written, s.failed, s.lastErr = 0, 0, nil
}

// Flush waits until every record queued before it was written, or ctx
// ends.
func (r *Recorder) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case r.flush <- ch:
	case <-r.done:
		if n := r.Pending(); n > 0 {
			return fmt.Errorf("recorder closed with %d records pending", n)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d sent records not written yet: %w", r.Pending(), ctx.Err())
	}
}

// RecordSent implements Store: it queues m (never fails).
func (r *Recorder) RecordSent(_ context.Context, m SentMessage) error {
	r.Record(m)
	return nil
}

// RecordSentBatch implements Store: it queues ms (never fails).
func (r *Recorder) RecordSentBatch(_ context.Context, ms []SentMessage) error {
	for _, m := range ms {
		r.Record(m)
	}
	return nil
}

// Inbound implements Store: the store's answer, completed with the
// records still queued here (a record found only here is evidence all the
// same; queued recipients count for their tag) and the gaps.
func (r *Recorder) Inbound(ctx context.Context, q InboundQuery) (InboundFacts, error) {
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	// The queue is looked at before the store: a record written between the
	// two is then seen once or twice, never missed.
	var pend *StoredRecord
	var pendGiven string
	var pendTag int64
	tag := strings.ToLower(strings.TrimSpace(q.Tag))
	var tagKey [8]byte
	if tag != "" {
		tagKey = key8(r.h.TagDigest(tag))
	}
	r.mu.Lock()
	if r.pendingLocked() > 0 {
		if len(q.MessageIDs) > 0 {
			ds, given := r.h.CleanMessageIDDigests(q.MessageIDs, MaxMessageIDs)
			for i, d := range ds {
				if pr := r.byID[key8(d)]; pr != nil {
					if rec, err := DecodeRecord(pr.p.Value); err == nil && rec.Live(q.Now) {
						pend, pendGiven = &rec, given[i]
						break
					}
				}
			}
		}
		if tag != "" {
			pendTag = r.tagN[tagKey]
		}
	}
	r.mu.Unlock()

	f, err := r.st.Inbound(ctx, q)
	if err != nil {
		if errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			r.hist.storeError()
		}
		if pend == nil {
			return f, err
		}
		// The store cannot answer, but the record is here: evidence
		// enough for an untagged bounce (counters and flood state unknown).
		f = InboundFacts{}
		pend.Fill(r.h, q, pendGiven, &f)
		f.Gaps = r.Gaps(q.Now)
		return f, nil
	}
	if f.Sent == nil && pend != nil {
		pend.Fill(r.h, q, pendGiven, &f)
	}
	if pendTag > 0 {
		f.TagRecipients += pendTag
		f.Replayed = Replayed(f.TagRecipients, f.TagBounces, r.slack)
	}
	f.Gaps = r.Gaps(q.Now)
	return f, nil
}

// Ping implements Store.
func (r *Recorder) Ping(ctx context.Context) error { return r.st.Ping(ctx) }

// Close writes what it can within FlushTimeout, spools the rest (or gives
// it up: counted, and a gap), marks a clean stop in the store's history
// and closes the store.
func (r *Recorder) Close() error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
		<-r.done
		r.mu.Lock()
		left := append([]*pendingRec(nil), r.queue[r.head:]...)
		r.mu.Unlock()
		if len(left) > 0 {
			r.spoolOrGiveUp(left)
		} else if r.o.SpoolPath != "" {
			removeSpool(r.o.SpoolPath, r.log)
		}
		r.hist.close()
		err = r.st.Close()
	})
	return err
}

func (r *Recorder) spoolOrGiveUp(left []*pendingRec) {
	if r.o.SpoolPath != "" && r.b != nil {
		ps := make([]PreparedSent, len(left))
		for i, pr := range left {
			ps[i] = pr.p
		}
		if err := writeSpool(r.o.SpoolPath, ps); err == nil {
			r.log.Warn("sent records the store could not take were spooled for the next start", "records", len(ps), "path", r.o.SpoolPath)
			return
		} else {
			r.log.Warn("spooling sent records failed", "records", len(ps), "path", r.o.SpoolPath, "err", err)
		}
	}
	r.mu.Lock()
	for _, pr := range left {
		r.lost.add(pr.p.Time)
	}
	r.mu.Unlock()
	r.gaveUp(len(left))
	r.log.Warn("sent records given up at stop: the store could not take them; their time span is a gap", "records", len(left))
}

// BreakerState implements Health (the store's).
func (r *Recorder) BreakerState() string {
	if h, ok := r.st.(Health); ok {
		return h.BreakerState()
	}
	return BreakerClosed
}

// DroppedRecords implements Health: records given up (not written, not
// kept), which the old per-record drops were.
func (r *Recorder) DroppedRecords() uint64 { return r.givenUp.Load() }

// WriteError implements Health: the last batch failure while no batch has
// succeeded since (with the records waiting), else the store's own.
func (r *Recorder) WriteError() error {
	if err := r.health.Err(); err != nil {
		return fmt.Errorf("%w (%d sent records waiting)", err, r.Pending())
	}
	if h, ok := r.st.(Health); ok {
		return h.WriteError()
	}
	return nil
}

// RecorderStats are counters for metrics.
type RecorderStats struct {
	Pending        int    // queued or waiting for a retry
	Written        uint64 // records written
	Batches        uint64 // batches written
	FailedBatches  uint64 // batch writes that failed (and were retried)
	GivenUp        uint64 // records given up
	GapsPersisting int    // gaps not yet saved in the store
}

// Stats returns the counters.
func (r *Recorder) Stats() RecorderStats {
	s := RecorderStats{Pending: r.Pending(), Written: r.written.Load(), Batches: r.batches.Load(),
		FailedBatches: r.failures.Load(), GivenUp: r.givenUp.Load()}
	s.GapsPersisting = r.hist.unsavedN()
	return s
}

// Store returns the wrapped store.
func (r *Recorder) Store() Store { return r.st }

var (
	_ Store  = (*Recorder)(nil)
	_ Health = (*Recorder)(nil)
)
