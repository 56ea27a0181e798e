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
// In a Cluster, a failed call makes the client read the slot map again
// (ClusterClient.ReloadState), so that after a master fails over calls go
// to its promoted replica as soon as the cluster has elected it, instead
// of after go-redis' 60-second periodic reload.
//
// # Round trips and keys
//
// Each method is one pipeline: one round trip with standalone Redis or
// Sentinel. In a Cluster the pipeline is split by node and the parts run in
// parallel (one round trip of latency, up to one exchange per master);
// RoundTrips counts exchanges per node. Keys one script touches share a
// hash tag, so they live in one slot (prefix "bm:" by default):
//
//	bm:{<g>}<day>:<n>            hash: records and tag counters expiring on <day>
//	    <8-byte id digest>       → compact record (cache.PrepareSent, ~17 bytes)
//	    n<8-byte tag digest>     → recipients signed with the tag (HINCRBY)
//	    b<8-byte tag digest>     → bounces counted against the tag (HINCRBY)
//	bm:days                      sorted set: the expiry days in use (days.go)
//	bm:fr:{<rcpt-hash>}:<window> null-sender count per recipient and window
//	bm:fr:{<rcpt-hash>}:s        end of the strict state (unix ms)
//	bm:fi:{<ip-hash>}:...        the same per client IP
//	bm:epoch                     the store's epoch id (SET NX; no TTL)
//	bm:hb:<instance>             a process's heartbeat (TTL 33 days)
//	bm:gaps                      sorted set of gaps (cache.Journal)
//
// A record or tag belongs to one of 1024 groups <g> (hex, from its digest),
// the hash tag: every hash of a group, whatever the day or level, is in one
// slot, so that one script reads them. Within a day a group starts with
// one hash (<n> = 1); a full hash (128 fields) sends further fields one
// level down, to one of twice as many hashes (<n> = 2^level + the digest's
// low bits), so that hashes stay small listpacks: about 50 bytes of Redis
// memory per typical record, its share of tag counters and hash overhead
// included (bench/store-capacity.sh). A day's hashes expire (EXPIREAT) at
// the end of the day after: nothing is ever scanned or deleted one by one.
// A lookup probes, newest day first, each expiry day in use, and in each
// the levels down to the first hash that is not full.
//
// Keys of the first format (bm:m:<hex> holding JSON, bm:t:{<hex>}:n and :b)
// are read as well until they expire; new data is written only in the
// compact format.
//
// Every key has a TTL but the epoch: a Redis that evicts keys must use
// noeviction or a volatile-* policy, or records disappear unnoticed.
// Writes and counters run as Lua scripts (EVALSHA, the body sent again
// after NOSCRIPT), so that counting, the threshold test and entering the
// strict state are atomic across the fleet. Scripts need Redis 5 or newer
// (effects replication).
package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
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
	health     cache.WriteHealth

	dc       dayCache
	stop     chan struct{}
	loopDone chan struct{}
	once     sync.Once
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
	s.stop, s.loopDone = make(chan struct{}), make(chan struct{})
	go s.daysLoop()
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

// DroppedRecords implements cache.Health: records whose write failed.
func (s *Store) DroppedRecords() uint64 { return s.dropped.Load() }

// WriteError implements cache.Health.
func (s *Store) WriteError() error { return s.health.Err() }

// BreakerState returns "closed", "open" or "half-open".
func (s *Store) BreakerState() string { return s.br.State() }

func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

// reloadCluster asks a Cluster client to read the slot map again after a
// failure: go-redis otherwise reloads it every 60 s or on a MOVED reply,
// and a master that died answers nothing, so after its replica took over
// every call to its slots would fail until the next periodic reload. The
// reload runs in the background and go-redis coalesces requests.
func (s *Store) reloadCluster() {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

// do runs fn under the breaker and the budget.
func (s *Store) do(ctx context.Context, op string, budget time.Duration, fn func(ctx context.Context) error) (err error) {
	start := time.Now()
	defer func() {
		if s.obs != nil {
			s.obs.ObserveStore(op, time.Since(start), err)
		}
	}()
	if !s.br.Allow() {
		return cache.Unavailable(backendName, op, cache.ErrBreakerOpen)
	}
	cctx, cancel := context.WithTimeout(ctx, budget)
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
		s.reloadCluster()
	}
	return cache.Unavailable(backendName, op, err)
}

