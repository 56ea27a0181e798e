package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
	"github.com/bounce-milter/bounce-milter/internal/events/eventstest"
)

func openURL(t testing.TB, url string, cfg cache.Config) *Store {
	t.Helper()
	cfg.Backend = cache.BackendRedis
	cfg.Redis.URL = url
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStandalone(t *testing.T) {
	srv := startRedis(t)
	url := "redis://" + srv.Addr + "/3"
	storetest.Run(t, func(t *testing.T, cfg cache.Config) cache.Store { return openURL(t, url, storetest.Relaxed(cfg)) })

	t.Run("OneRoundTripPerCall", func(t *testing.T) {
		s := openURL(t, url, storetest.Relaxed(storetest.Base()))
		ctx := context.Background()
		// Warm the pools (go-redis keeps a separate pool for pipelines):
		// connection handshakes (HELLO, CLIENT SETNAME) are per connection,
		// not per call.
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		warm := sentMsg("warm", 1)
		warm.Tag = ""
		if err := s.RecordSent(ctx, warm); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"warm@example.org"}, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		before := s.RoundTrips()
		if err := s.RecordSent(ctx, sentMsg("rt1", 3)); err != nil {
			t.Fatal(err)
		}
		if n := s.RoundTrips() - before; n != 1 {
			t.Fatalf("RecordSent took %d round trips", n)
		}
		before = s.RoundTrips()
		f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"a@x", "b@x", "<rt1@example.org>"}, Tag: "prvs=0123abcdef=rt@example.org",
			Recipient: "rt@example.org", ClientIP: "192.0.2.1", Count: true, Now: time.Now()})
		if err != nil || f.Sent == nil || f.TagRecipients != 3 || f.TagBounces != 1 {
			t.Fatalf("inbound: %+v %v", f, err)
		}
		if n := s.RoundTrips() - before; n != 1 {
			t.Fatalf("Inbound took %d round trips", n)
		}
	})

	t.Run("Fleet", func(t *testing.T) { testFleet(t, url) })
	t.Run("DaysInUse", func(t *testing.T) { testDaysInUse(t, "redis://"+srv.Addr+"/5") })
	t.Run("Legacy", func(t *testing.T) {
		raw := directClient(srv.Addr)
		defer raw.Close()
		s := openURL(t, "redis://"+srv.Addr, storetest.Relaxed(storetest.Base()))
		testLegacy(t, s, raw)
	})
}

// holds reports whether the server behind c has the record of msgid
// (expiring at expires) in its level-0 hash, read directly.
func (s *Store) holds(ctx context.Context, c *redis.Client, msgid string, expires time.Time) (bool, error) {
	d, _ := s.h.MessageIDDigest(msgid)
	g, _ := groupOf(d)
	return c.HExists(ctx, dayKey(s.groupPrefix(g), cache.Day(expires)), string(d[:8])).Result()
}

func sentMsg(id string, n int) cache.SentMessage {
	m := cache.SentMessage{MessageID: "<" + id + "@example.org>", Tag: "prvs=0123abcdef=rt@example.org", Sender: "rt@example.org", Time: time.Now(), TTL: time.Hour}
	for i := 0; i < n; i++ {
		m.Recipients = append(m.Recipients, fmt.Sprintf("r%d@dest.test", i))
	}
	return m
}

