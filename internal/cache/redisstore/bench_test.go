package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// Against a real redis-server on loopback (skipped if absent). rt/op is
// measured with a go-redis hook counting commands and pipelines sent, so it
// proves one round trip per store call.

func benchStore(b *testing.B) *Store {
	srv := startRedis(b)
	s := openURL(b, "redis://"+srv.Addr, storetest.Base())
	ctx := context.Background()
	// Warm both connection pools so handshakes are not counted.
	if err := s.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.RecordSent(ctx, benchMsg(-1)); err != nil {
		b.Fatal(err)
	}
	return s
}

func benchMsg(i int64) cache.SentMessage {
	return cache.SentMessage{MessageID: fmt.Sprintf("<b%d@example.org>", i), Tag: "prvs=0123abcdef=bench@example.org", Sender: "bench@example.org",
		Recipients: []string{"a@x.test", "b@y.test"}, Time: time.Now(), TTL: 24 * time.Hour}
}

func reportRT(b *testing.B, s *Store, before uint64) {
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "rt/op")
}

func BenchmarkRecordSent(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		before := s.RoundTrips()
		for i := 0; b.Loop(); i++ {
			if err := s.RecordSent(ctx, benchMsg(int64(i))); err != nil {
				b.Fatal(err)
			}
		}
		reportRT(b, s, before)
	})
	b.Run("parallel", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(16)
		before := s.RoundTrips()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.RecordSent(ctx, benchMsg(1_000_000+n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		// Includes handshakes of the extra connections opened for parallelism.
		reportRT(b, s, before)
	})
}

func BenchmarkInbound(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	for i := int64(0); i < 1000; i++ {
		if err := s.RecordSent(ctx, benchMsg(i)); err != nil {
			b.Fatal(err)
		}
	}
	for _, count := range []bool{false, true} {
		name := map[bool]string{false: "lookup", true: "counted"}[count]
		b.Run(name, func(b *testing.B) {
			before := s.RoundTrips()
			for i := 0; b.Loop(); i++ {
				f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{"<unknown@x>", fmt.Sprintf("<b%d@example.org>", i%1000)},
					Tag: "prvs=0123abcdef=bench@example.org", Recipient: "bench@example.org", ClientIP: "192.0.2.1", Count: count, Now: time.Now()})
				if err != nil || f.Sent == nil {
					b.Fatal(f, err)
				}
			}
			reportRT(b, s, before)
		})
	}
}

// The cost of recording signed mail on Redis: one RecordSent (one
// pipeline round trip) per message, against Recorder batches of up to 256
// records per pipeline. ns/op is wall time per record until written;
// rt/op round trips per record.
func BenchmarkRecordPath(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		s := benchStore(b)
		ctx := context.Background()
		b.ReportAllocs()
		before := s.RoundTrips()
		for i := 0; b.Loop(); i++ {
			if err := s.RecordSent(ctx, benchMsg(int64(i))); err != nil {
				b.Fatal(err)
			}
		}
		reportRT(b, s, before)
	})
	b.Run("recorder", func(b *testing.B) {
		s := benchStore(b)
		r := cache.NewRecorder(s, cache.RecorderOptions{})
		b.Cleanup(func() { r.Close() })
		b.ReportAllocs()
		before := s.RoundTrips()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r.Record(benchMsg(int64(i)))
			if i%100 == 99 {
				for r.Pending() > 4096 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		if err := r.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportRT(b, s, before)
	})
}