// The layout of records and tag counters (see the package doc).
const (
	// groups is the number of hash-tag groups: a record's or tag's
	// digest picks one, and all its hashes (every day, every level) share
	// that group's hash tag, hence one Cluster slot, so that one script
	// reads them. 1024 spreads evenly over any number of masters.
	groups = 1024
	// fieldsPerHash is when a hash counts as full: further fields of its
	// sub-tree go one level down (twice as many hashes). Small hashes are
	// listpacks (hash-max-listpack-entries is 128 or 512): about 30 bytes
	// per record instead of about 90 in a hash table, and scanning 128
	// entries costs about a microsecond.
	fieldsPerHash = 128
	// maxLevel bounds the levels: 2^maxLevel hashes per group and day at
	// the last level, which takes whatever comes (never reached below
	// about 100 million messages a day).
	maxLevel = 10
)

func groupOf(d cache.Digest) (g int, hi uint32) {
	return int(binary.BigEndian.Uint16(d[8:10]) % groups), binary.BigEndian.Uint32(d[10:14])
}

// groupPrefix is the key prefix of group g: "bm:{3a7}".
func (s *Store) groupPrefix(g int) string {
	return s.prefix + "{" + strconv.FormatInt(int64(g), 16) + "}"
}

// dayKey is the level-0 hash of group prefix pg on day d: "bm:{3a7}20419:1".
func dayKey(pg string, d int64) string { return pg + strconv.FormatInt(d, 10) + ":1" }

// expireAt is when the hashes of expiry day d go: the end of the day after
// (a day of slack for clocks that disagree).
func expireAt(d int64) int64 { return (d + 2) * 86400 }

// putScript writes one field into the first hash of its sub-tree (day,
// group) that is not full, or that already holds the field (counters).
// KEYS[1]: the level-0 hash (declares the slot). ARGV: base ("bm:{g}D:"),
// hi (the digest bits choosing the sub-tree), field, value, op ("s": HSET,
// "i": HINCRBY), expire-at (unix s), fields per hash, max level.
var putScript = redis.NewScript(`
local base, hi, f, v, op = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local cap, lmax = tonumber(ARGV[7]), tonumber(ARGV[8])
for l = 0, lmax do
  local p = 2 ^ l
  local k = base .. (p + hi % p)
  if l == lmax or redis.call('HLEN', k) < cap or (op == 'i' and redis.call('HEXISTS', k, f) == 1) then
    if op == 'i' then redis.call('HINCRBY', k, f, v) else redis.call('HSET', k, f, v) end
    redis.call('EXPIREAT', k, ARGV[6])
    return l
  end
end
return -1
`)

// getScript finds a record: in the days given (newest first), in each
// day the levels down to the first hash that is not full (nothing went
// deeper). KEYS[1]: a hash of the group (declares the slot). ARGV: group
// prefix, hi, field, fields per hash, max level, then the days.
var getScript = redis.NewScript(`
local pg, hi, f = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local cap, lmax = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 6, #ARGV do
  local base = pg .. ARGV[i] .. ':'
  for l = 0, lmax do
    local p = 2 ^ l
    local k = base .. (p + hi % p)
    local v = redis.call('HGET', k, f)
    if v then return v end
    if l == lmax or redis.call('HLEN', k) < cap then break end
  end
end
return false
`)

// tagScript sums a tag's recipient ("n") and bounce ("b") counters over
// the days given and their levels and, when counting, adds the bounce to
// the newest hash holding the tag (so that it lives as long as the tag's
// records), or, for a tag without any, to a new field on the day given.
// KEYS[1]: a hash of the group. ARGV: group prefix, hi, n field, b field,
// fields per hash, max level, count (0|1), base of the day for a new
// counter, its expire-at, then the days (newest first). Returns {n, b}.
var tagScript = redis.NewScript(`
local pg, hi, nf, bf = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local cap, lmax = tonumber(ARGV[5]), tonumber(ARGV[6])
local n, b, home = 0, 0, nil
for i = 10, #ARGV do
  local base = pg .. ARGV[i] .. ':'
  for l = 0, lmax do
    local p = 2 ^ l
    local k = base .. (p + hi % p)
    local r = redis.call('HMGET', k, nf, bf)
    if r[1] or r[2] then
      n = n + tonumber(r[1] or '0')
      b = b + tonumber(r[2] or '0')
      if not home then home = k end
    end
    if l == lmax or redis.call('HLEN', k) < cap then break end
  end
end
if ARGV[7] == '1' then
  if home then
    redis.call('HINCRBY', home, bf, 1)
  else
    local base = ARGV[8]
    for l = 0, lmax do
      local p = 2 ^ l
      local k = base .. (p + hi % p)
      if l == lmax or redis.call('HLEN', k) < cap or redis.call('HEXISTS', k, bf) == 1 then
        redis.call('HINCRBY', k, bf, 1)
        redis.call('EXPIREAT', k, ARGV[9])
        break
      end
    end
  end
  b = b + 1
end
return {n, b}
`)

