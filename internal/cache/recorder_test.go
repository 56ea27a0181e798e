package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// flaky is the memory store with switches that make writes, or reads,
// fail as an unavailable store does; it counts the batches written.
type flaky struct {
	*cache.MemoryStore
	failWrites, failReads atomic.Bool
	batches, records      atomic.Int64
}

// newFlaky returns a store that is not new (it has an epoch), so that
// only the gaps a test makes show.
func newFlaky() *flaky {
	s := &flaky{MemoryStore: cache.NewMemoryStore(storetest.Base())}
	s.Epoch(context.Background(), "test-epoch")
	return s
}

var errDown = cache.Unavailable("memory", "test", errors.New("disk full"))

func (s *flaky) RecordPrepared(ctx context.Context, ps []cache.PreparedSent) error {
	if s.failWrites.Load() {
		return errDown
	}
	s.batches.Add(1)
	s.records.Add(int64(len(ps)))
	return s.MemoryStore.RecordPrepared(ctx, ps)
}

func (s *flaky) RecordSentBatch(ctx context.Context, ms []cache.SentMessage) error {
	if s.failWrites.Load() {
		return errDown
	}
	s.batches.Add(1)
	s.records.Add(int64(len(ms)))
	return s.MemoryStore.RecordSentBatch(ctx, ms)
}

// Close leaves the memory store open: a test may hand it to a second
// Recorder, as a restart reopens the same file.
func (s *flaky) Close() error { return nil }

func (s *flaky) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	if s.failReads.Load() {
		return cache.InboundFacts{}, errDown
	}
	return s.MemoryStore.Inbound(ctx, q)
}

func msg(i int, at time.Time) cache.SentMessage {
	return cache.SentMessage{MessageID: fmt.Sprintf("<r%d@example.org>", i), Tag: fmt.Sprintf("prvs=0123abcdef=u%d@example.org", i%10),
		Sender: fmt.Sprintf("u%d@example.org", i%10), Recipients: []string{"a@x.test", "b@x.test"}, Time: at, TTL: time.Hour}
}

