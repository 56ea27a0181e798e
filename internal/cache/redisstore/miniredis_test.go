package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

func openMini(t *testing.T, m *miniredis.Miniredis, cfg cache.Config) *Store {
	t.Helper()
	cfg.Backend = cache.BackendRedis
	cfg.Redis.URL = "redis://" + m.Addr()
	cfg = storetest.Relaxed(cfg)
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMiniredisConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg cache.Config) cache.Store {
		return openMini(t, miniredis.RunT(t), cfg)
	})
}

// Redis TTLs collect garbage: every key expires, a record's hash at the
// end of the day after its expiry day; nothing is stored in plain text.
func TestMiniredisTTL(t *testing.T) {
	m := miniredis.RunT(t)
	s := openMini(t, m, storetest.Base())
	ctx := context.Background()
	now := time.Now()
	err := s.RecordSent(ctx, cache.SentMessage{MessageID: "<ttl@x.test>", Tag: "prvs=0123abcdef=u@x.test", Sender: "u@x.test", Recipients: []string{"a@b.test"}, Time: now, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Inbound(ctx, cache.InboundQuery{Tag: "prvs=0123abcdef=v@x.test", Recipient: "v@x.test", ClientIP: "192.0.2.1", Count: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	keys := m.Keys()
	if len(keys) < 3 {
		t.Fatalf("keys %q", keys)
	}
	for _, k := range keys {
		ttl := m.TTL(k)
		if ttl <= 0 || ttl > cache.MaxTTL+3*24*time.Hour {
			t.Errorf("key %q has TTL %v", k, ttl)
		}
		var vals []string
		if m.Type(k) == "hash" {
			fs, _ := m.HKeys(k)
			for _, f := range fs {
				vals = append(vals, f, m.HGet(k, f))
			}
		} else {
			v, _ := m.Get(k)
			vals = append(vals, v)
		}
		for _, bad := range []string{"a@b.test", "ttl@x.test", "u@x.test", "prvs="} {
			for _, v := range append(vals, k) {
				if strings.Contains(v, bad) {
					t.Fatalf("plaintext %q stored in %q", bad, k)
				}
			}
		}
	}
	f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"ttl@x.test"}, Tag: "prvs=0123abcdef=u@x.test", Now: now})
	if err != nil || f.Sent == nil || f.TagRecipients != 1 {
		t.Fatalf("before expiry: %+v %v", f, err)
	}
	m.FastForward(cache.MaxTTL + 3*24*time.Hour)
	if n := len(m.Keys()); n != 0 {
		t.Fatalf("%d keys outlived their TTL: %q", n, m.Keys())
	}
}

// Server errors are unavailability, open the breaker, and the breaker
// recovers through a half-open probe.
func TestMiniredisErrorsAndBreaker(t *testing.T) {
	m := miniredis.RunT(t)
	cfg := storetest.Base()
	cfg.BreakerFailures = 2
	// Long enough that the breaker is still open for the RecordSent below
	// however slow the machine; the probe waits it out.
	cfg.BreakerCooldown = time.Second
	obs := &recObs{}
	cfg.Observer = obs
	s := openMini(t, m, cfg)
	ctx := context.Background()
	q := cache.InboundQuery{MessageIDs: []string{"a@b"}, Tag: "prvs=0123abcdef=u@x.test", Recipient: "u@x.test", Count: true, Now: time.Now()}
	if _, err := s.Inbound(ctx, q); err != nil {
		t.Fatal(err)
	}
	m.SetError("LOADING Redis is loading the dataset in memory")
	for i := 0; i < 2; i++ {
		_, err := s.Inbound(ctx, q)
		if !errors.Is(err, cache.ErrUnavailable) || errors.Is(err, cache.ErrBreakerOpen) {
			t.Fatalf("call %d: err = %v", i, err)
		}
	}
	if s.BreakerState() != cache.BreakerOpen {
		t.Fatalf("breaker %s after 2 failures", s.BreakerState())
	}
	err := s.RecordSent(ctx, cache.SentMessage{MessageID: "x@y", Time: time.Now()})
	if !errors.Is(err, cache.ErrBreakerOpen) || s.DroppedRecords() != 1 {
		t.Fatalf("record while open: %v, dropped %d", err, s.DroppedRecords())
	}
	m.SetError("")
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Inbound(ctx, q); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if s.BreakerState() != cache.BreakerClosed {
		t.Fatalf("breaker %s after a good probe", s.BreakerState())
	}
	if got := obs.states(); len(got) != 3 || got[0] != "open" || got[1] != "half-open" || got[2] != "closed" {
		t.Fatalf("observed breaker states %v", got)
	}
	if obs.count("inbound") < 4 {
		t.Fatalf("observed %d inbound ops", obs.count("inbound"))
	}
}

// A caller that cancels does not count against Redis.
func TestCallerCancelIsNotAFailure(t *testing.T) {
	m := miniredis.RunT(t)
	cfg := storetest.Base()
	cfg.BreakerFailures = 1
	s := openMini(t, m, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"a@b"}}); err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if s.BreakerState() != cache.BreakerClosed {
		t.Fatalf("breaker %s after the caller's cancel", s.BreakerState())
	}
}