// scriptCall is one script run in a pipeline, kept so that it can be sent
// again in full when the server does not know the script (NOSCRIPT: a
// restarted or failed-over Redis).
type scriptCall struct {
	sc   *redis.Script
	keys []string
	args []any
	cmd  *redis.Cmd
}

func (c *scriptCall) sha(ctx context.Context, pl redis.Pipeliner) *scriptCall {
	c.cmd = c.sc.EvalSha(ctx, pl, c.keys, c.args...)
	return c
}

// pipeline runs fill's commands in one pipeline; script calls that failed
// with NOSCRIPT are sent again with their body (one more round trip, once
// per server restart).
func (s *Store) pipeline(ctx context.Context, fill func(pl redis.Pipeliner, script func(sc *redis.Script, keys []string, args ...any) *scriptCall)) error {
	var calls []*scriptCall
	cmds, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		fill(pl, func(sc *redis.Script, keys []string, args ...any) *scriptCall {
			c := (&scriptCall{sc: sc, keys: keys, args: args}).sha(ctx, pl)
			calls = append(calls, c)
			return c
		})
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
		return err
	}
	var again []*scriptCall
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, c := range again {
				c.cmd = c.sc.Eval(ctx, pl, c.keys, c.args...)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	if err := firstErr(cmds); err != nil {
		return err
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// RecordSent implements cache.Store: the record and the tag's recipient
// count, one pipeline.
func (s *Store) RecordSent(ctx context.Context, m cache.SentMessage) error {
	return s.recordBatch(ctx, []cache.SentMessage{m}, s.cfg.Timeout)
}

// RecordSentBatch implements cache.Store: one pipeline for the batch.
func (s *Store) RecordSentBatch(ctx context.Context, ms []cache.SentMessage) error {
	return s.recordBatch(ctx, ms, max(s.cfg.Timeout, cache.BatchTimeout))
}

func (s *Store) recordBatch(ctx context.Context, ms []cache.SentMessage, budget time.Duration) error {
	ps, perr := cache.PrepareBatch(s.h, ms, s.cfg.Retention)
	if len(ps) == 0 {
		return perr
	}
	if err := s.writeRecords(ctx, ps, budget, false); err != nil {
		return err
	}
	return perr
}

// Prepare implements cache.Batcher.
func (s *Store) Prepare(m cache.SentMessage) (cache.PreparedSent, error) {
	return cache.PrepareSent(s.h, m, s.cfg.Retention)
}

// RecordPrepared implements cache.Batcher: one pipeline for the batch.
func (s *Store) RecordPrepared(ctx context.Context, ps []cache.PreparedSent) error {
	return s.writeRecords(ctx, ps, max(s.cfg.Timeout, cache.BatchTimeout), true)
}

// StoreConfig implements cache.Batcher.
func (s *Store) StoreConfig() cache.Config { return s.cfg }

// writeRecords writes ps in one pipeline, announcing their expiry days
// (see days.go); wait is set for the Recorder's batches.
func (s *Store) writeRecords(ctx context.Context, ps []cache.PreparedSent, budget time.Duration, wait bool) error {
	err := s.do(ctx, "record_sent", budget, func(ctx context.Context) error {
		announce, err := s.prepareDays(ctx, ps, wait)
		if err != nil {
			return err
		}
		return s.pipeline(ctx, func(pl redis.Pipeliner, script func(*redis.Script, []string, ...any) *scriptCall) {
			if len(announce) > 0 {
				s.announce(ctx, pl, announce...)
			}
			for i := range ps {
				p := &ps[i]
				d := p.ExpiryDay()
				g, hi := groupOf(p.ID)
				pg := s.groupPrefix(g)
				script(putScript, []string{dayKey(pg, d)}, pg+strconv.FormatInt(d, 10)+":", hi, string(p.ID[:8]), p.Value, "s", expireAt(d), fieldsPerHash, maxLevel)
				if p.HasTag {
					g, hi := groupOf(p.Tag)
					pg := s.groupPrefix(g)
					script(putScript, []string{dayKey(pg, d)}, pg+strconv.FormatInt(d, 10)+":", hi, "n"+string(p.Tag[:8]), p.RcptN, "i", expireAt(d), fieldsPerHash, maxLevel)
				}
			}
		})
	})
	s.health.Done(err)
	if err != nil {
		s.dropped.Add(uint64(len(ps)))
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

// Inbound implements cache.Store: a script per candidate id (its group's
// hashes), one for the tag's counters, the two flood scripts and the GETs
// of first-format keys, in one pipeline.
func (s *Store) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	var f cache.InboundFacts
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	ids, given := s.h.CleanMessageIDDigests(q.MessageIDs, cache.MaxMessageIDs)
	tag := strings.ToLower(strings.TrimSpace(q.Tag))
	days := s.probeDays(q.Now)
	first := days[0].(int64)
	err := s.do(ctx, "inbound", s.cfg.Timeout, func(ctx context.Context) error {
		gets := make([]*scriptCall, len(ids))
		legacy := make([]*redis.StringCmd, len(ids))
		var tagCall *scriptCall
		var tagN, tagB *redis.StringCmd
		var rc, ic *redis.Cmd
		err := s.pipeline(ctx, func(pl redis.Pipeliner, script func(*redis.Script, []string, ...any) *scriptCall) {
			for i, id := range ids {
				g, hi := groupOf(id)
				pg := s.groupPrefix(g)
				gets[i] = script(getScript, []string{dayKey(pg, first)}, append([]any{pg, hi, string(id[:8]), fieldsPerHash, maxLevel}, days...)...)
				legacy[i] = pl.Get(ctx, s.key("m", id.Hex()))
			}
			if tag != "" {
				td := s.h.TagDigest(tag)
				g, hi := groupOf(td)
				pg := s.groupPrefix(g)
				count := "0"
				if q.Count {
					count = "1"
				}
				nd := cache.Day(q.Now.Add(min(s.cfg.Retention, cache.MaxTTL)))
				tagCall = script(tagScript, []string{dayKey(pg, first)}, append([]any{pg, hi, "n" + string(td[:8]), "b" + string(td[:8]), fieldsPerHash, maxLevel,
					count, pg + strconv.FormatInt(nd, 10) + ":", expireAt(nd)}, days...)...)
				if q.Count {
					// A bounce counter for a tag without a record may
					// open a day: the fleet must know to look there.
					s.announce(ctx, pl, nd)
				}
				base := s.key("t", "{"+td.Hex()+"}")
				tagN, tagB = pl.Get(ctx, base+":n"), pl.Get(ctx, base+":b")
			}
			if q.Recipient != "" {
				rc = s.floodCmd(ctx, pl, "fr", s.h.FloodRecipient(q.Recipient, q.Delimiter), s.cfg.Flood.RecipientLimit, q)
			}
			if q.ClientIP != "" {
				ic = s.floodCmd(ctx, pl, "fi", s.h.ClientIP(q.ClientIP), s.cfg.Flood.ClientLimit, q)
			}
		})
		if err != nil {
			return err
		}
		for i := range ids {
			v, err := gets[i].cmd.Text()
			if err != nil { // redis.Nil: none in the compact format
				if v, err = legacy[i].Result(); err != nil {
					continue
				}
			}
			rec, err := cache.DecodeRecord([]byte(v))
			if err != nil {
				s.log.Warn("undecodable sent record ignored", "err", err)
				continue
			}
			if !rec.Live(q.Now) {
				continue
			}
			rec.Fill(s.h, q, given[i], &f)
			break
		}
		if tagCall != nil {
			v, err := tagCall.cmd.Int64Slice()
			if err != nil || len(v) != 2 {
				return fmt.Errorf("tag script: %v %w", v, err)
			}
			f.TagRecipients = v[0] + intOf(tagN)
			f.TagBounces = v[1] + intOf(tagB)
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

// firstErr returns the first command error other than a GET miss or a
// NOSCRIPT (script calls are checked after their retry).
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			return err
		}
	}
	return nil
}

// Ping implements cache.Store (through the breaker, like every call).
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, "ping", s.cfg.Timeout, func(ctx context.Context) error {
		return s.rdb.Ping(ctx).Err()
	})
}

// Close implements cache.Store.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.loopDone
	})
	return s.rdb.Close()
}

