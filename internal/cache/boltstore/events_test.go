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
// the oldest days go first.
func TestEventsRetentionAndBound(t *testing.T) {
	cfg := storetest.Base()
	cfg.Events.Retention = 48 * time.Hour
	cfg.Events.Max = 100
	s := open(t, t.TempDir(), cfg)
	ctx := context.Background()
	now := time.Now()
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
	got, err := s.Events(ctx, events.Query{Limit: events.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	// At most Max (100) kept: the two newest days (80 events) plus some of
	// the third, all within the retention for the reader.
	if len(got) > 100 || len(got) < 40 {
		t.Fatalf("%d events kept", len(got))
	}
	for _, e := range got {
		if now.Sub(e.Time) > 48*time.Hour {
			t.Fatalf("event older than the retention returned: %v", e.Time)
		}
	}
	if n, err := s.PruneEvents(now); err != nil || n == 0 {
		t.Fatalf("prune: %d %v", n, err)
	}
	sup, err := s.Suppressions(ctx, events.SuppressionQuery{})
	if err != nil || len(sup) != 1 || sup[0].HardCount > 120 {
		t.Fatalf("suppressions after pruning: %+v %v", sup, err)
	}
}
