package alerts

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
)

// Evaluator runs the detectors. It keeps the samples of its sliding
// windows between evaluations (in memory: a host that takes over the
// evaluation starts without them); the alerts themselves are in the State
// it is given and returns. Not safe for concurrent use.
type Evaluator struct {
	cfg Config
	tr  tracker
}

// NewEvaluator returns an Evaluator with cfg (validated by the caller).
func NewEvaluator(cfg Config) *Evaluator { return &Evaluator{cfg: cfg} }

// SetConfig replaces the configuration (a reload); the samples stay.
func (e *Evaluator) SetConfig(cfg Config) { e.cfg = cfg }

// Config returns the configuration in force.
func (e *Evaluator) Config() Config { return e.cfg }

// Reset forgets the samples (the evaluation moved to another host and
// back: what this one saw meanwhile is missing).
func (e *Evaluator) Reset() { e.tr = tracker{} }

// candidate is one subject a detector judged.
type candidate struct {
	kind    Kind
	subject string
	over    bool
	fig     Figures
	summary string
	links   []Link
}

// Evaluate runs the detectors on in and returns the new state and what
// was raised and cleared. st is not modified.
func (e *Evaluator) Evaluate(in Input, st State) (State, []Transition) {
	cfg := e.cfg
	now := in.Now
	e.tr.observe(&in, cfg.windows())
	st = st.clone()
	st.prune(now)
	if cfg.CompromisedResponse != ResponseHold {
		// The site switched holds off: the held senders are let go (they
		// were not held again if hold came back later without an alert).
		st.Holds = nil
	}
	learning := in.Since.IsZero() || now.Sub(in.Since) < cfg.MinHistory
	st.LearningUntil = time.Time{}
	if learning {
		st.LearningUntil = in.Since.Add(cfg.MinHistory)
		if in.Since.IsZero() {
			st.LearningUntil = now.Add(cfg.MinHistory)
		}
	}
	d := detection{e: e, in: &in, st: &st, cands: map[string]candidate{}}
	if cfg.Enabled[KindForged] {
		d.forged()
	}
	if cfg.Enabled[KindCompromised] {
		d.compromised()
	}
	if cfg.Enabled[KindSpam] {
		d.refused(KindSpam, SeriesSpam, MembersSpamDomains, cfg.Spam, "refused as spam")
	}
	if cfg.Enabled[KindMalware] {
		d.refused(KindMalware, SeriesMalware, MembersMalwareDomains, cfg.Malware, "refused as malware")
	}
	if cfg.Enabled[KindBlocklisted] {
		d.refused(KindBlocklisted, SeriesBlocklist, MembersBlocklistDomains, cfg.Blocklisted, "refused naming a block list")
	}
	if cfg.Enabled[KindKeys] {
		d.keys()
	}

	var trans []Transition
	active := make([]Alert, 0, len(st.Active))
	for _, a := range st.Active {
		c, ok := d.cands[a.Key()]
		if ok && c.over && cfg.Enabled[a.Kind] {
			a.Figures, a.Summary, a.Evidence = c.fig, c.summary, c.links
			a.Updated, a.QuietSince = now, time.Time{}
			a.Peak = max(a.Peak, c.fig.Count)
			a.Response = cfg.response(a.Kind)
			active = append(active, a)
			continue
		}
		if a.QuietSince.IsZero() {
			a.QuietSince = now
		}
		if ok {
			// The figures as they stand, below the threshold.
			a.Figures = c.fig
		} else {
			a.Figures.Count = 0
		}
		if cfg.Enabled[a.Kind] && now.Sub(a.QuietSince) < cfg.ClearAfter {
			active = append(active, a)
			continue
		}
		a.Cleared, a.ClearedBy = now, ClearedByDetector
		if !cfg.Enabled[a.Kind] {
			a.ClearedBy = ClearedByConfig
		}
		if a.Kind == KindCompromised && cfg.CompromisedResponse == ResponseHold && a.ClearedBy == ClearedByDetector {
			// A hold lasts until an admin clears it.
			st.addHold(a.Subject, a.Started)
		}
		st.Recent = append([]Alert{a}, st.Recent...)
		trans = append(trans, Transition{Alert: a})
	}
	st.Active = active

	var raise []candidate
	for key, c := range d.cands {
		if learning || !c.over || st.Find(key) != nil {
			continue
		}
		if until, ok := st.Snoozed[key]; ok && now.Before(until) {
			continue
		}
		raise = append(raise, c)
	}
	sort.Slice(raise, func(i, j int) bool {
		a, b := raise[i], raise[j]
		if a.kind != b.kind {
			return kindRank(a.kind) < kindRank(b.kind)
		}
		if a.fig.Count != b.fig.Count {
			return a.fig.Count > b.fig.Count
		}
		return a.subject < b.subject
	})
	for _, c := range raise {
		if len(st.Active) >= MaxActive {
			break
		}
		a := Alert{Kind: c.kind, Subject: c.subject, Started: now, Updated: now, Figures: c.fig, Raised: c.fig,
			Peak: c.fig.Count, Summary: c.summary, Evidence: c.links, Response: cfg.response(c.kind)}
		if a.Kind == KindCompromised && a.Response == ResponseHold {
			st.addHold(a.Subject, now)
		}
		st.Active = append(st.Active, a)
		trans = append(trans, Transition{Alert: a, Raised: true})
	}
	sort.SliceStable(st.Active, func(i, j int) bool { return st.Active[i].Started.After(st.Active[j].Started) })
	if len(st.Recent) > MaxRecent {
		st.Recent = st.Recent[:MaxRecent]
	}
	st.Updated = now
	return st, trans
}