// Two Store instances (two milter processes) over one Redis behave as one.
func testFleet(t *testing.T, url string) {
	a := openURL(t, url, storetest.Relaxed(storetest.Base()))
	b := openURL(t, url, storetest.Relaxed(storetest.Base()))
	ctx := context.Background()
	uniq := fmt.Sprint(time.Now().UnixNano())
	tag := "prvs=0123abcdef=fleet" + uniq + "@example.org"
	if err := a.RecordSent(ctx, cache.SentMessage{MessageID: "<f1." + uniq + "@example.org>", Tag: tag, Sender: "fleet@example.org", Recipients: []string{"x@y.test"}, Time: time.Now(), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	f, err := b.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"f1." + uniq + "@EXAMPLE.org"}, Tag: tag, Recipient: "fleet@example.org", Count: true, Now: time.Now()})
	if err != nil || f.Sent == nil || !f.SenderMatch || f.TagRecipients != 1 || f.TagBounces != 1 {
		t.Fatalf("B does not see A's record: %+v %v", f, err)
	}
	// The replay budget (1 recipient + slack 1) is shared: A sees B's count.
	f, err = a.Inbound(ctx, cache.InboundQuery{Tag: tag, Count: true, Now: time.Now()})
	if err != nil || f.TagBounces != 2 || f.Replayed {
		t.Fatalf("A's second bounce: %+v %v", f, err)
	}
	f, err = b.Inbound(ctx, cache.InboundQuery{Tag: tag, Count: true, Now: time.Now()})
	if err != nil || f.TagBounces != 3 || !f.Replayed {
		t.Fatalf("B's third bounce not replayed: %+v %v", f, err)
	}
	// Flood state is shared, and entered exactly once across the fleet.
	rcpt := "flood" + uniq + "@example.org"
	var entered, strict atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			f, err := s.Inbound(ctx, cache.InboundQuery{Recipient: rcpt, Count: true, Now: storetest.T0})
			if err != nil {
				t.Error(err)
				return
			}
			if f.FloodEntered {
				entered.Add(1)
			}
			if f.RecipientStrict {
				strict.Add(1)
			}
		}([]*Store{a, b}[i%2])
	}
	wg.Wait()
	if entered.Load() != 1 || strict.Load() != 7 { // limit 3: messages 4..10 are strict
		t.Fatalf("fleet flood: entered %d, strict %d", entered.Load(), strict.Load())
	}
}

// Budget checks (not benchmarks): generous bounds for a loaded CI machine
// with the race detector, still far below a call that waits for a hung
// server (its 2 s socket timeout, or for ever).
const (
	budget     = time.Second           // Config.Timeout is 250 ms
	openBudget = 20 * time.Millisecond // breaker open, mean of 100 calls: no I/O at all (typically µs)
)

func outageCfg() cache.Config {
	c := storetest.Base()
	c.BreakerFailures = 3
	c.BreakerCooldown = time.Hour // keep it open for the rest of the test
	return c
}

func checkOutage(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	q := cache.InboundQuery{MessageIDs: []string{"x@y"}, Tag: "prvs=0123abcdef=o@example.org", Recipient: "o@example.org", Count: true, Now: time.Now()}
	var worst time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		var err error
		if i%2 == 0 {
			_, err = s.Inbound(ctx, q)
		} else {
			err = s.RecordSent(ctx, sentMsg("outage", 1))
		}
		d := time.Since(start)
		worst = max(worst, d)
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("call %d during outage: err = %v", i, err)
		}
		if d > budget {
			t.Fatalf("call %d took %v, budget %v (err %v)", i, d, budget, err)
		}
	}
	if st := s.BreakerState(); st != cache.BreakerOpen {
		t.Fatalf("breaker %s after 3 failures", st)
	}
	start := time.Now()
	const n = 100
	for i := 0; i < n; i++ {
		if _, err := s.Inbound(ctx, q); !errors.Is(err, cache.ErrBreakerOpen) {
			t.Fatalf("breaker open but err = %v", err)
		}
	}
	per := time.Since(start) / n
	if per > openBudget {
		t.Fatalf("open breaker costs %v per call", per)
	}
	t.Logf("outage: worst failing call %v; with breaker open %v per call", worst, per)
}

func TestRedisStopped(t *testing.T) {
	srv := startRedis(t)
	s := openURL(t, "redis://"+srv.Addr, outageCfg())
	if err := s.RecordSent(context.Background(), sentMsg("before", 1)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	checkOutage(t, s)
}

func TestRedisHung(t *testing.T) {
	srv := startRedis(t)
	s := openURL(t, "redis://"+srv.Addr, outageCfg())
	if err := s.RecordSent(context.Background(), sentMsg("before", 1)); err != nil {
		t.Fatal(err)
	}
	srv.Hang()
	t.Cleanup(srv.Resume)
	checkOutage(t, s)
}

// A hung Redis also bounds concurrent callers: 20 sessions at once all
// return within the budget (no queueing behind the pool).
func TestRedisHungConcurrent(t *testing.T) {
	srv := startRedis(t)
	cfg := outageCfg()
	cfg.BreakerFailures = 1000
	s := openURL(t, "redis://"+srv.Addr, cfg)
	srv.Hang()
	t.Cleanup(srv.Resume)
	var wg sync.WaitGroup
	var worst atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := s.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"a@b"}, Now: time.Now()})
			d := time.Since(start)
			if err == nil {
				t.Error("hung Redis answered")
			}
			for {
				w := worst.Load()
				if int64(d) <= w || worst.CompareAndSwap(w, int64(d)) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if w := time.Duration(worst.Load()); w > budget {
		t.Fatalf("worst concurrent call %v > %v", w, budget)
	} else {
		t.Logf("20 concurrent calls against a hung Redis: worst %v", w)
	}
}

