package alerts

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// sim is a site's figures over time, as the store would hold them: counts
// and members in 5-minute and daily buckets. Traffic is added at the time
// it happens; eval evaluates at a time, as the service does every
// interval.
type sim struct {
	t       *testing.T
	since   time.Time
	fine    map[int64]*Bucket
	daily   map[int64]*Bucket
	ev      *Evaluator
	st      State
	trans   []Transition
	keys    []DomainKeys
	first   map[int]time.Time
	last    map[int]time.Time
	trimmed map[Series]bool
	// peaks are the highest count/threshold seen per kind while nothing
	// was raised (the margin ordinary traffic leaves).
	peaks map[Kind]float64
}

var simStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday

func newSim(t *testing.T, cfg Config) *sim {
	return &sim{t: t, since: simStart, fine: map[int64]*Bucket{}, daily: map[int64]*Bucket{}, ev: NewEvaluator(cfg),
		first: map[int]time.Time{}, last: map[int]time.Time{}, peaks: map[Kind]float64{},
		keys: []DomainKeys{{Domain: "example.com", Signing: 1, Numbers: []int{1, 2}, Lifetime: 7}}}
}

func (s *sim) bucket(m map[int64]*Bucket, w time.Duration, at time.Time) *Bucket {
	st := at.Truncate(w)
	b := m[st.Unix()]
	if b == nil {
		b = &Bucket{Start: st, Counts: map[Series]map[string]int64{}, Members: map[MemberSet]map[string]map[string]int64{}}
		m[st.Unix()] = b
	}
	return b
}

// add counts n of series for subject at time at (both widths).
func (s *sim) add(at time.Time, ser Series, subject string, n int64) {
	for _, b := range []*Bucket{s.bucket(s.fine, 5*time.Minute, at), s.bucket(s.daily, day, at)} {
		if b.Counts[ser] == nil {
			b.Counts[ser] = map[string]int64{}
		}
		b.Counts[ser][subject] += n
	}
}

// member adds a member of set for subject at time at.
func (s *sim) member(at time.Time, set MemberSet, subject, member string, n int64) {
	for _, b := range []*Bucket{s.bucket(s.fine, 5*time.Minute, at), s.bucket(s.daily, day, at)} {
		if b.Members[set] == nil {
			b.Members[set] = map[string]map[string]int64{}
		}
		if b.Members[set][subject] == nil {
			b.Members[set][subject] = map[string]int64{}
		}
		b.Members[set][subject][member] += n
	}
}

// The kinds of traffic, as package watch converts the store's figures.
func (s *sim) backscatter(at time.Time, domain, network string) {
	s.add(at, SeriesBackscatter, domain, 1)
	s.member(at, MembersNetworks, domain, network, 1)
	s.member(at, MembersReporters, domain, "mx."+network[:len(network)-3]+".example", 1)
}

func (s *sim) bounce(at time.Time, sender, rdomain string, unknown bool) {
	s.add(at, SeriesBounces, sender, 1)
	if unknown {
		s.add(at, SeriesUnknown, sender, 1)
		s.member(at, MembersUnknownDomains, sender, rdomain, 1)
	}
}

func (s *sim) refusal(at time.Time, ser Series, host, rdomain, list string) {
	s.add(at, ser, host, 1)
	set := map[Series]MemberSet{SeriesSpam: MembersSpamDomains, SeriesMalware: MembersMalwareDomains, SeriesBlocklist: MembersBlocklistDomains}[ser]
	s.member(at, set, host, rdomain, 1)
	if list != "" {
		s.member(at, MembersLists, host, list, 1)
	}
}

func (s *sim) badTag(at time.Time, domain string) { s.add(at, SeriesBadTags, domain, 1) }

func (s *sim) signed(at time.Time, key int) {
	if f, ok := s.first[key]; !ok || at.Before(f) {
		s.first[key] = at
	}
	if at.After(s.last[key]) {
		s.last[key] = at
	}
}

