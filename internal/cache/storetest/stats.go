package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// StatsFactory opens a fresh, empty statistics store; stores opened by one
// factory must not see each other's data (a shared Redis: a key prefix
// of their own).
type StatsFactory func(t *testing.T) cache.StatsStore

// RunStats is the conformance suite of cache.StatsStore.
func RunStats(t *testing.T, open StatsFactory) {
	now := time.Now().UTC()
	fine := now.Truncate(cache.StatsFine)
	day := now.Truncate(cache.StatsDaily)

	t.Run("AddAndRead", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		w := cache.StatsWrite{Buckets: []cache.StatsBucket{
			{Width: cache.StatsFine, Start: fine, Counts: map[string]int64{"a": 2, "b": 1},
				Sets: map[string]map[string]int64{"rcpt": {"x@example.org": 3, "y@example.org": 1}}},
			{Width: cache.StatsFine, Start: fine.Add(-cache.StatsFine), Counts: map[string]int64{"a": 7}},
			{Width: cache.StatsDaily, Start: day, Counts: map[string]int64{"a": 9}},
		}}
		if err := s.AddStats(c, w); err != nil {
			t.Fatal(err)
		}
		// A second write adds up.
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{
			{Width: cache.StatsFine, Start: fine, Counts: map[string]int64{"a": 1, "c": 4},
				Sets: map[string]map[string]int64{"rcpt": {"y@example.org": 5}, "net": {"192.0.2.0/24": 1}}},
		}}); err != nil {
			t.Fatal(err)
		}
		bs, err := s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine.Add(-time.Hour), To: fine.Add(time.Hour), Sets: []string{"rcpt", "net"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 || !bs[0].Start.Equal(fine.Add(-cache.StatsFine)) || !bs[1].Start.Equal(fine) {
			t.Fatalf("buckets %+v", bs)
		}
		if bs[0].Width != cache.StatsFine || bs[0].Counts["a"] != 7 || len(bs[0].Sets) != 0 {
			t.Fatalf("older bucket %+v", bs[0])
		}
		b := bs[1]
		if b.Counts["a"] != 3 || b.Counts["b"] != 1 || b.Counts["c"] != 4 || len(b.Counts) != 3 {
			t.Fatalf("counts %v", b.Counts)
		}
		if r := b.Sets["rcpt"]; r["x@example.org"] != 3 || r["y@example.org"] != 6 || len(r) != 2 {
			t.Fatalf("set rcpt %v", r)
		}
		if n := b.Sets["net"]; n["192.0.2.0/24"] != 1 {
			t.Fatalf("set net %v", n)
		}
		// Bounds: [From, To).
		bs, err = s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine})
		if err != nil || len(bs) != 0 {
			t.Fatalf("empty range: %+v %v", bs, err)
		}
		bs, err = s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(time.Second)})
		if err != nil || len(bs) != 1 || bs[0].Counts["a"] != 3 || len(bs[0].Sets) != 0 {
			t.Fatalf("one bucket, no sets asked: %+v %v", bs, err)
		}
		// Daily buckets are apart.
		bs, err = s.ReadStats(c, cache.StatsQuery{Width: cache.StatsDaily, From: day.Add(-48 * time.Hour), To: day.Add(48 * time.Hour)})
		if err != nil || len(bs) != 1 || bs[0].Counts["a"] != 9 || !bs[0].Start.Equal(day) || bs[0].Width != cache.StatsDaily {
			t.Fatalf("daily: %+v %v", bs, err)
		}
	})

	t.Run("TopTrimmed", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		set := map[string]int64{}
		for i := 1; i <= cache.StatsTopKeep+50; i++ {
			set[fmt.Sprintf("m%03d", i)] = int64(i)
		}
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: fine, Sets: map[string]map[string]int64{"s": set}}}}); err != nil {
			t.Fatal(err)
		}
		bs, err := s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine), Sets: []string{"s"}, Top: 10})
		if err != nil || len(bs) != 1 {
			t.Fatalf("%+v %v", bs, err)
		}
		top := cache.TopOf(bs[0].Sets["s"], -1)
		if len(top) != 10 || top[0].Name != fmt.Sprintf("m%03d", cache.StatsTopKeep+50) || top[0].Count != int64(cache.StatsTopKeep+50) || top[9].Count != int64(cache.StatsTopKeep+41) {
			t.Fatalf("top 10: %v", top)
		}
		bs, err = s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine), Sets: []string{"s"}})
		if err != nil || len(bs) != 1 {
			t.Fatalf("%+v %v", bs, err)
		}
		all := bs[0].Sets["s"]
		if len(all) != cache.StatsTopKeep {
			t.Fatalf("kept %d members, want %d", len(all), cache.StatsTopKeep)
		}
		for m, n := range all {
			if n <= 50 {
				t.Fatalf("member %s (%d) should have been trimmed", m, n)
			}
		}
	})

	t.Run("Marks", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		var marks []cache.StatsMark
		for i := 0; i < cache.StatsMaxMarks+20; i++ {
			marks = append(marks, cache.StatsMark{Time: fine.Add(time.Duration(i) * time.Second), Text: fmt.Sprintf("mark %d", i)})
		}
		marks[len(marks)-1].Text = strings.Repeat("x", cache.StatsMaxMarkLen+100)
		// In two writes: the list is trimmed across writes too.
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: fine, Marks: marks[:60]}}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: fine, Marks: marks[60:]}}}); err != nil {
			t.Fatal(err)
		}
		bs, err := s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine)})
		if err != nil || len(bs) > 1 || (len(bs) == 1 && len(bs[0].Marks) != 0) {
			t.Fatalf("marks not asked for: %+v %v", bs, err)
		}
		bs, err = s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine), Marks: true})
		if err != nil || len(bs) != 1 {
			t.Fatalf("%+v %v", bs, err)
		}
		got := bs[0].Marks
		if len(got) != cache.StatsMaxMarks {
			t.Fatalf("%d marks kept, want %d", len(got), cache.StatsMaxMarks)
		}
		if got[0].Text != "mark 20" || !got[0].Time.Equal(marks[20].Time) {
			t.Fatalf("oldest kept mark %+v, want mark 20", got[0])
		}
		if last := got[len(got)-1]; len(last.Text) != cache.StatsMaxMarkLen || !last.Time.Equal(marks[len(marks)-1].Time) {
			t.Fatalf("newest mark %d bytes at %v", len(last.Text), last.Time)
		}
	})

	t.Run("Latest", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		if err := s.AddStats(c, cache.StatsWrite{Max: map[string]int64{"k1": 100, "k2": 50}, Min: map[string]int64{"since": 1000}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddStats(c, cache.StatsWrite{Max: map[string]int64{"k1": 90, "k2": 60}, Min: map[string]int64{"since": 2000}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddStats(c, cache.StatsWrite{Min: map[string]int64{"since": 500}}); err != nil {
			t.Fatal(err)
		}
		l, err := s.StatsLatest(c)
		if err != nil {
			t.Fatal(err)
		}
		if l["k1"] != 100 || l["k2"] != 60 || l["since"] != 500 || len(l) != 3 {
			t.Fatalf("latest %v", l)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		old := fine.Add(-cache.StatsFineKeep - time.Hour)
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{
			{Width: cache.StatsFine, Start: old, Counts: map[string]int64{"a": 1}},
			{Width: cache.StatsFine, Start: fine, Counts: map[string]int64{"a": 2}},
		}}); err != nil {
			t.Fatal(err)
		}
		bs, err := s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: old.Add(-time.Hour), To: fine.Add(time.Hour)})
		if err != nil || len(bs) != 1 || bs[0].Counts["a"] != 2 {
			t.Fatalf("a bucket past its retention was kept: %+v %v", bs, err)
		}
	})

	t.Run("BadWidth", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: time.Hour, Start: fine, Counts: map[string]int64{"a": 1}}}}); err == nil {
			t.Fatal("an hour-wide bucket was accepted")
		}
		if _, err := s.ReadStats(c, cache.StatsQuery{Width: time.Minute, From: fine, To: fine.Add(time.Hour)}); err == nil {
			t.Fatal("a read of minute buckets was accepted")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 5; j++ {
					if err := s.AddStats(c, cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: fine,
						Counts: map[string]int64{"n": 1}, Sets: map[string]map[string]int64{"s": {"m": 1}}}}}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		bs, err := s.ReadStats(c, cache.StatsQuery{Width: cache.StatsFine, From: fine, To: fine.Add(cache.StatsFine), Sets: []string{"s"}})
		if err != nil || len(bs) != 1 || bs[0].Counts["n"] != 40 || bs[0].Sets["s"]["m"] != 40 {
			t.Fatalf("concurrent adds: %+v %v", bs, err)
		}
	})
}