func TestCluster(t *testing.T) {
	nodes := startCluster(t)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
	}
	url := "redis-cluster://" + strings.Join(addrs, ",")
	storetest.Run(t, func(t *testing.T, cfg cache.Config) cache.Store { return openURL(t, url, storetest.Relaxed(cfg)) })
	t.Run("Fleet", func(t *testing.T) { testFleet(t, url) })
	t.Run("RoundTrips", func(t *testing.T) {
		s := openURL(t, url, storetest.Relaxed(storetest.Base()))
		ctx := context.Background()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		// Warm: learn the slot map, open a pipeline connection to each node.
		q := cache.InboundQuery{MessageIDs: []string{"crt@example.org"}, Tag: "prvs=0123abcdef=crt@example.org", Recipient: "r@x", ClientIP: "192.0.2.9", Count: true, Now: time.Now()}
		for i := 0; i < 3; i++ {
			if err := s.RecordSent(ctx, sentMsg(fmt.Sprint("warm", i), 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Inbound(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		before := s.RoundTrips()
		if err := s.RecordSent(ctx, sentMsg("crt", 2)); err != nil {
			t.Fatal(err)
		}
		rs := s.RoundTrips() - before
		before = s.RoundTrips()
		if _, err := s.Inbound(ctx, q); err != nil {
			t.Fatal(err)
		}
		in := s.RoundTrips() - before
		// Split by node, run in parallel: at most one exchange per master.
		if rs < 1 || rs > 2 || in < 1 || in > 3 {
			t.Fatalf("cluster exchanges: RecordSent %d, Inbound %d", rs, in)
		}
		t.Logf("cluster exchanges per call (parallel, one per node touched): RecordSent %d, Inbound %d", rs, in)
	})
	// A master that hangs (no replica to fail over to): calls touching it
	// fail within the budget; no retry storm across the other nodes.
	t.Run("NodeHung", func(t *testing.T) {
		cfg := outageCfg()
		cfg.BreakerFailures = 1000 // measure every call
		s := openURL(t, url, cfg)
		ctx := context.Background()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		nodes[1].Hang()
		defer nodes[1].Resume()
		var worst time.Duration
		failed := 0
		for i := 0; i < 10; i++ {
			start := time.Now()
			_, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("h%d@x", i)}, Tag: fmt.Sprintf("prvs=0123abcdef=h%d@x", i),
				Recipient: fmt.Sprintf("h%d@x", i), Count: true, Now: time.Now()})
			worst = max(worst, time.Since(start))
			if err != nil {
				failed++
			}
		}
		if worst > budget || failed == 0 {
			t.Fatalf("one master hung: worst call %v (budget %v), %d of 10 failed", worst, budget, failed)
		}
		t.Logf("one of 3 masters hung: %d of 10 calls failed, worst %v", failed, worst)
	})
}

