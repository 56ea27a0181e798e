package stats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// flaky is a StatsStore that fails while down is set, and counts calls.
type flaky struct {
	cache.StatsStore
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flaky) AddStats(ctx context.Context, w cache.StatsWrite) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errors.New("store down")
	}
	return f.StatsStore.AddStats(ctx, w)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T) (*Aggregator, *Reader, *flaky, *clock) {
	t.Helper()
	st := &flaky{StatsStore: cache.NewMemoryStats()}
	c := &clock{t: time.Now().UTC()}
	a := New(Options{Store: st, Now: c.now})
	a.SetDomains([]string{"example.com", "example.org"})
	return a, &Reader{Store: st, Agg: a, Now: c.now}, st, c
}

func find(s Series, verdict, reason string) *Line {
	for i := range s.Lines {
		if s.Lines[i].Verdict == verdict && s.Lines[i].Reason == reason {
			return &s.Lines[i]
		}
	}
	return nil
}

func TestDecisionsCountedAndBounded(t *testing.T) {
	a, r, _, _ := setup(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com", Recipient: "u@example.com", Client: "192.0.2.7"})
	}
	a.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "Example.ORG."})
	// Labels outside their sets are "other": a sender cannot grow them.
	a.Decided(Decision{Direction: Inbound, Verdict: "explode", Reason: "made-up", Domain: "evil.example"})
	a.Decided(Decision{Direction: Outbound, Verdict: Signed, Reason: "signed", Domain: "example.com"})
	s, err := r.Decisions(ctx, Inbound, cache.StatsFine, 288, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Starts) != 288 || s.Total != 5 || s.Backscat != 3 {
		t.Fatalf("series: %d starts, total %d, backscatter %d", len(s.Starts), s.Total, s.Backscat)
	}
	l := find(s, "reject", "no-evidence")
	if l == nil || l.Total != 3 || l.Counts[287] != 3 {
		t.Fatalf("reject/no-evidence: %+v", l)
	}
	if l := find(s, Other, Other); l == nil || l.Total != 1 {
		t.Fatalf("other/other: %+v (%+v)", l, s.Lines)
	}
	doms := map[string]int64{}
	for _, d := range s.Domains {
		doms[d.Domain] = d.Total
	}
	if doms["example.com"] != 3 || doms["example.org"] != 1 || doms[Other] != 1 || len(doms) != 3 {
		t.Fatalf("domains %v", doms)
	}
	// One domain only.
	s, err = r.Decisions(ctx, Inbound, cache.StatsDaily, 30, "example.org", false)
	if err != nil || s.Total != 1 || len(s.Starts) != 30 || find(s, "accept", "valid-tag").Counts[29] != 1 {
		t.Fatalf("daily, one domain: %+v %v", s, err)
	}
	s, err = r.Decisions(ctx, Outbound, cache.StatsDaily, 30, "", false)
	if err != nil || s.Total != 1 || find(s, Signed, "signed") == nil {
		t.Fatalf("outbound: %+v %v", s, err)
	}
}

func TestFloodSets(t *testing.T) {
	a, r, _, _ := setup(t)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
			Recipient: "Alice@Example.COM", Client: fmt.Sprintf("192.0.2.%d", i), ReportingMTA: "mx.remote.example"})
	}
	a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "replayed", Domain: "example.com",
		Recipient: "bob@example.com", Client: "2001:db8:1:2::9"})
	// Genuine bounces are not backscatter: none of their details count.
	a.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com",
		Recipient: "carol@example.com", Client: "198.51.100.1", ReportingMTA: "mx.friend.example"})
	f, err := r.Floods(ctx, Windows[0], 10)
	if err != nil {
		t.Fatal(err)
	}
	want := func(name string, got []cache.Member, want ...cache.Member) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	want("recipients", f.Recipients, cache.Member{Name: "alice@example.com", Count: 4}, cache.Member{Name: "bob@example.com", Count: 1})
	want("networks", f.Networks, cache.Member{Name: "192.0.2.0/24", Count: 4}, cache.Member{Name: "2001:db8:1::/48", Count: 1})
	want("reporters", f.Reporters, cache.Member{Name: "mx.remote.example", Count: 4})
	want("replayed", f.Replayed, cache.Member{Name: "bob@example.com", Count: 1})
	if f.Series.Total != 5 || f.Series.Backscat != 5 {
		t.Errorf("series total %d", f.Series.Total)
	}
	// The daily windows see the same.
	f, err = r.Floods(ctx, Windows[4], 10)
	if err != nil || len(f.Recipients) != 2 || f.Recipients[0].Count != 4 {
		t.Fatalf("30d: %+v %v", f.Recipients, err)
	}
}

