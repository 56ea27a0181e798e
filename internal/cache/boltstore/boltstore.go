// Package boltstore is the embedded cache.Store: one bbolt file in the data
// directory, for a single host with no setup. It survives restarts, so a
// bounce for mail sent before a restart is still recognised.
//
// # One process only
//
// bbolt holds an exclusive flock on the file while it is open. A second
// bounce-milter (or a second Open in one process) on the same data
// directory fails after OpenTimeout with an error naming the file and
// saying that another process holds it. To share state between processes
// or hosts, use the Redis backend.
//
// # Layout and expiry
//
// bbolt has no TTL. Records and tag counters go into one bucket per UTC day
// ("d-20261126"): "m"+msgid-hash → record (JSON, with its expiry), "n"+
// tag-hash → recipients signed that day, "b"+tag-hash → bounces counted that
// day. Lookups read the buckets of the retention window (Config.Retention,
// 14 days by default) and ignore expired records; buckets older than the
// retention are dropped on open and hourly. The file does not shrink (bbolt
// reuses its free pages).
//
// Writes use db.Batch when other writes are in flight, so concurrent milter
// sessions share fsyncs; a lone write commits at once.
//
// Flood counters are kept in memory (cache.FloodCounter): they cover
// minutes to an hour, and persisting them would cost an fsync for every
// inbound bounce. A restart therefore clears flood state.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// FileName is the store file in the data directory.
const FileName = "state.db"

// OpenTimeout is how long Open waits for the file lock.
const OpenTimeout = 500 * time.Millisecond

const backendName = "embedded"

// Store is a cache.Store on bbolt.
type Store struct {
	cfg   cache.Config
	db    *bolt.DB
	path  string
	h     *cache.Hasher
	flood *cache.Flood
	log   *slog.Logger
	obs   cache.Observer
	now   func() time.Time

	stop chan struct{}
	wg   sync.WaitGroup

	writers atomic.Int32 // write transactions in flight
	dropped atomic.Uint64
}

// BreakerState implements cache.Health: a local file needs no breaker.
func (s *Store) BreakerState() string { return cache.BreakerClosed }

// DroppedRecords implements cache.Health.
func (s *Store) DroppedRecords() uint64 { return s.dropped.Load() }

// write runs fn in a write transaction. Alone, it commits at once
// (db.Update); with other writers in flight it joins their batch
// (db.Batch), so concurrent sessions share one fsync instead of queueing
// for one each, and a lone session does not wait MaxBatchDelay.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	n := s.writers.Add(1)
	defer s.writers.Add(-1)
	if n == 1 {
		return s.db.Update(fn)
	}
	return s.db.Batch(fn)
}

// Path returns the file path used for cfg and dataDir.
func Path(cfg cache.Config, dataDir string) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return filepath.Join(dataDir, FileName)
}

// Open opens (creating if needed) the store file and drops expired day
// buckets.
func Open(cfg cache.Config, dataDir string, log *slog.Logger) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := Path(cfg, dataDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: creating directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: OpenTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store %s is locked by another process (another bounce-milter using the same data directory?); "+
			"the embedded store serves one process only, use the redis backend to share state: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded store %s: %w", path, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{cfg: cfg, db: db, path: path, h: cache.NewHasher(cfg.Secret), flood: cache.NewFlood(cfg.Flood),
		log: log.With("store", "embedded", "path", path), obs: cfg.Observer, now: time.Now, stop: make(chan struct{})}
	if _, err := s.Prune(s.now()); err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.pruneLoop()
	return s, nil
}

func (s *Store) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if n, err := s.Prune(s.now()); err != nil {
				s.log.Warn("pruning day buckets failed", "err", err)
			} else if n > 0 {
				s.log.Info("pruned expired day buckets", "buckets", n)
			}
		}
	}
}

func dayName(t time.Time) []byte { return []byte("d-" + t.UTC().Format("20060102")) }

// firstDay is the name of the oldest bucket still within the retention.
func (s *Store) firstDay(now time.Time) []byte { return dayName(now.Add(-s.cfg.Retention)) }

