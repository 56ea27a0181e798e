package cache

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
)

// Flood control uses a sliding-window estimate over two fixed windows, the
// same arithmetic in every backend (the Redis one runs it in a script):
//
//	rate = count(this window) + count(previous window) × (1 − elapsed/window)
//
// A counted message that brings the rate above the limit puts the key
// (recipient or client IP) into the strict state for StrictFor; that message
// gets FloodEntered. The first query after the strict state ran out gets
// FloodLeft. Only queries with Count set add to the rate.

// windowPos returns the index of the fixed window holding now and the
// fraction of it already elapsed, in [0,1).
func windowPos(now time.Time, window time.Duration) (idx int64, elapsed float64) {
	n := now.UnixNano()
	w := int64(window)
	idx = n / w
	return idx, float64(n%w) / float64(w)
}

// WindowPos is windowPos for the backends.
func WindowPos(now time.Time, window time.Duration) (int64, float64) { return windowPos(now, window) }

// SlidingRate is the estimate above.
func SlidingRate(cur, prev int64, elapsed float64) float64 {
	return float64(cur) + float64(prev)*(1-elapsed)
}

// Replayed reports whether bounces exceed the tag's budget. With no record
// of recipients (rcpts == 0) replay cannot be judged and it is false.
func Replayed(rcpts, bounces int64, slack int) bool {
	return rcpts > 0 && bounces > rcpts+int64(slack)
}

// FloodResult is one counter's verdict.
type FloodResult struct {
	Strict, Entered, Left bool
}

// FloodKey names an entry of a FloodCounter: 8 bytes of a digest.
type FloodKey [8]byte

// FloodKeyOf is a FloodKey for any string (tests; the stores use digests).
func FloodKeyOf(s string) FloodKey {
	d := sha256.Sum256([]byte(s))
	var k FloodKey
	copy(k[:], d[:])
	return k
}

// DefaultFloodMaxEntries is the default cap of each in-memory flood
// counter ([store.flood] max_entries): about 80 bytes an entry, so 2.5 MB
// per counter at most.
const DefaultFloodMaxEntries = 30_000

// FloodCounter is the in-process implementation of one kind of flood
// counter (per recipient or per client IP), used by the memory and embedded
// stores. Safe for concurrent use.
//
// # Memory
//
// It holds at most maxEntries keys, each a compact entry (8-byte key, two
// window counts, the end of a strict state, list links) in one slab, about
// 80 bytes with its map slot. When full, a new key evicts one, chosen so
// that an attacker cannot cheaply push out what matters (segmented LRU):
//
//   - Keys seen once are on probation; a key counted a second time is
//     protected (up to 80% of the cap, beyond which the least recently hit
//     protected key drops back to probation). A new key evicts the least
//     recently hit key on probation. A spray of distinct recipients, one
//     message each (the cheap attack), only churns the probation segment:
//     it evicts keys that had one message, not counters that were climbing
//     towards the limit.
//   - A key in the strict state is evicted only when nothing else is left,
//     then the one whose strict state ends first. Making a key strict costs
//     more than limit messages to it.
//
// Evicting a key forgets its count: at worst that recipient gets limit
// more messages before it turns strict again.
//
// # Expiry
//
// Once a window, keys idle for two windows are dropped, and so are strict
// keys once their strict state has been over for strict_for plus two
// windows (as long as Redis keeps its strict keys): a key that comes back
// before then is told FloodLeft; one that does not is reported through
// OnExpired, once.
type FloodCounter struct {
	limit     int
	window    time.Duration
	strictFor time.Duration
	max       int
	// OnExpired, when set, is called (without the lock) with the number of
	// strict keys dropped at the end of their strict state unseen.
	OnExpired func(n int)

	mu        sync.Mutex
	idx       map[FloodKey]int32
	slab      []floodEntry
	free      int32 // head of the free list (-1: none)
	lists     [2]floodList
	lastPrune time.Time
}

// Segments.
const (
	probation = 0
	protected = 1
)

type floodList struct {
	head, tail int32 // most, least recently hit; -1 when empty
	n          int
}

