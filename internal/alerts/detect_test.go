package alerts

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// An ordinary site for 60 days with the default thresholds: daily and
// weekly variation, spam runs forging the domain now and then, a
// newsletter whose Monday-to-Friday issue bounces 40-80 times within the
// hour (mostly unknown recipients at many domains), a list owner's steady
// trickle, users' occasional bounces, a few spam and virus verdicts on our
// mail, a site with an aggressive block list, forged-tag guesses and a key
// rotation done right. Nothing may be raised; the log says how close each
// detector came (count / threshold at its highest).
func TestOrdinarySiteRaisesNothing(t *testing.T) {
	s := newSim(t, Default())
	o := newOrdinary(s, 1)
	step := 10 * time.Minute
	for at := simStart; at.Before(simStart.Add(60 * day)); at = at.Add(step) {
		o.step(at)
		if at.Minute()%20 == 10 {
			s.eval(at.Add(step - time.Second))
		}
		if at.Minute() == 0 && at.Hour()%2 == 0 && at.Sub(simStart) >= 7*day {
			s.peak(at.Add(step - time.Second))
		}
	}
	if len(s.trans) != 0 {
		t.Fatalf("ordinary traffic raised alerts: %s", s.describe())
	}
	for _, k := range Kinds {
		t.Logf("ordinary traffic, highest count/threshold of %s: %.2f", k, s.peaks[k])
		if s.peaks[k] >= 1 {
			t.Errorf("%s reached its threshold", k)
		}
	}
	if s.peaks[KindForged] < 0.1 || s.peaks[KindCompromised] < 0.1 {
		t.Errorf("the simulated traffic hardly reaches the detectors: %v", s.peaks)
	}
}

// Learning: nothing is raised before the statistics are min_history old,
// however large the counts; the state says until when.
func TestLearning(t *testing.T) {
	s := newSim(t, Default())
	at := simStart.Add(2 * day)
	for i := 0; i < 5000; i++ {
		s.backscatter(at, "example.com", "203.0.113.0/24")
	}
	if tr := s.eval(at.Add(time.Minute)); len(tr) != 0 {
		t.Fatalf("raised while learning: %s", s.describe())
	}
	if want := simStart.Add(7 * day); !s.st.LearningUntil.Equal(want) {
		t.Fatalf("learning until %v, want %v", s.st.LearningUntil, want)
	}
}

// A domain being forged: a flood of backscatter on an ordinary site is
// raised within the flood, with the networks and reporting MTAs; it holds
// while the window covers the flood and clears clear_after once it has
// left; a second flood two days later is raised again (the first flood's
// day is not usual).
func TestForgedRaiseHoldClear(t *testing.T) {
	cfg := Default()
	s := newSim(t, cfg)
	o := newOrdinary(s, 2)
	step := 10 * time.Minute
	s.warm(o, 20)
	if len(s.trans) != 0 {
		t.Fatalf("before the flood: %s", s.describe())
	}
	flood := simStart.Add(20*day + 14*time.Hour)
	s.run(flood, flood.Add(2*time.Hour), step, func(at time.Time) {
		o.step(at)
		for i := 0; i < 300; i++ { // 1800 an hour
			s.backscatter(at.Add(time.Duration(i)*time.Second), "example.com", "192.0.2.0/24")
		}
	})
	r := s.raised(KindForged, "example.com")
	if len(r) != 1 {
		t.Fatalf("raised %d times: %s", len(r), s.describe())
	}
	a := r[0].Alert
	if a.Started.After(flood.Add(time.Hour)) || a.Figures.Count < a.Figures.Threshold || a.Figures.Usual == 0 ||
		a.Figures.Top[0].Name != "192.0.2.0/24" || len(a.Figures.Reporters) == 0 || a.Figures.BaselineDays != 14 {
		t.Fatalf("alert %+v", a)
	}
	if !strings.Contains(a.Summary, "example.com") || len(a.Evidence) == 0 || a.Evidence[0].Href != "/floods?window=24h" {
		t.Fatalf("summary %q evidence %v", a.Summary, a.Evidence)
	}
	// Holds while the 24-hour window covers the flood.
	s.run(flood.Add(2*time.Hour), flood.Add(23*time.Hour), step, o.step)
	if len(s.st.Active) != 1 || len(s.cleared(KindForged, "example.com")) != 0 {
		t.Fatalf("did not hold: %s", s.describe())
	}
	if s.st.Active[0].Peak < 3000 {
		t.Fatalf("peak %d", s.st.Active[0].Peak)
	}
	s.run(flood.Add(23*time.Hour), flood.Add(30*time.Hour), step, o.step)
	c := s.cleared(KindForged, "example.com")
	if len(c) != 1 || c[0].Alert.ClearedBy != ClearedByDetector || len(s.st.Active) != 0 {
		t.Fatalf("not cleared: %s", s.describe())
	}
	if end := c[0].Alert.Cleared; end.Before(flood.Add(24*time.Hour+cfg.ClearAfter)) || end.After(flood.Add(27*time.Hour)) {
		t.Fatalf("cleared at %v (flood at %v)", end, flood)
	}
	// Two days later, the same flood again: raised again.
	second := flood.Add(3 * day)
	s.run(flood.Add(30*time.Hour), second, step, o.step)
	s.run(second, second.Add(2*time.Hour), step, func(at time.Time) {
		o.step(at)
		for i := 0; i < 300; i++ {
			s.backscatter(at, "example.com", "192.0.2.0/24")
		}
	})
	if r := s.raised(KindForged, "example.com"); len(r) != 2 || r[1].Alert.Figures.Usual >= 3000 {
		t.Fatalf("second flood: %s", s.describe())
	}
	s.log()
}