func TestFloodState(t *testing.T) {
	a, r, _, c := setup(t)
	ctx := context.Background()
	a.FloodChanged(FloodChange{Entered: true, Recipient: "u@example.com", Client: "192.0.2.1", RecipientStrict: true})
	c.add(time.Minute)
	a.FloodChanged(FloodChange{Entered: true, Recipient: "v@example.com", Client: "192.0.2.9", ClientStrict: true})
	st, err := r.FloodState(ctx, time.Hour)
	if err != nil || len(st) != 2 || st[0].Kind != "recipient" || st[0].Name != "u@example.com" || st[1].Kind != "client" || st[1].Name != "192.0.2.9" {
		t.Fatalf("state: %+v %v", st, err)
	}
	// The recipient leaves (the client is still strict for that message).
	c.add(time.Minute)
	a.FloodChanged(FloodChange{Entered: false, Recipient: "u@example.com", Client: "192.0.2.9", ClientStrict: true})
	st, err = r.FloodState(ctx, time.Hour)
	if err != nil || len(st) != 1 || st[0].Name != "192.0.2.9" {
		t.Fatalf("after leaving: %+v %v", st, err)
	}
	// strict_for later it is over even unseen.
	c.add(time.Hour)
	if st, err = r.FloodState(ctx, time.Hour); err != nil || len(st) != 0 {
		t.Fatalf("an hour later: %+v %v", st, err)
	}
	f, err := r.Floods(ctx, Windows[1], 10)
	if err != nil || len(f.Marks) != 3 || f.Marks[0].Entered || !f.Marks[2].Entered || f.Marks[2].Recipient != "u@example.com" {
		t.Fatalf("marks: %+v %v", f.Marks, err)
	}
}

func TestKeys(t *testing.T) {
	a, r, _, c := setup(t)
	ctx := context.Background()
	start := c.now()
	a.Signed("example.com", 1)
	a.Signed("example.com", 1)
	c.add(24 * time.Hour)
	a.Signed("example.com", 2)
	a.Signed("example.com", 12) // not a key number
	keys, since, err := r.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !since.Equal(start.Truncate(time.Second)) {
		t.Errorf("since %v, want %v", since, start)
	}
	if len(keys) != 2 || keys[0].Number != 1 || keys[0].Total != 2 || keys[0].Days[28].Signed != 2 || keys[1].Number != 2 || keys[1].Days[29].Signed != 1 {
		t.Fatalf("keys %+v", keys)
	}
	if !keys[0].Last.Equal(start.Truncate(time.Second)) || !keys[1].Last.Equal(c.now().Truncate(time.Second)) {
		t.Fatalf("last use %v %v", keys[0].Last, keys[1].Last)
	}
}