type floodEntry struct {
	key         FloodKey
	win         int64 // index of the current window
	cur, prev   uint32
	strictUntil int64 // unix ns; 0: not strict (nor left unreported)
	prevE       int32 // list links (toward head)
	nextE       int32 // (toward tail; the free list's link)
	seg         uint8
	hits        uint8 // saturating: counted messages, for the promotion
}

// NewFloodCounter returns a counter; limit < 0 disables it. maxEntries
// caps the keys it holds (0: DefaultFloodMaxEntries).
func NewFloodCounter(limit int, window, strictFor time.Duration, maxEntries int) *FloodCounter {
	if maxEntries <= 0 {
		maxEntries = DefaultFloodMaxEntries
	}
	f := &FloodCounter{limit: limit, window: window, strictFor: strictFor, max: maxEntries, idx: make(map[FloodKey]int32), free: -1}
	f.lists[0] = floodList{head: -1, tail: -1}
	f.lists[1] = floodList{head: -1, tail: -1}
	return f
}

func (f *FloodCounter) unlink(i int32) {
	e := &f.slab[i]
	l := &f.lists[e.seg]
	if e.prevE >= 0 {
		f.slab[e.prevE].nextE = e.nextE
	} else {
		l.head = e.nextE
	}
	if e.nextE >= 0 {
		f.slab[e.nextE].prevE = e.prevE
	} else {
		l.tail = e.prevE
	}
	l.n--
}

func (f *FloodCounter) pushFront(i int32, seg uint8) {
	e := &f.slab[i]
	l := &f.lists[seg]
	e.seg, e.prevE, e.nextE = seg, -1, l.head
	if l.head >= 0 {
		f.slab[l.head].prevE = i
	} else {
		l.tail = i
	}
	l.head = i
	l.n++
}

func (f *FloodCounter) remove(i int32) {
	f.unlink(i)
	delete(f.idx, f.slab[i].key)
	f.slab[i] = floodEntry{nextE: f.free}
	f.free = i
}

// victim chooses the key to evict (see the type's doc).
func (f *FloodCounter) victim(nowNs int64) int32 {
	for _, seg := range []uint8{probation, protected} {
		for i := f.lists[seg].tail; i >= 0; i = f.slab[i].prevE {
			if e := &f.slab[i]; e.strictUntil == 0 || e.strictUntil <= nowNs {
				return i
			}
		}
	}
	// Only strict keys: the one whose strict state ends first.
	best := int32(-1)
	for _, i := range f.idx {
		if best < 0 || f.slab[i].strictUntil < f.slab[best].strictUntil {
			best = i
		}
	}
	return best
}

func (f *FloodCounter) insert(key FloodKey, win int64, nowNs int64) int32 {
	if len(f.idx) >= f.max {
		if v := f.victim(nowNs); v >= 0 {
			f.remove(v)
		}
	}
	var i int32
	if f.free >= 0 {
		i = f.free
		f.free = f.slab[i].nextE
	} else {
		f.slab = append(f.slab, floodEntry{})
		i = int32(len(f.slab) - 1)
	}
	f.slab[i] = floodEntry{key: key, win: win}
	f.idx[key] = i
	f.pushFront(i, probation)
	return i
}

// touch moves entry i to the front of its segment, promoting it to the
// protected one on its second counted message.
func (f *FloodCounter) touch(i int32) {
	e := &f.slab[i]
	seg := e.seg
	if seg == probation && e.hits >= 2 {
		seg = protected
	}
	f.unlink(i)
	f.pushFront(i, seg)
	if pl := &f.lists[protected]; pl.n > f.max*4/5 {
		t := pl.tail
		f.unlink(t)
		f.pushFront(t, probation)
	}
}

// Hit looks at (and when count is set, counts) one message for key.
func (f *FloodCounter) Hit(key FloodKey, count bool, now time.Time) FloodResult {
	if f == nil || f.limit < 0 {
		return FloodResult{}
	}
	win, elapsed := windowPos(now, f.window)
	nowNs := now.UnixNano()
	f.mu.Lock()
	expired := f.prune(now)
	r := f.hit(key, count, win, elapsed, nowNs)
	f.mu.Unlock()
	if expired > 0 && f.OnExpired != nil {
		f.OnExpired(expired)
	}
	return r
}