// A compromised account: a user with a bounce or two a day suddenly gets
// hundreds (volume); another mails a harvested list, whose bounces are
// mostly unknown recipients at many domains (unknown-recipients), though
// fewer than the volume floor. A newsletter's ordinary issue raises
// nothing; unknown recipients at few domains, or a minority of them,
// raise nothing.
func TestCompromised(t *testing.T) {
	s := newSim(t, Default())
	o := newOrdinary(s, 3)
	step := 10 * time.Minute
	s.warm(o, 15)
	at := simStart.Add(15*day + 10*time.Hour)
	s.run(at, at.Add(3*time.Hour), step, func(t time.Time) {
		o.step(t)
		for i := 0; i < 30; i++ { // 540 in three hours
			s.bounce(t, "user7@example.com", fmt.Sprintf("x%d.example", i%13), i%5 == 0)
		}
		for i := 0; i < 2; i++ { // 36, all unknown, at 18 domains
			s.bounce(t, "user8@example.com", fmt.Sprintf("h%d.example", (int(t.Unix()/600)*2+i)%18), true)
		}
	})
	vol := s.raised(KindCompromised, "user7@example.com")
	unk := s.raised(KindCompromised, "user8@example.com")
	if len(vol) != 1 || vol[0].Alert.Figures.Rule != "volume" || vol[0].Alert.Figures.Count < 50 {
		t.Fatalf("volume: %s", s.describe())
	}
	if len(unk) != 1 || unk[0].Alert.Figures.Rule != "unknown-recipients" || unk[0].Alert.Figures.Domains < 10 ||
		!strings.Contains(unk[0].Alert.Evidence[1].Href, "reason=userunknown") {
		t.Fatalf("unknown recipients: %s", s.describe())
	}
	if len(s.trans) != 2 {
		t.Fatalf("more raised than the two accounts: %s", s.describe())
	}
	if e := vol[0].Alert.Evidence[0].Href; e != "/bounces?sender=user7%40example.com&since=24h" {
		t.Fatalf("evidence %q", e)
	}

	s.log()

	// The unknown-recipients rule's guards (the volume rule out of the way).
	cfg := Default()
	cfg.Compromised.Floor = 1000
	s = newSim(t, cfg)
	s.run(simStart, simStart.Add(8*day), time.Hour, nil)
	at = simStart.Add(8 * day)
	s.run(at, at.Add(3*time.Hour), step, func(t time.Time) {
		n := int(t.Unix() / 600)
		for i := 0; i < 3; i++ { // 54 unknown, at 2 domains only
			s.bounce(t, "user9@example.com", fmt.Sprintf("k%d.example", i%2), true)
		}
		for i := 0; i < 6; i++ { // 36 unknown at many domains, but a third of its bounces
			s.bounce(t, "user10@example.com", fmt.Sprintf("m%d.example", n*6+i), i%3 == 0)
		}
		for i := 0; i < 3; i++ { // the same at many domains: raised
			s.bounce(t, "user11@example.com", fmt.Sprintf("m%d.example", n*3+i), true)
		}
	})
	if len(s.trans) != 1 || len(s.raised(KindCompromised, "user11@example.com")) != 1 {
		t.Fatalf("guards: %s", s.describe())
	}
	s.log()
}

