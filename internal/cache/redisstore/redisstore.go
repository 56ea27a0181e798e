// Package redisstore is the Redis implementation of cache.Store, for a
// fleet of bounce-milter processes sharing one state (standalone Redis,
// Sentinel or Cluster, through go-redis's UniversalClient).
//
// # Latency budget
//
// A store call sits on a milter command, which Postfix aborts after
// milter_command_timeout (30 s by default). go-redis by default waits 5 s
// per dial and per read, retries three times and ignores context deadlines,
// so a hung Redis would cost tens of seconds. Here every client has
// ContextTimeoutEnabled, short dial/read/write/pool timeouts, no command
// retries (MaxRetries -1) and one dial attempt; every call runs under
// Config.Timeout (250 ms by default); and a circuit breaker refuses calls
// for BreakerCooldown after BreakerFailures consecutive failures, so that
// while Redis is down a message pays microseconds, not the timeout. Errors
// match cache.ErrUnavailable.
//
// # Round trips and keys
//
// Each method is one pipeline: one round trip with standalone Redis or
// Sentinel. In a Cluster the pipeline is split by node and the parts run in
// parallel (one round trip of latency, up to one exchange per master);
// RoundTrips counts exchanges per node. Keys that one script touches share
// a hash tag so they live in one slot:
//
//	bm:m:<msgid-hash>                 sent record (JSON), TTL of the message
//	bm:t:{<tag-hash>}:n               recipients signed with the tag (INCRBY)
//	bm:t:{<tag-hash>}:b               bounces counted against the tag (INCR)
//	bm:fr:{<rcpt-hash>}:<window>      null-sender count per recipient and window
//	bm:fr:{<rcpt-hash>}:s              end of the strict state (unix ms)
//	bm:fi:{<ip-hash>}:...             the same per client IP
//
// The flood counters run as a Lua script (EVAL) per key, so that counting,
// the threshold test and entering the strict state are atomic across the
// fleet. Scripts need Redis 5 or newer (effects replication).
package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

const backendName = "redis"

// Store is a cache.Store on Redis.
type Store struct {
	cfg    cache.Config
	rdb    redis.UniversalClient
	h      *cache.Hasher
	br     *cache.Breaker
	log    *slog.Logger
	obs    cache.Observer
	prefix string

	roundTrips atomic.Uint64
	dropped    atomic.Uint64

	logMu       sync.Mutex
	lastDropLog time.Time
}

// New connects lazily (no I/O here) and returns the store. cfg must be
// valid (WithDefaults, Validate).
func New(cfg cache.Config, log *slog.Logger) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, h: cache.NewHasher(cfg.Secret), log: log.With("store", "redis", "mode", cfg.Redis.Mode()), obs: cfg.Observer, prefix: cfg.Redis.KeyPrefix}
	s.br = cache.NewBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, func(state string) {
		if state == cache.BreakerOpen {
			s.log.Warn("redis store circuit breaker open: store calls fail at once", "cooldown", cfg.BreakerCooldown)
		} else {
			s.log.Info("redis store circuit breaker " + state)
		}
		if s.obs != nil {
			s.obs.BreakerState(state)
		}
	})
	s.rdb = redis.NewUniversalClient(opt)
	hook := countHook{n: &s.roundTrips}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		cc.OnNewNode(func(c *redis.Client) { c.AddHook(hook) })
	} else {
		s.rdb.AddHook(hook)
	}
	return s, nil
}