func kindRank(k Kind) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// response is the response configured for alerts of kind k.
func (c Config) response(k Kind) string {
	switch {
	case k == KindForged && c.ForgedResponse == ResponseStrict:
		return ResponseStrict
	case k == KindCompromised && (c.CompromisedResponse == ResponseNoSign || c.CompromisedResponse == ResponseHold):
		return c.CompromisedResponse
	}
	return ""
}

// ClearRequest is an admin's request to clear an alert. FalseAlarm says
// the alert was wrong: what it counted is then taken as usual in later
// baselines, where the days of other alerts are left out.
type ClearRequest struct {
	Key        string
	FalseAlarm bool
}

// Encode is the request as the store keeps it.
func (r ClearRequest) Encode() string {
	if r.FalseAlarm {
		return "!" + r.Key
	}
	return r.Key
}

// DecodeClear is Encode's inverse.
func DecodeClear(s string) ClearRequest {
	if k, ok := strings.CutPrefix(s, "!"); ok {
		return ClearRequest{Key: k, FalseAlarm: true}
	}
	return ClearRequest{Key: s}
}

// ApplyClears carries out admins' requests to clear alerts (encoded as
// ClearRequest.Encode gives them): an active alert ends, a compromised
// sender's hold is lifted, and the alert is not raised again before now +
// snooze. Requests that name nothing are ignored.
func ApplyClears(st State, reqs map[string]time.Time, now time.Time, snooze time.Duration) (State, []Transition) {
	st = st.clone()
	keys := make([]string, 0, len(reqs))
	for k := range reqs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var trans []Transition
	for _, enc := range keys {
		req := DecodeClear(enc)
		key := req.Key
		kind, subject, ok := SplitKey(key)
		if !ok {
			continue
		}
		for i := 0; i < len(st.Active); i++ {
			if st.Active[i].Key() != key {
				continue
			}
			a := st.Active[i]
			a.Cleared, a.ClearedBy = now, ClearedByAdmin
			if req.FalseAlarm {
				a.ClearedBy = ClearedFalseAlarm
			}
			st.Active = append(st.Active[:i], st.Active[i+1:]...)
			st.Recent = append([]Alert{a}, st.Recent...)
			trans = append(trans, Transition{Alert: a})
			break
		}
		if kind == KindCompromised {
			st.removeHold(subject)
		}
		if snooze > 0 {
			if st.Snoozed == nil {
				st.Snoozed = map[string]time.Time{}
			}
			st.Snoozed[key] = now.Add(snooze)
		}
	}
	st.prune(now)
	return st, trans
}