// Our mail refused: spam verdicts and virus verdicts from several domains,
// and a block listing, each grouped by the sending host; one picky site is
// no alarm; the ordinary refusals of the other host raise nothing.
func TestRefused(t *testing.T) {
	s := newSim(t, Default())
	o := newOrdinary(s, 4)
	step := 10 * time.Minute
	s.warm(o, 10)
	at := simStart.Add(10*day + 9*time.Hour)
	s.run(at, at.Add(time.Hour), step, func(t time.Time) {
		o.step(t)
		for i := 0; i < 3; i++ {
			s.refusal(t, SeriesSpam, "198.51.100.25", fmt.Sprintf("r%d.example", i+int(t.Unix()/600)%4), "")
		}
		s.refusal(t, SeriesMalware, "mx-out.example.com", fmt.Sprintf("v%d.example", int(t.Unix()/600)%3), "")
		s.refusal(t, SeriesBlocklist, "198.51.100.25", fmt.Sprintf("b%d.example", int(t.Unix()/600)%2), "zen.spamhaus.org")
		for i := 0; i < 5; i++ { // one picky site
			s.refusal(t, SeriesSpam, "198.51.100.26", "picky.example", "")
		}
	})
	for _, c := range []struct {
		k    Kind
		host string
	}{{KindSpam, "198.51.100.25"}, {KindMalware, "mx-out.example.com"}, {KindBlocklisted, "198.51.100.25"}} {
		r := s.raised(c.k, c.host)
		if len(r) != 1 {
			t.Fatalf("%s %s: %s", c.k, c.host, s.describe())
		}
		if c.k == KindBlocklisted && (r[0].Alert.Figures.Top[0].Name != "zen.spamhaus.org" || !strings.Contains(r[0].Alert.Summary, "zen.spamhaus.org")) {
			t.Fatalf("lists: %+v", r[0].Alert)
		}
		if c.k == KindSpam && !strings.Contains(r[0].Alert.Evidence[0].Href, "sending_host=198.51.100.25") {
			t.Fatalf("evidence %v", r[0].Alert.Evidence)
		}
	}
	if len(s.trans) != 3 {
		t.Fatalf("raised: %s", s.describe())
	}
	// They hold while the window covers the refusals, then clear.
	s.run(at.Add(time.Hour), at.Add(23*time.Hour), step, o.step)
	if len(s.st.Active) != 3 {
		t.Fatalf("did not hold: %s", s.describe())
	}
	s.run(at.Add(23*time.Hour), at.Add(27*time.Hour), step, o.step)
	if len(s.st.Active) != 0 || len(s.trans) != 6 {
		t.Fatalf("not cleared: %s", s.describe())
	}
	s.log()
}