func found(t *testing.T, st cache.Store, i int, at time.Time) cache.InboundFacts {
	t.Helper()
	f, err := st.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("r%d@example.org", i)},
		Recipient: fmt.Sprintf("u%d@example.org", i%10), Now: at})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func flush(t *testing.T, r *cache.Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// Records are written in batches: 2,000 records queued at once take about
// 2000/256 batches, not 2,000 transactions.
func TestRecorderBatches(t *testing.T) {
	st := newFlaky()
	r := cache.NewRecorder(st, cache.RecorderOptions{})
	defer r.Close()
	now := time.Now()
	for i := 0; i < 2000; i++ {
		r.Record(msg(i, now))
	}
	elapsed := time.Since(now)
	flush(t, r)
	if n := st.records.Load(); n != 2000 {
		t.Fatalf("%d records written", n)
	}
	// A batch is written when full, or when its first record waited 20 ms.
	if b, most := st.batches.Load(), int64(2000/256+elapsed/(20*time.Millisecond)+2); b > most {
		t.Fatalf("%d batches for 2,000 records queued in %v (at most %d)", b, elapsed, most)
	}
	if f := found(t, st.MemoryStore, 1234, now); f.Sent == nil || !f.SenderMatch {
		t.Fatalf("record not in the store: %+v", f)
	}
	// A lone record waits at most MaxDelay.
	start := time.Now()
	r.Record(msg(5000, now))
	for found(t, st.MemoryStore, 5000, now).Sent == nil {
		if time.Since(start) > 2*time.Second {
			t.Fatal("a lone record was not written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st2 := r.Stats()
	t.Logf("2,001 records in %d batches; stats %+v", st.batches.Load(), st2)
}

// While the store cannot write, records are kept, count as evidence (and
// for their tag), and are written when it can again; the health check
// reports the failing writes meanwhile.
func TestRecorderKeepsAndRetries(t *testing.T) {
	st := newFlaky()
	st.failWrites.Store(true)
	r := cache.NewRecorder(st, cache.RecorderOptions{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	defer r.Close()
	now := time.Now()
	for i := 0; i < 100; i++ {
		r.Record(msg(i, now))
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.WriteError() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no write error reported while writes fail")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.WriteError(); !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "100 sent records waiting") {
		t.Fatalf("write error = %v", err)
	}
	if err := r.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v (reads work)", err)
	}
	// Pending records are evidence, with the sender match, and their
	// recipients count for the tag.
	f := found(t, r, 42, now)
	if f.Sent == nil || !f.SenderMatch || f.Sent.RecipientCount != 2 {
		t.Fatalf("pending record not found: %+v", f)
	}
	tf, err := r.Inbound(context.Background(), cache.InboundQuery{Tag: "prvs=0123abcdef=u3@example.org", Count: true, Now: now})
	if err != nil || tf.TagRecipients != 20 || tf.TagBounces != 1 || tf.Replayed {
		t.Fatalf("pending tag: %+v %v", tf, err)
	}
	// With reads failing too, a pending record still answers (the store
	// error is returned only when nothing here helps).
	st.failReads.Store(true)
	f, err = r.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"<r7@example.org>"}, Recipient: "u7@example.org", Now: now})
	if err != nil || f.Sent == nil || !f.SenderMatch {
		t.Fatalf("pending record with the store down: %+v %v", f, err)
	}
	if _, err := r.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"<none@example.org>"}, Now: now}); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("store down, no pending record: err = %v", err)
	}
	st.failReads.Store(false)
	st.failWrites.Store(false)
	flush(t, r)
	if st.records.Load() != 100 || r.Pending() != 0 || r.WriteError() != nil || r.DroppedRecords() != 0 {
		t.Fatalf("after recovery: %d written, %d pending, write error %v, %d given up", st.records.Load(), r.Pending(), r.WriteError(), r.DroppedRecords())
	}
	if f := found(t, st.MemoryStore, 42, now); f.Sent == nil {
		t.Fatal("record not written after recovery")
	}
}