// A store that cannot take the figures: they are kept and written once
// when it answers again; the bounds drop the oldest, counted.
func TestStoreDownKeepsAndBounds(t *testing.T) {
	a, r, st, c := setup(t)
	ctx := context.Background()
	st.down.Store(true)
	a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "flood", Domain: "example.com", Recipient: "u@example.com"})
	if err := a.Flush(ctx); err == nil {
		t.Fatal("flush to a down store succeeded")
	}
	a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "flood", Domain: "example.com", Recipient: "u@example.com"})
	if err := a.Flush(ctx); err == nil {
		t.Fatal("flush to a down store succeeded")
	}
	if s := a.Status(); s.PendingBuckets != 2 || s.FailedWrites != 2 || s.LastError == "" || s.Dropped != 0 {
		t.Fatalf("status while down: %+v", s)
	}
	st.down.Store(false)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := r.Decisions(ctx, Inbound, cache.StatsFine, 12, "", false)
	if err != nil || s.Total != 2 {
		t.Fatalf("after recovery: total %d %v", s.Total, err)
	}
	// Nothing is written twice.
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Decisions(ctx, Inbound, cache.StatsFine, 12, "", false); s.Total != 2 {
		t.Fatalf("written twice: total %d", s.Total)
	}
	if s := a.Status(); s.PendingBuckets != 0 || s.LastError != "" || s.Writes == 0 {
		t.Fatalf("status after recovery: %+v", s)
	}
	// A long outage: more 5-minute buckets than MaxPendingBuckets.
	st.down.Store(true)
	for i := 0; i < MaxPendingBuckets; i++ {
		a.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com"})
		c.add(cache.StatsFine)
		_ = a.Flush(ctx)
	}
	if s := a.Status(); s.PendingBuckets > MaxPendingBuckets || s.Dropped == 0 {
		t.Fatalf("bounds: %+v", s)
	}
	// Members beyond MaxMembers in one bucket are dropped, counted.
	st.down.Store(false)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := a.Status().Dropped
	for i := 0; i < MaxMembers+10; i++ {
		a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com", Recipient: fmt.Sprintf("u%d@example.com", i)})
	}
	if d := a.Status().Dropped - before; d != 20 { // 10 per width
		t.Fatalf("dropped %d members, want 20", d)
	}
}

func TestStartClose(t *testing.T) {
	st := cache.NewMemoryStats()
	a := New(Options{Store: st, Interval: 10 * time.Millisecond})
	a.SetDomains([]string{"example.com"})
	a.Start()
	a.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com"})
	r := &Reader{Store: st}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := r.Decisions(context.Background(), Inbound, cache.StatsFine, 2, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Total == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not written by the background writer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com"})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Decisions(context.Background(), Inbound, cache.StatsFine, 2, "", false); s.Total != 2 {
		t.Fatalf("close did not write what was pending: %d", s.Total)
	}
	// Never started: Close still writes.
	b := New(Options{Store: st})
	b.Decided(Decision{Direction: Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("close of an aggregator never started: %v %v", err, ctx.Err())
	}
}

// Decisions come from every milter session at once while writes run.
func TestConcurrent(t *testing.T) {
	a, r, _, _ := setup(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				a.Decided(Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com", Recipient: "u@example.com", Client: "192.0.2.1"})
				if i%100 == 0 {
					_ = a.Flush(context.Background())
				}
			}
		}()
	}
	wg.Wait()
	f, err := r.Floods(context.Background(), Windows[0], 5)
	if err != nil || f.Series.Total != 4000 || f.Recipients[0].Count != 4000 {
		t.Fatalf("total %d, %+v %v", f.Series.Total, f.Recipients, err)
	}
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.77": "192.0.2.0/24", "::ffff:192.0.2.77": "192.0.2.0/24", "2001:db8:aa:bb::1": "2001:db8:aa::/48",
		"": "", "unknown": "", "192.0.2.1%eth0": "",
	} {
		if got := Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkDecided(b *testing.B) {
	a := New(Options{Store: cache.NewMemoryStats()})
	a.SetDomains([]string{"example.com"})
	d := Decision{Direction: Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com", Recipient: "u@example.com", Client: "192.0.2.1", ReportingMTA: "mx.example.net"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Decided(d)
		}
	})
}
