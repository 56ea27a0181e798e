package boltstore

import (
	"context"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

func TestStatsConformance(t *testing.T) {
	storetest.RunStats(t, func(t *testing.T) cache.StatsStore { return open(t, t.TempDir(), storetest.Base()) })
}

// Statistics survive a restart, and buckets past their retention are
// dropped from the file at the next write.
func TestStatsPersistAndPrune(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	now := time.Now().UTC()
	fine := now.Truncate(cache.StatsFine)
	s := open(t, dir, storetest.Base())
	if err := s.AddStats(ctx, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: fine, Counts: map[string]int64{"a": 5}}},
		Max: map[string]int64{"key:1": now.Unix()}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, storetest.Base())
	bs, err := s.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine)})
	if err != nil || len(bs) != 1 || bs[0].Counts["a"] != 5 {
		t.Fatalf("after a restart: %+v %v", bs, err)
	}
	if l, err := s.StatsLatest(ctx); err != nil || l["key:1"] != now.Unix() {
		t.Fatalf("latest after a restart: %v %v", l, err)
	}
	// A day and more later, the bucket is gone from the file.
	s.now = func() time.Time { return now.Add(cache.StatsFineKeep + time.Hour) }
	if err := s.AddStats(ctx, cache.StatsWrite{}); err != nil {
		t.Fatal(err)
	}
	s.now = time.Now
	bs, err = s.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine)})
	if err != nil || len(bs) != 0 {
		t.Fatalf("pruned bucket still read: %+v %v", bs, err)
	}
}

func TestAlertsConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) cache.AlertStore { return open(t, t.TempDir(), storetest.Base()) })
}