// Options maps the configuration to go-redis options (exported for tests
// and for the lead's `serve --redis` diagnostics).
func Options(cfg cache.Config) (*redis.UniversalOptions, error) {
	r := cfg.Redis
	opt := &redis.UniversalOptions{
		Addrs:            r.Addrs,
		MasterName:       r.MasterName,
		IsClusterMode:    r.Cluster,
		DB:               r.DB,
		Username:         r.Username,
		Password:         r.Password,
		SentinelUsername: r.SentinelUsername,
		SentinelPassword: r.SentinelPassword,
		// Fail fast: see the package doc.
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           r.DialTimeout,
		ReadTimeout:           r.ReadTimeout,
		WriteTimeout:          r.WriteTimeout,
		PoolTimeout:           r.PoolTimeout,
		PoolSize:              r.PoolSize,
		DisableIdentity:       true,
		ClientName:            "bounce-milter",
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if r.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLSServerName, InsecureSkipVerify: r.TLSSkipVerify} //nolint:gosec // opt-in
		if r.TLSCAFile != "" {
			pem, err := os.ReadFile(r.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("store.redis: reading tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("store.redis: tls_ca_file %s holds no PEM certificate", r.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opt.TLSConfig = tc
	}
	return opt, nil
}

// Client returns the go-redis client (for tests and diagnostics).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// RoundTrips returns the number of network exchanges (commands or
// pipelines sent to one node) since the store was opened.
func (s *Store) RoundTrips() uint64 { return s.roundTrips.Load() }

// DroppedRecords returns how many RecordSent writes failed and were dropped.
func (s *Store) DroppedRecords() uint64 { return s.dropped.Load() }

// BreakerState returns "closed", "open" or "half-open".
func (s *Store) BreakerState() string { return s.br.State() }

func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

// do runs fn under the breaker and the per-call timeout.
func (s *Store) do(ctx context.Context, op string, fn func(ctx context.Context) error) (err error) {
	start := time.Now()
	defer func() {
		if s.obs != nil {
			s.obs.ObserveStore(op, time.Since(start), err)
		}
	}()
	if !s.br.Allow() {
		return cache.Unavailable(backendName, op, cache.ErrBreakerOpen)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	err = fn(cctx)
	cancel()
	if err == nil {
		s.br.Done(true)
		return nil
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		s.br.Cancel() // the caller gave up; says nothing about Redis
	} else {
		s.br.Done(false)
	}
	return cache.Unavailable(backendName, op, err)
}

// RecordSent implements cache.Store: SET of the record and INCRBY of the
// tag's recipient count, one pipeline. A failure is counted, logged (at most
// every 10 s) and returned; the caller must not delay mail for it.
func (s *Store) RecordSent(ctx context.Context, m cache.SentMessage) error {
	p, err := cache.PrepareSent(s.h, m, s.cfg.Retention)
	if err != nil {
		return err
	}
	err = s.do(ctx, "record_sent", func(ctx context.Context) error {
		cmds, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			pl.Set(ctx, s.key("m", p.MsgKey), p.Value, p.TTL)
			if p.TagKey != "" {
				n := s.key("t", "{"+p.TagKey+"}", "n")
				pl.IncrBy(ctx, n, p.RcptN)
				pl.PExpire(ctx, n, p.TTL)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return firstErr(cmds)
	})
	if err != nil {
		n := s.dropped.Add(1)
		s.logMu.Lock()
		if time.Since(s.lastDropLog) >= 10*time.Second {
			s.lastDropLog = time.Now()
			s.logMu.Unlock()
			s.log.Warn("sent record dropped: store unavailable", "err", err, "dropped_total", n)
		} else {
			s.logMu.Unlock()
		}
	}
	return err
}

// floodScript counts one message against a key and manages its strict
// state. KEYS: current window, previous window, strict. ARGV: count (0|1),
// limit, window ms, elapsed fraction, strict ms, now (unix ms), strict
// until (unix ms). The strict key holds its end time (the query's clock,
// like the windows, so that every backend and every fleet member agrees);
// its Redis TTL is only garbage collection and outlives the end, so that the
// first query after it reports "left". Returns {strict, entered, left}.
var floodScript = redis.NewScript(`
local count = ARGV[1] == '1'
local cur
if count then
  cur = redis.call('INCR', KEYS[1])
  if cur == 1 then redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3])) end
else
  cur = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local untilms = tonumber(redis.call('GET', KEYS[3]) or '0')
if untilms > tonumber(ARGV[6]) then return {1, 0, 0} end
local left = 0
if untilms > 0 then
  redis.call('DEL', KEYS[3])
  left = 1
end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local strictms = tonumber(ARGV[5])
if count and strictms > 0 and cur + prev * (1 - tonumber(ARGV[4])) > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[3], ARGV[7], 'PX', 2 * strictms + 2 * tonumber(ARGV[3]))
  return {1, 1, left}
end
return {0, 0, left}
`)

func (s *Store) floodCmd(ctx context.Context, pl redis.Pipeliner, kind, hash string, limit int, q cache.InboundQuery) *redis.Cmd {
	if limit < 0 {
		return nil
	}
	f := s.cfg.Flood
	idx, elapsed := cache.WindowPos(q.Now, f.Window)
	base := s.key(kind, "{"+hash+"}")
	count := "0"
	if q.Count {
		count = "1"
	}
	return floodScript.Eval(ctx, pl,
		[]string{base + ":" + strconv.FormatInt(idx, 10), base + ":" + strconv.FormatInt(idx-1, 10), base + ":s"},
		count, limit, f.Window.Milliseconds(), strconv.FormatFloat(elapsed, 'f', 6, 64), f.StrictFor.Milliseconds(),
		q.Now.UnixMilli(), q.Now.Add(f.StrictFor).UnixMilli())
}

// Inbound implements cache.Store: GETs of the candidate records, the tag
// counters and the two flood scripts, one pipeline.
func (s *Store) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	var f cache.InboundFacts
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	keys, given := s.h.CleanMessageIDs(q.MessageIDs, cache.MaxMessageIDs)
	tag := strings.ToLower(strings.TrimSpace(q.Tag))
	err := s.do(ctx, "inbound", func(ctx context.Context) error {
		var gets []*redis.StringCmd
		var tagN, tagB *redis.StringCmd
		var tagIncr *redis.IntCmd
		var rc, ic *redis.Cmd
		cmds, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, k := range keys {
				gets = append(gets, pl.Get(ctx, s.key("m", k)))
			}
			if tag != "" {
				base := s.key("t", "{"+s.h.Tag(tag)+"}")
				tagN = pl.Get(ctx, base+":n")
				if q.Count {
					tagIncr = pl.Incr(ctx, base+":b")
					pl.PExpire(ctx, base+":b", s.cfg.Retention)
				} else {
					tagB = pl.Get(ctx, base+":b")
				}
			}
			if k := q.FloodKey(); k != "" {
				rc = s.floodCmd(ctx, pl, "fr", s.h.Recipient(k), s.cfg.Flood.RecipientLimit, q)
			}
			if q.ClientIP != "" {
				ic = s.floodCmd(ctx, pl, "fi", s.h.ClientIP(q.ClientIP), s.cfg.Flood.ClientLimit, q)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err := firstErr(cmds); err != nil {
			return err
		}
		for i, g := range gets {
			b, err := g.Bytes()
			if err != nil { // redis.Nil: miss
				continue
			}
			rec, exp, err := cache.DecodeRecord(b)
			if err != nil {
				s.log.Warn("undecodable sent record ignored", "err", err)
				continue
			}
			if !exp.IsZero() && !q.Now.Before(exp) {
				continue
			}
			f.Sent, f.MatchedMessageID = rec, given[i]
			f.SenderMatch = q.SenderMatches(rec.Sender)
			break
		}
		if tag != "" {
			f.TagRecipients = intOf(tagN)
			if tagIncr != nil {
				f.TagBounces = tagIncr.Val()
			} else {
				f.TagBounces = intOf(tagB)
			}
			f.Replayed = cache.Replayed(f.TagRecipients, f.TagBounces, s.cfg.ReplaySlack)
		}
		var r, c [3]bool
		if r, err = floodResult(rc); err != nil {
			return err
		}
		if c, err = floodResult(ic); err != nil {
			return err
		}
		f.RecipientStrict, f.ClientStrict = r[0], c[0]
		f.FloodEntered = r[1] || c[1]
		f.FloodLeft = r[2] || c[2]
		return nil
	})
	if err != nil {
		return cache.InboundFacts{}, err
	}
	return f, nil
}

func intOf(c *redis.StringCmd) int64 {
	if c == nil {
		return 0
	}
	n, err := c.Int64()
	if err != nil {
		return 0
	}
	return n
}

func floodResult(c *redis.Cmd) ([3]bool, error) {
	var r [3]bool
	if c == nil {
		return r, nil
	}
	v, err := c.Int64Slice()
	if err != nil {
		return r, fmt.Errorf("flood script: %w", err)
	}
	if len(v) != 3 {
		return r, fmt.Errorf("flood script: %d results, want 3", len(v))
	}
	return [3]bool{v[0] == 1, v[1] == 1, v[2] == 1}, nil
}

// firstErr returns the first command error other than a GET miss.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// Ping implements cache.Store (through the breaker, like every call).
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, "ping", func(ctx context.Context) error {
		return s.rdb.Ping(ctx).Err()
	})
}

// Close implements cache.Store.
func (s *Store) Close() error { return s.rdb.Close() }

// countHook counts network exchanges: each command or pipeline sent.
type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
