package cache

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/safeio"
)

// MaxGaps bounds the gaps reported in InboundFacts: beyond it the two
// closest are merged into one, which only widens a gap.
const MaxGaps = 32

// HistoryOptions configure how a Recorder keeps the store's history (see
// "Gaps" in the package doc). It is kept only when the store implements
// Journal (the stores of this module do).
type HistoryOptions struct {
	// Shared is set when other processes use the store (Redis). A record
	// that waited here while the store did not answer was invisible to
	// them, so the outage becomes a gap for the fleet; and after any store
	// error the data may have been lost (a Redis restarted empty), so until
	// the epoch has been checked again every answer carries a provisional
	// gap [now − MaxTTL, now].
	Shared bool
	// Instance names this process's heartbeat (default: the host name;
	// see InstanceID).
	Instance string
	// HeartbeatEvery is how often the heartbeat is saved (30 s); the
	// downtime of a crash is counted from the last one. RefreshEvery is
	// how often the gap list is read back and the epoch checked (5 s).
	HeartbeatEvery, RefreshEvery time.Duration
	// EpochFile keeps the store epoch this data directory last saw (e.g.
	// <data_dir>/store-epoch): a store whose epoch is new or another than
	// that one lost its data; a store first seen here is new, not a loss
	// ("" : every new epoch counts as a loss).
	EpochFile string
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *HistoryOptions) defaults() {
	if o.Instance == "" {
		o.Instance, _ = os.Hostname()
	}
	if o.HeartbeatEvery <= 0 {
		o.HeartbeatEvery = 30 * time.Second
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// journalTimeout bounds each history call to the store.
const journalTimeout = 2 * time.Second

// history keeps the store's gaps: it reads them back from the store every
// RefreshEvery, saves the ones found here (outages, records given up,
// downtime), checks the store's epoch and saves the heartbeat.
type history struct {
	r   *Recorder
	j   Journal
	o   HistoryOptions
	log *slog.Logger

	mu        sync.Mutex
	saved     []Window // the store's list, as last read
	unsaved   []Window // found here, not saved yet
	epoch     string
	started   bool // the start (last heartbeat → gap) is done
	suspect   bool // a store error since the last epoch check
	spoolLost bool // the spool could not be read at start
	lastBeat  time.Time

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newHistory(r *Recorder, o HistoryOptions, spoolLost bool) *history {
	h := &history{r: r, o: o, log: r.log, spoolLost: spoolLost, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	h.j, _ = r.st.(Journal)
	if h.j == nil {
		close(h.done)
		return h
	}
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	if err := h.start(ctx); err != nil {
		h.log.Warn("store history: not read at start (the store does not answer); retrying", "err", err)
	}
	cancel()
	go h.loop()
	return h
}

// start turns what the last run left (its heartbeat, the epoch) into
// gaps, and loads the gap list.
func (h *history) start(ctx context.Context) error {
	now := h.o.Now()
	if err := h.checkEpoch(ctx, now); err != nil {
		return err
	}
	prev, found, err := h.j.LastBeat(ctx, h.o.Instance)
	if err != nil {
		return err
	}
	var gaps []Window
	if found {
		switch {
		case prev.Stopped:
			// Down from a clean stop: mail may have left unsigned, and the
			// MX took bounces unchecked (milter_default_action = accept).
			h.log.Info("store history: down since the last clean stop; mail may have left unsigned meanwhile: gap", "from", prev.Time, "to", now)
			gaps = append(gaps, Window{From: prev.Time, To: now, Unsigned: true})
		default:
			from := prev.Time
			if !prev.Pending.IsZero() && prev.Pending.Before(from) {
				from = prev.Pending
			}
			h.log.Warn("store history: the last run did not stop cleanly; records not yet written were lost: gap", "from", from, "to", now)
			gaps = append(gaps, Window{From: from, To: now})
		}
		if h.spoolLost && !prev.Pending.IsZero() {
			gaps = append(gaps, Window{From: prev.Pending, To: prev.Time})
		}
	}
	h.mu.Lock()
	h.addGapLocked(gaps...)
	h.mu.Unlock()
	if err := h.j.SaveBeat(ctx, h.o.Instance, Beat{Time: now, Pending: h.r.oldestPending()}); err != nil {
		return err
	}
	h.mu.Lock()
	h.started, h.lastBeat = true, now
	h.mu.Unlock()
	return h.sync(ctx, now)
}

// checkEpoch compares the store's epoch with the one known here (in
// memory, else in the epoch file): a store whose epoch is missing (it was
// created now) or another one lost its data, and may miss anything before
// now. With an epoch file, a store this data directory has never seen is
// new: nothing was recorded in it to lose (the grace period covers a new
// installation); without one, a store created now counts as a loss.
func (h *history) checkEpoch(ctx context.Context, now time.Time) error {
	id, created, err := h.j.Epoch(ctx, NewID())
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	known := h.epoch
	if known == "" && h.o.EpochFile != "" {
		if b, err := os.ReadFile(h.o.EpochFile); err == nil {
			known = strings.TrimSpace(string(b))
		}
	}
	var lost bool
	switch {
	case h.o.EpochFile == "":
		// Nothing kept between runs: a store created now may have lost
		// its data as well as be new.
		lost = created || (known != "" && id != known)
	case known == "":
		lost = false // first seen by this data directory: new, nothing lost
	default:
		lost = created || id != known
	}
	switch {
	case lost:
		h.log.Warn("store history: the store lost its data (its epoch is new); what was sent before now is unknown to it: gap", "from", now.Add(-MaxTTL), "to", now)
		h.addGapLocked(Window{From: now.Add(-MaxTTL), To: now})
	case created:
		h.log.Info("store history: a new store", "epoch", id)
	}
	if id != known && h.o.EpochFile != "" {
		if err := safeio.WriteFile(h.o.EpochFile, []byte(id+"\n"), 0o600); err != nil {
			h.log.Warn("store history: cannot keep the store epoch", "file", h.o.EpochFile, "err", err)
		}
	}
	h.epoch, h.suspect = id, false
	return nil
}

// sync saves the gaps found here and reads the store's list back.
func (h *history) sync(ctx context.Context, now time.Time) error {
	h.takeLost()
	h.mu.Lock()
	unsaved := append([]Window(nil), h.unsaved...)
	h.mu.Unlock()
	if len(unsaved) > 0 {
		if err := h.j.AddGaps(ctx, unsaved); err != nil {
			return err
		}
		h.mu.Lock()
		h.unsaved = slices.DeleteFunc(h.unsaved, func(w Window) bool { return slices.Contains(unsaved, w) })
		// Until the store's list is read back, the gaps just saved stay in
		// view: a bounce judged meanwhile must not miss one.
		h.saved = MergeWindows(append(slices.Clone(h.saved), unsaved...), time.Time{}, MaxGaps)
		h.mu.Unlock()
	}
	saved, err := h.j.Gaps(ctx, now)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.saved = saved
	h.mu.Unlock()
	return nil
}

// takeLost moves the span of records given up into the unsaved gaps, in
// one step under both locks (h.mu, then r.mu, as Gaps takes them), so that
// Gaps never sees it in neither place.
func (h *history) takeLost() {
	h.mu.Lock()
	h.r.mu.Lock()
	l := h.r.lost
	h.r.lost = lostSpan{}
	h.r.mu.Unlock()
	if l.n > 0 {
		h.addGapLocked(Window{From: l.from, To: l.to})
	}
	h.mu.Unlock()
}

func (h *history) addGap(w Window) {
	h.mu.Lock()
	h.addGapLocked(w)
	h.mu.Unlock()
	h.poke()
}

// addGapLocked adds ws to the gaps not yet saved; h.mu is held.
func (h *history) addGapLocked(ws ...Window) {
	h.unsaved = MergeWindows(append(h.unsaved, ws...), time.Time{}, MaxGaps)
}

// storeError notes that the store failed: with a shared store its data
// may have been lost, so the epoch is checked at once. Only the first
// error since the last check pokes the loop: while the store stays down,
// the loop retries on its own (every 200 ms), so that an outage under load
// does not cost a round of history calls per failed message (the fault
// runs counted 140 a second).
func (h *history) storeError() {
	if !h.o.Shared || h.j == nil {
		return
	}
	h.mu.Lock()
	first := !h.suspect
	h.suspect = true
	h.mu.Unlock()
	if first {
		h.poke()
	}
}

func (h *history) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *history) loop() {
	defer close(h.done)
	t := time.NewTicker(h.o.RefreshEvery)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		case <-h.kick:
		case <-retry.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
		err := h.tick(ctx)
		cancel()
		if err != nil {
			// The store is down: try again soon (the suspicion, the gaps).
			retry.Reset(200 * time.Millisecond)
		}
	}
}

func (h *history) tick(ctx context.Context) error {
	now := h.o.Now()
	h.mu.Lock()
	started, suspect, beatDue := h.started, h.suspect, now.Sub(h.lastBeat) >= h.o.HeartbeatEvery
	h.mu.Unlock()
	if !started {
		return h.start(ctx)
	}
	if err := h.checkEpoch(ctx, now); err != nil {
		return err
	}
	if err := h.sync(ctx, now); err != nil {
		return err
	}
	if beatDue || suspect {
		if err := h.j.SaveBeat(ctx, h.o.Instance, Beat{Time: now, Pending: h.r.oldestPending()}); err != nil {
			return err
		}
		h.mu.Lock()
		h.lastBeat = now
		h.mu.Unlock()
	}
	return nil
}

// close saves what is left and the clean-stop heartbeat. Records spooled
// for the next start are its Pending: if the spool is lost, they are a gap.
func (h *history) close() {
	if h.j == nil {
		return
	}
	close(h.stop)
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	now := h.o.Now()
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	if !started {
		return // the last run's heartbeat is still there: it covers this one
	}
	if err := h.sync(ctx, now); err != nil {
		h.log.Warn("store history: gaps not saved at stop", "err", err)
		return // no clean-stop mark: the next start counts from the last heartbeat
	}
	if err := h.j.SaveBeat(ctx, h.o.Instance, Beat{Time: now, Stopped: true, Pending: h.r.oldestPending()}); err != nil {
		h.log.Warn("store history: clean stop not saved", "err", err)
	}
}

func (h *history) unsavedN() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.unsaved)
}