func TestSentinelFailover(t *testing.T) {
	master := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port))
	mc := directClient(master.Addr)
	defer mc.Close()
	waitFor(t, 10*time.Second, "replica link", func() string {
		info, err := mc.Info(context.Background(), "replication").Result()
		if err != nil {
			return err.Error()
		}
		if n := infoField(info, "connected_slaves"); n != "1" {
			return "connected_slaves " + n
		}
		return ""
	})
	sent := startSentinel(t, master.Addr)
	sc := directClient(sent.Addr)
	defer sc.Close()
	waitFor(t, 15*time.Second, "sentinel to know the replica", func() string {
		reps, err := sc.Do(context.Background(), "SENTINEL", "REPLICAS", "mymaster").Slice()
		if err != nil {
			return err.Error()
		}
		if len(reps) != 1 {
			return fmt.Sprintf("%d replicas", len(reps))
		}
		if s := fmt.Sprint(reps[0]); strings.Contains(s, "s_down") || strings.Contains(s, "disconnected") {
			return s
		}
		return ""
	})

	url := "redis-sentinel://" + sent.Addr + "/mymaster"
	cfg := storetest.Base()
	cfg.BreakerCooldown = 200 * time.Millisecond
	cfg.Timeout = time.Second
	s := openURL(t, url, cfg)
	ctx := context.Background()
	uniq := fmt.Sprint(time.Now().UnixNano())
	tag := "prvs=0123abcdef=sent" + uniq + "@example.org"
	rec := func(i int) error {
		return s.RecordSent(ctx, cache.SentMessage{MessageID: fmt.Sprintf("<s%d.%s@example.org>", i, uniq), Tag: tag, Sender: "s@example.org", Recipients: []string{"a@b.test"}, Time: time.Now(), TTL: time.Hour})
	}
	look := func(i int) (cache.InboundFacts, error) {
		return s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("s%d.%s@example.org", i, uniq)}, Tag: tag, Now: time.Now()})
	}
	for i := 0; i < 50; i++ {
		if err := rec(i); err != nil {
			t.Fatal(err)
		}
	}
	// Make sure the replica has them before the failover.
	rcPre := directClient(replica.Addr)
	defer rcPre.Close()
	waitFor(t, 10*time.Second, "replication of the records", func() string {
		if ok, err := s.holds(ctx, rcPre, fmt.Sprintf("s%d.%s@example.org", 49, uniq), time.Now().Add(time.Hour)); err != nil || !ok {
			return fmt.Sprint("not on the replica yet ", err)
		}
		return ""
	})

	// A load loop runs through the failover.
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var worst atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			err := rec(i)
			if err == nil {
				_, err = look(i)
			}
			if d := int64(time.Since(start)); d > worst.Load() {
				worst.Store(d)
			}
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	failoverAt := time.Now()
	if err := sc.Do(ctx, "SENTINEL", "FAILOVER", "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the replica's election", func() string {
		a, err := sc.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster").StringSlice()
		if err != nil {
			return err.Error()
		}
		if got := net.JoinHostPort(a[0], a[1]); got != replica.Addr {
			return "master still " + got
		}
		return ""
	})
	elected := time.Since(failoverAt)
	// Within a bound after the election, answers are correct again: a
	// record written through the store lands on the new master and is read
	// back. (Writes that reach the old master in the moment before Sentinel
	// demotes it are lost when it resyncs: Redis replication is
	// asynchronous. That costs at most a tempfail for such a bounce.)
	rc := directClient(replica.Addr)
	defer rc.Close()
	var recovered time.Duration
	probe := 100000
	waitFor(t, 15*time.Second, "correct answers from the new master", func() string {
		probe++
		if err := rec(probe); err != nil {
			return err.Error()
		}
		f, err := look(probe)
		if err != nil {
			return err.Error()
		}
		if f.Sent == nil {
			return "new record not found"
		}
		if ok, err := s.holds(ctx, rc, fmt.Sprintf("s%d.%s@example.org", probe, uniq), time.Now().Add(time.Hour)); err != nil || !ok {
			return fmt.Sprint("record not on the new master ", err)
		}
		recovered = time.Since(failoverAt)
		return ""
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	for i := 0; i < 50; i++ {
		f, err := look(i)
		if err != nil || f.Sent == nil {
			t.Fatalf("record %d from before the failover: %+v %v", i, f, err)
		}
	}
	// The store writes to the new master (the old one is a replica now).
	info, err := rc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	if role := infoField(info, "role"); role != "master" {
		t.Fatalf("replica role %q after failover", role)
	}
	if w := time.Duration(worst.Load()); w > budget {
		t.Errorf("a call took %v during the failover (budget %v)", w, budget)
	}
	t.Logf("failover: elected after %v, correct again after %v; loop: %d ok, %d failed, worst call %v",
		elected.Round(time.Millisecond), recovered.Round(time.Millisecond), ok.Load(), failed.Load(), time.Duration(worst.Load()).Round(time.Millisecond))
	if ok.Load() == 0 {
		t.Fatal("load loop never succeeded")
	}
}

// Redis restarted empty (issue 12, F1): the fleet's processes notice it by
// the epoch and report a gap over everything before, so that a replay
// count or a missing record from before is never held against a bounce.
func TestRedisRestartedEmptyIsAGap(t *testing.T) {
	srv := startRedis(t)
	cfg := storetest.Relaxed(storetest.Base())
	// The history's journal calls fail while Redis restarts; a slow restart
	// must not open the breaker (its provisional gap would stand in for
	// the real one, and the store's list could not be read).
	cfg.BreakerFailures = 1000
	s := openURL(t, "redis://"+srv.Addr, cfg)
	r := cache.NewRecorder(s, cache.RecorderOptions{HistoryOptions: cache.HistoryOptions{Shared: true, Instance: "a",
		RefreshEvery: 50 * time.Millisecond}})
	defer r.Close()
	ctx := context.Background()
	r.Record(sentMsg("before-restart", 3))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Redis knew this store: no gap but the first start's.
	start := time.Now()
	waitFor(t, 5*time.Second, "the first start's gap", func() string {
		if g := r.Gaps(time.Now()); len(g) != 1 {
			return fmt.Sprint(g)
		}
		return ""
	})
	firstEnd := r.Gaps(time.Now())[0].To
	time.Sleep(1100 * time.Millisecond) // gaps have whole seconds
	restarted := time.Now()
	srv.Stop()
	startProc(t, srv.cmd.Path, srv.Port, srv.cmd.Args[1:]...)
	waitFor(t, 10*time.Second, "the gap after the restart", func() string {
		r.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"<before-restart@example.org>"}, Now: time.Now()})
		g := r.Gaps(time.Now())
		if len(g) == 0 || g[len(g)-1].To.Before(restarted.Truncate(time.Second)) || !g[len(g)-1].To.After(firstEnd) {
			return fmt.Sprint(g)
		}
		return ""
	})
	t.Logf("first start %v; restarted empty at %v; gaps %v", start.Format(time.TimeOnly), restarted.Format(time.TimeOnly), r.Gaps(time.Now()))
	// The gap is saved in the new Redis for the other processes (by the
	// history's next sync, which may still be under way).
	waitFor(t, 5*time.Second, "the gap saved in the restarted Redis", func() string {
		g, err := s.Gaps(ctx, time.Now())
		if err != nil || len(g) == 0 || g[len(g)-1].To.Before(restarted.Truncate(time.Second)) {
			return fmt.Sprint(g, err)
		}
		return ""
	})
}

