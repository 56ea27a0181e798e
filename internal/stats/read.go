package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// Reader reads the statistics back for the pages and the JSON API. Every
// answer is bounded: a fixed number of buckets, of lines (MaxLines), of
// top members (MaxTop) and of marks (MaxMarks).
type Reader struct {
	Store cache.StatsStore
	// Agg, when set, writes what it holds before each read, so that a
	// page shows the decisions of the last seconds too.
	Agg *Aggregator
	Now func() time.Time
}

// Answer bounds.
const (
	MaxLines = 16
	MaxTop   = 50
	MaxMarks = 200
)

func (r *Reader) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reader) flush(ctx context.Context) {
	if r.Agg != nil {
		_ = r.Agg.Flush(ctx)
	}
}

// Series is the decisions of one direction over time.
type Series struct {
	Direction string      `json:"direction"`
	Width     string      `json:"width"` // "5m" or "1d"
	Starts    []time.Time `json:"starts"`
	// Lines are per verdict and reason, the largest first (at most
	// MaxLines; the rest are summed in a line "other/other").
	Lines    []Line        `json:"lines"`
	Domains  []DomainTotal `json:"domains"`
	Total    int64         `json:"total"`
	Domain   string        `json:"domain,omitempty"` // the domain the series is restricted to
	Backscat int64         `json:"suspected_backscatter"`
}

// Line is one verdict and reason over time.
type Line struct {
	Verdict string  `json:"verdict"`
	Reason  string  `json:"reason"`
	Counts  []int64 `json:"counts"` // one per start
	Total   int64   `json:"total"`
}

// DomainTotal is one domain's decisions in the series' range.
type DomainTotal struct {
	Domain    string           `json:"domain"`
	Total     int64            `json:"total"`
	ByVerdict map[string]int64 `json:"by_verdict"`
}

// Range is the buckets of a series: n buckets of width w ending with the
// one holding now.
func Range(now time.Time, w time.Duration, n int) (from, to time.Time) {
	to = now.Truncate(w).Add(w)
	return to.Add(-time.Duration(n) * w), to
}

// Decisions reads the decisions of direction (Inbound or Outbound) in n
// buckets of width w up to now, for one domain ("" all); with suspectOnly,
// only suspected backscatter.
func (r *Reader) Decisions(ctx context.Context, direction string, w time.Duration, n int, domain string, suspectOnly bool) (Series, error) {
	r.flush(ctx)
	from, to := Range(r.now(), w, n)
	bs, err := r.Store.ReadStats(ctx, cache.StatsQuery{Width: w, From: from, To: to})
	if err != nil {
		return Series{}, fmt.Errorf("statistics: %w", err)
	}
	return seriesOf(bs, direction, w, from, n, domain, suspectOnly), nil
}

func seriesOf(bs []cache.StatsBucket, direction string, w time.Duration, from time.Time, n int, domain string, suspectOnly bool) Series {
	s := Series{Direction: direction, Width: cache.StatsWidthName(w), Domain: domain}
	for i := 0; i < n; i++ {
		s.Starts = append(s.Starts, from.Add(time.Duration(i)*w).UTC())
	}
	lines := map[[2]string]*Line{}
	doms := map[string]*DomainTotal{}
	for _, b := range bs {
		i := int(b.Start.Sub(from) / w)
		if i < 0 || i >= n {
			continue
		}
		for name, c := range b.Counts {
			parts := strings.Split(name, "|")
			if len(parts) != 5 || parts[0] != "d" || parts[1] != direction {
				continue
			}
			verdict, reason, dom := parts[2], parts[3], parts[4]
			if domain != "" && dom != domain {
				continue
			}
			if suspectOnly && (direction != Inbound || !suspect[reason]) {
				continue
			}
			k := [2]string{verdict, reason}
			l := lines[k]
			if l == nil {
				l = &Line{Verdict: verdict, Reason: reason, Counts: make([]int64, n)}
				lines[k] = l
			}
			l.Counts[i] += c
			l.Total += c
			s.Total += c
			if direction == Inbound && suspect[reason] {
				s.Backscat += c
			}
			d := doms[dom]
			if d == nil {
				d = &DomainTotal{Domain: dom, ByVerdict: map[string]int64{}}
				doms[dom] = d
			}
			d.Total += c
			d.ByVerdict[verdict] += c
		}
	}
	for _, l := range lines {
		s.Lines = append(s.Lines, *l)
	}
	sort.Slice(s.Lines, func(i, j int) bool {
		a, b := s.Lines[i], s.Lines[j]
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		if a.Verdict != b.Verdict {
			return a.Verdict < b.Verdict
		}
		return a.Reason < b.Reason
	})
	if len(s.Lines) > MaxLines {
		rest := Line{Verdict: Other, Reason: Other, Counts: make([]int64, n)}
		for _, l := range s.Lines[MaxLines-1:] {
			for i, c := range l.Counts {
				rest.Counts[i] += c
			}
			rest.Total += l.Total
		}
		s.Lines = append(s.Lines[:MaxLines-1], rest)
	}
	for _, d := range doms {
		s.Domains = append(s.Domains, *d)
	}
	sort.Slice(s.Domains, func(i, j int) bool {
		if s.Domains[i].Total != s.Domains[j].Total {
			return s.Domains[i].Total > s.Domains[j].Total
		}
		return s.Domains[i].Domain < s.Domains[j].Domain
	})
	if len(s.Domains) > MaxTop {
		s.Domains = s.Domains[:MaxTop]
	}
	if s.Lines == nil {
		s.Lines = []Line{}
	}
	if s.Domains == nil {
		s.Domains = []DomainTotal{}
	}
	return s
}