// input builds what the service would read at now.
func (s *sim) input(now time.Time) Input {
	in := Input{Now: now, Since: s.since, FineWidth: 5 * time.Minute, FineFrom: now.Add(-MaxWindow - 15*time.Minute),
		KeyFirst: s.first, KeyLast: s.last, KeyFirstSince: s.since, Keys: s.keys}
	for t := in.FineFrom.Truncate(5 * time.Minute); !t.After(now); t = t.Add(5 * time.Minute) {
		if b := s.fine[t.Unix()]; b != nil && !b.Start.Before(in.FineFrom) {
			in.Fine = append(in.Fine, s.withTrim(*b))
		}
	}
	for t := now.Add(-31 * day).Truncate(day); !t.After(now); t = t.Add(day) {
		if b := s.daily[t.Unix()]; b != nil && !b.Start.Before(now.Add(-31*day)) {
			in.Daily = append(in.Daily, s.withTrim(*b))
		}
	}
	return in
}

func (s *sim) withTrim(b Bucket) Bucket {
	if len(s.trimmed) > 0 {
		b.Trimmed = s.trimmed
	}
	return b
}

// eval evaluates at now and keeps the transitions.
func (s *sim) eval(now time.Time) []Transition {
	st, tr := s.ev.Evaluate(s.input(now), s.st)
	s.st = st
	s.trans = append(s.trans, tr...)
	return tr
}

