package stats

import (
	"context"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

// The figures the alerts read: genuine bounces per sender, unknown
// recipients and their domains, refusals of our mail per sending host
// and list, backscatter's networks and reporters per domain, and the first
// use of each key.
func TestAlertSets(t *testing.T) {
	a, _, st, c := setup(t)
	ctx := context.Background()
	ev := func(sender, rdom, reason string, hard bool, host string, lists ...string) events.Event {
		return events.Event{Kind: events.KindBounce, Sender: sender, Domain: "example.com", RecipientDomain: rdom, Reason: reason,
			Hard: hard, SendingHost: host, Blocklists: lists}
	}
	a.Bounced(ev("alice@example.com", "one.example", "userunknown", true, ""))
	a.Bounced(ev("alice@example.com", "two.example", "hostunknown", true, ""))
	a.Bounced(ev("alice@example.com", "two.example", "userunknown", false, "")) // soft: not unknown
	a.Bounced(ev("bob@example.com", "three.example", "spamdetected", false, "192.0.2.1"))
	a.Bounced(ev("bob@example.com", "four.example", "blocked", false, "192.0.2.1", "zen.spamhaus.org"))
	a.Bounced(ev("bob@example.com", "five.example", "virusdetected", false, "mx-out.example.com"))
	a.Bounced(events.Event{Kind: events.KindDelay, Sender: "bob@example.com", Reason: "expired"})
	a.Bounced(events.Event{Kind: events.KindAutoreply, Sender: "bob@example.com", Reason: "vacation"})
	a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
		Recipient: "carol@example.com", Client: "203.0.113.5", ReportingMTA: "mx.spam.example"})
	a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "elsewhere.example",
		Recipient: "x@elsewhere.example", Client: "203.0.113.5", ReportingMTA: "mx.spam.example"})
	a.Signed("example.com", 3)
	first := c.now().Unix()
	c.add(time.Hour)
	a.Signed("example.com", 3)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now := c.now()
	for _, w := range []struct {
		width int64
		q     cache.StatsQuery
	}{{0, cache.StatsQuery{Width: cache.StatsFine, From: now.Add(-3 * time.Hour), To: now.Add(cache.StatsFine)}},
		{1, cache.StatsQuery{Width: cache.StatsDaily, From: now.Add(-48 * time.Hour), To: now.Add(cache.StatsDaily)}}} {
		q := w.q
		q.Sets = AlertSets
		bs, err := st.ReadStats(ctx, q)
		if err != nil || len(bs) == 0 {
			t.Fatalf("%v %v", bs, err)
		}
		sum := map[string]map[string]int64{}
		for _, b := range bs {
			for set, ms := range b.Sets {
				if sum[set] == nil {
					sum[set] = map[string]int64{}
				}
				for m, n := range ms {
					sum[set][m] += n
				}
			}
		}
		check := func(set, member string, want int64) {
			t.Helper()
			if got := sum[set][member]; got != want {
				t.Errorf("width %d: %s[%q] = %d, want %d (%v)", w.width, set, member, got, want, sum[set])
			}
		}
		check(SetSenderBounces, "alice@example.com", 3)
		check(SetSenderBounces, "bob@example.com", 3)
		check(SetSenderUnknown, "alice@example.com", 2)
		check(SetSenderUnknownDomains, "alice@example.com|one.example", 1)
		check(SetSenderUnknownDomains, "alice@example.com|two.example", 1)
		check(SetRefused, "spam|192.0.2.1", 1)
		check(SetRefused, "blocklist|192.0.2.1", 1)
		check(SetRefused, "malware|mx-out.example.com", 1)
		check(SetRefusedDomains, "blocklist|192.0.2.1|four.example", 1)
		check(SetRefusedLists, "192.0.2.1|zen.spamhaus.org", 1)
		check(SetDomainNetworks, "example.com|203.0.113.0/24", 1)
		check(SetDomainReporters, "example.com|mx.spam.example", 1)
		if len(sum[SetDomainNetworks]) != 1 || len(sum[SetSenderUnknown]) != 1 || len(sum[SetRefused]) != 3 {
			t.Errorf("width %d: other domains, soft bounces, delays and auto-replies counted: %v", w.width, sum)
		}
	}
	l, err := st.StatsLatest(ctx)
	if err != nil || l[KeyFirstPrefix+"3"] != first || l[KeyFirstSince] != first || l["key:3"] != c.now().Unix() {
		t.Fatalf("latest %v %v", l, err)
	}
}
