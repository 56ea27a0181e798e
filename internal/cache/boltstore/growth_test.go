package boltstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// liveRecords counts the records in the day buckets (not the counters).
func liveRecords(t testing.TB, s *Store) (n int) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name[:2]) != dayPrefix {
				return nil
			}
			return b.ForEach(func(k, _ []byte) error {
				if len(k) == 8 {
					n++
				}
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// fileUse is what the store file takes: its apparent size (bbolt extends
// it in steps, doubling up to 1 GiB), the blocks allocated on disk (the
// extension is sparse until written) and the bytes of pages holding data
// (high-water mark less free pages).
type fileUse struct{ size, disk, used int64 }

func measureFile(t testing.TB, s *Store) fileUse {
	t.Helper()
	var u fileUse
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	u.size = fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		u.disk = st.Blocks * 512
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		u.used = tx.Size() - int64(s.db.Stats().FreePageN)*int64(s.db.Info().PageSize)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

// growth signs perDay typical messages a day (10-day TTL, two messages per
// tag, 1-3 recipients) for days days on a simulated clock, pruning at the
// start of each day as the hourly loop would, and reports the file size
// and the bytes per live record at the end of each day.
func growth(t testing.TB, days, perDay int, report func(day int, u fileUse, live int)) {
	dir := t.TempDir()
	s := open(t, dir, storetest.Base())
	s.db.NoSync, s.db.NoGrowSync = true, true // the layout is measured here, not the disk
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for day := 0; day < days; day++ {
		dayStart := start.Add(time.Duration(day) * 24 * time.Hour)
		if _, err := s.Prune(dayStart); err != nil {
			t.Fatal(err)
		}
		batch := make([]cache.SentMessage, 0, 256)
		for i := 0; i < perDay; i++ {
			at := dayStart.Add(time.Duration(i) * 24 * time.Hour / time.Duration(perDay))
			user := fmt.Sprintf("u%d-%d@example.org", day, i/2)
			batch = append(batch, cache.SentMessage{MessageID: fmt.Sprintf("<%d.%d@example.org>", day, i), Tag: "prvs=0123abcdef=" + user,
				Sender: user, Recipients: make([]string, 1+i%3), Time: at, TTL: 10 * 24 * time.Hour})
			if len(batch) == cap(batch) || i == perDay-1 {
				if err := s.RecordSentBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		report(day, measureFile(t, s), liveRecords(t, s))
	}
}

// The file does not grow past its live records: over 30 simulated days of
// steady signing (20,000 messages a day, 10-day TTL), the pages of the
// dropped day buckets are reused, so the size levels off once records
// start to expire (day 10) instead of growing with every day written.
func TestFileGrowth30Days(t *testing.T) {
	perDay := 3000 // BM_GROWTH_PER_DAY=20000 for the figure in docs/fleet.md
	if raceEnabled {
		perDay = 600
	}
	if v, err := strconv.Atoi(os.Getenv("BM_GROWTH_PER_DAY")); err == nil && v > 0 {
		perDay = v
	}
	var sizes []int64
	var last fileUse
	growth(t, 30, perDay, func(day int, u fileUse, live int) {
		sizes, last = append(sizes, u.size), u
		if day%3 == 2 || day == 29 {
			t.Logf("day %2d: %7d live records; file %5.1f MiB (%5.1f B/record), on disk %5.1f MiB (%5.1f B/record), data pages %5.1f MiB (%5.1f B/record)",
				day+1, live, mib(u.size), per(u.size, live), mib(u.disk), per(u.disk, live), mib(u.used), per(u.used, live))
		}
	})
	steady := sizes[12]
	for day := 13; day < 30; day++ {
		if sizes[day] > steady*5/4 {
			t.Errorf("day %d: file %d bytes, more than 1.25 × day 13's %d: free pages are not reused", day+1, sizes[day], steady)
		}
	}
	live := 11 * perDay // at most 11 days of records are live
	if p := per(last.used, live); p > MaxBytesPerRecord {
		t.Errorf("%.0f bytes of data pages per live record, goal %d", p, MaxBytesPerRecord)
	}
	if p := per(last.disk, live); p > 2*MaxBytesPerRecord {
		t.Errorf("%.0f bytes on disk per live record", p)
	}
}

// MaxBytesPerRecord is the goal for the file bytes one record of a typical
// message costs, with its share of the tag counters (issue 17).
const MaxBytesPerRecord = 128

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func per(n int64, live int) float64 { return float64(n) / float64(max(live, 1)) }

// A file left mostly free (the volume dropped, or old buckets went) is
// compacted when opened: its size follows the live data again.
func TestCompactOnOpen(t *testing.T) {
	old := compactMinSize
	compactMinSize = 1 << 20
	t.Cleanup(func() { compactMinSize = old })
	dir := t.TempDir()
	cfg := storetest.Base()
	s := open(t, dir, cfg)
	s.db.NoSync, s.db.NoGrowSync = true, true
	ctx := context.Background()
	now := time.Now()
	var batch []cache.SentMessage
	n := 30000
	if raceEnabled {
		n = 10000
	}
	for i := 0; i < n; i++ {
		ttl := time.Hour // expired by tomorrow
		if i%100 == 0 {
			ttl = 20 * 24 * time.Hour
		}
		batch = append(batch, cache.SentMessage{MessageID: fmt.Sprintf("<c%d@example.org>", i), Sender: "c@example.org", Recipients: []string{"a@b.test"}, Time: now, TTL: ttl})
		if len(batch) == 256 {
			if err := s.RecordSentBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	big := measureFile(t, s)
	if _, err := s.Prune(now.Add(48 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, dir, cfg)
	small := measureFile(t, s2)
	t.Logf("before: file %d, disk %d; after pruning 99%% and reopening: file %d, disk %d", big.size, big.disk, small.size, small.disk)
	if small.size*4 > big.size {
		t.Fatalf("not compacted: %d bytes, was %d", small.size, big.size)
	}
	f, err := s2.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"<c100@example.org>"}, Now: now})
	if err != nil || f.Sent == nil {
		t.Fatalf("live record lost by compaction: %+v %v", f, err)
	}
}