// Responses are the responses the state asks of the decisions, as cfg
// configures them (nil: none).
func Responses(st State, cfg Config) *backscatter.Responses {
	r := &backscatter.Responses{}
	set := func(m *map[string]bool, k string) {
		if *m == nil {
			*m = map[string]bool{}
		}
		(*m)[strings.ToLower(k)] = true
	}
	for _, a := range st.Active {
		switch {
		case a.Kind == KindForged && cfg.ForgedResponse == ResponseStrict:
			set(&r.Strict, a.Subject)
		case a.Kind == KindCompromised && cfg.CompromisedResponse == ResponseNoSign:
			set(&r.NoSign, a.Subject)
		case a.Kind == KindCompromised && cfg.CompromisedResponse == ResponseHold:
			set(&r.Hold, a.Subject)
		}
	}
	if cfg.CompromisedResponse == ResponseHold {
		for _, h := range st.Holds {
			set(&r.Hold, h.Sender)
		}
	}
	if r.Empty() {
		return nil
	}
	return r
}

func (s State) clone() State {
	c := s
	c.Active = append([]Alert(nil), s.Active...)
	c.Recent = append([]Alert(nil), s.Recent...)
	c.Holds = append([]Hold(nil), s.Holds...)
	if s.Snoozed != nil {
		c.Snoozed = make(map[string]time.Time, len(s.Snoozed))
		for k, v := range s.Snoozed {
			c.Snoozed[k] = v
		}
	}
	return c
}

// prune drops what is past keeping, and bounds the rest.
func (s *State) prune(now time.Time) {
	recent := s.Recent[:0]
	for _, a := range s.Recent {
		if now.Sub(a.Cleared) < RecentKeep && len(recent) < MaxRecent {
			recent = append(recent, a)
		}
	}
	s.Recent = recent
	for k, until := range s.Snoozed {
		if !now.Before(until) {
			delete(s.Snoozed, k)
		}
	}
	if len(s.Snoozed) > MaxSnoozed {
		keys := make([]string, 0, len(s.Snoozed))
		for k := range s.Snoozed {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return s.Snoozed[keys[i]].Before(s.Snoozed[keys[j]]) })
		for _, k := range keys[:len(keys)-MaxSnoozed] {
			delete(s.Snoozed, k)
		}
	}
	if len(s.Holds) > MaxHolds {
		s.Holds = s.Holds[len(s.Holds)-MaxHolds:]
	}
}

func (s *State) addHold(sender string, since time.Time) {
	for _, h := range s.Holds {
		if h.Sender == sender {
			return
		}
	}
	s.Holds = append(s.Holds, Hold{Sender: sender, Since: since})
}

func (s *State) removeHold(sender string) {
	out := s.Holds[:0]
	for _, h := range s.Holds {
		if !strings.EqualFold(h.Sender, sender) {
			out = append(out, h)
		}
	}
	s.Holds = out
}

// detection is one evaluation's detectors at work.
type detection struct {
	e     *Evaluator
	in    *Input
	st    *State
	cands map[string]candidate
}

func (d *detection) add(c candidate) { d.cands[Key(c.kind, c.subject)] = c }

// excluded says which days to leave out of the usual of kind and subject:
// those on which the same alert was active.
func (d *detection) excluded(kind Kind, subject string) func(time.Time) bool {
	key := Key(kind, subject)
	var spans [][2]time.Time
	for _, a := range d.st.Active {
		if a.Key() == key {
			spans = append(spans, [2]time.Time{a.Started, d.in.Now})
		}
	}
	for _, a := range d.st.Recent {
		if a.Key() == key && a.ClearedBy != ClearedFalseAlarm {
			spans = append(spans, [2]time.Time{a.Started, a.Cleared})
		}
	}
	if len(spans) == 0 {
		return nil
	}
	return func(dayStart time.Time) bool {
		for _, s := range spans {
			if s[0].Before(dayStart.Add(day)) && !s[1].Before(dayStart) {
				return true
			}
		}
		return false
	}
}

func (d *detection) figures(r Rule, count int64, b baseline) Figures {
	return Figures{Rule: "volume", Window: FormatDuration(r.Window), Count: count, Threshold: threshold(r, b.usual),
		Usual: b.usual, BaselineDays: b.days, Floor: r.Floor, Factor: r.Factor}
}

