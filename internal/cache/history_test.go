package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// clock is a settable clock for the history.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func histOpts(c *clock, instance string, shared bool) cache.RecorderOptions {
	return cache.RecorderOptions{MaxDelay: time.Millisecond, FlushTimeout: 50 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
		HistoryOptions: cache.HistoryOptions{Instance: instance, Shared: shared, Now: c.Now, RefreshEvery: 10 * time.Millisecond, HeartbeatEvery: 10 * time.Millisecond}}
}

// waitGaps polls r's gaps at now until cond holds.
func waitGaps(t *testing.T, r *cache.Recorder, now time.Time, cond func([]cache.Window) bool) []cache.Window {
	t.Helper()
	var g []cache.Window
	waitUntil(t, 3*time.Second, func() bool { g = r.Gaps(now); return cond(g) }, func() string { return fmt.Sprintf("gaps %v", g) })
	return g
}

// waitUntil polls cond until it holds; past timeout the test fails with
// what() (background work is waited for, never slept on).
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
	}
}

func covers(ws []cache.Window, w cache.Window) bool {
	for _, g := range ws {
		if !g.From.After(w.From) && !g.To.Before(w.To) {
			return true
		}
	}
	return false
}

// A new store knows nothing of what was sent before: one gap [now −
// MaxTTL, now]. The same store opened again is not new.
func TestHistoryNewStore(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	st := &flaky{MemoryStore: cache.NewMemoryStore(storetest.Base())}
	r := cache.NewRecorder(st, histOpts(c, "a", false))
	g := r.Gaps(c.Now())
	if len(g) != 1 || !g[0].From.Equal(c.Now().Add(-cache.MaxTTL)) || !g[0].To.Equal(c.Now()) {
		t.Fatalf("new store: gaps %v", g)
	}
	f, err := r.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"<x@y>"}, Now: c.Now()})
	if err != nil || len(f.Gaps) != 1 {
		t.Fatalf("facts: %+v %v", f, err)
	}
	r.Close()
	// Restarted an hour later: the store is known (no new epoch gap); the
	// downtime is a gap of its own kind (mail may have left unsigned, no
	// record was lost), beside the first.
	first := g[0]
	stopped := c.Now()
	c.Set(c.Now().Add(time.Hour))
	r2 := cache.NewRecorder(st, histOpts(c, "a", false))
	defer r2.Close()
	g = r2.Gaps(c.Now())
	if len(g) != 2 || g[0] != first || g[1] != (cache.Window{From: stopped, To: c.Now(), Unsigned: true}) {
		t.Fatalf("after a clean stop of an hour: gaps %v", g)
	}
	// They age out after MaxTTL.
	if g := r2.Gaps(c.Now().Add(cache.MaxTTL + 2*time.Hour)); len(g) != 0 {
		t.Fatalf("gaps older than MaxTTL: %v", g)
	}
}

// After a crash the gap runs from the last heartbeat (or the oldest
// record that was still waiting, if older) to the restart.
func TestHistoryUncleanStop(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := &clock{t: now}
	st := newFlaky()
	ctx := context.Background()
	st.SaveBeat(ctx, "a", cache.Beat{Time: now.Add(-10 * time.Minute), Pending: now.Add(-15 * time.Minute)})
	st.SaveBeat(ctx, "b", cache.Beat{Time: now.Add(-5 * time.Minute), Stopped: true})
	r := cache.NewRecorder(st, histOpts(c, "a", false))
	defer r.Close()
	want := cache.Window{From: now.Add(-15 * time.Minute), To: now}
	if g := r.Gaps(now); len(g) != 1 || g[0] != want {
		t.Fatalf("after a crash: gaps %v, want %v", g, want)
	}
	// Saved in the store for the fleet: another process sees it.
	r2 := cache.NewRecorder(st, histOpts(c, "b", false))
	defer r2.Close()
	waitGaps(t, r2, now, func(g []cache.Window) bool { return covers(g, want) })
	// b stopped cleanly 5 minutes ago: its downtime is a gap too.
	waitGaps(t, r, now, func(g []cache.Window) bool { return covers(g, cache.Window{From: now.Add(-5 * time.Minute), To: now}) })
}