// Prune drops the day buckets older than the retention and returns how many.
func (s *Store) Prune(now time.Time) (int, error) {
	first := string(s.firstDay(now))
	var old [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if strings.HasPrefix(string(name), "d-") && string(name) < first {
				old = append(old, append([]byte(nil), name...))
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, n := range old {
			if err := tx.DeleteBucket(n); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("embedded store: pruning: %w", err)
	}
	return len(old), nil
}

// run executes fn with the per-call budget: the caller gets an error when
// the budget or its context ends first (a stalled disk), while fn finishes
// in the background.
func (s *Store) run(ctx context.Context, op string, fn func() error) (err error) {
	start := time.Now()
	defer func() {
		if s.obs != nil {
			s.obs.ObserveStore(op, time.Since(start), err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return cache.Unavailable(backendName, op, err)
}

// days returns the bucket names of the retention window up to now+1 day
// (tolerating clock skew), newest first.
func (s *Store) days(tx *bolt.Tx, now time.Time) []*bolt.Bucket {
	first, last := string(s.firstDay(now)), string(dayName(now.Add(24*time.Hour)))
	var out []*bolt.Bucket
	c := tx.Cursor()
	for k, _ := c.Seek([]byte(first)); k != nil && string(k) <= last; k, _ = c.Next() {
		if b := tx.Bucket(k); b != nil {
			out = append(out, b)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func getCount(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addCount(b *bolt.Bucket, k []byte, n int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(getCount(b, k)+n))
	return b.Put(k, v[:])
}

// RecordSent implements cache.Store.
func (s *Store) RecordSent(ctx context.Context, m cache.SentMessage) error {
	p, err := cache.PrepareSent(s.h, m, s.cfg.Retention)
	if err != nil {
		return err
	}
	day := dayName(p.Expires.Add(-p.TTL))
	err = s.run(ctx, "record_sent", func() error {
		return s.write(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(day)
			if err != nil {
				return err
			}
			if err := b.Put([]byte("m"+p.MsgKey), p.Value); err != nil {
				return err
			}
			if p.TagKey != "" {
				return addCount(b, []byte("n"+p.TagKey), p.RcptN)
			}
			return nil
		})
	})
	if err != nil {
		s.log.Warn("sent record dropped", "err", err, "dropped_total", s.dropped.Add(1))
	}
	return err
}

// Inbound implements cache.Store.
func (s *Store) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	var f cache.InboundFacts
	if q.Now.IsZero() {
		q.Now = s.now()
	}
	keys, given := s.h.CleanMessageIDs(q.MessageIDs, cache.MaxMessageIDs)
	var tagKey string
	if tag := strings.ToLower(strings.TrimSpace(q.Tag)); tag != "" {
		tagKey = s.h.Tag(tag)
	}
	read := func(tx *bolt.Tx) error {
		f = cache.InboundFacts{}
		days := s.days(tx, q.Now)
	ids:
		for i, k := range keys {
			for _, b := range days {
				v := b.Get([]byte("m" + k))
				if v == nil {
					continue
				}
				rec, exp, err := cache.DecodeRecord(v)
				if err != nil || (!exp.IsZero() && !q.Now.Before(exp)) {
					continue
				}
				f.Sent, f.MatchedMessageID = rec, given[i]
				f.SenderMatch = q.SenderMatches(rec.Sender)
				break ids
			}
		}
		if tagKey != "" {
			for _, b := range days {
				f.TagRecipients += getCount(b, []byte("n"+tagKey))
				f.TagBounces += getCount(b, []byte("b"+tagKey))
			}
		}
		return nil
	}
	var err error
	if q.Count && tagKey != "" {
		err = s.run(ctx, "inbound", func() error {
			return s.write(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists(dayName(q.Now))
				if err != nil {
					return err
				}
				if err := addCount(b, []byte("b"+tagKey), 1); err != nil {
					return err
				}
				return read(tx)
			})
		})
	} else {
		err = s.run(ctx, "inbound", func() error { return s.db.View(read) })
	}
	if err != nil {
		return cache.InboundFacts{}, err
	}
	f.Replayed = cache.Replayed(f.TagRecipients, f.TagBounces, s.cfg.ReplaySlack)
	s.flood.Apply(s.h, q, &f)
	return f, nil
}

// Ping implements cache.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.run(ctx, "ping", func() error { return s.db.View(func(*bolt.Tx) error { return nil }) })
}

// Close implements cache.Store.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded store %s: close: %w", s.path, err)
	}
	return nil
}
