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
// bbolt has no TTL, so records are bucketed by the UTC day they expire on
// ("e-20261126"), whatever their TTL (up to cache.MaxTTL, 33 days): a
// bucket is dropped whole once its day has passed, which costs what
// writing it cost (its pages go back to the free list) and never scans a
// record. In a bucket:
//
//	<8 bytes of the Message-ID digest>  compact record (cache.PrepareSent, ~17 bytes)
//	"n" <8 bytes of the tag digest>     recipients signed with the tag (uvarint)
//	"b" <8 bytes of the tag digest>     bounces counted against the tag (uvarint)
//
// A tag's counters sit in the bucket of the record that fed them, so they
// live as long as the longest record of the tag; a bounce counts into the
// newest bucket holding the tag (or, without a record, into the bucket of
// now + retention). Lookups read the buckets from today to today + MaxTTL
// (one cursor walk over at most 35 buckets) and ignore expired records.
// Buckets "meta" and "gaps" hold the store's own history (see cache.Journal).
//
// Only digests are stored: no address, tag or Message-ID in plain text.
// Stores written by releases before the compact format (JSON records by
// signing day, "d-20261126") are upgraded in place when opened: each live
// record is re-encoded into its expiry bucket, the tag counters rebuilt
// from the records, and the old buckets dropped.
//
// # Writes and what a crash can lose
//
// Sent records come in batches from cache.Recorder (RecordPrepared: one
// transaction, one pair of fdatasyncs, for up to 256 records). A committed
// transaction survives a crash (bbolt's copy-on-write pages and meta
// pages); a crash loses the records still in the Recorder's outbox (about
// 20 ms of signed mail, more while writes fail, e.g. a full disk), and the
// next start records that span as a gap (from the last heartbeat, saved in
// bucket "meta" every 30 s). At a clean stop what could not be written is
// spooled to <data_dir>/outbox.spool (digests only) and written at the
// next start. Counted bounces write at once (db.Batch joins concurrent
// ones).
//
// The file keeps the pages of dropped buckets as free pages and reuses
// them for new writes; it does not shrink by itself. Open compacts it
// (bbolt's Compact into a new file, renamed over the old one) when free
// pages make up more than half of a file larger than CompactMinSize.
//
// Flood counters are kept in memory (cache.FloodCounter, capped at
// [store.flood] max_entries keys each): they cover minutes to an hour, and
// persisting them would cost an fsync for every inbound bounce. A restart
// therefore clears flood state.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
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

// CompactMinSize is the file size below which Open never compacts.
const CompactMinSize = 16 << 20

var compactMinSize int64 = CompactMinSize // tests lower it

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
	health  cache.WriteHealth
}

// BreakerState implements cache.Health: a local file needs no breaker.
func (s *Store) BreakerState() string { return cache.BreakerClosed }

// DroppedRecords implements cache.Health: record writes that failed.
func (s *Store) DroppedRecords() uint64 { return s.dropped.Load() }

// WriteError implements cache.Health.
func (s *Store) WriteError() error { return s.health.Err() }

// write runs fn in a write transaction. Alone, it commits at once
// (db.Update); with other writers in flight it joins their batch
// (db.Batch), so concurrent sessions share one fsync instead of queueing
// for one each, and a lone session does not wait MaxBatchDelay.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	n := s.writers.Add(1)
	defer s.writers.Add(-1)
	var err error
	if n == 1 {
		err = s.db.Update(fn)
	} else {
		err = s.db.Batch(fn)
	}
	s.health.Done(err)
	return err
}

// Path returns the file path used for cfg and dataDir.
func Path(cfg cache.Config, dataDir string) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return filepath.Join(dataDir, FileName)
}