func (d *detection) forged() {
	r := d.e.cfg.Forged
	counts := d.e.tr.windowCounts(d.in, SeriesBackscatter, r.Window)
	days := baselineDays(d.in, r.Window, d.e.cfg.BaselineDays)
	nets := members(d.in, MembersNetworks, r.Window)
	reps := members(d.in, MembersReporters, r.Window)
	for subj, n := range counts {
		b := usual(days, SeriesBackscatter, subj, d.excluded(KindForged, subj))
		f := d.figures(r, n, b)
		f.Top, f.Reporters = top(nets[subj], MaxTop), top(reps[subj], MaxTop)
		s := fmt.Sprintf("%s: %d bounces answering mail we did not send in %s (usual busiest day %d; threshold %d)", subj, n, f.Window, b.usual, f.Threshold)
		if len(f.Top) > 0 {
			s += "; most from " + f.Top[0].Name
		}
		d.add(candidate{kind: KindForged, subject: subj, over: n >= f.Threshold, fig: f, summary: s,
			links: []Link{{"Floods, last " + floodWindow(r.Window), "/floods?window=" + floodWindow(r.Window)},
				{"Overview of " + subj, "/?domain=" + url.QueryEscape(subj)}}})
	}
}

func (d *detection) compromised() {
	cfg := d.e.cfg
	rb, ru := cfg.Compromised, cfg.Unknown
	bounces := d.e.tr.windowCounts(d.in, SeriesBounces, rb.Window)
	unknown := d.e.tr.windowCounts(d.in, SeriesUnknown, ru.Window)
	allU := bounces
	if ru.Window != rb.Window {
		allU = d.e.tr.windowCounts(d.in, SeriesBounces, ru.Window)
	}
	doms := members(d.in, MembersUnknownDomains, ru.Window)
	daysB := baselineDays(d.in, rb.Window, cfg.BaselineDays)
	daysU := baselineDays(d.in, ru.Window, cfg.BaselineDays)
	subjects := map[string]bool{}
	for s := range bounces {
		subjects[s] = true
	}
	for s := range unknown {
		subjects[s] = true
	}
	for subj := range subjects {
		excl := d.excluded(KindCompromised, subj)
		bb := usual(daysB, SeriesBounces, subj, excl)
		vol := d.figures(rb, bounces[subj], bb)
		volOver := vol.Count >= vol.Threshold
		bu := usual(daysU, SeriesUnknown, subj, excl)
		unk := d.figures(ru, unknown[subj], bu)
		unk.Rule, unk.Total, unk.Domains = "unknown-recipients", max(allU[subj], unknown[subj]), len(doms[subj])
		unk.Top = top(doms[subj], MaxTop)
		unkOver := unk.Count >= unk.Threshold && unk.Domains >= cfg.UnknownDomains &&
			float64(unk.Count) >= cfg.UnknownShare*float64(unk.Total)
		c := candidate{kind: KindCompromised, subject: subj, over: volOver || unkOver}
		q := url.Values{"sender": {subj}, "since": {FormatDuration(max(rb.Window, ru.Window))}}
		c.links = []Link{{"Bounces of " + subj, "/bounces?" + q.Encode()}}
		if unkOver && !volOver {
			c.fig = unk
			c.summary = fmt.Sprintf("%s: %d of its %d genuine bounces in %s are unknown recipients, at %d domains (threshold %d)",
				subj, unk.Count, unk.Total, unk.Window, unk.Domains, unk.Threshold)
			q.Set("reason", "userunknown")
			c.links = append(c.links, Link{"Its unknown recipients", "/bounces?" + q.Encode()})
		} else {
			c.fig = vol
			c.summary = fmt.Sprintf("%s: %d genuine bounces in %s (usual busiest day %d; threshold %d)", subj, vol.Count, vol.Window, bb.usual, vol.Threshold)
		}
		d.add(c)
	}
}

