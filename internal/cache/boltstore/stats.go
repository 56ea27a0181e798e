package boltstore

// Monitoring statistics (cache.StatsStore): see internal/cache/stats.go
// for what they are and the layout. Every write is one transaction, a few
// seconds apart (package stats batches them); it also drops the time
// buckets past their retention, which costs a cursor walk over at most a
// few hundred bucket names.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

var (
	statsBucket  = []byte("stats")
	latestBucket = []byte("stats-latest")
	countsName   = []byte("c")
	marksName    = []byte("m")
)

func statsName(w time.Duration, start time.Time) []byte {
	return fmt.Appendf(nil, "%s:%010d", cache.StatsWidthName(w), start.Unix())
}

func setName(s string) []byte { return append([]byte("s:"), s...) }

// AddStats implements cache.StatsStore: one transaction.
func (s *Store) AddStats(ctx context.Context, w cache.StatsWrite) error {
	for _, b := range w.Buckets {
		if err := cache.ValidStatsWidth(b.Width); err != nil {
			return err
		}
	}
	now := s.now()
	return s.run(ctx, "stats", max(s.cfg.Timeout, cache.BatchTimeout), func() error {
		return s.write(func(tx *bolt.Tx) error {
			root, err := tx.CreateBucketIfNotExists(statsBucket)
			if err != nil {
				return err
			}
			if err := pruneStats(root, now); err != nil {
				return err
			}
			for i := range w.Buckets {
				if err := addBucket(root, &w.Buckets[i], now); err != nil {
					return err
				}
			}
			if len(w.Max)+len(w.Min) == 0 {
				return nil
			}
			lb, err := tx.CreateBucketIfNotExists(latestBucket)
			if err != nil {
				return err
			}
			for k, v := range w.Max {
				if old, ok := getInt(lb, k); !ok || v > old {
					if err := lb.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(v))); err != nil {
						return err
					}
				}
			}
			for k, v := range w.Min {
				if old, ok := getInt(lb, k); !ok || v < old {
					if err := lb.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(v))); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
}

func getInt(b *bolt.Bucket, k string) (int64, bool) {
	v := b.Get([]byte(k))
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

// pruneStats drops the time buckets past their retention (names sort by
// start within a width).
func pruneStats(root *bolt.Bucket, now time.Time) error {
	var old [][]byte
	for _, w := range []time.Duration{cache.StatsFine, cache.StatsDaily} {
		prefix := []byte(cache.StatsWidthName(w) + ":")
		c := root.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			start, err := strconv.ParseInt(string(k[len(prefix):]), 10, 64)
			if err == nil && cache.StatsExpiry(w, time.Unix(start, 0)).After(now) {
				break
			}
			old = append(old, append([]byte(nil), k...))
		}
	}
	for _, k := range old {
		if err := root.DeleteBucket(k); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return nil
}

func addBucket(root *bolt.Bucket, b *cache.StatsBucket, now time.Time) error {
	if !cache.StatsExpiry(b.Width, b.Start).After(now) {
		return nil
	}
	tb, err := root.CreateBucketIfNotExists(statsName(b.Width, b.Start))
	if err != nil {
		return err
	}
	if len(b.Counts) > 0 {
		cb, err := tb.CreateBucketIfNotExists(countsName)
		if err != nil {
			return err
		}
		for k, n := range b.Counts {
			if err := addCount(cb, []byte(k), n); err != nil {
				return err
			}
		}
	}
	for name, members := range b.Sets {
		if len(members) == 0 {
			continue
		}
		sb, err := tb.CreateBucketIfNotExists(setName(name))
		if err != nil {
			return err
		}
		for m, n := range members {
			if err := addCount(sb, []byte(m), n); err != nil {
				return err
			}
		}
		if err := trimSet(sb); err != nil {
			return err
		}
	}
	if len(b.Marks) > 0 {
		mb, err := tb.CreateBucketIfNotExists(marksName)
		if err != nil {
			return err
		}
		for _, m := range b.Marks {
			seq, err := mb.NextSequence()
			if err != nil {
				return err
			}
			v := binary.BigEndian.AppendUint64(nil, uint64(m.Time.UnixMilli()))
			if err := mb.Put(binary.BigEndian.AppendUint64(nil, seq), append(v, cache.ClipMark(m.Text)...)); err != nil {
				return err
			}
		}
		n := 0
		c := mb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		if over := n - cache.StatsMaxMarks; over > 0 {
			var del [][]byte
			for k, _ := c.First(); k != nil && len(del) < over; k, _ = c.Next() {
				del = append(del, append([]byte(nil), k...))
			}
			for _, k := range del {
				if err := mb.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// trimSet keeps the StatsTopKeep members with the highest counts.
func trimSet(sb *bolt.Bucket) error {
	all := map[string]int64{}
	if err := sb.ForEach(func(k, v []byte) error {
		n, _ := binary.Uvarint(v)
		all[string(k)] = int64(n)
		return nil
	}); err != nil {
		return err
	}
	if len(all) <= cache.StatsTopKeep {
		return nil
	}
	keep := map[string]bool{}
	for _, m := range cache.TopOf(all, cache.StatsTopKeep) {
		keep[m.Name] = true
	}
	for m := range all {
		if !keep[m] {
			if err := sb.Delete([]byte(m)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadStats implements cache.StatsStore.
func (s *Store) ReadStats(ctx context.Context, q cache.StatsQuery) ([]cache.StatsBucket, error) {
	if err := cache.ValidStatsWidth(q.Width); err != nil {
		return nil, err
	}
	now := s.now()
	// fn may go on after run gave up (a stalled disk): it hands its
	// result over a channel rather than writing the caller's variables.
	res := make(chan []cache.StatsBucket, 1)
	err := s.run(ctx, "stats", max(s.cfg.Timeout, cache.BatchTimeout), func() error {
		var out []cache.StatsBucket
		defer func() { res <- out }()
		return s.db.View(func(tx *bolt.Tx) error {
			root := tx.Bucket(statsBucket)
			if root == nil {
				return nil
			}
			prefix := cache.StatsWidthName(q.Width) + ":"
			from, to := statsName(q.Width, q.From), statsName(q.Width, q.To)
			if q.From.Unix() < 0 {
				from = []byte(prefix)
			}
			c := root.Cursor()
			for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, []byte(prefix)) && bytes.Compare(k, to) < 0; k, _ = c.Next() {
				start, err := strconv.ParseInt(string(k[len(prefix):]), 10, 64)
				if err != nil {
					continue
				}
				b := cache.StatsBucket{Width: q.Width, Start: time.Unix(start, 0).UTC(), Counts: map[string]int64{}, Sets: map[string]map[string]int64{}}
				if b.Start.Before(q.From) || !cache.StatsExpiry(q.Width, b.Start).After(now) {
					continue
				}
				tb := root.Bucket(k)
				if tb == nil {
					continue
				}
				if cb := tb.Bucket(countsName); cb != nil {
					_ = cb.ForEach(func(k, v []byte) error {
						n, _ := binary.Uvarint(v)
						b.Counts[string(k)] = int64(n)
						return nil
					})
				}
				for _, name := range q.Sets {
					sb := tb.Bucket(setName(name))
					if sb == nil {
						continue
					}
					all := map[string]int64{}
					_ = sb.ForEach(func(k, v []byte) error {
						n, _ := binary.Uvarint(v)
						all[string(k)] = int64(n)
						return nil
					})
					top := map[string]int64{}
					for _, m := range cache.TopOf(all, cache.StatsTop(q.Top)) {
						top[m.Name] = m.Count
					}
					if len(top) > 0 {
						b.Sets[name] = top
					}
				}
				if mb := tb.Bucket(marksName); q.Marks && mb != nil {
					_ = mb.ForEach(func(_, v []byte) error {
						if len(v) >= 8 {
							b.Marks = append(b.Marks, cache.StatsMark{Time: time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8]))).UTC(), Text: string(v[8:])})
						}
						return nil
					})
				}
				out = append(out, b)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := <-res
	if len(out) > cache.StatsMaxRead {
		out = out[len(out)-cache.StatsMaxRead:]
	}
	return out, nil
}

// StatsLatest implements cache.StatsStore.
func (s *Store) StatsLatest(ctx context.Context) (map[string]int64, error) {
	res := make(chan map[string]int64, 1)
	err := s.run(ctx, "stats", s.cfg.Timeout, func() error {
		out := map[string]int64{}
		defer func() { res <- out }()
		return s.db.View(func(tx *bolt.Tx) error {
			lb := tx.Bucket(latestBucket)
			if lb == nil {
				return nil
			}
			return lb.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					out[string(k)] = int64(binary.BigEndian.Uint64(v))
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return <-res, nil
}

var _ cache.StatsStore = (*Store)(nil)
