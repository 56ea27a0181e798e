package boltstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// Store operations per message: one RecordSent per signed message; one
// Inbound per bounce (and recipient). Each is one bbolt transaction.

func benchMsg(i int64) cache.SentMessage {
	return cache.SentMessage{MessageID: fmt.Sprintf("<b%d@example.org>", i), Tag: "prvs=0123abcdef=bench@example.org", Sender: "bench@example.org",
		Recipients: []string{"a@x.test", "b@y.test"}, Time: time.Now(), TTL: 24 * time.Hour}
}

func BenchmarkRecordSent(b *testing.B) {
	s := open(b, b.TempDir(), storetest.Base())
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := s.RecordSent(ctx, benchMsg(int64(i))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(1, "txn/op")
	})
	b.Run("parallel", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(16) // concurrent milter sessions share fsyncs (db.Batch)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.RecordSent(ctx, benchMsg(1_000_000+n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkInbound(b *testing.B) {
	s := open(b, b.TempDir(), storetest.Base())
	ctx := context.Background()
	for i := int64(0); i < 1000; i++ {
		if err := s.RecordSent(ctx, benchMsg(i)); err != nil {
			b.Fatal(err)
		}
	}
	q := func(i int, count bool) cache.InboundQuery {
		return cache.InboundQuery{MessageIDs: []string{"<unknown@x>", fmt.Sprintf("<b%d@example.org>", i%1000)}, Tag: "prvs=0123abcdef=bench@example.org",
			Recipient: "bench@example.org", ClientIP: "192.0.2.1", Count: count, Now: time.Now()}
	}
	b.Run("lookup", func(b *testing.B) { // read-only transaction
		for i := 0; b.Loop(); i++ {
			if f, err := s.Inbound(ctx, q(i, false)); err != nil || f.Sent == nil {
				b.Fatal(f, err)
			}
		}
	})
	b.Run("counted", func(b *testing.B) { // write transaction (bounce counter)
		for i := 0; b.Loop(); i++ {
			if _, err := s.Inbound(ctx, q(i, true)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The cost of recording signed mail, as the milter pays it: before, one
// RecordSent (one transaction, two fdatasyncs) per message from one
// writer goroutine; after, Recorder.Record per message and batches of up
// to 256 written in the background. ns/op is wall time per record until
// it is on disk; cpu-ns/op the process's CPU time per record (what the
// daemon takes from mail throughput); txn/op the write transactions per
// record (each costs two fdatasyncs).
func BenchmarkRecordPath(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		s := open(b, b.TempDir(), storetest.Base())
		ctx := context.Background()
		b.ReportAllocs()
		cpu := cpuTime()
		for i := 0; b.Loop(); i++ {
			if err := s.RecordSent(ctx, benchMsg(int64(i))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(1, "txn/op")
	})
	b.Run("recorder", func(b *testing.B) {
		s := open(b, b.TempDir(), storetest.Base())
		r := cache.NewRecorder(s, cache.RecorderOptions{})
		b.Cleanup(func() { r.Close() })
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime()
		for i := 0; i < b.N; i++ {
			r.Record(benchMsg(int64(i)))
			if i%100 == 99 {
				// About a millisecond of mail at 550 msg/s... arrives in
				// bursts; keep the outbox from running ahead unboundedly.
				for r.Pending() > 4096 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		if err := r.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		st := r.Stats()
		b.ReportMetric(float64(st.Batches)/float64(st.Written), "txn/op")
	})
}

// BenchmarkCapacity measures, once (-benchtime 1x), BM_CAPACITY_PER_DAY
// typical records (default 200,000) written to a fresh file in batches of
// 256 (as the Recorder writes them, with fdatasync), then looked up by 16
// concurrent callers (one Message-ID each, as an untagged bounce). Run it
// with GOMAXPROCS=1 for figures per core. Metrics: records and lookups
// per second, file bytes per record on disk and in data pages, and the
// disk a million messages a day kept 10 days take.
func BenchmarkCapacity(b *testing.B) {
	perDay := 200_000
	if v, err := strconv.Atoi(os.Getenv("BM_CAPACITY_PER_DAY")); err == nil && v > 0 {
		perDay = v
	}
	for range b.N {
		s := open(b, b.TempDir(), storetest.Base())
		ctx := context.Background()
		now := time.Now()
		start, cpu := time.Now(), cpuTime()
		for i := 0; i < perDay; i += 256 {
			var ps []cache.PreparedSent
			for j := i; j < min(i+256, perDay); j++ {
				user := fmt.Sprintf("user%d@example.org", j/2)
				p, err := s.Prepare(cache.SentMessage{MessageID: fmt.Sprintf("<%d.c@mx.example.org>", j), Tag: "prvs=0123abcdef=" + user,
					Sender: user, Recipients: make([]string, 1+j%3), Time: now, TTL: 10 * 24 * time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				ps = append(ps, p)
			}
			if err := s.RecordPrepared(ctx, ps); err != nil {
				b.Fatal(err)
			}
		}
		wall, used := time.Since(start), cpuTime()-cpu
		b.ReportMetric(float64(perDay)/wall.Seconds(), "records/s")
		b.ReportMetric(float64(used)/float64(time.Microsecond)/float64(perDay), "cpu-us/record")
		u := measureFile(b, s)
		b.ReportMetric(per(u.disk, perDay), "disk-B/record")
		b.ReportMetric(per(u.used, perDay), "data-B/record")
		b.ReportMetric(per(u.disk, perDay)*1e6*11/(1<<30), "GiB/(1M/day×10d)")

		const workers, lookups = 16, 50000
		start, cpu = time.Now(), cpuTime()
		var wg sync.WaitGroup
		var found atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < lookups; i += workers {
					n := (i * 7919) % perDay
					f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("<%d.c@mx.example.org>", n)},
						Recipient: fmt.Sprintf("user%d@example.org", n/2), Now: now})
					if err != nil {
						b.Error(err)
						return
					}
					if f.Sent != nil && f.SenderMatch {
						found.Add(1)
					}
				}
			}(w)
		}
		wg.Wait()
		wall, used = time.Since(start), cpuTime()-cpu
		if found.Load() != lookups {
			b.Fatalf("%d of %d lookups found their record", found.Load(), lookups)
		}
		b.ReportMetric(lookups/wall.Seconds(), "lookups/s")
		b.ReportMetric(float64(used)/float64(time.Microsecond)/lookups, "cpu-us/lookup")
	}
}
