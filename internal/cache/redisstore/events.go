package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/events"
)

// Bounce events (package events) go to one stream, bm:ev, so that every
// host of a fleet sees the fleet's events: XADD with an approximate MAXLEN
// (Events.Max) and an XTRIM by MINID at the retention, per batch; reads
// page backwards with XREVRANGE. Hard bounces are also counted per
// recipient and day in a hash (bm:hb:YYYYMMDD, HINCRBY; the last time,
// reason and sender in bm:hbi:YYYYMMDD), which the suppression candidates
// read; both expire after the retention.

// maxScan bounds the events one query reads.
const maxScan = 200_000

type hardInfo struct {
	T time.Time `json:"t"`
	R string    `json:"r"`
	S string    `json:"s,omitempty"`
}

func eventDay(t time.Time) string { return t.UTC().Format("20060102") }

// AppendEvents implements events.Writer: one pipeline per batch.
func (s *Store) AppendEvents(ctx context.Context, es []events.Event) error {
	if len(es) == 0 {
		return nil
	}
	ev := s.cfg.Events
	cut := time.Now().Add(-ev.Retention)
	return s.do(ctx, "events", s.cfg.Timeout*4, func(ctx context.Context) error {
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, e := range es {
				v, err := json.Marshal(e)
				if err != nil {
					return err
				}
				pl.XAdd(ctx, &redis.XAddArgs{Stream: s.key("ev"), MaxLen: int64(ev.Max), Approx: true, Values: []any{"e", v}})
				if e.Hard && e.Kind == events.KindBounce && e.Recipient != "" {
					d := eventDay(e.Time)
					hk, ik := s.key("hb", d), s.key("hbi", d)
					pl.HIncrBy(ctx, hk, e.Recipient, 1)
					info, _ := json.Marshal(hardInfo{T: e.Time, R: e.Reason, S: e.Sender})
					pl.HSet(ctx, ik, e.Recipient, info)
					ttl := ev.Retention + 48*time.Hour
					pl.Expire(ctx, hk, ttl)
					pl.Expire(ctx, ik, ttl)
				}
			}
			pl.XTrimMinIDApprox(ctx, s.key("ev"), strconv.FormatInt(cut.UnixMilli(), 10), 0)
			return nil
		})
		return err
	})
}

// Events implements events.Reader: newest first.
func (s *Store) Events(ctx context.Context, q events.Query) ([]events.Event, error) {
	limit := events.Cap(q.Limit)
	cut := time.Now().Add(-s.cfg.Events.Retention)
	var out []events.Event
	err := s.do(ctx, "events_read", s.cfg.Timeout*8, func(ctx context.Context) error {
		out = out[:0]
		end, scanned := "+", 0
		start := "-"
		if !q.Since.IsZero() {
			// Stream ids are the writer's arrival time: a margin for the
			// events' own times.
			start = strconv.FormatInt(q.Since.Add(-time.Hour).UnixMilli(), 10)
		}
		for scanned < maxScan {
			msgs, err := s.rdb.XRevRangeN(ctx, s.key("ev"), end, start, 1000).Result()
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return nil
			}
			for _, m := range msgs {
				scanned++
				v, _ := m.Values["e"].(string)
				var e events.Event
				if json.Unmarshal([]byte(v), &e) != nil || e.Time.Before(cut) || !q.Match(e) {
					continue
				}
				out = append(out, e)
				if len(out) >= limit {
					return nil
				}
			}
			end = "(" + msgs[len(msgs)-1].ID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Suppressions implements events.Reader, from the per-day hard-bounce
// counts.
func (s *Store) Suppressions(ctx context.Context, q events.SuppressionQuery) ([]events.Suppression, error) {
	now := time.Now()
	from := now.Add(-s.cfg.Events.Retention)
	if q.Since.After(from) {
		from = q.Since
	}
	var hc events.HardCounts
	err := s.do(ctx, "events_read", s.cfg.Timeout*8, func(ctx context.Context) error {
		hc = events.HardCounts{}
		var counts, infos []*redis.MapStringStringCmd
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for d := from.UTC().Truncate(24 * time.Hour); !d.After(now); d = d.Add(24 * time.Hour) {
				counts = append(counts, pl.HGetAll(ctx, s.key("hb", eventDay(d))))
				infos = append(infos, pl.HGetAll(ctx, s.key("hbi", eventDay(d))))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, c := range counts {
			info := infos[i].Val()
			for rcpt, n := range c.Val() {
				k, _ := strconv.Atoi(n)
				var h hardInfo
				_ = json.Unmarshal([]byte(info[rcpt]), &h)
				hc.Add(rcpt, k, h.T, h.R, h.S)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return hc.Candidates(q), nil
}

var _ events.Store = (*Store)(nil)