// Key trouble: bad-signature refusals rising without a rotation are the
// forgery detector's business; the same rise after a key began signing is
// key trouble, and so is one after a key was removed while its tags live.
func TestKeyTrouble(t *testing.T) {
	rise := func(s *sim, at time.Time) {
		s.run(at, at.Add(time.Hour), 10*time.Minute, func(t time.Time) {
			for i := 0; i < 10; i++ {
				s.badTag(t, "example.com")
			}
		})
	}
	s := newSim(t, Default())
	s.run(simStart, simStart.Add(10*day), time.Hour, func(t time.Time) { s.signed(t, 1) })
	rise(s, simStart.Add(10*day))
	if len(s.trans) != 0 {
		t.Fatalf("without a rotation: %s", s.describe())
	}

	s = newSim(t, Default())
	s.run(simStart, simStart.Add(10*day), time.Hour, func(t time.Time) {
		k := 1
		if t.After(simStart.Add(9 * day)) {
			k = 2
		}
		s.signed(t, k)
	})
	rise(s, simStart.Add(10*day))
	r := s.raised(KindKeys, "example.com")
	if len(r) != 1 || !strings.Contains(r[0].Alert.Figures.Rotation, "key 2 first signed") {
		t.Fatalf("after a rotation: %s", s.describe())
	}
	s.run(simStart.Add(10*day+time.Hour), simStart.Add(11*day+2*time.Hour), 10*time.Minute, nil)
	if c := s.cleared(KindKeys, "example.com"); len(c) != 1 || len(s.st.Active) != 0 {
		t.Fatalf("not cleared: %s", s.describe())
	}
	s.log()

	s = newSim(t, Default())
	s.run(simStart, simStart.Add(10*day), time.Hour, func(t time.Time) { s.signed(t, 3) })
	s.keys = []DomainKeys{{Domain: "example.com", Signing: 1, Numbers: []int{1}, Lifetime: 7}}
	rise(s, simStart.Add(10*day))
	r = s.raised(KindKeys, "example.com")
	if len(r) != 1 || !strings.Contains(r[0].Alert.Figures.Rotation, "key 3 signed until") {
		t.Fatalf("after a removal: %s", s.describe())
	}

	// A key merely first seen when statistics began is no rotation.
	s = newSim(t, Default())
	s.run(simStart, simStart.Add(10*day), time.Hour, func(t time.Time) { s.signed(t, 1) })
	s.first[1] = simStart.Add(2 * time.Hour)
	rise(s, simStart.Add(10*day))
	if len(s.trans) != 0 {
		t.Fatalf("first seen at the start: %s", s.describe())
	}
}