func (f *FloodCounter) hit(key FloodKey, count bool, win int64, elapsed float64, nowNs int64) FloodResult {
	i, ok := f.idx[key]
	if !ok {
		if !count {
			return FloodResult{}
		}
		i = f.insert(key, win, nowNs)
	}
	e := &f.slab[i]
	switch {
	case win == e.win:
	case win == e.win+1:
		e.prev, e.cur, e.win = e.cur, 0, win
	case win > e.win:
		e.prev, e.cur, e.win = 0, 0, win
	}
	if count && win == e.win {
		e.cur++
		if e.hits < 255 {
			e.hits++
		}
		f.touch(i)
		e = &f.slab[i]
	}
	var r FloodResult
	if e.strictUntil != 0 {
		if nowNs < e.strictUntil {
			r.Strict = true
			return r
		}
		r.Left = true
		e.strictUntil = 0
	}
	if count && SlidingRate(int64(e.cur), int64(e.prev), elapsed) > float64(f.limit) && f.strictFor > 0 {
		e.strictUntil = nowNs + int64(f.strictFor)
		r.Strict, r.Entered = true, true
	}
	return r
}

// prune drops idle keys at most once a window, and strict keys whose
// strict state has ended and that have been idle since; it returns how
// many of those it dropped. Called with f.mu held; it walks the keys
// (at most the cap) once a window.
func (f *FloodCounter) prune(now time.Time) (expired int) {
	if now.Sub(f.lastPrune) < f.window {
		return 0
	}
	f.lastPrune = now
	win, _ := windowPos(now, f.window)
	nowNs := now.UnixNano()
	for _, i := range f.idx {
		e := &f.slab[i]
		if e.win >= win-1 {
			continue
		}
		switch {
		case e.strictUntil == 0:
			f.remove(i)
		case e.strictUntil+int64(f.strictFor+2*f.window) <= nowNs:
			// As long after its end as Redis keeps the strict key, so that
			// every backend reports FloodLeft to a key that comes back.
			f.remove(i)
			expired++
		}
	}
	return expired
}

// Len returns the number of tracked keys.
func (f *FloodCounter) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.idx)
}

// Strict returns the number of keys in the strict state at now (for the
// bounce_milter_flood_strict gauge).
func (f *FloodCounter) Strict(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ns := 0, now.UnixNano()
	for _, i := range f.idx {
		if f.slab[i].strictUntil > ns {
			n++
		}
	}
	return n
}

// Flood is the pair of counters a store keeps.
type Flood struct {
	Recipient, Client *FloodCounter
}

// NewFlood builds both counters from the configuration.
func NewFlood(c FloodConfig) *Flood {
	return &Flood{
		Recipient: NewFloodCounter(c.RecipientLimit, c.Window, c.StrictFor, c.MaxEntries),
		Client:    NewFloodCounter(c.ClientLimit, c.Window, c.StrictFor, c.MaxEntries),
	}
}

// Apply runs both counters for q and fills the flood fields of f. The
// recipient is keyed without its extension when q.Delimiter is set.
func (fl *Flood) Apply(h *Hasher, q InboundQuery, f *InboundFacts) {
	var r, c FloodResult
	if q.Recipient != "" {
		r = fl.Recipient.Hit(FloodKey(key8(h.digest("rcpt", StripExtension(strings.ToLower(strings.TrimSpace(q.Recipient)), q.Delimiter)))), q.Count, q.Now)
	}
	if q.ClientIP != "" {
		c = fl.Client.Hit(FloodKey(key8(h.digest("ip", strings.ToLower(strings.TrimSpace(q.ClientIP))))), q.Count, q.Now)
	}
	f.RecipientStrict, f.ClientStrict = r.Strict, c.Strict
	f.FloodEntered = r.Entered || c.Entered
	f.FloodLeft = r.Left || c.Left
}
