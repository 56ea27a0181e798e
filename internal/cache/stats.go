package cache

// Monitoring statistics (the web pages of package web, fed by package
// stats). They live in the same store as the rest, so that with Redis
// every host of a fleet shows the fleet's figures.
//
// The store knows nothing of what the figures mean: a statistic is a time
// bucket (StatsFine: 5 minutes, kept StatsFineKeep; StatsDaily: a UTC
// day, kept StatsDailyKeep) holding
//
//   - counters: name → count, added up (HINCRBY);
//   - sets: per set name, member → count, added up and trimmed to the
//     StatsTopKeep highest counts at every write (an approximate top-K: a
//     member trimmed away starts again from zero, so the figures of the
//     top members are exact while they stay on top, and a member below
//     the cut can be missing);
//   - marks: short time-stamped texts (flood state entered and left), at
//     most StatsMaxMarks per bucket, the newest kept;
//
// and beside the buckets a few values kept by maximum or minimum
// (StatsLatest: the last use of each signing key, when statistics
// began).
//
// Unlike the records of signed mail, statistics are kept in plain text:
// our users' addresses (flood targets, senders of replayed tags), client
// networks and reporting MTA names, for at most StatsDailyKeep. Writes
// come from package stats in batches (one transaction, one pipeline), a
// few seconds apart, never from the message path.
//
// Layout. Redis (prefix "bm:" by default; one hash tag per bucket, so that
// a bucket's keys share a Cluster slot):
//
//	bm:st:{5m:<unix start>}:c          hash: counters
//	bm:st:{5m:<unix start>}:s:<set>    sorted set: member → count
//	bm:st:{5m:<unix start>}:m          list: marks, "<unix ms> <text>"
//	bm:st:{1d:<unix start>}:...        the same per day
//	bm:st:latest                       hash: kept values (TTL StatsLatestKeep)
//
// every bucket key expiring (EXPIREAT) when its bucket leaves its
// retention. Embedded store: bucket "stats" holds one nested bucket per
// time bucket ("5m:<unix start>", "1d:<unix start>", ten digits), each
// with nested buckets "c", "s:<set>" and "m"; and "stats-latest". Nested
// buckets past their retention are dropped whole when statistics are
// written (at most once a minute).

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Bucket widths.
const (
	StatsFine  = 5 * time.Minute
	StatsDaily = 24 * time.Hour
)

// Retention of the buckets, from their end.
const (
	StatsFineKeep   = 25 * time.Hour
	StatsDailyKeep  = 31 * 24 * time.Hour
	StatsLatestKeep = 400 * 24 * time.Hour
)

// Bounds.
const (
	// StatsTopKeep is how many members each set of a bucket keeps.
	StatsTopKeep = 100
	// StatsMaxMarks is how many marks a bucket keeps (the newest).
	StatsMaxMarks = 100
	// StatsMaxMarkLen bounds a mark's text.
	StatsMaxMarkLen = 400
	// StatsMaxRead bounds the buckets one ReadStats returns.
	StatsMaxRead = 400
)

// StatsStore is implemented by the stores of this module (and
// MemoryStats). Through a Recorder, assert it on Recorder.Store().
type StatsStore interface {
	// AddStats adds w to the store in one transaction (embedded store) or
	// one pipeline (Redis). An error means none of it may have been
	// written (a Redis pipeline that failed part-way may have written
	// some: statistics tolerate that).
	AddStats(ctx context.Context, w StatsWrite) error
	// ReadStats returns the buckets of width q.Width that start in
	// [q.From, q.To), oldest first, at most StatsMaxRead (the newest);
	// buckets with nothing stored are left out.
	ReadStats(ctx context.Context, q StatsQuery) ([]StatsBucket, error)
	// StatsLatest returns the kept values.
	StatsLatest(ctx context.Context) (map[string]int64, error)
}

// StatsWrite is one batch of statistics.
type StatsWrite struct {
	Buckets []StatsBucket
	// Max raises each kept value to at least the one given; Min lowers it
	// to at most the one given (or sets it when absent).
	Max, Min map[string]int64
}

// StatsBucket is one time bucket: what to add (StatsWrite) or what is
// stored (ReadStats).
type StatsBucket struct {
	Width  time.Duration // StatsFine or StatsDaily
	Start  time.Time     // a multiple of Width since the Unix epoch (UTC)
	Counts map[string]int64
	Sets   map[string]map[string]int64
	Marks  []StatsMark
}

// StatsMark is a time-stamped text.
type StatsMark struct {
	Time time.Time
	Text string
}

// StatsQuery selects buckets.
type StatsQuery struct {
	Width    time.Duration
	From, To time.Time
	// Sets names the sets to read (nil: none); Top is how many members of
	// each (0 or more than StatsTopKeep: StatsTopKeep), highest first.
	Sets []string
	Top  int
	// Marks reads the marks too.
	Marks bool
}

// StatsKeep is how long buckets of width w are kept after they end.
func StatsKeep(w time.Duration) time.Duration {
	if w == StatsDaily {
		return StatsDailyKeep
	}
	return StatsFineKeep
}

// StatsExpiry is when a bucket of width w starting at start goes.
func StatsExpiry(w time.Duration, start time.Time) time.Time {
	return start.Add(w).Add(StatsKeep(w))
}