// An admin clears an alert: it ends at once, the sender's hold is lifted,
// and it is not raised again for the snooze; a hold outlives the alert's
// own clearing; a false alarm's day counts as usual afterwards.
func TestAdminClearHoldSnooze(t *testing.T) {
	cfg := Default()
	cfg.CompromisedResponse = ResponseHold
	s := newSim(t, cfg)
	step := 10 * time.Minute
	s.run(simStart, simStart.Add(8*day), time.Hour, nil)
	burst := func(from time.Time, hours int) {
		s.run(from, from.Add(time.Duration(hours)*time.Hour), step, func(t time.Time) {
			for i := 0; i < 20; i++ {
				s.bounce(t, "mallory@example.com", "x.example", false)
			}
		})
	}
	at := simStart.Add(8 * day)
	burst(at, 1)
	if len(s.raised(KindCompromised, "mallory@example.com")) != 1 {
		t.Fatalf("not raised: %s", s.describe())
	}
	resp := Responses(s.st, cfg)
	if resp == nil || !resp.Hold["mallory@example.com"] || s.st.Active[0].Response != ResponseHold {
		t.Fatalf("responses %+v", resp)
	}
	// The alert clears by itself a day later; the hold stays.
	s.run(at.Add(time.Hour), at.Add(26*time.Hour), step, nil)
	if len(s.st.Active) != 0 || len(s.st.Holds) != 1 {
		t.Fatalf("after clearing itself: %+v", s.st)
	}
	if r := Responses(s.st, cfg); r == nil || !r.Hold["mallory@example.com"] {
		t.Fatal("the hold went with the alert")
	}
	noResp := cfg
	noResp.CompromisedResponse = ResponseNone
	if Responses(s.st, noResp) != nil {
		t.Fatal("a hold applied with responses off")
	}
	// The site switches holds off: the next evaluation lets the sender
	// go, so that switching back to hold does not hold it again.
	if st, _ := NewEvaluator(noResp).Evaluate(Input{Now: at.Add(26 * time.Hour)}, s.st); len(st.Holds) != 0 {
		t.Fatalf("holds kept after the response changed: %+v", st.Holds)
	}
	// The admin clears: the hold goes.
	now := at.Add(26 * time.Hour)
	st, tr := ApplyClears(s.st, map[string]time.Time{ClearRequest{Key: Key(KindCompromised, "mallory@example.com")}.Encode(): now}, now, cfg.Snooze)
	if len(tr) != 0 || len(st.Holds) != 0 || Responses(st, cfg) != nil {
		t.Fatalf("clear of a cleared alert: %v %+v", tr, st)
	}
	s.st = st
	// Raised again, cleared by the admin at once: not raised again
	// during the snooze, raised after it.
	second := at.Add(3 * day)
	burst(second, 1)
	if len(s.raised(KindCompromised, "mallory@example.com")) != 2 {
		t.Fatalf("second burst: %s", s.describe())
	}
	now = second.Add(time.Hour)
	st, tr = ApplyClears(s.st, map[string]time.Time{Key(KindCompromised, "mallory@example.com"): now, "nonsense": now, "forged-domain|": now}, now, cfg.Snooze)
	if len(tr) != 1 || tr[0].Raised || tr[0].Alert.ClearedBy != ClearedByAdmin || len(st.Active) != 0 || len(st.Holds) != 0 {
		t.Fatalf("admin clear: %v %+v", tr, st)
	}
	s.st = st
	burst(now, 2)
	if len(s.raised(KindCompromised, "mallory@example.com")) != 2 {
		t.Fatalf("raised during the snooze: %s", s.describe())
	}
	s.run(now.Add(2*time.Hour), now.Add(cfg.Snooze+time.Hour), step, nil)
	burst(now.Add(cfg.Snooze+time.Hour), 1)
	if len(s.raised(KindCompromised, "mallory@example.com")) != 3 {
		t.Fatalf("not raised after the snooze: %s", s.describe())
	}
	// A false alarm: its days count as usual, so the same burst a few
	// days later is no alarm.
	now = now.Add(cfg.Snooze + 2*time.Hour)
	st, _ = ApplyClears(s.st, map[string]time.Time{ClearRequest{Key: Key(KindCompromised, "mallory@example.com"), FalseAlarm: true}.Encode(): now}, now, 2*day)
	s.st = st
	if s.st.Recent[0].ClearedBy != ClearedFalseAlarm {
		t.Fatalf("recent %+v", s.st.Recent[0])
	}
	later := now.Add(3 * day)
	s.run(now, later, time.Hour, nil)
	before := len(s.raised(KindCompromised, "mallory@example.com"))
	burst(later, 1)
	if after := len(s.raised(KindCompromised, "mallory@example.com")); after != before {
		t.Fatalf("raised again after a false alarm: %s", s.describe())
	}
}

// The strict and no-sign responses last as long as their alert.
func TestResponses(t *testing.T) {
	cfg := Default()
	cfg.ForgedResponse, cfg.CompromisedResponse = ResponseStrict, ResponseNoSign
	st := State{Active: []Alert{{Kind: KindForged, Subject: "Example.com"}, {Kind: KindCompromised, Subject: "eve@example.com"},
		{Kind: KindSpam, Subject: "192.0.2.1"}}, Holds: []Hold{{Sender: "old@example.com"}}}
	r := Responses(st, cfg)
	if r == nil || !r.Strict["example.com"] || !r.NoSign["eve@example.com"] || len(r.Hold) != 0 {
		t.Fatalf("%+v", r)
	}
	if Responses(State{}, cfg) != nil || Responses(st, Default()) != nil {
		t.Fatal("responses without alerts, or with responses off")
	}
}

