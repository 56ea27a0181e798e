package alerts

import (
	"math"
	"sort"
	"time"
)

// Series is a count the detectors read, per subject.
type Series string

// The series.
const (
	SeriesBackscatter Series = "backscatter" // subject: our domain; suspected backscatter
	SeriesBadTags     Series = "bad-tags"    // subject: our domain; bad-signature and unknown-key refusals
	SeriesBounces     Series = "bounces"     // subject: our sender; its genuine bounces
	SeriesUnknown     Series = "unknown"     // subject: our sender; its hard userunknown/hostunknown bounces
	SeriesSpam        Series = "spam"        // subject: our sending host; refused as spam
	SeriesMalware     Series = "malware"     // subject: our sending host; refused as malware
	SeriesBlocklist   Series = "blocklist"   // subject: our sending host; refusals naming a block list
)

// AllSeries lists them.
var AllSeries = []Series{SeriesBackscatter, SeriesBadTags, SeriesBounces, SeriesUnknown, SeriesSpam, SeriesMalware, SeriesBlocklist}

// MemberSet is a set of members per subject (distinct counts, evidence).
type MemberSet string

// The member sets.
const (
	MembersNetworks         MemberSet = "networks"          // our domain → client networks of its backscatter
	MembersReporters        MemberSet = "reporters"         // our domain → claimed reporting MTAs
	MembersUnknownDomains   MemberSet = "unknown-domains"   // our sender → recipient domains of its unknown bounces
	MembersSpamDomains      MemberSet = "spam-domains"      // sending host → recipient domains refusing as spam
	MembersMalwareDomains   MemberSet = "malware-domains"   // sending host → recipient domains refusing as malware
	MembersBlocklistDomains MemberSet = "blocklist-domains" // sending host → recipient domains naming a list
	MembersLists            MemberSet = "lists"             // sending host → block lists named
)

// Bucket is one time bucket of figures.
type Bucket struct {
	Start time.Time
	// Counts: series → subject → count.
	Counts map[Series]map[string]int64
	// Members: member set → subject → member → count.
	Members map[MemberSet]map[string]map[string]int64
	// Trimmed marks the series whose store set kept only its top members
	// in this bucket: a subject missing from it may have had a small
	// count.
	Trimmed map[Series]bool
}

// DomainKeys is one of our domains' keys, as the engine in force has them.
type DomainKeys struct {
	Domain string
	// Signing is the key number that signs (-1: none); Numbers those the
	// domain's key files list.
	Signing  int
	Numbers  []int
	Lifetime int // days
}

// Input is what one evaluation reads.
type Input struct {
	Now time.Time
	// Since is when statistics began (zero: unknown).
	Since time.Time
	// Fine are the 5-minute buckets covering the longest window (and the
	// bucket before it), Daily the daily buckets covering the baseline
	// days; any order.
	Fine, Daily []Bucket
	// FineWidth is the width of Fine's buckets (default 5 minutes);
	// FineFrom the start of the range they were read from.
	FineWidth time.Duration
	FineFrom  time.Time
	// KeyFirst and KeyLast are the first and last time each key number
	// signed; KeyFirstSince when first uses began to be recorded.
	KeyFirst, KeyLast map[int]time.Time
	KeyFirstSince     time.Time
	// Keys are our domains' keys.
	Keys []DomainKeys
}

const day = 24 * time.Hour

func (in *Input) width() time.Duration {
	if in.FineWidth <= 0 {
		return 5 * time.Minute
	}
	return in.FineWidth
}

// sample is what the window tracker keeps of one evaluation: the counts
// of the fine bucket it fell in.
type sample struct {
	t      time.Time
	bucket time.Time
	counts map[Series]map[string]int64
}

// tracker keeps samples for the sliding windows (see the package doc).
type tracker struct {
	samples []sample
}

// maxSamples bounds the samples kept; spacing keeps them at least
// window/100 apart, so a 24-hour window keeps one every ~15 minutes.
const maxSamples = 256

// observe records the evaluation at now and drops what no window needs.
func (tr *tracker) observe(in *Input, windows []time.Duration) {
	w := in.width()
	longest, shortest := time.Duration(0), time.Duration(math.MaxInt64)
	for _, x := range windows {
		longest, shortest = max(longest, x), min(shortest, x)
	}
	cur := in.Now.Truncate(w)
	s := sample{t: in.Now, bucket: cur, counts: map[Series]map[string]int64{}}
	for _, b := range in.Fine {
		if !b.Start.Equal(cur) {
			continue
		}
		for ser, m := range b.Counts {
			c := make(map[string]int64, len(m))
			for k, v := range m {
				c[k] = v
			}
			s.counts[ser] = c
		}
	}
	if n := len(tr.samples); n > 0 && tr.samples[n-1].t.After(in.Now) {
		// The clock went back: start again.
		tr.samples = nil
	}
	spacing := shortest / 100
	if n := len(tr.samples); n == 0 || in.Now.Sub(tr.samples[n-1].t) >= spacing {
		tr.samples = append(tr.samples, s)
	}
	// Keep the newest sample at least longest old, and everything after.
	cut := in.Now.Add(-longest)
	keep := 0
	for i, x := range tr.samples {
		if !x.t.After(cut) {
			keep = i
		}
	}
	tr.samples = tr.samples[keep:]
	if len(tr.samples) > maxSamples {
		tr.samples = append([]sample(nil), tr.samples[len(tr.samples)-maxSamples:]...)
	}
}