// syncBuf is a log sink the test can read while the recorder writes.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Beyond MaxPending records are given up: counted, reported through
// OnGiveUp, logged in one summary line per interval (never one per
// record), and their time span is a gap.
func TestRecorderGivesUpBounded(t *testing.T) {
	st := newFlaky()
	st.failWrites.Store(true)
	var logs syncBuf
	var gave atomic.Int64
	// Taken before the recorder starts its log ticker: the bound on log
	// lines below counts every interval it can have had.
	start := time.Now()
	r := cache.NewRecorder(st, cache.RecorderOptions{MaxPending: 1000, FlushTimeout: 10 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		LogEvery: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnGiveUp: func(n int) { gave.Add(int64(n)) }})
	defer r.Close()
	t0 := time.Now().Truncate(time.Second)
	for i := 0; i < 20000; i++ {
		r.Record(msg(i, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	// The summary of the interval in which the last records were given up.
	waitUntil(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "given_up_total=19000") },
		func() string { return "summary does not count the records given up:\n" + logs.String() })
	if r.Pending() != 1000 || r.DroppedRecords() != 19000 || gave.Load() != 19000 {
		t.Fatalf("pending %d, given up %d (hook %d)", r.Pending(), r.DroppedRecords(), gave.Load())
	}
	gaps := r.Gaps(t0)
	// Records keep whole seconds; a gap covers the whole second of each.
	first, last := t0.Add(time.Second), t0.Add(20*time.Second)
	if len(gaps) != 1 || !gaps[0].From.Equal(first) || !gaps[0].To.Equal(last) {
		t.Fatalf("gaps %v, want [%v, %v]", gaps, first, last)
	}
	f := found(t, r, 5, t0)
	if len(f.Gaps) != 1 {
		t.Fatalf("facts without the gap: %+v", f)
	}
	lines := strings.Count(logs.String(), "\n")
	if intervals := int(time.Since(start) / (100 * time.Millisecond)); lines == 0 || lines > intervals+2 {
		t.Fatalf("%d log lines for 19,000 records given up:\n%s", lines, logs.String())
	}
}

// Close writes what is pending; what the store cannot take is spooled
// (embedded store) and written by the next Recorder.
func TestRecorderSpool(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "outbox.spool")
	st := newFlaky()
	r := cache.NewRecorder(st, cache.RecorderOptions{SpoolPath: spool, FlushTimeout: 100 * time.Millisecond})
	now := time.Now()
	for i := 0; i < 300; i++ {
		r.Record(msg(i, now))
	}
	st.failWrites.Store(true)
	for i := 300; i < 800; i++ {
		r.Record(msg(i, now))
	}
	time.Sleep(50 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(spool)
	if err != nil {
		t.Fatalf("no spool: %v", err)
	}
	for _, plain := range []string{"example.org", "prvs="} {
		if strings.Contains(string(b), plain) {
			t.Fatalf("plain text %q in the spool", plain)
		}
	}
	written := st.records.Load()
	// The restarted store refuses writes until the reloaded records are
	// counted: the new writer starts at once and would otherwise race the
	// count.
	st2 := &flaky{MemoryStore: st.MemoryStore}
	st2.failWrites.Store(true)
	r2 := cache.NewRecorder(st2, cache.RecorderOptions{SpoolPath: spool, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	defer r2.Close()
	if p := r2.Pending(); int64(p)+written != 800 {
		t.Fatalf("reloaded %d, written before %d", p, written)
	}
	st2.failWrites.Store(false)
	flush(t, r2)
	if got := st2.records.Load(); got+written != 800 {
		t.Fatalf("written after the restart %d, before %d", got, written)
	}
	for _, i := range []int{0, 299, 300, 799} {
		if f := found(t, st2.MemoryStore, i, now); f.Sent == nil || !f.SenderMatch {
			t.Fatalf("record %d lost across the restart: %+v", i, f)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Fatalf("spool left after its records were written: %v", err)
	}
}

// A store without Batcher (another implementation) gets whole messages.
func TestRecorderForeignStore(t *testing.T) {
	st := newFlaky()
	r := cache.NewRecorder(struct{ cache.Store }{st}, cache.RecorderOptions{})
	now := time.Now()
	for i := 0; i < 10; i++ {
		r.Record(msg(i, now))
	}
	if f := found(t, r, 3, now); f.Sent == nil || !f.SenderMatch {
		t.Fatalf("pending record: %+v", f)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st.records.Load() != 10 {
		t.Fatalf("%d written", st.records.Load())
	}
}

func TestMergeWindows(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 1, 0, m, 0, 0, time.UTC) }
	w := func(a, b int) cache.Window { return cache.Window{From: at(a), To: at(b)} }
	got := cache.MergeWindows([]cache.Window{w(10, 20), w(0, 5), w(15, 30), w(40, 41), w(50, 50), w(50, 45)}, time.Time{}, 0)
	want := []cache.Window{w(0, 5), w(10, 30), w(40, 41), w(45, 50)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
	// Bounded: the closest pair merges first.
	got = cache.MergeWindows(append([]cache.Window(nil), want...), time.Time{}, 3)
	if fmt.Sprint(got) != fmt.Sprint([]cache.Window{w(0, 5), w(10, 30), w(40, 50)}) {
		t.Fatalf("bounded: %v", got)
	}
	// Old ones go.
	got = cache.MergeWindows([]cache.Window{w(0, 1), w(10, 20)}, at(1).Add(cache.MaxTTL+time.Minute), 0)
	if len(got) != 1 || !got[0].From.Equal(at(10)) {
		t.Fatalf("pruned: %v", got)
	}
}