// countHook counts network exchanges: each command or pipeline sent for
// a caller. The store's own background work (the days refresh, once a
// second) is not counted: RoundTrips tells what a call costs, and a
// refresh landing in the middle of a measurement must not change that.
type countHook struct{ n *atomic.Uint64 }

// uncounted marks a context whose exchanges countHook leaves out.
type uncountedKey struct{}

func uncounted(ctx context.Context) context.Context {
	return context.WithValue(ctx, uncountedKey{}, true)
}

func counted(ctx context.Context) bool { return ctx.Value(uncountedKey{}) == nil }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if counted(ctx) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if counted(ctx) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// Epoch implements cache.Journal: the key "epoch" (SET NX, no TTL). A
// Redis that lost its data has lost it too, and the next process to look
// creates a new one.
func (s *Store) Epoch(ctx context.Context, newID string) (id string, created bool, err error) {
	err = s.do(ctx, "journal", s.cfg.Timeout, func(ctx context.Context) error {
		var nx *redis.BoolCmd
		var get *redis.StringCmd
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			nx = pl.SetNX(ctx, s.key("epoch"), newID, 0)
			get = pl.Get(ctx, s.key("epoch"))
			return nil
		})
		if err != nil {
			return err
		}
		id, created = get.Val(), nx.Val()
		return nil
	})
	return id, created, err
}