// windowCounts returns, per subject, what series gained within the
// window ending at in.Now: since the newest sample at least window old,
// or, without one, the whole buckets the window touches.
func (tr *tracker) windowCounts(in *Input, ser Series, window time.Duration) map[string]int64 {
	w := in.width()
	from := in.Now.Add(-window)
	var base *sample
	for i := range tr.samples {
		if !tr.samples[i].t.After(from) {
			base = &tr.samples[i]
		}
	}
	if base != nil && (base.t.Before(from.Add(-w)) || base.bucket.Before(in.FineFrom)) {
		// Too old (the evaluations paused), or before the buckets read:
		// the difference would count more than the window.
		base = nil
	}
	out := map[string]int64{}
	for _, b := range in.Fine {
		if base != nil {
			if b.Start.Before(base.bucket) {
				continue
			}
		} else if !b.Start.Add(w).After(from) || b.Start.After(in.Now) {
			continue
		}
		for subj, n := range b.Counts[ser] {
			out[subj] += n
		}
	}
	if base != nil {
		for subj, n := range base.counts[ser] {
			if _, ok := out[subj]; ok {
				out[subj] = max(out[subj]-n, 0)
			}
		}
	}
	for subj, n := range out {
		if n <= 0 {
			delete(out, subj)
		}
	}
	return out
}

// members returns, per subject, the members of set over the buckets the
// window touches (bucket-granular: distinct counts cannot be differenced).
func members(in *Input, set MemberSet, window time.Duration) map[string]map[string]int64 {
	w := in.width()
	from := in.Now.Add(-window)
	out := map[string]map[string]int64{}
	for _, b := range in.Fine {
		if !b.Start.Add(w).After(from) || b.Start.After(in.Now) {
			continue
		}
		for subj, ms := range b.Members[set] {
			if out[subj] == nil {
				out[subj] = map[string]int64{}
			}
			for m, n := range ms {
				out[subj][m] += n
			}
		}
	}
	return out
}

// top returns the MaxTop members with the highest counts.
func top(ms map[string]int64, n int) []Member {
	out := make([]Member, 0, len(ms))
	for m, c := range ms {
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
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// baseline is a subject's usual: its busiest day among the baseline days.
type baseline struct {
	usual int64
	days  int
}

// baselineDays returns the daily buckets the usual is taken over for a
// window: the last n complete days before the day the window begins in,
// not before the day statistics began, oldest first; a day the store has
// no bucket for counted nothing (an empty bucket stands for it).
func baselineDays(in *Input, window time.Duration, n int) []Bucket {
	end := in.Now.Add(-window).Truncate(day)
	start := end.Add(-time.Duration(n) * day)
	if !in.Since.IsZero() && in.Since.Truncate(day).After(start) {
		start = in.Since.Truncate(day)
	}
	byStart := map[int64]Bucket{}
	for _, b := range in.Daily {
		byStart[b.Start.Unix()] = b
	}
	var out []Bucket
	for d := start; d.Before(end); d = d.Add(day) {
		b, ok := byStart[d.Unix()]
		if !ok {
			b = Bucket{Start: d}
		}
		out = append(out, b)
	}
	return out
}

// usual returns the baseline of one subject of a series over days,
// leaving out the days excluded says (the same alert was active).
func usual(days []Bucket, ser Series, subject string, excluded func(dayStart time.Time) bool) baseline {
	var b baseline
	for _, d := range days {
		if excluded != nil && excluded(d.Start) {
			continue
		}
		b.days++
		n, ok := d.Counts[ser][subject]
		if !ok && d.Trimmed[ser] {
			// Missing from a full set: at most its smallest kept count.
			first := true
			for _, c := range d.Counts[ser] {
				if first || c < n {
					n, first = c, false
				}
			}
		}
		b.usual = max(b.usual, n)
	}
	return b
}

// threshold is max(floor, ceil(factor × usual)).
func threshold(r Rule, usual int64) int64 {
	return max(r.Floor, int64(math.Ceil(r.Factor*float64(usual))))
}
