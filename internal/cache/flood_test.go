package cache

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// MaxFloodEntryBytes is the memory one flood-counter key may cost.
const MaxFloodEntryBytes = 128

// The counter's memory is bounded by its cap, and an entry is compact:
// measured with the Go heap before and after N distinct keys (issue 12 #4:
// 100,000 recipients cost 28.6 MiB before, 0.3 KiB each).
func TestFloodCounterMemory(t *testing.T) {
	n, churn := 100_000, 10
	if raceEnabled {
		n, churn = 20_000, 3
	}
	t0 := time.Unix(1_800_000_000, 0)
	before := heapAlloc()
	f := NewFloodCounter(30, 10*time.Minute, time.Hour, n)
	for i := 0; i < n; i++ {
		f.Hit(FloodKeyOf(fmt.Sprint("r", i)), true, t0)
	}
	full := heapAlloc()
	per := float64(full-before) / float64(n)
	// Ten times as many distinct keys: the cap holds (the map keeps some
	// slack for deleted slots, no more).
	for i := n; i < (churn+1)*n; i++ {
		f.Hit(FloodKeyOf(fmt.Sprint("r", i)), true, t0)
	}
	after := heapAlloc()
	runtime.KeepAlive(f)
	t.Logf("%d keys: %.1f bytes each; after %d more distinct keys: %d keys, heap %+d bytes", n, per, churn*n, f.Len(), int64(after)-int64(full))
	if per > MaxFloodEntryBytes {
		t.Errorf("%.1f bytes per flood key, goal %d", per, MaxFloodEntryBytes)
	}
	if f.Len() != n {
		t.Errorf("%d keys held, cap %d", f.Len(), n)
	}
	if after > full+full/2 {
		t.Errorf("heap grew from %d to %d past the cap", full, after)
	}
}

// A spray of distinct keys (one message each) does not evict a key that
// was climbing towards the limit, nor a strict one.
func TestFloodCounterEviction(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).Add(30 * time.Second)
	f := NewFloodCounter(5, time.Minute, time.Hour, 100)
	victim, flooded := FloodKeyOf("victim"), FloodKeyOf("flooded")
	for i := 0; i < 3; i++ {
		f.Hit(victim, true, t0)
	}
	for i := 0; i < 6; i++ {
		f.Hit(flooded, true, t0)
	}
	for i := 0; i < 10_000; i++ {
		f.Hit(FloodKeyOf(fmt.Sprint("spray", i)), true, t0)
	}
	if f.Len() != 100 {
		t.Fatalf("%d keys", f.Len())
	}
	if r := f.Hit(flooded, false, t0); !r.Strict {
		t.Fatal("strict key evicted by a spray")
	}
	// The victim keeps its 3: three more make it strict (limit 5).
	var r FloodResult
	for i := 0; i < 3; i++ {
		r = f.Hit(victim, true, t0)
	}
	if !r.Strict || !r.Entered {
		t.Fatalf("victim's count was evicted: %+v", r)
	}
	// Strict keys go only when nothing else is left.
	// then the one whose strict state ends first.
	g := NewFloodCounter(1, time.Minute, time.Hour, 3)
	for i, k := range []string{"a", "b", "c"} {
		at := t0.Add(time.Duration(i) * time.Second)
		g.Hit(FloodKeyOf(k), true, at)
		g.Hit(FloodKeyOf(k), true, at) // strict
	}
	g.Hit(FloodKeyOf("d"), true, t0.Add(3*time.Second))
	if g.Len() != 3 || !g.Hit(FloodKeyOf("b"), false, t0).Strict || g.Hit(FloodKeyOf("a"), false, t0).Strict {
		t.Fatalf("eviction among strict keys: %d keys", g.Len())
	}
}

// Strict keys expire on their own: a key that never comes back is dropped
// and reported once through OnExpired; one that does is told FloodLeft.
func TestFloodCounterStrictExpires(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	f := NewFloodCounter(1, time.Minute, 10*time.Minute, 0)
	expired := 0
	f.OnExpired = func(n int) { expired += n }
	a, b := FloodKeyOf("a"), FloodKeyOf("b")
	for _, k := range []FloodKey{a, a, b, b} {
		f.Hit(k, true, t0)
	}
	// b comes back after its strict state: left, once.
	if r := f.Hit(b, true, t0.Add(11*time.Minute)); !r.Left || r.Strict {
		t.Fatalf("b after strict_for: %+v", r)
	}
	// a never does: dropped once its strict state has been over for
	// strict_for plus two windows, and reported.
	f.Hit(FloodKeyOf("other"), false, t0.Add(30*time.Minute))
	if expired != 1 || f.Len() != 0 {
		t.Fatalf("expired %d, %d keys left", expired, f.Len())
	}
	f.Hit(FloodKeyOf("other"), false, t0.Add(60*time.Minute))
	if expired != 1 {
		t.Fatalf("reported %d times", expired)
	}
}
