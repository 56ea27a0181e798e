package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

var statsPrefixN atomic.Int64

// statsCfg gives each store a key prefix of its own: stores of one test
// share a server.
func statsCfg() cache.Config {
	cfg := storetest.Relaxed(storetest.Base())
	cfg.Redis.KeyPrefix = fmt.Sprintf("st%d-%d:", time.Now().UnixNano(), statsPrefixN.Add(1))
	return cfg
}

func TestMiniredisStatsConformance(t *testing.T) {
	storetest.RunStats(t, func(t *testing.T) cache.StatsStore { return openMini(t, miniredis.RunT(t), statsCfg()) })
}

func TestStandaloneStatsConformance(t *testing.T) {
	srv := startRedis(t)
	url := "redis://" + srv.Addr + "/4"
	storetest.RunStats(t, func(t *testing.T) cache.StatsStore { return openURL(t, url, statsCfg()) })
}

func TestClusterStatsConformance(t *testing.T) {
	nodes := startCluster(t)
	url := "redis-cluster://" + nodes[0].Addr
	storetest.RunStats(t, func(t *testing.T) cache.StatsStore { return openURL(t, url, statsCfg()) })
}

// Every statistics key expires at the end of its bucket's retention, and
// a write is one round trip: on miniredis (whose clock the test moves on,
// so the keys are seen to go) and on a real redis-server (whose TTLs the
// test reads as its Lua script and pipeline set them).
func TestMiniredisStatsTTLAndRoundTrips(t *testing.T) {
	m := miniredis.RunT(t)
	s := openMini(t, m, storetest.Base())
	checkStatsTTL(t, s, func() map[string]time.Duration {
		out := map[string]time.Duration{}
		for _, k := range m.Keys() {
			out[k] = m.TTL(k)
		}
		return out
	})
	m.FastForward(cache.StatsLatestKeep + time.Hour)
	if n := len(m.Keys()); n != 0 {
		t.Fatalf("%d keys outlived their TTL: %q", n, m.Keys())
	}
}

func TestStandaloneStatsTTLAndRoundTrips(t *testing.T) {
	srv := startRedis(t)
	cfg := statsCfg()
	s := openURL(t, "redis://"+srv.Addr+"/4", cfg)
	raw := directClient(srv.Addr)
	defer raw.Close()
	checkStatsTTL(t, s, func() map[string]time.Duration {
		ctx := context.Background()
		if err := raw.Do(ctx, "SELECT", 4).Err(); err != nil {
			t.Fatal(err)
		}
		keys, err := raw.Keys(ctx, cfg.Redis.KeyPrefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]time.Duration{}
		for _, k := range keys {
			ttl, err := raw.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = ttl
		}
		return out
	})
}

// checkStatsTTL writes one of each kind of statistics key and checks
// each key's TTL, read by ttls, against its retention.
func checkStatsTTL(t *testing.T, s *Store, ttls func() map[string]time.Duration) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	fine, day := now.Truncate(cache.StatsFine), now.Truncate(cache.StatsDaily)
	// Warm the pipeline pool and load the script: handshakes are per
	// connection, NOSCRIPT once per server.
	if err := s.AddStats(ctx, cache.StatsWrite{Max: map[string]int64{"warm": 1}}); err != nil {
		t.Fatal(err)
	}
	before := s.RoundTrips()
	err := s.AddStats(ctx, cache.StatsWrite{Buckets: []cache.StatsBucket{
		{Width: cache.StatsFine, Start: fine, Counts: map[string]int64{"a": 1}, Sets: map[string]map[string]int64{"r": {"x": 1}},
			Marks: []cache.StatsMark{{Time: now, Text: "entered"}}},
		{Width: cache.StatsDaily, Start: day, Counts: map[string]int64{"a": 1}},
	}, Max: map[string]int64{"key:1": now.Unix()}})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.RoundTrips() - before; n != 1 {
		t.Fatalf("AddStats took %d round trips", n)
	}
	keys := ttls()
	if len(keys) != 5 { // counters ×2, one set, marks, latest
		t.Fatalf("keys %v", keys)
	}
	for k, ttl := range keys {
		var max time.Duration
		switch {
		case strings.Contains(k, "{5m:"):
			max = cache.StatsFine + cache.StatsFineKeep
		case strings.Contains(k, "{1d:"):
			max = cache.StatsDaily + cache.StatsDailyKeep
		default:
			max = cache.StatsLatestKeep
		}
		if ttl <= 0 || ttl > max {
			t.Errorf("key %q has TTL %v, want (0, %v]", k, ttl, max)
		}
	}
}

func TestMiniredisAlertsConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) cache.AlertStore { return openMini(t, miniredis.RunT(t), statsCfg()) })
}

func TestStandaloneAlertsConformance(t *testing.T) {
	srv := startRedis(t)
	url := "redis://" + srv.Addr + "/4"
	storetest.RunAlerts(t, func(t *testing.T) cache.AlertStore { return openURL(t, url, statsCfg()) })
}

func TestClusterAlertsConformance(t *testing.T) {
	nodes := startCluster(t)
	url := "redis-cluster://" + nodes[0].Addr
	storetest.RunAlerts(t, func(t *testing.T) cache.AlertStore { return openURL(t, url, statsCfg()) })
}
