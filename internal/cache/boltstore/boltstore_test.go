package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// open opens a store with a budget wide enough for a loaded CI machine
// (fsync under -race with packages in parallel).
func open(t testing.TB, dir string, cfg cache.Config) *Store {
	t.Helper()
	cfg.Timeout = 3 * time.Second
	s, err := Open(cfg, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg cache.Config) cache.Store { return open(t, t.TempDir(), cfg) })
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, storetest.Base())
	tag := "prvs=0123abcdef=p@example.org"
	if err := s.RecordSent(ctx, cache.SentMessage{MessageID: "<p1@example.org>", Tag: tag, Sender: "p@example.org", Recipients: []string{"a@x.test", "b@x.test"}, Time: time.Now(), TTL: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Inbound(ctx, cache.InboundQuery{Tag: tag, Count: true, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, storetest.Base())
	f, err := s2.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"p1@example.org"}, Tag: tag, Count: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if f.Sent == nil || f.Sent.RecipientCount != 2 || f.TagRecipients != 2 || f.TagBounces != 2 {
		t.Fatalf("after reopen: %+v", f)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, storetest.Base())
	start := time.Now()
	s, err := Open(storetest.Base(), dir, nil)
	if err == nil {
		s.Close()
		t.Fatal("second open of the same file succeeded")
	}
	path := filepath.Join(dir, FileName)
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("unclear error: %v", err)
	}
	if d := time.Since(start); d > 3*OpenTimeout {
		t.Fatalf("refusal took %v", d)
	}
}

func TestDayBucketsPruned(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := storetest.Base()
	cfg.Retention = 3 * 24 * time.Hour
	s := open(t, dir, cfg)
	now := time.Now()
	for d := 0; d < 6; d++ {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		if err := s.RecordSent(ctx, cache.SentMessage{MessageID: fmt.Sprintf("<d%d@example.org>", d), Tag: "prvs=0123abcdef=d@example.org", Recipients: []string{"a@b.test"}, Time: at, TTL: 30 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if got := buckets(t, s); got != 6 {
		t.Fatalf("%d buckets before pruning", got)
	}
	// Lookups already ignore buckets beyond the retention…
	f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"d5@example.org"}, Tag: "prvs=0123abcdef=d@example.org", Now: now})
	if err != nil || f.Sent != nil || f.TagRecipients != 4 { // days 0..3
		t.Fatalf("beyond retention: %+v %v", f, err)
	}
	// …and pruning drops them.
	n, err := s.Prune(now)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if got := buckets(t, s); got != 4 {
		t.Fatalf("%d buckets after pruning", got)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"d3@example.org"}, Now: now})
	if err != nil || f.Sent == nil {
		t.Fatalf("kept record lost: %+v %v", f, err)
	}
	// Open prunes too: an old bucket left in the file is gone after reopen.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(dayName(now.Add(-10 * 24 * time.Hour)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, dir, cfg)
	if got := buckets(t, s2); got != 4 {
		t.Fatalf("%d buckets after reopen, want 4", got)
	}
}

func buckets(t *testing.T, s *Store) int {
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func([]byte, *bolt.Bucket) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentSessions(t *testing.T) {
	s := open(t, t.TempDir(), storetest.Base())
	ctx := context.Background()
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := s.RecordSent(ctx, cache.SentMessage{MessageID: fmt.Sprintf("<c%d@example.org>", i), Tag: "prvs=0123abcdef=c@example.org", Recipients: []string{"a@b.test"}, Time: time.Now(), TTL: time.Hour}); err != nil {
				t.Error(err)
			}
			if _, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("c%d@example.org", i)}, Tag: "prvs=0123abcdef=c@example.org", Count: true, Now: time.Now()}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	t.Logf("200 concurrent sessions (record + counted inbound): %v", time.Since(start))
	f, err := s.Inbound(ctx, cache.InboundQuery{Tag: "prvs=0123abcdef=c@example.org", Now: time.Now()})
	if err != nil || f.TagRecipients != 200 || f.TagBounces != 200 {
		t.Fatalf("after concurrent sessions: %+v %v", f, err)
	}
}

// A stalled file (here: a write transaction held open, as a hung disk
// would) costs a call its budget, not more.
func TestStalledWriteFailsFast(t *testing.T) {
	cfg := storetest.Base()
	s, err := Open(cfg, t.TempDir(), nil) // production budget, 250 ms
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.RecordSent(context.Background(), cache.SentMessage{MessageID: "<stall@x>", Tag: "prvs=0123abcdef=s@x", Time: time.Now()})
	d := time.Since(start)
	if !errors.Is(err, cache.ErrUnavailable) || d > cfg.Timeout+250*time.Millisecond {
		t.Fatalf("stalled write: %v after %v", err, d)
	}
	if s.DroppedRecords() != 1 {
		t.Fatalf("dropped = %d", s.DroppedRecords())
	}
	start = time.Now()
	_, err = s.Inbound(context.Background(), cache.InboundQuery{Tag: "prvs=0123abcdef=s@x", Count: true, Now: time.Now()})
	if d := time.Since(start); !errors.Is(err, cache.ErrUnavailable) || d > cfg.Timeout+250*time.Millisecond {
		t.Fatalf("stalled counted inbound: %v after %v", err, d)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}