// Lookups probe only the expiry days in use; a record of a day nobody
// used before, written through a Recorder on host A, is found on host B
// as soon as A has written it.
func testDaysInUse(t *testing.T, url string) {
	a := openURL(t, url, storetest.Relaxed(storetest.Base()))
	b := openURL(t, url, storetest.Relaxed(storetest.Base()))
	ctx := context.Background()
	now := time.Now()
	if err := a.RecordSent(ctx, cache.SentMessage{MessageID: "<d0@example.org>", Sender: "d@example.org", Time: now, TTL: 3 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to read the days in use", func() string {
		if n := len(b.probeDays(now)); n > 6 {
			return fmt.Sprintf("B probes %d days", n)
		}
		return ""
	})
	r := cache.NewRecorder(a, cache.RecorderOptions{})
	defer r.Close()
	for i, ttl := range []time.Duration{3 * 24 * time.Hour, 20 * 24 * time.Hour} {
		r.Record(cache.SentMessage{MessageID: fmt.Sprintf("<d%d@example.org>", i+1), Sender: "d@example.org", Time: now, TTL: ttl})
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := b.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("<d%d@example.org>", i+1)}, Recipient: "d@example.org", Now: time.Now()})
		if err != nil || f.Sent == nil || !f.SenderMatch {
			t.Fatalf("TTL %v: record written on A not found on B: %+v %v (B probes %v)", ttl, f, err, b.probeDays(now))
		}
	}
	t.Logf("B probes %d of %d days", len(b.probeDays(now)), int(cache.MaxTTL/(24*time.Hour))+2)
}

// Bounce events on a real redis-server: the conformance suite.
func TestEventsStandalone(t *testing.T) {
	srv := startRedis(t)
	s := openURL(t, "redis://"+srv.Addr+"/4", storetest.Relaxed(storetest.Base()))
	eventstest.Run(t, s, time.Now())
}
