package redisstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// MaxBytesPerRecord is the goal for the Redis memory one record of a
// typical message costs (issue 17), with its share of the tag counters.
const MaxBytesPerRecord = 128

// typicalBatch returns the records of n messages signed on one day: 1-3
// recipients each, two messages per tag on average (a user's tag covers
// all the mail they send that day).
func typicalBatch(seed string, from, n int, at time.Time) []cache.SentMessage {
	ms := make([]cache.SentMessage, 0, n)
	for i := from; i < from+n; i++ {
		user := fmt.Sprintf("user%d.%s@example.org", i/2, seed)
		ms = append(ms, cache.SentMessage{MessageID: fmt.Sprintf("<%d.%s@mx.example.org>", i, seed), Tag: "prvs=0123abcdef=" + user, Sender: user,
			Recipients: make([]string, 1+i%3), Time: at, TTL: 10 * 24 * time.Hour})
	}
	return ms
}

func usedMemory(t testing.TB, s *Store) int64 {
	t.Helper()
	info, err := s.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// measureRecords writes n typical records to a fresh redis-server and
// returns the used_memory growth per record.
func measureRecords(t testing.TB, n int) (perRecord float64, s *Store) {
	srv := startRedis(t)
	s = openURL(t, "redis://"+srv.Addr, storetest.Relaxed(storetest.Base()))
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	before := usedMemory(t, s)
	now := time.Now()
	for i := 0; i < n; i += 256 {
		if err := s.RecordSentBatch(ctx, typicalBatch("m", i, min(256, n-i), now)); err != nil {
			t.Fatal(err)
		}
	}
	return float64(usedMemory(t, s)-before) / float64(n), s
}

// The capacity goal, on a real redis-server: bytes of Redis memory per
// record of a typical message, and the record of a 1,000-recipient
// message no bigger. BM_CAPACITY_RECORDS sets how many (default 50,000:
// a site signing 50,000 messages a day).
func TestBytesPerRecord(t *testing.T) {
	n := 50000
	if raceEnabled {
		n = 20000
	}
	if v, err := strconv.Atoi(os.Getenv("BM_CAPACITY_RECORDS")); err == nil && v > 0 {
		n = v
	}
	per, s := measureRecords(t, n)
	ctx := context.Background()
	// One record's hash, through MEMORY USAGE: the bytes of its level-0
	// hash divided by the fields in it.
	d, _ := s.h.MessageIDDigest(fmt.Sprintf("<%d.m@mx.example.org>", 7))
	g, _ := groupOf(d)
	key := dayKey(s.groupPrefix(g), cache.Day(time.Now().Add(10*24*time.Hour)))
	usage, err := s.Client().MemoryUsage(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields, _ := s.Client().HLen(ctx, key).Result()
	enc, _ := s.Client().ObjectEncoding(ctx, key).Result()
	t.Logf("%d typical records: %.1f bytes of used_memory each; MEMORY USAGE of one day hash %d bytes / %d fields (%s) = %.1f bytes per field",
		n, per, usage, fields, enc, float64(usage)/float64(max(fields, 1)))
	if per > MaxBytesPerRecord {
		t.Errorf("%.1f bytes per record, goal %d", per, MaxBytesPerRecord)
	}
	// A 1,000-recipient message costs what a 1-recipient one does: the
	// record keeps the count, not the list.
	before := usedMemory(t, s)
	var big []cache.SentMessage
	for i := 0; i < 1000; i++ {
		big = append(big, cache.SentMessage{MessageID: fmt.Sprintf("<big%d@mx.example.org>", i), Tag: fmt.Sprintf("prvs=0123abcdef=big%d@example.org", i/2),
			Sender: "big@example.org", Recipients: make([]string, 1000), Time: time.Now(), TTL: 10 * 24 * time.Hour})
	}
	if err := s.RecordSentBatch(ctx, big); err != nil {
		t.Fatal(err)
	}
	bigPer := float64(usedMemory(t, s)-before) / 1000
	t.Logf("1,000-recipient records: %.1f bytes of used_memory each", bigPer)
	if bigPer > MaxBytesPerRecord {
		t.Errorf("%.1f bytes per 1,000-recipient record", bigPer)
	}
}

// redisCPU is the server's CPU time so far (INFO cpu: user + sys).
func redisCPU(t testing.TB, s *Store) time.Duration {
	info, err := s.Client().Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	y, _ := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	return time.Duration((u + y) * float64(time.Second))
}

// capacityStore is the store the capacity benchmark measures: the
// redis-server at BM_REDIS_ADDR (bench/store-capacity.sh starts one), or
// one started here.
func capacityStore(b *testing.B) *Store {
	addr := os.Getenv("BM_REDIS_ADDR")
	if addr == "" {
		addr = startRedis(b).Addr
	}
	s := openURL(b, "redis://"+addr, storetest.Relaxed(storetest.Base()))
	if err := s.Client().FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCapacity measures, once (-benchtime 1x), what a day of signing
// costs Redis: BM_CAPACITY_PER_DAY typical records (default 200,000; the
// hashes of one expiry day hold one day's records, so a day is the unit
// that scales), written in batches of 256 as the Recorder does, then
// looked up by 16 concurrent callers (untagged bounces: one Message-ID
// each). Metrics: used_memory and MEMORY USAGE per record; records and
// lookups per second of the client (run it with GOMAXPROCS=1 for "per
// core") and Redis CPU per record and per lookup; Redis memory for a
// million messages a day kept 10 days (11 expiry days live).
func BenchmarkCapacity(b *testing.B) {
	perDay := 200_000
	if v, err := strconv.Atoi(os.Getenv("BM_CAPACITY_PER_DAY")); err == nil && v > 0 {
		perDay = v
	}
	for range b.N {
		s := capacityStore(b)
		ctx := context.Background()
		now := time.Now()
		mem0, cpu0 := usedMemory(b, s), redisCPU(b, s)
		start := time.Now()
		for i := 0; i < perDay; i += 256 {
			ms := typicalBatch("c", i, min(256, perDay-i), now)
			ps := make([]cache.PreparedSent, len(ms))
			for j, m := range ms {
				p, err := s.Prepare(m)
				if err != nil {
					b.Fatal(err)
				}
				ps[j] = p
			}
			if err := s.RecordPrepared(ctx, ps); err != nil {
				b.Fatal(err)
			}
		}
		wall := time.Since(start)
		mem1, cpu1 := usedMemory(b, s), redisCPU(b, s)
		perRecord := float64(mem1-mem0) / float64(perDay)
		b.ReportMetric(perRecord, "B/record")
		b.ReportMetric(float64(perDay)/wall.Seconds(), "records/s")
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(perDay), "redis-us/record")
		b.ReportMetric(perRecord*1e6*11/(1<<30), "GiB/(1M/day×10d)")

		// MEMORY USAGE of the level-0 hashes of a sample of groups,
		// divided by their fields.
		var usage, fields int64
		for g := 0; g < groups; g += 64 {
			key := dayKey(s.groupPrefix(g), cache.Day(now.Add(10*24*time.Hour)))
			u, err := s.Client().MemoryUsage(ctx, key, 0).Result()
			if err != nil {
				continue
			}
			n, _ := s.Client().HLen(ctx, key).Result()
			usage, fields = usage+u, fields+n
		}
		if fields > 0 {
			b.ReportMetric(float64(usage)/float64(fields), "MEMORY-USAGE-B/field")
		}

		const workers, lookups = 16, 20000
		cpu2 := redisCPU(b, s)
		start = time.Now()
		var wg sync.WaitGroup
		var found atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < lookups; i += workers {
					n := (i * 7919) % perDay
					f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{fmt.Sprintf("<%d.c@mx.example.org>", n)},
						Recipient: fmt.Sprintf("user%d.c@example.org", n/2), Now: now})
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
		wall = time.Since(start)
		if found.Load() != lookups {
			b.Fatalf("%d of %d lookups found their record", found.Load(), lookups)
		}
		b.ReportMetric(lookups/wall.Seconds(), "lookups/s")
		b.ReportMetric(float64(redisCPU(b, s)-cpu2)/float64(time.Microsecond)/lookups, "redis-us/lookup")
	}
}