// Gaps returns the store's gaps as of now: the store's list, those found
// here and not yet saved (including the span of records given up), and a
// provisional [now − MaxTTL, now] while a shared store's epoch is
// unverified after an error; merged, ending within MaxTTL of now, at most
// MaxGaps.
func (r *Recorder) Gaps(now time.Time) []Window {
	var ws []Window
	// h.mu, then r.mu, held together (the order takeLost takes them): a
	// span given up moves from r.lost to the history's gaps at once.
	h := r.hist
	if h != nil {
		h.mu.Lock()
		ws = append(ws, h.saved...)
		ws = append(ws, h.unsaved...)
		if h.suspect || (h.j != nil && !h.started && h.o.Shared) {
			ws = append(ws, Window{From: now.Add(-MaxTTL), To: now})
		}
	}
	r.mu.Lock()
	if r.lost.n > 0 {
		ws = append(ws, Window{From: r.lost.from, To: r.lost.to})
	}
	r.mu.Unlock()
	if h != nil {
		h.mu.Unlock()
	}
	if len(ws) == 0 {
		return nil
	}
	return MergeWindows(ws, now, MaxGaps)
}

// oldestPending is the signing time of the oldest record not written yet.
func (r *Recorder) oldestPending() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t time.Time
	for _, pr := range r.queue[r.head:] {
		if t.IsZero() || pr.p.Time.Before(t) {
			t = pr.p.Time
		}
	}
	return t
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
	// Lost gaps first, then the unsigned ones; each by time. Only gaps of
	// one kind merge (a lost gap may cover an unsigned one: both kept).
	slices.SortFunc(out, func(a, b Window) int {
		if a.Unsigned != b.Unsigned {
			if a.Unsigned {
				return 1
			}
			return -1
		}
		return a.From.Compare(b.From)
	})
	m := out[:0]
	for _, w := range out {
		if n := len(m); n > 0 && m[n-1].Unsigned == w.Unsigned && !w.From.After(m[n-1].To.Add(time.Second)) {
			if w.To.After(m[n-1].To) {
				m[n-1].To = w.To
			}
			continue
		}
		m = append(m, w)
	}
	for max > 0 && len(m) > max {
		// Merge the two closest (a lost gap absorbs an unsigned one:
		// that only widens what may be missing).
		best := 0
		for i := 1; i < len(m)-1; i++ {
			if m[i+1].From.Sub(m[i].To) < m[best+1].From.Sub(m[best].To) {
				best = i
			}
		}
		if m[best+1].To.After(m[best].To) {
			m[best].To = m[best+1].To
		}
		if m[best+1].From.Before(m[best].From) {
			m[best].From = m[best+1].From
		}
		m[best].Unsigned = m[best].Unsigned && m[best+1].Unsigned
		m = slices.Delete(m, best+1, best+2)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