func boltOptions() *bolt.Options {
	// The free list is rebuilt at open instead of written with every
	// commit (it grows with the pages of dropped day buckets); the map
	// free list allocates in O(1).
	return &bolt.Options{Timeout: OpenTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

// Open opens (creating if needed) the store file, upgrades a store of the
// first format, drops expired day buckets and compacts a file that is
// mostly free pages.
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
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{cfg: cfg, db: db, path: path, h: cache.NewHasher(cfg.Secret), flood: cache.NewFlood(cfg.Flood),
		log: log.With("store", "embedded", "path", path), obs: cfg.Observer, now: time.Now, stop: make(chan struct{})}
	for kind, c := range map[string]*cache.FloodCounter{"recipients": s.flood.Recipient, "clients": s.flood.Client} {
		c.OnExpired = func(n int) {
			s.log.Info("flood: strict state over (not seen since)", "kind", kind, "count", n)
		}
	}
	upgraded, err := s.upgrade(s.now())
	if err != nil {
		db.Close()
		return nil, err
	}
	if _, err := s.Prune(s.now()); err != nil {
		s.db.Close()
		return nil, err
	}
	if upgraded >= 0 {
		// The old buckets' pages still hold plain-text addresses: copy the
		// live data to a new file.
		s.log.Info("embedded store upgraded to the compact format", "records", upgraded)
		err = s.compact()
	} else {
		err = s.maybeCompact()
	}
	if err != nil && s.db == nil {
		return nil, fmt.Errorf("embedded store %s: reopening after compaction: %w", path, err)
	}
	if err != nil {
		s.log.Warn("compacting the store file failed; continuing with it as it is", "err", err)
	}
	s.wg.Add(1)
	go s.pruneLoop()
	return s, nil
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store %s is locked by another process (another bounce-milter using the same data directory?); "+
			"the embedded store serves one process only, use the redis backend to share state: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded store %s: %w", path, err)
	}
	return db, nil
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
			if _, err := s.PruneEvents(s.now()); err != nil {
				s.log.Warn("pruning bounce events failed", "err", err)
			}
		}
	}
}

const (
	dayPrefix    = "e-"
	legacyPrefix = "d-"
)

func dayName(d int64) []byte { return []byte(dayPrefix + cache.DayStart(d).Format("20060102")) }

// Prune drops the day buckets whose day has passed and returns how many.
func (s *Store) Prune(now time.Time) (int, error) {
	n, err := s.dropBuckets(map[string]string{dayPrefix: string(dayName(cache.Day(now)))})
	if err != nil {
		return 0, fmt.Errorf("embedded store: pruning: %w", err)
	}
	return n, nil
}

// dropBuckets drops the top-level buckets named with each prefix that
// sort before its cut (names carry their day, so this is "before that
// day"), reading first and writing only when there is something to drop.
func (s *Store) dropBuckets(cutByPrefix map[string]string) (int, error) {
	var old [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		for p, cut := range cutByPrefix {
			c := tx.Cursor()
			for k, _ := c.Seek([]byte(p)); k != nil && bytes.HasPrefix(k, []byte(p)) && string(k) < cut; k, _ = c.Next() {
				old = append(old, append([]byte(nil), k...))
			}
		}
		return nil
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
		return 0, err
	}
	return len(old), nil
}

// maybeCompact rewrites the file when free pages make up more than half
// of it (bbolt never gives pages back to the file system).
func (s *Store) maybeCompact() error {
	fi, err := os.Stat(s.path)
	if err != nil || fi.Size() < compactMinSize {
		return err
	}
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	if free*2 < fi.Size() {
		return nil
	}
	return s.compact()
}

// compact copies the live data into a new file and renames it over the
// old one (written and synced before the rename, so a crash leaves either
// file whole).
func (s *Store) compact() error {
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return err
	}
	before, _ := os.Stat(s.path)
	if err := bolt.Compact(dst, s.db, 4<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		s.db, _ = openDB(s.path)
		return err
	}
	s.db = nil
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	db, err := openDB(s.path)
	if err != nil {
		return err
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	s.db = db
	after, _ := os.Stat(s.path)
	if before != nil && after != nil {
		s.log.Info("embedded store compacted", "bytes_before", before.Size(), "bytes_after", after.Size())
	}
	return nil
}

