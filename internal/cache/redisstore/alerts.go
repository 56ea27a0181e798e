package redisstore

// The alerts' state (cache.AlertStore): see internal/cache/alerts.go for
// the keys. The lease is judged by the server's clock (TIME in the
// script), never the hosts', so that hosts whose clocks differ cannot
// both hold it; its value is "<expiry unix ms> <holder>", and the key
// expires with it. Saving checks the lease in the same script, so a host
// whose lease ran out cannot overwrite the state its successor writes.

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

func (s *Store) alertKey(part string) string { return s.prefix + "{al}:" + part }

// leaseScript: KEYS[1] the lease; ARGV holder, ttl ms. Returns 1 when the
// holder holds the lease after the call.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then
  local sp = string.find(v, ' ', 1, true)
  if sp then
    local untilms = tonumber(string.sub(v, 1, sp - 1))
    local h = string.sub(v, sp + 1)
    if untilms and untilms > now and h ~= ARGV[1] then
      return 0
    end
  end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], tostring(now + ttl) .. ' ' .. ARGV[1], 'PX', ttl)
return 1
`)

// saveScript: KEYS[1] the lease, KEYS[2] the state; ARGV holder, doc,
// TTL s. Returns 0 when the holder does not hold the lease.
var saveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local sp = string.find(v, ' ', 1, true)
if not sp then return 0 end
local untilms = tonumber(string.sub(v, 1, sp - 1))
if string.sub(v, sp + 1) ~= ARGV[1] or not untilms or untilms <= now then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
`)

// clearScript: KEYS[1] the hash; ARGV key, unix ms, max, TTL s. Returns
// 0 when the hash is full.
var clearScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`)

// AlertLease implements cache.AlertStore.
func (s *Store) AlertLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.do(ctx, "alerts", s.cfg.Timeout, func(ctx context.Context) error {
		n, err := leaseScript.Run(ctx, s.rdb, []string{s.alertKey("lease")}, holder, max(ttl.Milliseconds(), 1)).Int()
		ok = n == 1
		return err
	})
	return ok, err
}

// SaveAlerts implements cache.AlertStore.
func (s *Store) SaveAlerts(ctx context.Context, holder string, doc []byte) error {
	if err := cache.CheckAlertDoc(doc); err != nil {
		return err
	}
	var saved bool
	err := s.do(ctx, "alerts", max(s.cfg.Timeout, cache.BatchTimeout), func(ctx context.Context) error {
		n, err := saveScript.Run(ctx, s.rdb, []string{s.alertKey("lease"), s.alertKey("state")}, holder, doc,
			int64(cache.AlertStateKeep/time.Second)).Int()
		saved = n == 1
		return err
	})
	if err == nil && !saved {
		return cache.ErrNotLeaseHolder
	}
	return err
}

// LoadAlerts implements cache.AlertStore.
func (s *Store) LoadAlerts(ctx context.Context) ([]byte, error) {
	var out []byte
	err := s.do(ctx, "alerts", s.cfg.Timeout, func(ctx context.Context) error {
		b, err := s.rdb.Get(ctx, s.alertKey("state")).Bytes()
		if err == redis.Nil {
			return nil
		}
		out = b
		return err
	})
	return out, err
}

// RequestAlertClear implements cache.AlertStore.
func (s *Store) RequestAlertClear(ctx context.Context, key string, at time.Time) error {
	if err := cache.CheckAlertClear(key); err != nil {
		return err
	}
	var ok bool
	err := s.do(ctx, "alerts", s.cfg.Timeout, func(ctx context.Context) error {
		n, err := clearScript.Run(ctx, s.rdb, []string{s.alertKey("clear")}, key, at.UnixMilli(), cache.MaxAlertClears,
			int64(cache.AlertClearKeep/time.Second)).Int()
		ok = n == 1
		return err
	})
	if err == nil && !ok {
		return cache.ErrTooManyClears
	}
	return err
}

// TakeAlertClears implements cache.AlertStore.
func (s *Store) TakeAlertClears(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.do(ctx, "alerts", s.cfg.Timeout, func(ctx context.Context) error {
		k := s.alertKey("clear")
		var all *redis.MapStringStringCmd
		_, err := s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			all = pl.HGetAll(ctx, k)
			pl.Del(ctx, k)
			return nil
		})
		if err != nil {
			return err
		}
		for key, v := range all.Val() {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[key] = time.UnixMilli(ms)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ cache.AlertStore = (*Store)(nil)
