package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bounce-milter/bounce-milter/internal/events"
)

// Bounce events (package events) live in one bucket per UTC day of their
// time, "x-YYYYMMDD", keyed by the event id (time-ordered), the value the
// event as JSON; hard bounces are also counted per recipient and day in
// "y-YYYYMMDD" (recipient → count, last time, last reason, senders), so
// that the suppression candidates need no scan of the events. Days older
// than the retention are dropped with the hourly pruning; beyond
// Events.Max events, the oldest day goes first. The event count per day
// is kept in the bucket under the key "#".

const (
	eventPrefix = "x-"
	hardPrefix  = "y-"
	// maxScan bounds the events one query reads.
	maxScan = 200_000
	// maxHardPerDay bounds the recipients counted per day.
	maxHardPerDay = 200_000
)

var countKey = []byte("#")

func eventDay(prefix string, t time.Time) []byte {
	return []byte(prefix + t.UTC().Format("20060102"))
}

// hardRec is a recipient's hard bounces of one day.
type hardRec struct {
	N       int       `json:"n"`
	Last    time.Time `json:"t"`
	Reason  string    `json:"r"`
	Senders []string  `json:"s,omitempty"`
}

// AppendEvents implements events.Writer.
func (s *Store) AppendEvents(ctx context.Context, es []events.Event) error {
	if len(es) == 0 {
		return nil
	}
	return s.run(ctx, "events", s.cfg.Timeout*4, func() error {
		return s.write(func(tx *bolt.Tx) error {
			for _, e := range es {
				b, err := tx.CreateBucketIfNotExists(eventDay(eventPrefix, e.Time))
				if err != nil {
					return err
				}
				v, err := json.Marshal(e)
				if err != nil {
					return err
				}
				if b.Get([]byte(e.ID)) == nil {
					if err := addCount(b, countKey, 1); err != nil {
						return err
					}
				}
				if err := b.Put([]byte(e.ID), v); err != nil {
					return err
				}
				if e.Hard && e.Kind == events.KindBounce && e.Recipient != "" {
					if err := countHard(tx, e); err != nil {
						return err
					}
				}
			}
			return s.boundEvents(tx)
		})
	})
}

func countHard(tx *bolt.Tx, e events.Event) error {
	b, err := tx.CreateBucketIfNotExists(eventDay(hardPrefix, e.Time))
	if err != nil {
		return err
	}
	k := []byte(e.Recipient)
	var h hardRec
	if v := b.Get(k); v != nil {
		_ = json.Unmarshal(v, &h)
	} else if b.Stats().KeyN >= maxHardPerDay {
		return nil
	}
	h.N++
	if !e.Time.Before(h.Last) {
		h.Last, h.Reason = e.Time, e.Reason
	}
	found := false
	for _, x := range h.Senders {
		found = found || x == e.Sender
	}
	if !found && len(h.Senders) < 10 {
		h.Senders = append(h.Senders, e.Sender)
	}
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// boundEvents drops the oldest days while there are more events than
// Events.Max.
func (s *Store) boundEvents(tx *bolt.Tx) error {
	var days [][]byte
	var total int64
	c := tx.Cursor()
	for k, _ := c.Seek([]byte(eventPrefix)); k != nil && bytes.HasPrefix(k, []byte(eventPrefix)); k, _ = c.Next() {
		days = append(days, append([]byte(nil), k...))
		total += getCount(tx.Bucket(k), countKey)
	}
	for i := 0; total > int64(s.cfg.Events.Max) && i < len(days)-1; i++ {
		total -= getCount(tx.Bucket(days[i]), countKey)
		if err := tx.DeleteBucket(days[i]); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return nil
}

// PruneEvents drops the event days older than the retention.
func (s *Store) PruneEvents(now time.Time) (int, error) {
	cut := now.Add(-s.cfg.Events.Retention)
	n, err := s.dropBuckets(map[string]string{
		eventPrefix: string(eventDay(eventPrefix, cut)),
		hardPrefix:  string(eventDay(hardPrefix, cut)),
	})
	if err != nil {
		return 0, fmt.Errorf("embedded store: pruning events: %w", err)
	}
	return n, nil
}

// Events implements events.Reader: newest first, within the retention.
func (s *Store) Events(ctx context.Context, q events.Query) ([]events.Event, error) {
	limit := events.Cap(q.Limit)
	var out []events.Event
	err := s.run(ctx, "events_read", s.cfg.Timeout*8, func() error {
		out = out[:0]
		return s.db.View(func(tx *bolt.Tx) error {
			scanned := 0
			cut := s.now().Add(-s.cfg.Events.Retention)
			c := tx.Cursor()
			// Days newest first: seek past the last event day and walk back.
			k, _ := c.Seek([]byte(eventPrefix + "99999999"))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			for ; k != nil && bytes.HasPrefix(k, []byte(eventPrefix)); k, _ = c.Prev() {
				day, err := time.Parse("20060102", strings.TrimPrefix(string(k), eventPrefix))
				if err != nil {
					continue
				}
				if !q.Since.IsZero() && day.Add(24*time.Hour).Before(q.Since) || day.Add(24*time.Hour).Before(cut) {
					break
				}
				if !q.Until.IsZero() && !day.Before(q.Until) {
					continue
				}
				ec := tx.Bucket(k).Cursor()
				for ik, v := ec.Last(); ik != nil; ik, v = ec.Prev() {
					if bytes.Equal(ik, countKey) {
						continue
					}
					if scanned++; scanned > maxScan {
						return nil
					}
					var e events.Event
					if json.Unmarshal(v, &e) != nil || e.Time.Before(cut) || !q.Match(e) {
						continue
					}
					out = append(out, e)
					if len(out) >= limit {
						return nil
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Suppressions implements events.Reader, from the per-day hard-bounce
// counts.
func (s *Store) Suppressions(ctx context.Context, q events.SuppressionQuery) ([]events.Suppression, error) {
	var hc events.HardCounts
	err := s.run(ctx, "events_read", s.cfg.Timeout*8, func() error {
		hc = events.HardCounts{}
		return s.db.View(func(tx *bolt.Tx) error {
			cut := s.now().Add(-s.cfg.Events.Retention)
			if q.Since.After(cut) {
				cut = q.Since
			}
			c := tx.Cursor()
			for k, _ := c.Seek(eventDay(hardPrefix, cut)); k != nil && bytes.HasPrefix(k, []byte(hardPrefix)); k, _ = c.Next() {
				err := tx.Bucket(k).ForEach(func(rk, v []byte) error {
					var h hardRec
					if json.Unmarshal(v, &h) == nil {
						hc.Add(string(rk), h.N, h.Last, h.Reason, h.Senders...)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return hc.Candidates(q), nil
}

var _ events.Store = (*Store)(nil)