// LastBeat implements cache.Journal: the key "hb:<instance>", TTL MaxTTL.
func (s *Store) LastBeat(ctx context.Context, instance string) (b cache.Beat, found bool, err error) {
	err = s.do(ctx, "journal", s.cfg.Timeout, func(ctx context.Context) error {
		v, err := s.rdb.Get(ctx, s.key("hb", instance)).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err = cache.DecodeBeat(v)
		found = err == nil
		return nil
	})
	return b, found, err
}

// SaveBeat implements cache.Journal.
func (s *Store) SaveBeat(ctx context.Context, instance string, b cache.Beat) error {
	return s.do(ctx, "journal", s.cfg.Timeout, func(ctx context.Context) error {
		return s.rdb.Set(ctx, s.key("hb", instance), cache.EncodeBeat(b), cache.MaxTTL).Err()
	})
}

// AddGaps implements cache.Journal: the sorted set "gaps" (score: the
// end), trimmed to MaxStoredGaps and to MaxTTL, TTL MaxTTL.
func (s *Store) AddGaps(ctx context.Context, ws []cache.Window) error {
	if len(ws) == 0 {
		return nil
	}
	return s.do(ctx, "journal", s.cfg.Timeout, func(ctx context.Context) error {
		key := s.key("gaps")
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			zs := make([]redis.Z, len(ws))
			for i, w := range ws {
				zs[i] = redis.Z{Score: float64(w.To.Unix()), Member: cache.EncodeWindow(w)}
			}
			pl.ZAdd(ctx, key, zs...)
			pl.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(time.Now().Add(-cache.MaxTTL).Unix(), 10))
			pl.ZRemRangeByRank(ctx, key, 0, -int64(cache.MaxStoredGaps)-1)
			pl.Expire(ctx, key, cache.MaxTTL)
			return nil
		})
		return err
	})
}

// Gaps implements cache.Journal.
func (s *Store) Gaps(ctx context.Context, now time.Time) (ws []cache.Window, err error) {
	err = s.do(ctx, "journal", s.cfg.Timeout, func(ctx context.Context) error {
		ms, err := s.rdb.ZRangeByScore(ctx, s.key("gaps"), &redis.ZRangeBy{Min: strconv.FormatInt(now.Add(-cache.MaxTTL).Unix(), 10), Max: "+inf"}).Result()
		if err != nil {
			return err
		}
		ws = ws[:0]
		for _, m := range ms {
			if w, err := cache.DecodeWindow([]byte(m)); err == nil {
				ws = append(ws, w)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cache.MergeWindows(ws, now, cache.MaxStoredGaps), nil
}

var _ cache.Journal = (*Store)(nil)