// StatsWidthName is the name of a width in keys: "5m" or "1d".
func StatsWidthName(w time.Duration) string {
	if w == StatsDaily {
		return "1d"
	}
	return "5m"
}

// ValidStatsWidth reports whether w is one of the two widths.
func ValidStatsWidth(w time.Duration) error {
	if w != StatsFine && w != StatsDaily {
		return fmt.Errorf("statistics: bucket width %s: want %s or %s", w, StatsFine, StatsDaily)
	}
	return nil
}

// StatsTop returns the effective member count of a query.
func StatsTop(n int) int {
	if n <= 0 || n > StatsTopKeep {
		return StatsTopKeep
	}
	return n
}

// TopOf returns the n members of set with the highest counts, highest
// first (ties by member), as (member, count) pairs.
func TopOf(set map[string]int64, n int) []Member {
	out := make([]Member, 0, len(set))
	for m, c := range set {
		if c > 0 {
			out = append(out, Member{m, c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Member is one member of a set with its count.
type Member struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// ClipMark bounds a mark's text.
func ClipMark(s string) string {
	if len(s) > StatsMaxMarkLen {
		return s[:StatsMaxMarkLen]
	}
	return s
}

// MemoryStats is an in-process StatsStore: the reference for the
// conformance suite, and the statistics of a daemon whose store keeps
// none (the memory backend). Lost on restart, not shared.
type MemoryStats struct {
	mu      sync.Mutex
	buckets map[memStatsKey]*StatsBucket
	latest  map[string]int64
	now     func() time.Time
}

type memStatsKey struct {
	w     time.Duration
	start int64
}

// NewMemoryStats returns an empty MemoryStats.
func NewMemoryStats() *MemoryStats {
	return &MemoryStats{buckets: map[memStatsKey]*StatsBucket{}, latest: map[string]int64{}, now: time.Now}
}

// AddStats implements StatsStore.
func (m *MemoryStats) AddStats(_ context.Context, w StatsWrite) error {
	for _, b := range w.Buckets {
		if err := ValidStatsWidth(b.Width); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, b := range m.buckets {
		if !StatsExpiry(k.w, b.Start).After(now) {
			delete(m.buckets, k)
		}
	}
	for _, b := range w.Buckets {
		k := memStatsKey{b.Width, b.Start.Unix()}
		if !StatsExpiry(b.Width, b.Start).After(now) {
			continue
		}
		cur := m.buckets[k]
		if cur == nil {
			cur = &StatsBucket{Width: b.Width, Start: time.Unix(k.start, 0).UTC(), Counts: map[string]int64{}, Sets: map[string]map[string]int64{}}
			m.buckets[k] = cur
		}
		for n, c := range b.Counts {
			cur.Counts[n] += c
		}
		for s, ms := range b.Sets {
			set := cur.Sets[s]
			if set == nil {
				set = map[string]int64{}
				cur.Sets[s] = set
			}
			for n, c := range ms {
				set[n] += c
			}
			if len(set) > StatsTopKeep {
				keep := map[string]int64{}
				for _, mb := range TopOf(set, StatsTopKeep) {
					keep[mb.Name] = mb.Count
				}
				cur.Sets[s] = keep
			}
		}
		for _, mk := range b.Marks {
			cur.Marks = append(cur.Marks, StatsMark{Time: mk.Time, Text: ClipMark(mk.Text)})
		}
		if over := len(cur.Marks) - StatsMaxMarks; over > 0 {
			cur.Marks = append([]StatsMark(nil), cur.Marks[over:]...)
		}
	}
	for n, v := range w.Max {
		if c, ok := m.latest[n]; !ok || v > c {
			m.latest[n] = v
		}
	}
	for n, v := range w.Min {
		if c, ok := m.latest[n]; !ok || v < c {
			m.latest[n] = v
		}
	}
	return nil
}

// ReadStats implements StatsStore.
func (m *MemoryStats) ReadStats(_ context.Context, q StatsQuery) ([]StatsBucket, error) {
	if err := ValidStatsWidth(q.Width); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []StatsBucket
	for k, b := range m.buckets {
		if k.w != q.Width || b.Start.Before(q.From) || !b.Start.Before(q.To) || !StatsExpiry(k.w, b.Start).After(now) {
			continue
		}
		c := StatsBucket{Width: b.Width, Start: b.Start, Counts: map[string]int64{}, Sets: map[string]map[string]int64{}}
		for n, v := range b.Counts {
			c.Counts[n] = v
		}
		for _, s := range q.Sets {
			if set := b.Sets[s]; len(set) > 0 {
				c.Sets[s] = map[string]int64{}
				for _, mb := range TopOf(set, StatsTop(q.Top)) {
					c.Sets[s][mb.Name] = mb.Count
				}
			}
		}
		if q.Marks {
			c.Marks = append([]StatsMark(nil), b.Marks...)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	if len(out) > StatsMaxRead {
		out = out[len(out)-StatsMaxRead:]
	}
	return out, nil
}

// StatsLatest implements StatsStore.
func (m *MemoryStats) StatsLatest(context.Context) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.latest))
	for k, v := range m.latest {
		out[k] = v
	}
	return out, nil
}

var _ StatsStore = (*MemoryStats)(nil)