// The window slides at the evaluations' pace: with a 20-second window and
// an evaluation a second, a burst is counted for 20 seconds and then the
// alert clears clear_after later, whatever the 5-minute buckets; a new
// evaluator, without samples, counts whole buckets.
func TestShortWindow(t *testing.T) {
	cfg := Default()
	cfg.Forged = Rule{Window: 20 * time.Second, Floor: 8, Factor: 3}
	cfg.ClearAfter = 3 * time.Second
	cfg.MinHistory = day
	s := newSim(t, cfg)
	for d := 0; d < 8; d++ {
		s.add(simStart.Add(time.Duration(d)*day+time.Hour), SeriesBackscatter, "example.com", 2)
	}
	start := simStart.Add(8*day + 2*time.Minute + 10*time.Second)
	for i := 0; i < 30; i++ {
		s.eval(start.Add(time.Duration(i) * time.Second))
	}
	burst := start.Add(30 * time.Second)
	for i := 0; i < 10; i++ {
		s.backscatter(burst, "example.com", "192.0.2.0/24")
	}
	s.eval(burst.Add(time.Second))
	if len(s.raised(KindForged, "example.com")) != 1 {
		t.Fatalf("not raised: %s", s.describe())
	}
	if f := s.st.Active[0].Figures; f.Count != 10 || f.Threshold != 8 || f.Usual != 2 {
		t.Fatalf("figures %+v", f)
	}
	var clearedAt time.Time
	for i := 2; i < 40; i++ {
		now := burst.Add(time.Duration(i) * time.Second)
		for _, tr := range s.eval(now) {
			if !tr.Raised {
				clearedAt = now
			}
		}
	}
	// Counted until 20 s after the burst, cleared 3 s later (within the
	// same 5-minute bucket).
	if clearedAt.IsZero() || clearedAt.Sub(burst) < 23*time.Second || clearedAt.Sub(burst) > 25*time.Second {
		t.Fatalf("cleared %v after the burst: %s", clearedAt.Sub(burst), s.describe())
	}
	// A fresh evaluator counts the whole bucket.
	fresh := NewEvaluator(cfg)
	st, tr := fresh.Evaluate(s.input(burst.Add(60*time.Second)), State{})
	if len(tr) != 1 || st.Active[0].Figures.Count != 10 {
		t.Fatalf("fresh evaluator: %v %+v", tr, st)
	}
}

// A subject missing from a full set on a baseline day: its usual is at
// most the day's smallest kept count.
func TestTrimmedBaseline(t *testing.T) {
	days := []Bucket{
		{Start: simStart, Counts: map[Series]map[string]int64{SeriesBounces: {"a": 9, "b": 4}}, Trimmed: map[Series]bool{SeriesBounces: true}},
		{Start: simStart.Add(day), Counts: map[Series]map[string]int64{SeriesBounces: {"a": 2}}},
	}
	if b := usual(days, SeriesBounces, "c", nil); b.usual != 4 || b.days != 2 {
		t.Fatalf("%+v", b)
	}
	if b := usual(days, SeriesBounces, "a", nil); b.usual != 9 {
		t.Fatalf("%+v", b)
	}
	if b := usual(days, SeriesBounces, "a", func(d time.Time) bool { return d.Equal(simStart) }); b.usual != 2 || b.days != 1 {
		t.Fatalf("excluded: %+v", b)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Config){
		func(c *Config) { c.BaselineDays = 0 },
		func(c *Config) { c.Forged.Window = 25 * time.Hour },
		func(c *Config) { c.Spam.Floor = 0 },
		func(c *Config) { c.Keys.Factor = 0.5 },
		func(c *Config) { c.UnknownShare = 2 },
		func(c *Config) { c.ForgedResponse = "hold" },
		func(c *Config) { c.CompromisedResponse = "strict" },
	} {
		c := Default()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestKeys(t *testing.T) {
	k, s, ok := SplitKey(Key(KindCompromised, "a|b@example.com"))
	if !ok || k != KindCompromised || s != "a|b@example.com" {
		t.Fatal(k, s, ok)
	}
	if _, _, ok := SplitKey("nonsense|x"); ok {
		t.Fatal("unknown kind")
	}
	if r := DecodeClear(ClearRequest{Key: "x", FalseAlarm: true}.Encode()); !r.FalseAlarm || r.Key != "x" {
		t.Fatal(r)
	}
	if FormatDuration(24*time.Hour) != "24h" || FormatDuration(90*time.Minute) != "1h30m" || FormatDuration(20*time.Second) != "20s" {
		t.Fatal(FormatDuration(24*time.Hour), FormatDuration(90*time.Minute))
	}
}