func (d *detection) refused(kind Kind, ser Series, domSet MemberSet, r Rule, what string) {
	counts := d.e.tr.windowCounts(d.in, ser, r.Window)
	days := baselineDays(d.in, r.Window, d.e.cfg.BaselineDays)
	doms := members(d.in, domSet, r.Window)
	var lists map[string]map[string]int64
	if kind == KindBlocklisted {
		lists = members(d.in, MembersLists, r.Window)
	}
	reason := map[Kind]string{KindSpam: "spamdetected", KindMalware: "virusdetected"}[kind]
	for subj, n := range counts {
		b := usual(days, ser, subj, d.excluded(kind, subj))
		f := d.figures(r, n, b)
		f.Domains = len(doms[subj])
		f.Top = top(doms[subj], MaxTop)
		host := subj
		if host == "unknown" {
			host = "an unknown host of ours"
		}
		s := fmt.Sprintf("mail from %s %s %d times in %s, by %d recipient domains (threshold %d)", host, what, n, f.Window, f.Domains, f.Threshold)
		if lists != nil {
			f.Top = top(lists[subj], MaxTop)
			var names []string
			for _, m := range f.Top {
				names = append(names, fmt.Sprintf("%s (%d)", m.Name, m.Count))
			}
			if len(names) > 0 {
				s += ": " + strings.Join(names, ", ")
			}
		}
		q := url.Values{"since": {FormatDuration(r.Window)}}
		if subj != "unknown" {
			q.Set("sending_host", subj)
		}
		if reason != "" {
			q.Set("reason", reason)
		}
		d.add(candidate{kind: kind, subject: subj, over: n >= f.Threshold && f.Domains >= r.MinDomains, fig: f, summary: s,
			links: []Link{{"The refusals", "/bounces?" + q.Encode()}}})
	}
}

func (d *detection) keys() {
	cfg := d.e.cfg
	r := cfg.Keys
	rot := d.rotation()
	counts := d.e.tr.windowCounts(d.in, SeriesBadTags, r.Window)
	days := baselineDays(d.in, r.Window, cfg.BaselineDays)
	for subj, n := range counts {
		b := usual(days, SeriesBadTags, subj, d.excluded(KindKeys, subj))
		f := d.figures(r, n, b)
		f.Rotation = rot
		s := fmt.Sprintf("%s: %d bounces to tags that do not verify (bad-signature, unknown-key) in %s (usual busiest day %d; threshold %d)",
			subj, n, f.Window, b.usual, f.Threshold)
		if rot != "" {
			s += " after a key rotation: " + rot
		}
		d.add(candidate{kind: KindKeys, subject: subj, over: rot != "" && n >= f.Threshold, fig: f, summary: s,
			links: []Link{{"Keys", "/keys"}, {"Overview of " + subj, "/?domain=" + url.QueryEscape(subj)}}})
	}
}

// rotation describes a recent key rotation, "" when there is none: a key
// number first signed within after_rotation (first uses recorded for more
// than a day before it, so that a key merely first seen is no rotation),
// or a key that signed within a tag lifetime and that no key file lists.
func (d *detection) rotation() string {
	in := d.in
	var parts []string
	var nums []int
	for k := range in.KeyFirst {
		nums = append(nums, k)
	}
	sort.Ints(nums)
	tracked := in.KeyFirstSince
	if in.Since.After(tracked) {
		tracked = in.Since
	}
	for _, k := range nums {
		t := in.KeyFirst[k]
		if !in.KeyFirstSince.IsZero() && t.After(tracked.Add(day)) && !t.After(in.Now) && in.Now.Sub(t) <= d.e.cfg.AfterRotation {
			parts = append(parts, fmt.Sprintf("key %d first signed %s", k, t.UTC().Format("2006-01-02 15:04 UTC")))
		}
	}
	if len(in.Keys) > 0 {
		listed := map[int]bool{}
		life := 0
		for _, dk := range in.Keys {
			for _, n := range dk.Numbers {
				listed[n] = true
			}
			life = max(life, dk.Lifetime)
		}
		if life == 0 {
			life = 7
		}
		nums = nums[:0]
		for k := range in.KeyLast {
			nums = append(nums, k)
		}
		sort.Ints(nums)
		for _, k := range nums {
			t := in.KeyLast[k]
			if !listed[k] && in.Now.Sub(t) < time.Duration(life+1)*day {
				parts = append(parts, fmt.Sprintf("key %d signed until %s and no key file lists it", k, t.UTC().Format("2006-01-02 15:04 UTC")))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// floodWindow is the Floods page's window that covers w.
func floodWindow(w time.Duration) string {
	switch {
	case w <= time.Hour:
		return "1h"
	case w <= 6*time.Hour:
		return "6h"
	}
	return "24h"
}

// FormatDuration writes 24h0m0s as 24h, 1h30m0s as 1h30m, 20s as 20s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