// run executes fn with the per-call budget: the caller gets an error when
// the budget or its context ends first (a stalled disk), while fn finishes
// in the background.
func (s *Store) run(ctx context.Context, op string, budget time.Duration, fn func() error) (err error) {
	start := time.Now()
	defer func() {
		if s.obs != nil {
			s.obs.ObserveStore(op, time.Since(start), err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, budget)
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

// window returns the day buckets that can hold a live record at now:
// expiry days from today to today + MaxTTL (one more for clock skew),
// newest first.
func window(tx *bolt.Tx, now time.Time) []*bolt.Bucket {
	today := cache.Day(now)
	first, last := dayName(today), dayName(today+int64(cache.MaxTTL/(24*time.Hour))+1)
	var out []*bolt.Bucket
	c := tx.Cursor()
	for k, _ := c.Seek(first); k != nil && bytes.Compare(k, last) <= 0; k, _ = c.Next() {
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
	n, m := binary.Uvarint(v)
	if m <= 0 {
		return 0
	}
	return int64(n)
}

func addCount(b *bolt.Bucket, k []byte, n int64) error {
	return b.Put(k, binary.AppendUvarint(nil, uint64(getCount(b, k)+n)))
}

func tagKey(kind byte, d cache.Digest) []byte {
	k := make([]byte, 9)
	k[0] = kind
	copy(k[1:], d[:8])
	return k
}

// RecordSent implements cache.Store.
func (s *Store) RecordSent(ctx context.Context, m cache.SentMessage) error {
	return s.recordBatch(ctx, []cache.SentMessage{m}, s.cfg.Timeout)
}

// RecordSentBatch implements cache.Store: one transaction for the batch.
func (s *Store) RecordSentBatch(ctx context.Context, ms []cache.SentMessage) error {
	return s.recordBatch(ctx, ms, max(s.cfg.Timeout, cache.BatchTimeout))
}

func (s *Store) recordBatch(ctx context.Context, ms []cache.SentMessage, budget time.Duration) error {
	ps, perr := cache.PrepareBatch(s.h, ms, s.cfg.Retention)
	if len(ps) == 0 {
		return perr
	}
	if err := s.writeRecords(ctx, ps, budget); err != nil {
		return err
	}
	return perr
}

// Prepare implements cache.Batcher.
func (s *Store) Prepare(m cache.SentMessage) (cache.PreparedSent, error) {
	return cache.PrepareSent(s.h, m, s.cfg.Retention)
}

// RecordPrepared implements cache.Batcher: one transaction for the batch.
func (s *Store) RecordPrepared(ctx context.Context, ps []cache.PreparedSent) error {
	return s.writeRecords(ctx, ps, max(s.cfg.Timeout, cache.BatchTimeout))
}

// StoreConfig implements cache.Batcher.
func (s *Store) StoreConfig() cache.Config { return s.cfg }

func (s *Store) writeRecords(ctx context.Context, ps []cache.PreparedSent, budget time.Duration) error {
	err := s.run(ctx, "record_sent", budget, func() error {
		return s.write(func(tx *bolt.Tx) error {
			for i := range ps {
				if err := putRecord(tx, &ps[i]); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		s.dropped.Add(uint64(len(ps)))
	}
	return err
}

func putRecord(tx *bolt.Tx, p *cache.PreparedSent) error {
	b, err := tx.CreateBucketIfNotExists(dayName(p.ExpiryDay()))
	if err != nil {
		return err
	}
	if err := b.Put(p.ID[:8], p.Value); err != nil {
		return err
	}
	if p.HasTag {
		return addCount(b, tagKey('n', p.Tag), p.RcptN)
	}
	return nil
}

// Inbound implements cache.Store.
func (s *Store) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	var f cache.InboundFacts
	if q.Now.IsZero() {
		q.Now = s.now()
	}
	ids, given := s.h.CleanMessageIDDigests(q.MessageIDs, cache.MaxMessageIDs)
	var tag cache.Digest
	hasTag := false
	if t := strings.ToLower(strings.TrimSpace(q.Tag)); t != "" {
		tag, hasTag = s.h.TagDigest(t), true
	}
	read := func(tx *bolt.Tx, days []*bolt.Bucket) {
		f = cache.InboundFacts{}
	ids:
		for i, id := range ids {
			for _, b := range days {
				v := b.Get(id[:8])
				if v == nil {
					continue
				}
				rec, err := cache.DecodeRecord(v)
				if err != nil || !rec.Live(q.Now) {
					continue
				}
				rec.Fill(s.h, q, given[i], &f)
				break ids
			}
		}
		if hasTag {
			nk, bk := tagKey('n', tag), tagKey('b', tag)
			for _, b := range days {
				f.TagRecipients += getCount(b, nk)
				f.TagBounces += getCount(b, bk)
			}
		}
	}
	var err error
	switch {
	case len(ids) == 0 && !hasTag:
		// Nothing to read (a forged tag or an untagged recipient at RCPT,
		// before any Message-ID is known): only the flood state below,
		// which lives in memory. No transaction, no goroutine.
	case q.Count && hasTag:
		err = s.run(ctx, "inbound", s.cfg.Timeout, func() error {
			return s.write(func(tx *bolt.Tx) error {
				days := window(tx, q.Now)
				// The bounce counts where the tag's newest counters are, so
				// that it lives as long as they do.
				var home *bolt.Bucket
				nk, bk := tagKey('n', tag), tagKey('b', tag)
				for _, b := range days {
					if b.Get(nk) != nil || b.Get(bk) != nil {
						home = b
						break
					}
				}
				if home == nil {
					var err error
					if home, err = tx.CreateBucketIfNotExists(dayName(cache.Day(q.Now.Add(min(s.cfg.Retention, cache.MaxTTL))))); err != nil {
						return err
					}
					days = window(tx, q.Now)
				}
				if err := addCount(home, bk, 1); err != nil {
					return err
				}
				read(tx, days)
				return nil
			})
		})
	default:
		err = s.run(ctx, "inbound", s.cfg.Timeout, func() error {
			return s.db.View(func(tx *bolt.Tx) error { read(tx, window(tx, q.Now)); return nil })
		})
	}
	if err != nil {
		return cache.InboundFacts{}, err
	}
	f.Replayed = cache.Replayed(f.TagRecipients, f.TagBounces, s.cfg.ReplaySlack)
	s.flood.Apply(s.h, q, &f)
	return f, nil
}

// upgrade converts the day buckets of the first format ("d-YYYYMMDD":
// "m"+hex id → JSON record with the plain-text sender and tag, "n"/"b"+hex
// tag → counters) into expiry buckets of compact records, and drops them.
// Expired records are not carried over. It returns the records converted,
// or -1 when the store had no first-format bucket.
func (s *Store) upgrade(now time.Time) (int, error) {
	var legacy [][]byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for k, _ := c.Seek([]byte(legacyPrefix)); k != nil && bytes.HasPrefix(k, []byte(legacyPrefix)); k, _ = c.Next() {
			legacy = append(legacy, append([]byte(nil), k...))
		}
		return nil
	}); err != nil || len(legacy) == 0 {
		return -1, err
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		home := map[string]int64{} // tag digest (hex) → newest expiry day holding it
		var bounces []struct {
			tag string
			day time.Time
			n   int64
		}
		for _, name := range legacy {
			old := tx.Bucket(name)
			day, _ := time.Parse("20060102", strings.TrimPrefix(string(name), legacyPrefix))
			err := old.ForEach(func(k, v []byte) error {
				if len(k) != 33 {
					return nil
				}
				switch k[0] {
				case 'm':
					id, err := hex.DecodeString(string(k[1:]))
					if err != nil {
						return nil
					}
					rec, err := cache.DecodeRecord(v)
					if err != nil || !rec.Live(now) || rec.Expires.IsZero() {
						return nil
					}
					val := rec.Upgrade(s.h)
					if val == nil {
						return nil
					}
					ed := cache.Day(rec.Expires)
					b, err := tx.CreateBucketIfNotExists(dayName(ed))
					if err != nil {
						return err
					}
					if err := b.Put(id[:8], val); err != nil {
						return err
					}
					n++
					if tag := cache.LegacyTag(v); tag != "" {
						td := s.h.TagDigest(tag)
						if err := addCount(b, tagKey('n', td), int64(rec.RecipientCount)); err != nil {
							return err
						}
						if ed > home[td.Hex()] {
							home[td.Hex()] = ed
						}
					}
				case 'b':
					bounces = append(bounces, struct {
						tag string
						day time.Time
						n   int64
					}{string(k[1:]), day, getCount8(v)})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, b := range bounces {
			d, ok := home[b.tag]
			if !ok {
				d = cache.Day(b.day.Add(s.cfg.Retention))
				if d < cache.Day(now) {
					continue
				}
			}
			td, err := hex.DecodeString(b.tag)
			if err != nil || len(td) != 16 {
				continue
			}
			bk, err := tx.CreateBucketIfNotExists(dayName(d))
			if err != nil {
				return err
			}
			var dg cache.Digest
			copy(dg[:], td)
			if err := addCount(bk, tagKey('b', dg), b.n); err != nil {
				return err
			}
		}
		for _, name := range legacy {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("embedded store: upgrading the first-format buckets: %w", err)
	}
	return n, nil
}

// getCount8 reads a first-format counter (8 bytes, big-endian).
func getCount8(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// Ping implements cache.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.run(ctx, "ping", s.cfg.Timeout, func() error { return s.db.View(func(*bolt.Tx) error { return nil }) })
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

var (
	metaBucket = []byte("meta")
	gapsBucket = []byte("gaps")
)

// Epoch implements cache.Journal: "epoch" in bucket "meta".
func (s *Store) Epoch(ctx context.Context, newID string) (id string, created bool, err error) {
	err = s.run(ctx, "journal", s.cfg.Timeout, func() error {
		// Asked every few seconds: read first, write (and sync) only once.
		if err := s.db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(metaBucket); m != nil {
				id = string(m.Get([]byte("epoch")))
			}
			return nil
		}); err != nil || id != "" {
			return err
		}
		return s.write(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			if v := b.Get([]byte("epoch")); v != nil {
				id, created = string(v), false
				return nil
			}
			id, created = newID, true
			return b.Put([]byte("epoch"), []byte(newID))
		})
	})
	return id, created, err
}

// LastBeat implements cache.Journal: "hb:<instance>" in bucket "meta".
func (s *Store) LastBeat(ctx context.Context, instance string) (b cache.Beat, found bool, err error) {
	err = s.run(ctx, "journal", s.cfg.Timeout, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			m := tx.Bucket(metaBucket)
			if m == nil {
				return nil
			}
			v := m.Get([]byte("hb:" + instance))
			if v == nil {
				return nil
			}
			var err error
			b, err = cache.DecodeBeat(v)
			found = err == nil && s.now().Sub(b.Time) < cache.MaxTTL
			return nil
		})
	})
	return b, found, err
}

// SaveBeat implements cache.Journal.
func (s *Store) SaveBeat(ctx context.Context, instance string, b cache.Beat) error {
	return s.run(ctx, "journal", s.cfg.Timeout, func() error {
		return s.write(func(tx *bolt.Tx) error {
			m, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			return m.Put([]byte("hb:"+instance), cache.EncodeBeat(b))
		})
	})
}

// AddGaps implements cache.Journal: bucket "gaps", keys sorted by end;
// those that ended more than MaxTTL ago, and the oldest beyond
// MaxStoredGaps, are dropped.
func (s *Store) AddGaps(ctx context.Context, ws []cache.Window) error {
	return s.run(ctx, "journal", s.cfg.Timeout, func() error {
		return s.write(func(tx *bolt.Tx) error {
			g, err := tx.CreateBucketIfNotExists(gapsBucket)
			if err != nil {
				return err
			}
			for _, w := range ws {
				if err := g.Put(cache.EncodeWindow(w), nil); err != nil {
					return err
				}
			}
			n := g.Stats().KeyN
			old := s.now().Add(-cache.MaxTTL)
			c := g.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.First() {
				w, err := cache.DecodeWindow(k)
				if err == nil && !w.To.Before(old) && n <= cache.MaxStoredGaps {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n--
			}
			return nil
		})
	})
}

// Gaps implements cache.Journal.
func (s *Store) Gaps(ctx context.Context, now time.Time) (ws []cache.Window, err error) {
	err = s.run(ctx, "journal", s.cfg.Timeout, func() error {
		ws = ws[:0]
		return s.db.View(func(tx *bolt.Tx) error {
			g := tx.Bucket(gapsBucket)
			if g == nil {
				return nil
			}
			return g.ForEach(func(k, _ []byte) error {
				if w, err := cache.DecodeWindow(k); err == nil {
					ws = append(ws, w)
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return cache.MergeWindows(ws, now, cache.MaxStoredGaps), nil
}

var _ cache.Journal = (*Store)(nil)