// A shared store that lost its data (Redis restarted empty) is noticed by
// its epoch: a gap over everything before. Between a store error and the
// next epoch check, answers carry a provisional gap.
func TestHistoryEpochLost(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := &clock{t: now}
	st := newFlaky()
	r := cache.NewRecorder(st, histOpts(c, "a", true))
	defer r.Close()
	if g := r.Gaps(now); len(g) != 0 {
		t.Fatalf("known store: gaps %v", g)
	}
	c.Set(now.Add(time.Hour))
	st.Forget()
	later := now.Add(time.Hour)
	waitGaps(t, r, later, func(g []cache.Window) bool {
		return covers(g, cache.Window{From: later.Add(-cache.MaxTTL), To: later})
	})
	// The gap is in the store again (the old list went with the data):
	// saved by the history's next sync, which may still be under way.
	var g []cache.Window
	var err error
	waitUntil(t, 3*time.Second, func() bool {
		g, err = st.Gaps(context.Background(), later)
		return err == nil && covers(g, cache.Window{From: later.Add(-cache.MaxTTL), To: later})
	}, func() string { return fmt.Sprintf("store's gaps %v %v", g, err) })

	// A store error: provisional gap until the epoch is checked again.
	st2 := newFlaky()
	r2 := cache.NewRecorder(st2, histOpts(c, "b", true))
	defer r2.Close()
	st2.failReads.Store(true)
	if _, err := r2.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"<x@y>"}, Now: later}); err == nil {
		t.Fatal("no error")
	}
	st2.failReads.Store(false)
	waitGaps(t, r2, later, func(g []cache.Window) bool { return len(g) == 0 })
}

// Records given up, and an outage of a shared store, become gaps saved
// for the fleet.
func TestHistoryOutageGaps(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	c := &clock{t: now}
	st := newFlaky()
	o := histOpts(c, "a", true)
	o.MaxPending = 10
	r := cache.NewRecorder(st, o)
	defer r.Close()
	st.failWrites.Store(true)
	for i := 0; i < 30; i++ {
		r.Record(msg(i, now.Add(time.Duration(i)*time.Second)))
	}
	// At least one batch must fail (the outage), however slow the machine.
	waitUntil(t, 3*time.Second, func() bool { return r.Stats().FailedBatches > 0 }, func() string { return "no batch write failed" })
	st.failWrites.Store(false)
	flush(t, r)
	// Records 10..29 were given up; 0..9 waited (an outage: invisible to
	// the fleet meanwhile).
	want := cache.Window{From: now, To: now.Add(30 * time.Second)}
	r2 := cache.NewRecorder(st, histOpts(c, "b", true))
	defer r2.Close()
	waitGaps(t, r2, now, func(g []cache.Window) bool { return covers(g, want) })
}

// With an epoch file, a store this data directory first sees is new, not
// a loss; the same store with its data gone is a loss.
func TestHistoryEpochFile(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := &clock{t: now}
	st := newFlaky()
	o := histOpts(c, "a", true)
	o.EpochFile = t.TempDir() + "/store-epoch"
	r := cache.NewRecorder(st, o)
	if g := r.Gaps(now); len(g) != 0 {
		t.Fatalf("new store: gaps %v", g)
	}
	r.Close()
	st.Forget()
	r = cache.NewRecorder(st, o)
	defer r.Close()
	if g := r.Gaps(now); !covers(g, cache.Window{From: now.Add(-cache.MaxTTL), To: now}) {
		t.Fatalf("store that lost its data: gaps %v", g)
	}
}

// journalDown is a flaky store whose history calls fail too (a Redis that
// does not answer), counting the epoch checks.
type journalDown struct {
	*flaky
	down   atomic.Bool
	epochs atomic.Int64
}

func (s *journalDown) Epoch(ctx context.Context, newID string) (string, bool, error) {
	s.epochs.Add(1)
	if s.down.Load() {
		return "", false, errDown
	}
	return s.flaky.Epoch(ctx, newID)
}

// While a shared store is down, failing messages do not each set off a
// round of history calls: the history retries on its own, a few times a
// second, and checks the epoch again once the store answers.
func TestHistoryOutageDoesNotSpin(t *testing.T) {
	now := time.Now()
	c := &clock{t: now}
	st := &journalDown{flaky: newFlaky()}
	o := histOpts(c, "a", true)
	o.RefreshEvery = time.Hour
	r := cache.NewRecorder(st, o)
	defer r.Close()
	st.down.Store(true)
	st.failReads.Store(true)
	before := st.epochs.Load()
	start := time.Now()
	for i := 0; i < 400; i++ {
		if _, err := r.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"<x@y>"}, Now: now}); err == nil {
			t.Fatal("no error while the store is down")
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	// One check at the first error, then one per 200 ms retry (and some
	// slack for a slow machine); not one per failed message.
	if n, most := st.epochs.Load()-before, int64(elapsed/(200*time.Millisecond))+3; n > most {
		t.Errorf("%d epoch checks in %v of outage with 400 failed messages, want at most %d", n, elapsed, most)
	}
	// Provisional gap while the epoch is unverified; gone once it is.
	if g := r.Gaps(now); !covers(g, cache.Window{From: now.Add(-cache.MaxTTL), To: now}) {
		t.Fatalf("during the outage: gaps %v", g)
	}
	st.down.Store(false)
	st.failReads.Store(false)
	waitGaps(t, r, now, func(g []cache.Window) bool { return len(g) == 0 })
}
