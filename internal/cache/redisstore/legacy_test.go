package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

// testLegacy writes keys as the first format did (a JSON string per
// record, string counters per tag, relative TTLs) and reads them back
// through the store: they are found until they expire, and counting a
// bounce adds to the old count.
func testLegacy(t *testing.T, s *Store, raw redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	tag := "prvs=0123abcdef=leg@example.org"
	m := cache.SentMessage{MessageID: "<legacy." + now.Format("150405.000000000") + "@example.org>", Tag: tag, Sender: "leg+x@example.org",
		Recipients: []string{"a@x.test", "b@x.test", "c@x.test"}, Time: now.Add(-time.Hour), TTL: 10 * 24 * time.Hour}
	id := s.h.MessageID(m.MessageID)
	tb := s.key("t", "{"+s.h.Tag(tag)+"}")
	if err := raw.Set(ctx, s.key("m", id), cache.EncodeLegacyRecord(s.h, m, m.Time.Add(m.TTL)), m.TTL).Err(); err != nil {
		t.Fatal(err)
	}
	raw.Set(ctx, tb+":n", 3, m.TTL)
	raw.Set(ctx, tb+":b", 1, m.TTL)
	f, err := s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{m.MessageID}, Tag: tag, Recipient: "leg@example.org", Delimiter: '+', Count: true, Now: now})
	if err != nil || f.Sent == nil || f.Sent.RecipientCount != 3 || !f.SenderMatch || f.TagRecipients != 3 || f.TagBounces != 2 {
		t.Fatalf("first-format record: %+v %v", f, err)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{MessageIDs: []string{m.MessageID}, Recipient: "other@example.org", Now: now})
	if err != nil || f.Sent == nil || f.SenderMatch {
		t.Fatalf("first-format record, another recipient: %+v %v", f, err)
	}
	// A compact record of the same tag adds to the old counters.
	if err := s.RecordSent(ctx, cache.SentMessage{MessageID: "<new." + id + "@example.org>", Tag: tag, Sender: "leg@example.org", Recipients: []string{"d@x.test"}, Time: now, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	f, err = s.Inbound(ctx, cache.InboundQuery{Tag: tag, Now: now})
	if err != nil || f.TagRecipients != 4 || f.TagBounces != 2 {
		t.Fatalf("mixed formats: %+v %v", f, err)
	}
}

func TestMiniredisLegacy(t *testing.T) {
	m := miniredis.RunT(t)
	s := openMini(t, m, storetest.Base())
	raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer raw.Close()
	testLegacy(t, s, raw)
}
