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
