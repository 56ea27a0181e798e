package redisstore

// Monitoring statistics (cache.StatsStore): see internal/cache/stats.go
// for what they are and the keys. A write is one pipeline (a few seconds
// apart: package stats batches them): counters by HINCRBY, sets by ZINCRBY
// then trimmed to the top members (ZREMRANGEBYRANK), marks by RPUSH then
// LTRIM, every key with an EXPIREAT at the end of its retention, so that
// nothing is ever scanned or deleted one by one. A read is one pipeline
// over the buckets of the range.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// statsKey is "bm:st:{5m:<unix start>}:<part>": one hash tag per bucket.
func (s *Store) statsKey(w time.Duration, start time.Time, part string) string {
	return s.prefix + "st:{" + cache.StatsWidthName(w) + ":" + strconv.FormatInt(start.Unix(), 10) + "}:" + part
}

func (s *Store) latestKey() string { return s.key("st", "latest") }

// latestScript keeps values by maximum or minimum. KEYS[1]: the hash.
// ARGV: TTL (s), then triplets field, value, "max"|"min".
var latestScript = redis.NewScript(`
for i = 2, #ARGV, 3 do
  local f, v, op = ARGV[i], tonumber(ARGV[i+1]), ARGV[i+2]
  local c = redis.call('HGET', KEYS[1], f)
  if not c or (op == 'max' and v > tonumber(c)) or (op == 'min' and v < tonumber(c)) then
    redis.call('HSET', KEYS[1], f, ARGV[i+1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
`)

// AddStats implements cache.StatsStore: one pipeline.
func (s *Store) AddStats(ctx context.Context, w cache.StatsWrite) error {
	for _, b := range w.Buckets {
		if err := cache.ValidStatsWidth(b.Width); err != nil {
			return err
		}
	}
	now := time.Now()
	return s.do(ctx, "stats", max(s.cfg.Timeout, cache.BatchTimeout), func(ctx context.Context) error {
		return s.pipeline(ctx, func(pl redis.Pipeliner, script func(sc *redis.Script, keys []string, args ...any) *scriptCall) {
			for _, b := range w.Buckets {
				exp := cache.StatsExpiry(b.Width, b.Start)
				if !exp.After(now) {
					continue
				}
				if len(b.Counts) > 0 {
					k := s.statsKey(b.Width, b.Start, "c")
					for f, n := range b.Counts {
						pl.HIncrBy(ctx, k, f, n)
					}
					pl.ExpireAt(ctx, k, exp)
				}
				for name, members := range b.Sets {
					if len(members) == 0 {
						continue
					}
					k := s.statsKey(b.Width, b.Start, "s:"+name)
					for m, n := range members {
						pl.ZIncrBy(ctx, k, float64(n), m)
					}
					pl.ZRemRangeByRank(ctx, k, 0, -int64(cache.StatsTopKeep)-1)
					pl.ExpireAt(ctx, k, exp)
				}
				if len(b.Marks) > 0 {
					k := s.statsKey(b.Width, b.Start, "m")
					vals := make([]any, len(b.Marks))
					for i, m := range b.Marks {
						vals[i] = strconv.FormatInt(m.Time.UnixMilli(), 10) + " " + cache.ClipMark(m.Text)
					}
					pl.RPush(ctx, k, vals...)
					pl.LTrim(ctx, k, -int64(cache.StatsMaxMarks), -1)
					pl.ExpireAt(ctx, k, exp)
				}
			}
			if len(w.Max)+len(w.Min) > 0 {
				args := []any{int64(cache.StatsLatestKeep / time.Second)}
				for f, v := range w.Max {
					args = append(args, f, v, "max")
				}
				for f, v := range w.Min {
					args = append(args, f, v, "min")
				}
				script(latestScript, []string{s.latestKey()}, args...)
			}
		})
	})
}

// ReadStats implements cache.StatsStore: one pipeline over the buckets of
// the range (at most StatsMaxRead, within their retention).
func (s *Store) ReadStats(ctx context.Context, q cache.StatsQuery) ([]cache.StatsBucket, error) {
	if err := cache.ValidStatsWidth(q.Width); err != nil {
		return nil, err
	}
	now := time.Now()
	from := q.From.Truncate(q.Width)
	if from.Before(q.From) {
		from = from.Add(q.Width)
	}
	if oldest := now.Add(-cache.StatsKeep(q.Width) - q.Width).Truncate(q.Width); from.Before(oldest) {
		from = oldest
	}
	if first := q.To.Add(-time.Duration(cache.StatsMaxRead) * q.Width).Truncate(q.Width); from.Before(first) {
		from = first
	}
	type reads struct {
		start  time.Time
		counts *redis.MapStringStringCmd
		sets   []*redis.ZSliceCmd
		marks  *redis.StringSliceCmd
	}
	var rs []*reads
	top := int64(cache.StatsTop(q.Top))
	err := s.do(ctx, "stats", max(s.cfg.Timeout, cache.BatchTimeout), func(ctx context.Context) error {
		rs = nil
		cmds, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for t := from; t.Before(q.To); t = t.Add(q.Width) {
				r := &reads{start: t.UTC(), counts: pl.HGetAll(ctx, s.statsKey(q.Width, t, "c"))}
				for _, name := range q.Sets {
					r.sets = append(r.sets, pl.ZRevRangeWithScores(ctx, s.statsKey(q.Width, t, "s:"+name), 0, top-1))
				}
				if q.Marks {
					r.marks = pl.LRange(ctx, s.statsKey(q.Width, t, "m"), 0, -1)
				}
				rs = append(rs, r)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return firstErr(cmds)
	})
	if err != nil {
		return nil, err
	}
	var out []cache.StatsBucket
	for _, r := range rs {
		b := cache.StatsBucket{Width: q.Width, Start: r.start, Counts: map[string]int64{}, Sets: map[string]map[string]int64{}}
		empty := true
		for f, v := range r.counts.Val() {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				b.Counts[f] = n
				empty = false
			}
		}
		for i, c := range r.sets {
			zs := c.Val()
			if len(zs) == 0 {
				continue
			}
			m := make(map[string]int64, len(zs))
			for _, z := range zs {
				if name, ok := z.Member.(string); ok {
					m[name] = int64(z.Score)
				}
			}
			b.Sets[q.Sets[i]] = m
			empty = false
		}
		if r.marks != nil {
			for _, v := range r.marks.Val() {
				ms, text, ok := strings.Cut(v, " ")
				n, err := strconv.ParseInt(ms, 10, 64)
				if !ok || err != nil {
					continue
				}
				b.Marks = append(b.Marks, cache.StatsMark{Time: time.UnixMilli(n).UTC(), Text: text})
				empty = false
			}
		}
		if !empty {
			out = append(out, b)
		}
	}
	return out, nil
}

// StatsLatest implements cache.StatsStore.
func (s *Store) StatsLatest(ctx context.Context) (map[string]int64, error) {
	var vals map[string]string
	err := s.do(ctx, "stats", s.cfg.Timeout, func(ctx context.Context) error {
		var err error
		vals, err = s.rdb.HGetAll(ctx, s.latestKey()).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(vals))
	for f, v := range vals {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[f] = n
		}
	}
	return out, nil
}

var _ cache.StatsStore = (*Store)(nil)
