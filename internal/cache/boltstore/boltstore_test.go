package boltstore

import (
	"context"
	"encoding/binary"
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

// Records are bucketed by the day they expire on, whatever the retention:
// a bucket goes once its day has passed, with everything in it.
func TestExpiryBucketsPruned(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := storetest.Base()
	cfg.Retention = 3 * 24 * time.Hour // the default TTL only
	s := open(t, dir, cfg)
	now := time.Now()
	for d := 0; d < 6; d++ { // signed d days ago, each with a 4-day TTL
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		if err := s.RecordSent(ctx, cache.SentMessage{MessageID: fmt.Sprintf("<d%d@example.org>", d), Tag: "prvs=0123abcdef=d@example.org", Recipients: []string{"a@b.test"}, Time: at, TTL: 4 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// And one with a 30-day TTL, signed 20 days ago: beyond the retention,
	// within its own TTL.
	if err := s.RecordSent(ctx, cache.SentMessage{MessageID: "<long@example.org>", Recipients: []string{"a@b.test"}, Time: now.Add(-20 * 24 * time.Hour), TTL: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := buckets(t, s); got != 7 {
		t.Fatalf("%d buckets before pruning, want 7", got)
	}
	// Expiry days: today+4 … today (d = 0 … 4), yesterday (d = 5), today+10.
	// The counters are per bucket: today's still counts (day granularity).
	f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"d5@example.org"}, Tag: "prvs=0123abcdef=d@example.org", Now: now})
	if err != nil || f.Sent != nil || f.TagRecipients != 5 {
		t.Fatalf("expired record found or wrong count: %+v %v", f, err)
	}
	if f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"d4@example.org"}, Now: now}); err != nil || f.Sent != nil {
		t.Fatalf("record expired today found: %+v %v", f, err)
	}
	n, err := s.Prune(now)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d buckets, want 1: %v", n, err)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"long@example.org"}, Now: now})
	if err != nil || f.Sent == nil {
		t.Fatalf("30-day record lost after 20 days (retention 3): %+v %v", f, err)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"d3@example.org"}, Now: now})
	if err != nil || f.Sent == nil {
		t.Fatalf("live record lost: %+v %v", f, err)
	}
	// Every bucket left has a day not yet passed.
	today := string(dayName(cache.Day(now)))
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if strings.HasPrefix(string(name), dayPrefix) && string(name) < today {
				t.Errorf("bucket %s left after pruning (today %s)", name, today)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	// Open prunes too.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(dayName(cache.Day(now) - 10))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := buckets(t, s)
	s.Close()
	s2 := open(t, dir, cfg)
	if got := buckets(t, s2); got != before-1 {
		t.Fatalf("%d buckets after reopen, want %d", got, before-1)
	}
}

// A store written by the first format (JSON records with the plain-text
// sender and tag, in signing-day buckets) is upgraded when opened: its
// live records are found, with their sender match, tag counts and bounce
// counts, and nothing in plain text is left in the file.
func TestUpgradeFromJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := storetest.Base()
	h := cache.NewHasher(cfg.Secret)
	now := time.Now()
	tag := "prvs=0123abcdef=old@example.org"
	type rec struct {
		m       cache.SentMessage
		expires time.Time
	}
	recs := []rec{
		{cache.SentMessage{MessageID: "<old1@example.org>", Tag: tag, Sender: "old+ext@example.org", Recipients: []string{"a@x.test", "b@x.test"}, Time: now.Add(-2 * 24 * time.Hour)}, now.Add(8 * 24 * time.Hour)},
		{cache.SentMessage{MessageID: "<old2@example.org>", Tag: tag, Sender: "old+ext@example.org", Recipients: []string{"c@x.test"}, Time: now.Add(-time.Hour)}, now.Add(9 * 24 * time.Hour)},
		{cache.SentMessage{MessageID: "<gone@example.org>", Sender: "old@example.org", Recipients: []string{"c@x.test"}, Time: now.Add(-12 * 24 * time.Hour)}, now.Add(-2 * 24 * time.Hour)},
	}
	// Written as the first format wrote them.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			b, err := tx.CreateBucketIfNotExists([]byte("d-" + r.m.Time.UTC().Format("20060102")))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("m"+h.MessageID(r.m.MessageID)), cache.EncodeLegacyRecord(h, r.m, r.expires)); err != nil {
				return err
			}
			if r.m.Tag != "" {
				if err := b.Put([]byte("n"+h.Tag(r.m.Tag)), be8(int64(len(r.m.Recipients)))); err != nil {
					return err
				}
			}
		}
		// Today's bucket: in the first hour of a UTC day no record above
		// falls in it (old2 is an hour old), so it may not exist yet.
		b, err := tx.CreateBucketIfNotExists([]byte("d-" + now.UTC().Format("20060102")))
		if err != nil {
			return err
		}
		return b.Put([]byte("b"+h.Tag(tag)), be8(2))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, dir, cfg)
	ctx := context.Background()
	f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"old1@example.org"}, Tag: tag, Recipient: "old@example.org", Delimiter: '+', Count: true, Now: now})
	if err != nil || f.Sent == nil || f.Sent.RecipientCount != 2 || !f.SenderMatch || f.TagRecipients != 3 || f.TagBounces != 3 {
		t.Fatalf("upgraded record: %+v %v", f, err)
	}
	if !f.Sent.Time.Equal(time.Unix(recs[0].m.Time.Unix(), 0)) {
		t.Fatalf("time %v, want %v", f.Sent.Time, recs[0].m.Time)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"old2@example.org"}, Recipient: "dave@example.org", Now: now.Add(8*24*time.Hour + 12*time.Hour)})
	if err != nil || f.Sent == nil || f.SenderMatch {
		t.Fatalf("second record, another recipient, 8.5 days on: %+v %v", f, err)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"gone@example.org"}, Now: now})
	if err != nil || f.Sent != nil {
		t.Fatalf("expired record carried over: %+v %v", f, err)
	}
	s.Close()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"old+ext@example.org", "prvs=", `"s":`, "d-2"} {
		if strings.Contains(string(raw), plain) {
			t.Errorf("%q still in the file after the upgrade", plain)
		}
	}
}

func be8(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
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
	if !errors.Is(err, cache.ErrUnavailable) || d > cfg.Timeout+time.Second {
		t.Fatalf("stalled write: %v after %v", err, d)
	}
	if s.DroppedRecords() != 1 {
		t.Fatalf("dropped = %d", s.DroppedRecords())
	}
	start = time.Now()
	_, err = s.Inbound(context.Background(), cache.InboundQuery{Tag: "prvs=0123abcdef=s@x", Count: true, Now: time.Now()})
	if d := time.Since(start); !errors.Is(err, cache.ErrUnavailable) || d > cfg.Timeout+time.Second {
		t.Fatalf("stalled counted inbound: %v after %v", err, d)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}
