package redisstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
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
	s = openURL(t, "redis://"+srv.Addr, relaxed(storetest.Base()))
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
