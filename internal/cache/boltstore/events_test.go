package boltstore

import (
	"context"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/events/eventstest"
)

func TestEvents(t *testing.T) {
	eventstest.Run(t, open(t, t.TempDir(), storetest.Base()), time.Now())
}

// Events older than the retention are pruned with their days; beyond Max,
// the oldest days go first. A fixed clock at noon UTC keeps each day's
// events in one day bucket, so every count is exact.
func TestEventsRetentionAndBound(t *testing.T) {
	cfg := storetest.Base()
	cfg.Events.Retention = 48 * time.Hour
	cfg.Events.Max = 100
	s := open(t, t.TempDir(), cfg)
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	// 40 hard bounces on each of 6 days, 2026-11-10 to 2026-11-15.
	var es []events.Event
	for day := 5; day >= 0; day-- {
		for i := 0; i < 40; i++ {
			at := now.Add(-time.Duration(day)*24*time.Hour - time.Duration(i)*time.Second)
			es = append(es, events.Event{ID: events.NewID(at), Time: at, Kind: events.KindBounce, Sender: "a@example.com",
				Recipient: "x@remote.example", Hard: true, Reason: "userunknown"})
		}
	}
	if err := s.AppendEvents(ctx, es); err != nil {
		t.Fatal(err)
	}
	read := func() []events.Event {
		t.Helper()
		got, err := s.Events(ctx, events.Query{Limit: events.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	hard := func() int {
		t.Helper()
		sup, err := s.Suppressions(ctx, events.SuppressionQuery{})
		if err != nil || len(sup) != 1 {
			t.Fatalf("suppressions: %+v %v", sup, err)
		}
		return sup[0].HardCount
	}
	// Beyond Max (100), the oldest days went whole: 240 -> 200 -> 160 ->
	// 120 -> 80, the two newest days, newest first.
	got := read()
	if len(got) != 80 || !got[0].Time.Equal(now) || !got[79].Time.Equal(now.Add(-24*time.Hour-39*time.Second)) {
		t.Fatalf("%d events kept, newest %v, oldest %v", len(got), got[0].Time, got[len(got)-1].Time)
	}
	// The hard-bounce counts are kept per day apart from the events: the
	// days from the retention's cut (2026-11-13 12:00) on, 3 x 40.
	if n := hard(); n != 120 {
		t.Fatalf("%d hard bounces counted within the retention, want 120", n)
	}
	// Pruning drops the days before the cut's: the counts of 11-10, 11-11,
	// 11-12 (their events went with the bound).
	if n, err := s.PruneEvents(now); err != nil || n != 3 {
		t.Fatalf("prune: %d buckets dropped, want 3 (%v)", n, err)
	}
	if n := hard(); n != 120 {
		t.Fatalf("%d hard bounces after pruning, want 120", n)
	}
	// 25 hours on, the events of 11-14 are past the retention (49 h old).
	now = now.Add(25 * time.Hour)
	if got := read(); len(got) != 40 || !got[39].Time.Equal(now.Add(-25*time.Hour-39*time.Second)) {
		t.Fatalf("a day later: %d events", len(got))
	}
	if n := hard(); n != 80 {
		t.Fatalf("a day later: %d hard bounces, want 80 (11-14 and 11-15)", n)
	}
	if n, err := s.PruneEvents(now); err != nil || n != 1 {
		t.Fatalf("a day later, prune: %d buckets dropped, want 1 (%v)", n, err)
	}
}