// Window is a span the Floods page can show.
type Window struct {
	Name  string        // "1h", "6h", "24h", "7d", "30d"
	Width time.Duration // the buckets it reads
	N     int           // how many
}

// Windows are the spans offered.
var Windows = []Window{
	{"1h", cache.StatsFine, 12},
	{"6h", cache.StatsFine, 72},
	{"24h", cache.StatsFine, 288},
	{"7d", cache.StatsDaily, 7},
	{"30d", cache.StatsDaily, 30},
}

// ParseWindow returns the window named s ("" is 24h).
func ParseWindow(s string) (Window, error) {
	if s == "" {
		s = "24h"
	}
	for _, w := range Windows {
		if w.Name == s {
			return w, nil
		}
	}
	return Window{}, fmt.Errorf("window %q: want 1h, 6h, 24h, 7d or 30d", s)
}

// Floods is the suspected backscatter of a window.
type Floods struct {
	Window string    `json:"window"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// Series is the suspected backscatter over the window by verdict and
	// reason.
	Series Series `json:"series"`
	// The top members of each set over the window (at most MaxTop each;
	// approximate: see cache.StatsTopKeep).
	Recipients []cache.Member `json:"recipients"`
	Networks   []cache.Member `json:"networks"`
	Reporters  []cache.Member `json:"reporting_mtas"`
	Replayed   []cache.Member `json:"replayed"`
	// Marks are the flood state changes in the window, newest first (at
	// most MaxMarks).
	Marks []Mark `json:"marks"`
}

// Floods reads the suspected backscatter of window win up to now.
func (r *Reader) Floods(ctx context.Context, win Window, top int) (Floods, error) {
	r.flush(ctx)
	if top <= 0 || top > MaxTop {
		top = MaxTop
	}
	from, to := Range(r.now(), win.Width, win.N)
	bs, err := r.Store.ReadStats(ctx, cache.StatsQuery{Width: win.Width, From: from, To: to, Sets: Sets, Marks: true})
	if err != nil {
		return Floods{}, fmt.Errorf("statistics: %w", err)
	}
	f := Floods{Window: win.Name, From: from, To: to, Series: seriesOf(bs, Inbound, win.Width, from, win.N, "", true)}
	sums := map[string]map[string]int64{}
	for _, b := range bs {
		for set, ms := range b.Sets {
			if sums[set] == nil {
				sums[set] = map[string]int64{}
			}
			for m, c := range ms {
				sums[set][m] += c
			}
		}
		for _, mk := range b.Marks {
			if m, ok := parseMark(mk); ok {
				f.Marks = append(f.Marks, m)
			}
		}
	}
	f.Recipients = cache.TopOf(sums[SetRecipients], top)
	f.Networks = cache.TopOf(sums[SetNetworks], top)
	f.Reporters = cache.TopOf(sums[SetReporters], top)
	f.Replayed = cache.TopOf(sums[SetReplayed], top)
	sort.SliceStable(f.Marks, func(i, j int) bool { return f.Marks[i].Time.After(f.Marks[j].Time) })
	if len(f.Marks) > MaxMarks {
		f.Marks = f.Marks[:MaxMarks]
	}
	if f.Marks == nil {
		f.Marks = []Mark{}
	}
	return f, nil
}

func parseMark(mk cache.StatsMark) (Mark, bool) {
	var m Mark
	if err := json.Unmarshal([]byte(mk.Text), &m); err != nil {
		return Mark{}, false
	}
	m.Time = mk.Time.UTC()
	return m, true
}

// Strict is a recipient or client the marks show in the flood state.
type Strict struct {
	Kind    string    `json:"kind"` // "recipient" or "client"
	Name    string    `json:"name"`
	Entered time.Time `json:"entered"`
	Until   time.Time `json:"until"` // at the latest (strict_for after entering)
}

// FloodState lists what entered the flood state within strictFor and has
// not been seen leaving it (leaving is reported only when mail for it
// comes again, so Until is the latest it ends).
func (r *Reader) FloodState(ctx context.Context, strictFor time.Duration) ([]Strict, error) {
	r.flush(ctx)
	now := r.now()
	from := now.Add(-strictFor).Truncate(cache.StatsFine)
	bs, err := r.Store.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsFine, From: from, To: now.Add(cache.StatsFine), Marks: true})
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	var marks []Mark
	for _, b := range bs {
		for _, mk := range b.Marks {
			if m, ok := parseMark(mk); ok {
				marks = append(marks, m)
			}
		}
	}
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].Time.Before(marks[j].Time) })
	state := map[[2]string]*Strict{}
	var order [][2]string
	for _, m := range marks {
		for _, k := range [][2]string{{"recipient", m.Recipient}, {"client", m.Client}} {
			if k[1] == "" {
				continue
			}
			strict := m.RecipientStrict
			if k[0] == "client" {
				strict = m.ClientStrict
			}
			switch {
			case m.Entered && strict && state[k] == nil:
				order = append(order, k)
				state[k] = &Strict{Kind: k[0], Name: k[1], Entered: m.Time, Until: m.Time.Add(strictFor)}
			case !m.Entered && !strict:
				// Left: what is no longer strict is over.
				state[k] = nil
			}
		}
	}
	out := []Strict{}
	for _, k := range order {
		if s := state[k]; s != nil && s.Until.After(now) {
			out = append(out, *s)
			state[k] = nil // once, if it entered again
		}
	}
	if len(out) > MaxTop {
		out = out[:MaxTop]
	}
	return out, nil
}

// KeyUse is what the statistics know of one key number.
type KeyUse struct {
	Number int       `json:"key"`
	Days   []DayUse  `json:"days"` // the last 30 days, oldest first
	Total  int64     `json:"total_30d"`
	Last   time.Time `json:"last_use,omitzero"`
}

// DayUse is the messages signed on one day.
type DayUse struct {
	Day    time.Time `json:"day"`
	Signed int64     `json:"signed"`
}

// Keys reads the use of every key number seen in the last 30 days or
// with a last use kept, and since when statistics are kept (zero: none).
func (r *Reader) Keys(ctx context.Context) ([]KeyUse, time.Time, error) {
	r.flush(ctx)
	const days = 30
	from, to := Range(r.now(), cache.StatsDaily, days)
	bs, err := r.Store.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsDaily, From: from, To: to})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("statistics: %w", err)
	}
	latest, err := r.Store.StatsLatest(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("statistics: %w", err)
	}
	var since time.Time
	if v, ok := latest["since"]; ok {
		since = time.Unix(v, 0).UTC()
	}
	keys := map[int]*KeyUse{}
	get := func(k int) *KeyUse {
		u := keys[k]
		if u == nil {
			u = &KeyUse{Number: k}
			for i := 0; i < days; i++ {
				u.Days = append(u.Days, DayUse{Day: from.Add(time.Duration(i) * cache.StatsDaily).UTC()})
			}
			keys[k] = u
		}
		return u
	}
	for _, b := range bs {
		i := int(b.Start.Sub(from) / cache.StatsDaily)
		if i < 0 || i >= days {
			continue
		}
		for name, c := range b.Counts {
			ks, ok := strings.CutPrefix(name, "k|")
			k, err := strconv.Atoi(ks)
			if !ok || err != nil || k < 0 || k > 9 {
				continue
			}
			u := get(k)
			u.Days[i].Signed += c
			u.Total += c
		}
	}
	for name, v := range latest {
		ks, ok := strings.CutPrefix(name, "key:")
		k, err := strconv.Atoi(ks)
		if !ok || err != nil || k < 0 || k > 9 {
			continue
		}
		get(k).Last = time.Unix(v, 0).UTC()
	}
	out := []KeyUse{}
	for _, u := range keys {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, since, nil
}
