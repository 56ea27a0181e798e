package redisstore

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// The days in use. A lookup would have to probe every expiry day a live
// record can have (today to today + MaxTTL: 35 days), and each probe costs
// Redis a Lua call (about 1.4 µs). Only the days that hold records are
// probed instead (11 or 12 with the default 7-day lifetime): writers add
// each expiry day they write, and the next one (tomorrow's records of the
// same lifetime), to the sorted set "days"; every process reads it back
// every second. A day is announced before records of it are visible to
// others long enough for every reader to know it: the next day is
// announced a day ahead, and a day nobody announced before (the first
// record of a new lifetime, or after days without mail) makes the
// Recorder's batch wait two refreshes after announcing it. Until its first
// read, while the set is empty (a new or wiped Redis), or when it could
// not be read for 10 s, a process probes every day.

const (
	daysRefresh = time.Second
	daysStale   = 10 * time.Second
)

type dayCache struct {
	mu      sync.Mutex
	days    map[int64]bool
	fetched time.Time
	// local holds the days this process announced, and when: a read that
	// began before an announcement must not drop it.
	local map[int64]time.Time
	// remote is the size of the set as last read: while it is empty,
	// every reader probes every day, so a first day needs no wait.
	remote int
}

func (s *Store) daysKey() string { return s.key("days") }

// lookupDays is the range of expiry days a live record can have at now.
func lookupDays(now time.Time) (first, last int64) {
	first = cache.Day(now)
	return first, first + int64(cache.MaxTTL/(24*time.Hour)) + 1
}

// probeDays returns the days to look in at now, newest first: the days in
// use (and the day after each, today and tomorrow), or every day when the
// set is not known.
func (s *Store) probeDays(now time.Time) []any {
	first, last := lookupDays(now)
	s.dc.mu.Lock()
	defer s.dc.mu.Unlock()
	fresh := !s.dc.fetched.IsZero() && time.Since(s.dc.fetched) < daysStale && s.dc.remote > 0
	out := make([]any, 0, 16)
	for d := last; d >= first; d-- {
		if !fresh || d <= first+1 || s.dc.days[d] || s.dc.days[d-1] {
			out = append(out, d)
		}
	}
	return out
}

// refreshDays reads the set. It bypasses the breaker (it is no message's
// call) but does not run while the breaker is open.
func (s *Store) refreshDays(ctx context.Context) error {
	if s.br.State() == cache.BreakerOpen {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	began := time.Now()
	today := cache.Day(began)
	vals, err := s.rdb.ZRangeByScore(ctx, s.daysKey(), &redis.ZRangeBy{Min: strconv.FormatInt(today-1, 10), Max: "+inf"}).Result()
	if err != nil {
		s.reloadCluster()
		return err
	}
	m := make(map[int64]bool, len(vals))
	for _, v := range vals {
		if d, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[d] = true
		}
	}
	s.dc.mu.Lock()
	for d, at := range s.dc.local {
		if !at.Before(began.Add(-daysRefresh)) {
			m[d] = true
		} else if time.Since(at) > daysStale {
			delete(s.dc.local, d)
		}
	}
	s.dc.days, s.dc.fetched, s.dc.remote = m, time.Now(), len(vals)
	s.dc.mu.Unlock()
	return nil
}

func (s *Store) daysLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(daysRefresh)
	defer t.Stop()
	for {
		_ = s.refreshDays(uncounted(context.Background()))
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// unknownDays returns the days of ds that the fleet's set (as known here)
// does not hold, whether the set was read, and whether it held any day.
func (s *Store) unknownDays(ds []int64) (missing []int64, fetched, inUse bool) {
	s.dc.mu.Lock()
	defer s.dc.mu.Unlock()
	for _, d := range ds {
		if !s.dc.days[d] {
			missing = append(missing, d)
		}
	}
	return missing, !s.dc.fetched.IsZero(), s.dc.remote > 0
}

// announce adds days to the set (in pl) and to the local copy.
func (s *Store) announce(ctx context.Context, pl redis.Pipeliner, ds ...int64) {
	zs := make([]redis.Z, len(ds))
	for i, d := range ds {
		zs[i] = redis.Z{Score: float64(d), Member: strconv.FormatInt(d, 10)}
	}
	key := s.daysKey()
	pl.ZAdd(ctx, key, zs...)
	pl.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(cache.Day(time.Now())-1, 10))
	pl.Expire(ctx, key, cache.MaxTTL+3*24*time.Hour)
	s.dc.mu.Lock()
	if s.dc.days == nil {
		s.dc.days = make(map[int64]bool)
	}
	if s.dc.local == nil {
		s.dc.local = make(map[int64]time.Time)
	}
	now := time.Now()
	for _, d := range ds {
		s.dc.days[d], s.dc.local[d] = true, now
	}
	s.dc.mu.Unlock()
}

// daysOf returns the expiry days of ps and the day after each.
func daysOf(ps []cache.PreparedSent) (days, next []int64) {
	seen := map[int64]bool{}
	for i := range ps {
		d := ps[i].ExpiryDay()
		if !seen[d] {
			seen[d] = true
			days = append(days, d)
		}
	}
	for _, d := range days {
		if !seen[d+1] {
			seen[d+1] = true
			next = append(next, d+1)
		}
	}
	return days, next
}

// prepareDays makes sure the days of ps are announced: it returns those to
// announce in the batch's pipeline. With wait (the Recorder's batches), a
// day nobody announced before, in a set that holds others (so that
// readers probe only those), is announced first, and the batch waits until
// every process has read it. A set that is empty needs no wait: readers
// then probe every day.
func (s *Store) prepareDays(ctx context.Context, ps []cache.PreparedSent, wait bool) (inPipeline []int64, err error) {
	days, next := daysOf(ps)
	all := append(days, next...)
	missing, _, _ := s.unknownDays(all)
	if len(missing) == 0 {
		return nil, nil
	}
	if !wait {
		return missing, nil
	}
	fresh := false
	for _, d := range days {
		for _, m := range missing {
			fresh = fresh || d == m
		}
	}
	if !fresh {
		return missing, nil // tomorrow's only: in the batch
	}
	// A day nobody announced: is the set empty right now (a new or wiped
	// store, where every reader probes every day)? One read, a few times a
	// day at most.
	if err := s.refreshDays(ctx); err == nil {
		var inUse bool
		if missing, _, inUse = s.unknownDays(all); len(missing) == 0 {
			return nil, nil
		}
		if !inUse {
			return missing, nil
		}
	}
	_, err = s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		s.announce(ctx, pl, missing...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(2*daysRefresh + 100*time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, nil
}
