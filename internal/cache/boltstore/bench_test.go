package boltstore

import (
	"context"
	"fmt"
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