// peak records how close ordinary traffic came: count/threshold of every
// candidate the detectors judged (through a throwaway evaluation).
func (s *sim) peak(now time.Time) {
	d := detection{e: s.ev, in: ptr(s.input(now)), st: &s.st, cands: map[string]candidate{}}
	d.forged()
	d.compromised()
	d.refused(KindSpam, SeriesSpam, MembersSpamDomains, s.ev.cfg.Spam, "")
	d.refused(KindMalware, SeriesMalware, MembersMalwareDomains, s.ev.cfg.Malware, "")
	d.refused(KindBlocklisted, SeriesBlocklist, MembersBlocklistDomains, s.ev.cfg.Blocklisted, "")
	d.keys()
	for _, c := range d.cands {
		if c.fig.Threshold > 0 {
			r := float64(c.fig.Count) / float64(c.fig.Threshold)
			if c.kind == KindKeys && c.fig.Rotation == "" {
				r = 0
			}
			s.peaks[c.kind] = math.Max(s.peaks[c.kind], r)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// run evaluates every step from from to to, calling traffic for each step
// first (with the step's start).
func (s *sim) run(from, to time.Time, step time.Duration, traffic func(at time.Time)) {
	for t := from; t.Before(to); t = t.Add(step) {
		if traffic != nil {
			traffic(t)
		}
		s.eval(t.Add(step - time.Second))
	}
}

func (s *sim) raised(k Kind, subject string) []Transition {
	var out []Transition
	for _, t := range s.trans {
		if t.Raised && t.Alert.Kind == k && t.Alert.Subject == subject {
			out = append(out, t)
		}
	}
	return out
}

func (s *sim) cleared(k Kind, subject string) []Transition {
	var out []Transition
	for _, t := range s.trans {
		if !t.Raised && t.Alert.Kind == k && t.Alert.Subject == subject {
			out = append(out, t)
		}
	}
	return out
}

func (s *sim) describe() string {
	var out []string
	for _, t := range s.trans {
		out = append(out, fmt.Sprintf("%s %s %s at %s: %s", t.State(), t.Alert.Kind, t.Alert.Subject, t.Alert.Updated.Format(time.RFC3339), t.Alert.Summary))
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}

// ordinary is a normal site's traffic for one 10-minute step at. The
// rates are those of a site with about sixty users and a newsletter, a
// domain forged now and then by spam runs, as logs of real sites show
// them; seeded, so every run is the same.
type ordinary struct {
	rng *rand.Rand
	s   *sim
	// campaign days: a spam run forging example.com for a few hours.
	campaign map[int]int
}

func newOrdinary(s *sim, seed uint64) *ordinary {
	o := &ordinary{rng: rand.New(rand.NewPCG(seed, 7)), s: s, campaign: map[int]int{}}
	for d := 0; d < 120; d++ {
		if o.rng.IntN(6) == 0 {
			o.campaign[d] = 8 + o.rng.IntN(10) // hour it starts
		}
	}
	return o
}

func (o *ordinary) poisson(lambda float64) int {
	// Knuth's method: lambda is small here.
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= o.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func weekend(t time.Time) bool { return t.Weekday() == time.Saturday || t.Weekday() == time.Sunday }

var lists = []string{"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "dnsbl-1.uceprotect.net", "psbl.surriel.com"}

// step adds 10 minutes of ordinary traffic from at.
func (o *ordinary) step(at time.Time) {
	s, r := o.s, o.rng
	dayN := int(at.Sub(simStart) / day)
	hour := at.Hour()
	stepFrac := 10.0 / (24 * 60)
	// Backscatter for example.com: 60-150 a day (less at weekends), some
	// days a spam run adds 150-300 over three hours; example.org a few.
	rate := 60 + 90*((float64(dayN%7)+1)/7)
	if weekend(at) {
		rate *= 0.6
	}
	n := o.poisson(rate * stepFrac)
	if h, ok := o.campaign[dayN]; ok && hour >= h && hour < h+3 {
		n += o.poisson(float64(150+(dayN*37)%150) / 18)
	}
	for i := 0; i < n; i++ {
		s.backscatter(at.Add(time.Duration(r.IntN(600))*time.Second), "example.com", fmt.Sprintf("203.0.%d.0/24", r.IntN(40)))
	}
	for i := o.poisson(4 * stepFrac); i > 0; i-- {
		s.backscatter(at, "example.org", "198.51.100.0/24")
	}
	// Forged-tag guesses: a few a day.
	for i := o.poisson(3 * stepFrac); i > 0; i-- {
		s.badTag(at, "example.com")
	}
	work := !weekend(at) && hour >= 8 && hour < 19
	// Sixty users: now and then a bounce (a full mailbox, an old address).
	if work {
		for u := 0; u < 60; u++ {
			if r.Float64() < 0.5/66 { // ~0.5 a working day each
				s.bounce(at, fmt.Sprintf("user%d@example.com", u), fmt.Sprintf("d%d.example", r.IntN(500)), r.IntN(3) == 0)
			}
		}
	}
	// The newsletter goes out at 09:00 on weekdays: 40-80 bounces within
	// the hour, three quarters unknown recipients at many domains.
	if !weekend(at) && hour == 9 {
		for i := o.poisson(10); i > 0; i-- {
			s.bounce(at, "news@example.com", fmt.Sprintf("n%d.example", r.IntN(300)), r.IntN(4) != 0)
		}
	}
	// A discussion list's owner: a steady trickle, all day.
	for i := o.poisson(15 * stepFrac); i > 0; i-- {
		s.bounce(at, "list-owner@example.com", fmt.Sprintf("l%d.example", r.IntN(200)), r.IntN(2) == 0)
	}
	// Refusals of our mail: a spam verdict now and then, a rare virus
	// verdict, a site using an aggressive block list.
	if work && r.Float64() < 2.0/66 {
		s.refusal(at, SeriesSpam, "192.0.2.10", fmt.Sprintf("s%d.example", r.IntN(50)), "")
	}
	if r.Float64() < 1.0/(144*9) {
		s.refusal(at, SeriesMalware, "192.0.2.10", fmt.Sprintf("v%d.example", r.IntN(50)), "")
	}
	if r.Float64() < 1.0/(144*3) {
		s.refusal(at, SeriesBlocklist, "192.0.2.10", "strict-site.example", lists[r.IntN(len(lists))])
	}
	// Signing: key 1, and from day 30 key 2 (a rotation, done right).
	k := 1
	if dayN >= 30 {
		k = 2
	}
	s.signed(at, k)
}

// warm runs days of ordinary traffic from simStart in 10-minute steps,
// evaluating every hour (what the detectors see before a test's event).
func (s *sim) warm(o *ordinary, days int) {
	step := 10 * time.Minute
	for at := simStart; at.Before(simStart.Add(time.Duration(days) * day)); at = at.Add(step) {
		o.step(at)
		if at.Minute() == 50 {
			s.eval(at.Add(step - time.Second))
		}
	}
}

// log prints what was raised and cleared, with the figures (go test -v).
func (s *sim) log() {
	s.t.Helper()
	for _, t := range s.trans {
		a := t.Alert
		f := a.Figures
		if t.Raised {
			s.t.Logf("raised %s %s at %s: %s [rule %s, count %d, threshold %d, usual %d over %d days]", a.Kind, a.Subject,
				a.Started.Format("2006-01-02 15:04"), a.Summary, f.Rule, f.Count, f.Threshold, f.Usual, f.BaselineDays)
		} else {
			s.t.Logf("cleared %s %s at %s by %s (peak %d)", a.Kind, a.Subject, a.Cleared.Format("2006-01-02 15:04"), a.ClearedBy, a.Peak)
		}
	}
}
