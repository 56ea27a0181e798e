package boltstore

// The alerts' state (cache.AlertStore): see internal/cache/alerts.go.
// One process opens the file, so the lease only orders the evaluations
// of that process (and survives its restarts as a plain expiry).

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

var (
	alertsBucket = []byte("alerts")
	leaseKey     = []byte("lease")
	stateKey     = []byte("state")
	clearName    = []byte("clear")
)

// holds reports whether the stored lease v is holder's and alive at now.
func holds(v []byte, holder string, now time.Time) (mine, alive bool) {
	if len(v) < 8 {
		return false, false
	}
	until := time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8])))
	return bytes.Equal(v[8:], []byte(holder)), now.Before(until)
}

// AlertLease implements cache.AlertStore.
func (s *Store) AlertLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.run(ctx, "alerts", s.cfg.Timeout, func() error {
		return s.write(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(alertsBucket)
			if err != nil {
				return err
			}
			now := s.now()
			mine, alive := holds(b.Get(leaseKey), holder, now)
			if alive && !mine {
				ok = false
				return nil
			}
			v := binary.BigEndian.AppendUint64(nil, uint64(now.Add(ttl).UnixMilli()))
			ok = true
			return b.Put(leaseKey, append(v, holder...))
		})
	})
	return ok, err
}

// SaveAlerts implements cache.AlertStore.
func (s *Store) SaveAlerts(ctx context.Context, holder string, doc []byte) error {
	if err := cache.CheckAlertDoc(doc); err != nil {
		return err
	}
	var refused bool
	err := s.run(ctx, "alerts", max(s.cfg.Timeout, cache.BatchTimeout), func() error {
		return s.write(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(alertsBucket)
			if err != nil {
				return err
			}
			if mine, alive := holds(b.Get(leaseKey), holder, s.now()); !mine || !alive {
				refused = true
				return nil
			}
			return b.Put(stateKey, doc)
		})
	})
	if err == nil && refused {
		return cache.ErrNotLeaseHolder
	}
	return err
}

// LoadAlerts implements cache.AlertStore.
func (s *Store) LoadAlerts(ctx context.Context) ([]byte, error) {
	var out []byte
	err := s.run(ctx, "alerts", s.cfg.Timeout, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(alertsBucket); b != nil {
				if v := b.Get(stateKey); v != nil {
					out = append([]byte(nil), v...)
				}
			}
			return nil
		})
	})
	return out, err
}

// RequestAlertClear implements cache.AlertStore.
func (s *Store) RequestAlertClear(ctx context.Context, key string, at time.Time) error {
	if err := cache.CheckAlertClear(key); err != nil {
		return err
	}
	var full bool
	err := s.run(ctx, "alerts", s.cfg.Timeout, func() error {
		return s.write(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(alertsBucket)
			if err != nil {
				return err
			}
			c, err := b.CreateBucketIfNotExists(clearName)
			if err != nil {
				return err
			}
			if c.Get([]byte(key)) == nil && c.Stats().KeyN >= cache.MaxAlertClears {
				full = true
				return nil
			}
			return c.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(at.UnixMilli())))
		})
	})
	if err == nil && full {
		return cache.ErrTooManyClears
	}
	return err
}

// TakeAlertClears implements cache.AlertStore.
func (s *Store) TakeAlertClears(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.run(ctx, "alerts", s.cfg.Timeout, func() error {
		return s.write(func(tx *bolt.Tx) error {
			b := tx.Bucket(alertsBucket)
			if b == nil || b.Bucket(clearName) == nil {
				return nil
			}
			err := b.Bucket(clearName).ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					out[string(k)] = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
				}
				return nil
			})
			if err != nil {
				return err
			}
			return b.DeleteBucket(clearName)
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ cache.AlertStore = (*Store)(nil)
