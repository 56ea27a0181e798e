// Package eventstest is the conformance suite every events.Store passes:
// the in-memory one, the embedded store and Redis.
package eventstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/events"
)

// Run checks a store. now is the store's clock (events are written around
// it); the store must be empty.
func Run(t *testing.T, st events.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	ev := func(i int, sender, rcpt, reason string, hard bool, kind events.Kind, at time.Time) events.Event {
		return events.Event{ID: events.NewID(at) + fmt.Sprint(i), Time: at, Kind: kind, Sender: sender, Domain: "example.com",
			Recipient: rcpt, Reason: reason, Hard: hard, Action: "failed", Status: "5.1.1", Evidence: "valid-tag"}
	}
	var batch []events.Event
	for i := 0; i < 30; i++ {
		at := now.Add(-time.Duration(30-i) * time.Minute)
		switch {
		case i%3 == 0:
			batch = append(batch, ev(i, "alice@example.com", "dead@remote.example", "userunknown", true, events.KindBounce, at))
		case i%3 == 1:
			batch = append(batch, ev(i, "bob@example.com", fmt.Sprintf("full%d@remote.example", i), "mailboxfull", false, events.KindBounce, at))
		default:
			batch = append(batch, ev(i, "bob@example.com", "away@remote.example", "vacation", false, events.KindAutoreply, at))
		}
	}
	old := ev(99, "carol@example.com", "old@remote.example", "userunknown", true, events.KindBounce, now.Add(-2*time.Hour))
	if err := st.AppendEvents(ctx, append([]events.Event{old}, batch...)); err != nil {
		t.Fatalf("append: %v", err)
	}
	all, err := st.Events(ctx, events.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 31 {
		t.Fatalf("%d events, want 31", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	hard := true
	for _, c := range []struct {
		name string
		q    events.Query
		want int
	}{
		{"sender", events.Query{Sender: "alice@example.com"}, 10},
		{"recipient", events.Query{Recipient: "away@remote.example"}, 10},
		{"reason", events.Query{Reason: "mailboxfull"}, 10},
		{"hard", events.Query{Hard: &hard}, 11},
		{"kind", events.Query{Kind: events.KindAutoreply}, 10},
		{"since", events.Query{Since: now.Add(-90 * time.Minute)}, 30},
		{"until", events.Query{Until: now.Add(-15 * time.Minute)}, 16},
		{"limit", events.Query{Limit: 5}, 5},
	} {
		got, err := st.Events(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != c.want {
			t.Errorf("%s: %d events, want %d", c.name, len(got), c.want)
		}
		for _, e := range got {
			if !c.q.Match(e) {
				t.Errorf("%s: %+v does not match", c.name, e)
			}
		}
	}
	sup, err := st.Suppressions(ctx, events.SuppressionQuery{MinHard: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(sup) != 1 || sup[0].Recipient != "dead@remote.example" || sup[0].HardCount != 10 || sup[0].LastReason != "userunknown" ||
		len(sup[0].Senders) != 1 || sup[0].Senders[0] != "alice@example.com" {
		t.Fatalf("suppressions %+v", sup)
	}
	sup, err = st.Suppressions(ctx, events.SuppressionQuery{MinHard: 1})
	if err != nil || len(sup) != 2 {
		t.Fatalf("suppressions min 1: %+v %v", sup, err)
	}
}
