// Package storetest is a conformance suite every cache.Store implementation
// runs, so that the memory, embedded and Redis stores answer alike.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// Factory opens a fresh, empty store with cfg (already WithDefaults).
type Factory func(t *testing.T, cfg cache.Config) cache.Store

// Base is the configuration the suite uses: small flood limits.
func Base() cache.Config {
	c := cache.Config{ReplaySlack: 1, Secret: []byte("test-secret")}
	c.Flood = cache.FloodConfig{RecipientLimit: 3, ClientLimit: 5, Window: time.Minute, StrictFor: 10 * time.Minute}
	return c.WithDefaults()
}

// Relaxed widens cfg's time budgets (250 ms in production) for functional
// tests against Redis, which must not fail on a loaded machine with the
// race detector: a first call dials, handshakes and loads scripts. Tests
// of outages keep the production budgets.
func Relaxed(cfg cache.Config) cache.Config {
	cfg.Timeout = 3 * time.Second
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout, cfg.Redis.PoolTimeout = time.Second, 2*time.Second, 2*time.Second, time.Second
	return cfg
}

// T0 is the suite's time: now, in the middle of a one-minute flood window.
// It follows the real clock because Redis expires the day hashes at
// absolute times (EXPIREAT): records dated days ago would be gone at once.
var T0 = time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// Run runs the suite. Each subtest gets its own store; uniq makes keys
// unique so that stores sharing a server do not see each other's data.
func Run(t *testing.T, open Factory) {
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	id := func(s string) string { return "<" + s + "." + uniq + "@Example.ORG>" }
	tag := func(s string) string { return "prvs=0123abcdef=" + s + "." + uniq + "@example.org" }

	t.Run("RecordAndFind", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		err := s.RecordSent(c, cache.SentMessage{MessageID: id("a"), Tag: tag("alice"), Sender: "alice@example.org",
			Recipients: []string{"x@a.test", "y@b.test"}, Time: T0, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// Lookup is by normalised id: no brackets, domain case ignored.
		// Recorded as "<a.UNIQ@Example.ORG>", looked up without brackets,
		// with spaces and the domain in another case.
		alt := " a." + uniq + "@example.org "
		f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{"<nope@x>", alt}, Now: T0.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if f.Sent == nil {
			t.Fatalf("record not found: %+v", f)
		}
		if f.Sent.RecipientCount != 2 || !f.Sent.Time.Equal(T0) {
			t.Fatalf("record = %+v", *f.Sent)
		}
		if f.SenderMatch {
			t.Fatalf("sender match without a recipient in the query")
		}
		if f.MatchedMessageID != alt {
			t.Fatalf("matched = %q", f.MatchedMessageID)
		}
		// The local part is case-sensitive.
		f, err = s.Inbound(c, cache.InboundQuery{MessageIDs: []string{"<A." + uniq + "@example.org>"}, Now: T0})
		if err != nil || f.Sent != nil {
			t.Fatalf("case-changed local part matched: %+v %v", f, err)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		s := open(t, Base())
		f, err := s.Inbound(ctx(t), cache.InboundQuery{MessageIDs: []string{id("none")}, Tag: tag("nobody"), Now: T0})
		if err != nil {
			t.Fatal(err)
		}
		if f.Sent != nil || f.TagRecipients != 0 || f.Replayed || f.TagBounces != 0 {
			t.Fatalf("facts for unknown = %+v", f)
		}
	})

	t.Run("ReplayLimit", func(t *testing.T) {
		s := open(t, Base()) // slack 1
		c := ctx(t)
		tg := tag("bob")
		for i, n := range []int{2, 1} { // 3 recipients over two messages with one tag
			rc := make([]string, n)
			for j := range rc {
				rc[j] = fmt.Sprintf("r%d-%d@x.test", i, j)
			}
			if err := s.RecordSent(c, cache.SentMessage{MessageID: id(fmt.Sprintf("bob%d", i)), Tag: tg, Sender: "bob@example.org", Recipients: rc, Time: T0, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		// Not counted: a look does not spend budget.
		f, err := s.Inbound(c, cache.InboundQuery{Tag: strings.ToUpper(tg), Now: T0})
		if err != nil || f.TagRecipients != 3 || f.TagBounces != 0 || f.Replayed {
			t.Fatalf("uncounted look = %+v, %v", f, err)
		}
		for i := 1; i <= 5; i++ {
			f, err := s.Inbound(c, cache.InboundQuery{Tag: tg, Count: true, Now: T0})
			if err != nil {
				t.Fatal(err)
			}
			if f.TagRecipients != 3 || f.TagBounces != int64(i) {
				t.Fatalf("bounce %d: %+v", i, f)
			}
			if want := i > 4; f.Replayed != want { // 3 recipients + slack 1
				t.Fatalf("bounce %d: replayed = %v, want %v", i, f.Replayed, want)
			}
		}
	})

	t.Run("ExpiredRecordIgnored", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		if err := s.RecordSent(c, cache.SentMessage{MessageID: id("old"), Sender: "o@example.org", Recipients: []string{"a@b.test"}, Time: T0.Add(-3 * time.Hour), TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{id("old")}, Now: T0})
		if err != nil || f.Sent != nil {
			t.Fatalf("expired record found: %+v %v", f, err)
		}
	})

	t.Run("RecipientFlood", func(t *testing.T) {
		s := open(t, Base()) // recipient limit 3 per minute, strict 10 min
		c := ctx(t)
		rcpt := "victim." + uniq + "@example.org"
		entered := 0
		for i := 1; i <= 6; i++ {
			f, err := s.Inbound(c, cache.InboundQuery{Recipient: rcpt, Count: true, Now: T0.Add(time.Duration(i) * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			if want := i > 3; f.RecipientStrict != want {
				t.Fatalf("message %d: strict = %v, want %v (%+v)", i, f.RecipientStrict, want, f)
			}
			if f.ClientStrict {
				t.Fatalf("client strict without client")
			}
			if f.FloodEntered {
				entered++
				if i != 4 {
					t.Fatalf("entered on message %d", i)
				}
			}
		}
		if entered != 1 {
			t.Fatalf("entered %d times", entered)
		}
		// Another recipient is unaffected; a look (no Count) sees the state.
		f, err := s.Inbound(c, cache.InboundQuery{Recipient: "other." + uniq + "@example.org", Count: true, Now: T0.Add(7 * time.Second)})
		if err != nil || f.RecipientStrict {
			t.Fatalf("other recipient: %+v %v", f, err)
		}
		f, err = s.Inbound(c, cache.InboundQuery{Recipient: rcpt, Now: T0.Add(9 * time.Minute)})
		if err != nil || !f.RecipientStrict || f.FloodEntered {
			t.Fatalf("still strict after 9m: %+v %v", f, err)
		}
		// After StrictFor (10m, plus the windows moved on) it is left, once.
		f, err = s.Inbound(c, cache.InboundQuery{Recipient: rcpt, Count: true, Now: T0.Add(20 * time.Minute)})
		if err != nil || f.RecipientStrict || !f.FloodLeft {
			t.Fatalf("after strict_for: %+v %v", f, err)
		}
		f, err = s.Inbound(c, cache.InboundQuery{Recipient: rcpt, Count: true, Now: T0.Add(20*time.Minute + time.Second)})
		if err != nil || f.RecipientStrict || f.FloodLeft {
			t.Fatalf("left reported twice: %+v %v", f, err)
		}
	})

	t.Run("ClientFlood", func(t *testing.T) {
		s := open(t, Base()) // client limit 5
		c := ctx(t)
		ip := fmt.Sprintf("192.0.2.%d", time.Now().UnixNano()%250+1) + "-" + uniq
		for i := 1; i <= 6; i++ {
			f, err := s.Inbound(c, cache.InboundQuery{Recipient: fmt.Sprintf("u%d.%s@example.org", i, uniq), ClientIP: ip, Count: true, Now: T0})
			if err != nil {
				t.Fatal(err)
			}
			if want := i > 5; f.ClientStrict != want || f.FloodEntered != want || f.RecipientStrict {
				t.Fatalf("message %d: %+v", i, f)
			}
		}
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		s := open(t, Base()) // limit 3 per minute
		c := ctx(t)
		rcpt := "slide." + uniq + "@example.org"
		w0 := T0.Truncate(time.Minute)
		hit := func(at time.Time) cache.InboundFacts {
			f, err := s.Inbound(c, cache.InboundQuery{Recipient: rcpt, Count: true, Now: at})
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		for i := 0; i < 3; i++ { // 3 at the end of window 0: at the limit
			if f := hit(w0.Add(50 * time.Second)); f.RecipientStrict {
				t.Fatal("strict at the limit")
			}
		}
		// 1 s into the next window the previous three still weigh ~2.95:
		// one more is over the limit.
		if f := hit(w0.Add(61 * time.Second)); !f.RecipientStrict || !f.FloodEntered {
			t.Fatalf("sliding window forgot the previous window: %+v", f)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		tg := tag("conc")
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := s.RecordSent(c, cache.SentMessage{MessageID: id(fmt.Sprintf("c%d", i)), Tag: tg, Sender: "c@example.org", Recipients: []string{"a@x.test"}, Time: T0, TTL: time.Hour})
				if err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Inbound(c, cache.InboundQuery{Tag: tg, Count: true, Now: T0}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		f, err := s.Inbound(c, cache.InboundQuery{Tag: tg, MessageIDs: []string{id("c7")}, Now: T0})
		if err != nil || f.Sent == nil || f.TagRecipients != 16 || f.TagBounces != 20 || !f.Replayed {
			t.Fatalf("after concurrent use: %+v %v", f, err)
		}
	})

	t.Run("SenderMatch", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		for i, sender := range []string{"Alice@Example.ORG", "bob+news@example.org", "carol.d-x@example.org"} {
			if err := s.RecordSent(c, cache.SentMessage{MessageID: id(fmt.Sprintf("sm%d", i)), Tag: tag(fmt.Sprintf("sm%d", i)), Sender: sender,
				Recipients: []string{"x@a.test"}, Time: T0, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			i     int
			rcpt  string
			delim byte
			want  bool
		}{
			{0, "alice@example.org", 0, true},
			{0, "ALICE@example.org", 0, true},
			{0, "dave@example.org", 0, false},
			{0, "alice+x@example.org", 0, false}, // extension, no delimiter
			{0, "alice+x@example.org", '+', true},
			{0, "alice@example.net", '+', false},
			{0, "", 0, false},
			{1, "bob+news@example.org", 0, true},
			{1, "bob@example.org", 0, false},
			{1, "bob@example.org", '+', true},
			{1, "bob+other@example.org", '+', true},
			{1, "bob@example.org", '-', false},
			{1, "bobby@example.org", '+', false},
			{2, "carol.d@example.org", '-', true},
			{2, "carol@example.org", '.', true},
			{2, "carol@example.org", '-', false},
			{2, "carol.d-y@example.org", '-', true},
		} {
			f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{id(fmt.Sprintf("sm%d", tc.i))}, Recipient: tc.rcpt, Delimiter: tc.delim, Now: T0})
			if err != nil || f.Sent == nil {
				t.Fatalf("record %d: %+v %v", tc.i, f, err)
			}
			if f.SenderMatch != tc.want {
				t.Errorf("record %d, recipient %q, delimiter %q: SenderMatch = %v, want %v", tc.i, tc.rcpt, tc.delim, f.SenderMatch, tc.want)
			}
		}
	})

	// A record lives for its own TTL (up to MaxTTL), not for the store's
	// retention; so do the counters of its tag.
	t.Run("OwnTTL", func(t *testing.T) {
		cfg := Base()
		cfg.Retention = 2 * 24 * time.Hour
		s := open(t, cfg)
		c := ctx(t)
		tg := tag("long")
		for i, ttl := range []time.Duration{33 * 24 * time.Hour, 5 * 24 * time.Hour, 60 * 24 * time.Hour} {
			if err := s.RecordSent(c, cache.SentMessage{MessageID: id(fmt.Sprintf("long%d", i)), Tag: tg, Sender: "l@example.org",
				Recipients: []string{"x@a.test", "y@a.test"}, Time: T0, TTL: ttl}); err != nil {
				t.Fatal(err)
			}
		}
		look := func(at time.Duration, i int) cache.InboundFacts {
			f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{id(fmt.Sprintf("long%d", i))}, Tag: tg, Now: T0.Add(at)})
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		if f := look(4*24*time.Hour, 1); f.Sent == nil || f.TagRecipients != 6 {
			t.Fatalf("day 4: %+v", f)
		}
		if f := look(6*24*time.Hour, 1); f.Sent != nil {
			t.Fatalf("5-day record alive on day 6: %+v", f)
		}
		if f := look(32*24*time.Hour, 0); f.Sent == nil || f.TagRecipients < 4 {
			t.Fatalf("33-day record (retention 2 days) on day 32: %+v", f)
		}
		// A TTL beyond MaxTTL is cut to it.
		if f := look(cache.MaxTTL+time.Hour, 2); f.Sent != nil {
			t.Fatalf("record outlived MaxTTL: %+v", f)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		const n = 150
		var ms []cache.SentMessage
		for i := 0; i < n; i++ {
			ms = append(ms, cache.SentMessage{MessageID: id(fmt.Sprintf("batch%d", i)), Tag: tag(fmt.Sprintf("batch%d", i%7)), Sender: "b@example.org",
				Recipients: make([]string, 1+i%3), Time: T0, TTL: time.Hour})
		}
		ms = append(ms, cache.SentMessage{MessageID: "<>", Sender: "b@example.org", Time: T0}) // no id: skipped, reported
		if err := s.RecordSentBatch(c, ms); err == nil || errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("a message without Message-ID: err = %v", err)
		}
		for _, i := range []int{0, n / 2, n - 1} {
			f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{id(fmt.Sprintf("batch%d", i))}, Tag: tag(fmt.Sprintf("batch%d", i%7)), Recipient: "b@example.org", Now: T0})
			if err != nil || f.Sent == nil || f.Sent.RecipientCount != 1+i%3 || !f.SenderMatch {
				t.Fatalf("record %d: %+v %v", i, f, err)
			}
			want := int64(0)
			for j := i % 7; j < n; j += 7 {
				want += int64(1 + j%3)
			}
			if f.TagRecipients != want {
				t.Fatalf("tag %d: %d recipients, want %d", i%7, f.TagRecipients, want)
			}
		}
	})

	t.Run("ManyRecipients", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		rc := make([]string, 1000)
		for i := range rc {
			rc[i] = fmt.Sprintf("r%d@x.test", i)
		}
		if err := s.RecordSent(c, cache.SentMessage{MessageID: id("many"), Tag: tag("many"), Sender: "m@example.org", Recipients: rc, Time: T0, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		f, err := s.Inbound(c, cache.InboundQuery{MessageIDs: []string{id("many")}, Tag: tag("many"), Now: T0})
		if err != nil || f.Sent == nil || f.Sent.RecipientCount != 1000 || f.TagRecipients != 1000 {
			t.Fatalf("1000 recipients: %+v %v", f, err)
		}
	})

	// A bounce to a valid tag with no record of it still counts (the
	// engine gives such a tag a small budget of its own).
	t.Run("TagWithoutRecord", func(t *testing.T) {
		s := open(t, Base())
		c := ctx(t)
		tg := tag("ghost")
		for i := 1; i <= 3; i++ {
			f, err := s.Inbound(c, cache.InboundQuery{Tag: tg, Count: true, Now: T0})
			if err != nil || f.TagRecipients != 0 || f.TagBounces != int64(i) || f.Replayed {
				t.Fatalf("bounce %d: %+v %v", i, f, err)
			}
		}
		// A record arriving late (another process) joins the same count.
		if err := s.RecordSent(c, cache.SentMessage{MessageID: id("ghost"), Tag: tg, Sender: "g@example.org", Recipients: []string{"a@b.test"}, Time: T0, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		f, err := s.Inbound(c, cache.InboundQuery{Tag: tg, Count: true, Now: T0})
		if err != nil || f.TagRecipients != 1 || f.TagBounces != 4 || !f.Replayed {
			t.Fatalf("after a late record: %+v %v", f, err)
		}
	})

	// The per-recipient flood counter ignores the sub-address extension
	// (each "+ext" would otherwise be a fresh counter).
	t.Run("FloodWithoutExtension", func(t *testing.T) {
		s := open(t, Base()) // recipient limit 3
		c := ctx(t)
		var f cache.InboundFacts
		for i := 1; i <= 4; i++ {
			var err error
			f, err = s.Inbound(c, cache.InboundQuery{Recipient: fmt.Sprintf("ext.%s+%d@example.org", uniq, i), Delimiter: '+', Count: true, Now: T0})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !f.RecipientStrict || !f.FloodEntered {
			t.Fatalf("4 messages to one address with 4 extensions: %+v", f)
		}
	})

	// The store's history: epoch, heartbeats, gaps (every store of this
	// module keeps it). Each run gets its own key prefix (Redis).
	t.Run("Journal", func(t *testing.T) {
		cfg := Base()
		cfg.Redis.KeyPrefix = "bmj" + uniq + ":"
		st := open(t, cfg)
		j, ok := st.(cache.Journal)
		if !ok {
			t.Skip("not a cache.Journal")
		}
		c := ctx(t)
		id, created, err := j.Epoch(c, "first")
		if err != nil || !created || id != "first" {
			t.Fatalf("new store's epoch: %q %v %v", id, created, err)
		}
		id, created, err = j.Epoch(c, "second")
		if err != nil || created || id != "first" {
			t.Fatalf("epoch again: %q %v %v", id, created, err)
		}
		if _, found, err := j.LastBeat(c, "inst"); err != nil || found {
			t.Fatalf("no beat yet: %v %v", found, err)
		}
		b := cache.Beat{Time: T0, Stopped: true, Pending: T0.Add(-time.Minute)}
		if err := j.SaveBeat(c, "inst", b); err != nil {
			t.Fatal(err)
		}
		got, found, err := j.LastBeat(c, "inst")
		if err != nil || !found || !got.Time.Equal(T0.Truncate(time.Second)) || !got.Stopped || !got.Pending.Equal(T0.Add(-time.Minute).Truncate(time.Second)) {
			t.Fatalf("beat %+v %v %v", got, found, err)
		}
		if _, found, _ := j.LastBeat(c, "other"); found {
			t.Fatal("another instance's beat found")
		}
		at := func(m int) time.Time { return T0.Truncate(time.Second).Add(time.Duration(m) * time.Minute) }
		if err := j.AddGaps(c, []cache.Window{{From: at(0), To: at(10)}, {From: at(5), To: at(20)}, {From: at(-int(cache.MaxTTL/time.Minute) - 100), To: at(-int(cache.MaxTTL/time.Minute) - 50)}}); err != nil {
			t.Fatal(err)
		}
		if err := j.AddGaps(c, []cache.Window{{From: at(30), To: at(31)}}); err != nil {
			t.Fatal(err)
		}
		gs, err := j.Gaps(c, T0)
		if err != nil || len(gs) != 2 || !gs[0].From.Equal(at(0)) || !gs[0].To.Equal(at(20)) || !gs[1].From.Equal(at(30)) {
			t.Fatalf("gaps %v %v", gs, err)
		}
		// Bounded: many gaps are kept as at most MaxStoredGaps.
		var many []cache.Window
		for i := 0; i < 3*cache.MaxStoredGaps; i++ {
			many = append(many, cache.Window{From: at(100 + 10*i), To: at(101 + 10*i)})
		}
		if err := j.AddGaps(c, many); err != nil {
			t.Fatal(err)
		}
		gs, err = j.Gaps(c, T0)
		if err != nil || len(gs) > cache.MaxStoredGaps || !gs[len(gs)-1].To.Equal(many[len(many)-1].To) {
			t.Fatalf("%d gaps kept (last %v), %v", len(gs), gs[len(gs)-1], err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		s := open(t, Base())
		if err := s.Ping(ctx(t)); err != nil {
			t.Fatal(err)
		}
	})
}
