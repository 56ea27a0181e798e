package backscatter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/evidence"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func testSettings() Settings {
	long := testNow.AddDate(0, -2, 0)
	return Settings{
		Domains: map[string]Domain{
			"example.com":  {Mode: ModeReject, Sign: true, Since: long},
			"tag.example":  {Mode: ModeTag, Sign: true, Since: long},
			"q.example":    {Mode: ModeQuarantine, Sign: true, Since: long},
			"off.example":  {Mode: ModeOff, Sign: true, Since: long},
			"new.example":  {Mode: ModeReject, Sign: true, Since: testNow.AddDate(0, 0, -1)},
			"long.example": {Mode: ModeReject, Sign: true, Lifetime: 30, Since: long},
		},
		Grace:               10 * 24 * time.Hour,
		OriginatingDaemons:  []string{"ORIGINATING"},
		TrustedNetworks:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		BounceSenders:       []string{"mailer-daemon", "postmaster"},
		PassThrough:         DefaultPassThrough,
		Relays:              []string{"out1.example.com", "198.51.100.7"},
		UnrecordedTagBudget: 3,
		ReplaySlack:         2,
	}
}

func testEngine(t *testing.T, s Settings) *Engine {
	t.Helper()
	ks, err := ParseKeys(strings.NewReader("1 engine-secret\n"), "k")
	if err != nil {
		t.Fatal(err)
	}
	e := New(s, NewKeyRing(ks))
	e.Now = func() time.Time { return testNow }
	return e
}

// dsn is a delivery report for an original from sender with id.
func dsn(sender, id string) *bounce.Report {
	return &bounce.Report{Kind: bounce.KindDSN, OriginalMessageID: id, OriginalFrom: sender,
		OriginalDate: testNow.Add(-time.Hour), Structural: true}
}

// message runs the whole decision: RCPT for every recipient (with the
// given RCPT-stage answer), the end-of-message queries answered by answer,
// then Decide.
func message(t *testing.T, e *Engine, env Envelope, rep *bounce.Report, rcpts []string, answer func(q evidence.InboundQuery) Answer) (rcptVerdicts []*Verdict, d Decision) {
	t.Helper()
	var states []RcptState
	for _, raw := range rcpts {
		r := e.CheckRecipient(raw)
		var a Answer
		if q, ok := e.RcptQuery(env, r, "203.0.113.9"); ok && answer != nil {
			a = answer(q)
		}
		v := e.AtRcpt(env, r, a)
		rcptVerdicts = append(rcptVerdicts, v)
		if v != nil && v.Action != ActAccept {
			continue
		}
		states = append(states, RcptState{R: r, AtRcpt: v})
	}
	j := e.Judge(Message{Env: env, Rcpts: states, Report: rep, ClientIP: "203.0.113.9"})
	for i := range j.Rcpts {
		if q := j.Rcpts[i].Query; q != nil && answer != nil {
			j.Rcpts[i].Answer = answer(*q)
		}
	}
	return rcptVerdicts, j.Decide()
}

func none(evidence.InboundQuery) Answer { return Answer{Asked: true} }

// record answers as a store holding one record: id sent by sender.
func record(id, sender string) func(evidence.InboundQuery) Answer {
	return func(q evidence.InboundQuery) Answer {
		a := Answer{Asked: true}
		for _, m := range q.MessageIDs {
			if m == id {
				a.Facts.Sent = &evidence.SentRecord{RecipientCount: 1, Time: testNow.Add(-time.Hour)}
				a.Facts.MatchedMessageID = id
				r := strings.ToLower(q.Recipient)
				a.Facts.SenderMatch = r == sender || q.Delimiter != 0 && cache.StripExtension(r, q.Delimiter) == cache.StripExtension(sender, q.Delimiter)
			}
		}
		return a
	}
}

func TestDecideUntagged(t *testing.T) {
	e := testEngine(t, testSettings())
	down := func(evidence.InboundQuery) Answer { return Answer{Asked: true, Err: errors.New("store down")} }
	flood := func(evidence.InboundQuery) Answer {
		return Answer{Asked: true, Facts: evidence.InboundFacts{RecipientStrict: true}}
	}
	null := Envelope{Sender: ""}
	pm := Envelope{Sender: "postmaster@remote.example"}
	ordinary := &bounce.Report{Kind: bounce.KindNotBounce}
	autoreply := &bounce.Report{Kind: bounce.KindAutoreply, InReplyTo: "out-1@example.com"}
	refsOnly := &bounce.Report{Kind: bounce.KindNotBounce, References: []string{"out-1@example.com"}}
	for _, tc := range []struct {
		name   string
		env    Envelope
		rep    *bounce.Report
		rcpt   string
		answer func(evidence.InboundQuery) Answer
		reply  ReplyCode
		header string // prefix of the verdict header, "" none
		quar   bool
	}{
		{"no evidence, reject mode", null, dsn("alice@example.com", "x@remote"), "alice@example.com", none, ReplyReject, "", false},
		{"no evidence, tag mode: marked", null, dsn("alice@tag.example", "x@remote"), "alice@tag.example", none, ReplyAccept, "fail (untagged bounce; no evidence", false},
		{"no evidence, quarantine", null, dsn("alice@q.example", "x@remote"), "alice@q.example", none, ReplyAccept, "fail", true},
		{"mode off", null, dsn("a@off.example", "x@remote"), "a@off.example", none, ReplyAccept, "none (checks off", false},
		{"store record of the recipient's own mail", null, dsn("alice@example.com", "out-1@example.com"), "alice@example.com", record("out-1@example.com", "alice@example.com"), ReplyAccept, "pass (untagged; we sent the original: store:out-1@example.com", false},
		{"record with the recipient's extension", null, dsn("alice+x@example.com", "out-1@example.com"), "alice+x@example.com", record("out-1@example.com", "alice@example.com"), ReplyAccept, "pass", false},
		{"another user's record proves nothing", null, dsn("alice@example.com", "out-1@example.com"), "dave@example.com", record("out-1@example.com", "alice@example.com"), ReplyReject, "", false},
		{"headers-only return: the record is enough", null, &bounce.Report{Kind: bounce.KindDSN, OriginalMessageID: "out-1@example.com", OriginalHeadersOnly: true}, "alice@example.com", record("out-1@example.com", "alice@example.com"), ReplyAccept, "pass", false},
		{"exempt postmaster", null, dsn("x@remote", "x@remote"), "postmaster@example.com", none, ReplyAccept, "none (exempt", false},
		{"grace after signing began", null, dsn("a@new.example", "x@remote"), "a@new.example", none, ReplyAccept, "neutral (untagged; grace", false},
		{"store down: tempfail in reject mode", null, dsn("alice@example.com", "x@remote"), "alice@example.com", down, ReplyTempfail, "", false},
		{"store down, tag mode only marks", null, dsn("a@tag.example", "x@remote"), "a@tag.example", down, ReplyAccept, "neutral (untagged; store unavailable", false},
		{"store down, quarantine mode quarantines", null, dsn("a@q.example", "x@remote"), "a@q.example", down, ReplyAccept, "neutral", true},
		{"flood in reject mode", null, dsn("alice@example.com", "x@remote"), "alice@example.com", flood, ReplyReject, "", false},
		{"flood in tag mode only marks", null, dsn("a@tag.example", "x@remote"), "a@tag.example", flood, ReplyAccept, "fail (untagged bounce during a bounce flood", false},
		{"postmaster of another domain writing: not a bounce", pm, ordinary, "alice@example.com", none, ReplyAccept, "", false},
		{"mailer-daemon of another domain with a real bounce: judged", Envelope{Sender: "MAILER-DAEMON@remote.example"}, dsn("alice@example.com", "x@remote"), "alice@example.com", none, ReplyReject, "", false},
		{"auto-reply from a person to our user, answering our mail", Envelope{Sender: "bob@remote.example"}, autoreply, "alice@example.com", record("out-1@example.com", "alice@example.com"), ReplyAccept, "pass", false},
		{"auto-reply answering nothing we sent", Envelope{Sender: "bob@remote.example"}, &bounce.Report{Kind: bounce.KindAutoreply, InReplyTo: "spam@bot"}, "alice@example.com", none, ReplyReject, "", false},
		{"null sender, not a report, References to our mail: no evidence", null, refsOnly, "alice@example.com", record("out-1@example.com", "alice@example.com"), ReplyReject, "", false},
		{"SRS address left alone", null, dsn("x@remote", "x@remote"), "SRS0=HHH=TT=remote.example=bob@example.com", none, ReplyAccept, "", false},
		{"list VERP bounce address left alone", null, dsn("x@remote", "x@remote"), "list-bounces+bob=remote.example@example.com", none, ReplyAccept, "", false},
		{"owner- address left alone", null, dsn("x@remote", "x@remote"), "owner-list@example.com", none, ReplyAccept, "", false},
		{"not our domain", null, dsn("x@remote", "x@remote"), "bob@other.example", none, ReplyAccept, "", false},
	} {
		_, d := message(t, e, tc.env, tc.rep, []string{tc.rcpt}, tc.answer)
		if d.Reply.Code != tc.reply {
			t.Errorf("%s: reply %v %q, want %v", tc.name, d.Reply.Code, d.Reply.Text, tc.reply)
		}
		if tc.header == "" && d.Header != "" || tc.header != "" && !strings.HasPrefix(d.Header, tc.header) {
			t.Errorf("%s: header %q, want prefix %q", tc.name, d.Header, tc.header)
		}
		if (d.Quarantine != "") != tc.quar {
			t.Errorf("%s: quarantine %q, want %v", tc.name, d.Quarantine, tc.quar)
		}
	}
}

func TestDecideEvidenceRungs(t *testing.T) {
	e := testEngine(t, testSettings())
	null := Envelope{}
	base := func() *bounce.Report {
		r := dsn("alice@example.com", "x@remote")
		r.Original = []byte("whole original")
		return r
	}
	withHop := func(h bounce.Hop) *bounce.Report {
		r := base()
		r.OriginalReceived = []bounce.Hop{h, {Name: "out1.example.com", By: "evil.test"}}
		return r
	}
	sig := func(d string, signed time.Time) []DKIMSignature {
		return []DKIMSignature{{Domain: d, Valid: true, Signed: signed}}
	}
	for _, tc := range []struct {
		name string
		rep  *bounce.Report
		rcpt string
		dkim []DKIMSignature
		want string // evidence prefix in the header, "" refused
	}{
		{"our DKIM signature, recent", base(), "alice@example.com", sig("example.com", testNow.Add(-time.Hour)), "dkim:example.com"},
		{"our DKIM, subdomain", base(), "alice@example.com", sig("mail.example.com", testNow.Add(-time.Hour)), "dkim:mail.example.com"},
		{"DKIM too old for the tag lifetime", base(), "alice@example.com", sig("example.com", testNow.AddDate(0, 0, -40)), ""},
		{"DKIM without a time", base(), "alice@example.com", sig("example.com", time.Time{}), ""},
		{"DKIM signed Date when t= is absent", base(), "alice@example.com", []DKIMSignature{{Domain: "example.com", Valid: true, Date: testNow.Add(-time.Hour)}}, "dkim:example.com"},
		{"DKIM of a foreign domain", base(), "alice@example.com", sig("evilexample.com", testNow), ""},
		{"DKIM not valid", base(), "alice@example.com", []DKIMSignature{{Domain: "example.com", Signed: testNow}}, ""},
		{"DKIM but the original is another user's", base(), "dave@example.com", sig("example.com", testNow.Add(-time.Hour)), ""},
		{"topmost hop from our relay by name", withHop(bounce.Hop{Helo: "x", Name: "out1.example.com", By: "mx.remote"}), "alice@example.com", nil, "relay:out1.example.com"},
		{"topmost hop from our relay's address", withHop(bounce.Hop{Helo: "x", IP: netip.MustParseAddr("198.51.100.7"), By: "mx.remote"}), "alice@example.com", nil, "relay:198.51.100.7"},
		{"relay only in HELO", withHop(bounce.Hop{Helo: "out1.example.com", Name: "bot.evil.test", By: "mx.remote"}), "alice@example.com", nil, ""},
		{"relay subdomain", withHop(bounce.Hop{Name: "foo.out1.example.com", By: "mx.remote"}), "alice@example.com", nil, ""},
		{"relay only in a lower, forgeable hop", withHop(bounce.Hop{Name: "bot.evil.test", By: "mx.remote"}), "alice@example.com", nil, ""},
	} {
		states := []RcptState{{R: e.CheckRecipient(tc.rcpt)}}
		j := e.Judge(Message{Env: null, Rcpts: states, Report: tc.rep})
		if len(tc.dkim) > 0 && !j.WantsDKIM() {
			t.Errorf("%s: DKIM not wanted", tc.name)
		}
		j.DKIM = tc.dkim
		for i := range j.Rcpts {
			if j.Rcpts[i].Query != nil {
				j.Rcpts[i].Answer = Answer{Asked: true}
			}
		}
		d := j.Decide()
		switch {
		case tc.want == "" && d.Reply.Code != ReplyReject:
			t.Errorf("%s: %v %q, want refused", tc.name, d.Reply.Code, d.Header)
		case tc.want != "" && !strings.Contains(d.Header, tc.want):
			t.Errorf("%s: header %q (reply %v), want evidence %s", tc.name, d.Header, d.Reply.Code, tc.want)
		}
	}
}

func TestDecideTags(t *testing.T) {
	e := testEngine(t, testSettings())
	s := e.Sign("alice@example.com", []string{"bob@remote.example"})
	if s.Sender == "" {
		t.Fatal(s.Skip)
	}
	counts := func(rcpts, bounces int64) func(evidence.InboundQuery) Answer {
		return func(q evidence.InboundQuery) Answer {
			return Answer{Asked: true, Facts: evidence.InboundFacts{TagRecipients: rcpts, TagBounces: bounces}}
		}
	}
	forged := strings.Replace(s.Sender, "=alice@", "=mallory@", 1)
	unknown := "prvs=7" + s.Sender[6:]
	expired, _ := SignPRVS("alice@example.com", []byte("engine-secret"), 1, testNow.AddDate(0, 0, -20), 7)
	vacation := Envelope{Sender: "bob@remote.example"}
	for _, tc := range []struct {
		name   string
		env    Envelope
		rcpt   string
		answer func(evidence.InboundQuery) Answer
		atRcpt Reason // "" accepted at RCPT
		header string
	}{
		{"valid tag", Envelope{}, s.Sender, counts(1, 0), "", "pass (valid prvs tag, key 1)"},
		{"valid tag, upper-case domain", Envelope{}, strings.Replace(s.Sender, "example.com", "EXAMPLE.COM", 1), counts(1, 0), "", "pass"},
		{"forged", Envelope{}, forged, nil, ReasonBadSignature, ""},
		{"unknown key", Envelope{}, unknown, nil, ReasonUnknownKey, ""},
		{"expired", Envelope{}, expired, nil, ReasonExpired, ""},
		{"auto-reply (non-null sender) to a forged tag", vacation, forged, nil, ReasonBadSignature, ""},
		{"ordinary sender to a forged tag", Envelope{Sender: "someone@remote.example"}, forged, nil, ReasonBadSignature, ""},
		{"budget spent: 1 recipient + slack 2, 3 counted", Envelope{}, s.Sender, counts(1, 3), ReasonReplayed, ""},
		{"budget left: 1 recipient + slack 2, 2 counted", Envelope{}, s.Sender, counts(1, 2), "", "pass"},
		{"no record of signing: small budget", Envelope{}, s.Sender, counts(0, 3), ReasonReplayed, ""},
		{"no record of signing, budget left", Envelope{}, s.Sender, counts(0, 2), "", "pass"},
		{"store down: a valid tag passes", Envelope{}, s.Sender, func(evidence.InboundQuery) Answer { return Answer{Asked: true, Err: errors.New("down")} }, "", "pass"},
		{"budget spent but the store had a gap that day", Envelope{}, s.Sender, func(evidence.InboundQuery) Answer {
			return Answer{Asked: true, Facts: evidence.InboundFacts{TagRecipients: 1, TagBounces: 9,
				Gaps: []evidence.Window{{From: testNow.Add(-2 * time.Hour), To: testNow.Add(-time.Hour)}}}}
		}, "", "pass"},
		{"budget spent, only a downtime that day (no record lost)", Envelope{}, s.Sender, func(evidence.InboundQuery) Answer {
			return Answer{Asked: true, Facts: evidence.InboundFacts{TagRecipients: 1, TagBounces: 9,
				Gaps: []evidence.Window{{From: testNow.Add(-2 * time.Hour), To: testNow.Add(-time.Hour), Unsigned: true}}}}
		}, ReasonReplayed, ""},
		{"budget spent, gap long before", Envelope{}, s.Sender, func(evidence.InboundQuery) Answer {
			return Answer{Asked: true, Facts: evidence.InboundFacts{TagRecipients: 1, TagBounces: 9,
				Gaps: []evidence.Window{{From: testNow.AddDate(0, 0, -20), To: testNow.AddDate(0, 0, -19)}}}}
		}, ReasonReplayed, ""},
		{"forged tag of postmaster: exempt", Envelope{}, strings.Replace(forged, "=mallory@", "=postmaster@", 1), nil, "", "none"},
	} {
		rv, d := message(t, e, tc.env, nil, []string{tc.rcpt}, tc.answer)
		got := Reason("")
		if rv[0] != nil && rv[0].Action == ActReject {
			got = rv[0].Reason
		}
		if got != tc.atRcpt {
			t.Errorf("%s: at RCPT %q, want %q", tc.name, got, tc.atRcpt)
			continue
		}
		if tc.atRcpt == "" && !strings.HasPrefix(d.Header, tc.header) {
			t.Errorf("%s: header %q, want prefix %q", tc.name, d.Header, tc.header)
		}
		if tc.header == "pass" || strings.HasPrefix(tc.header, "pass (") {
			if len(d.Strip) != 1 || !strings.EqualFold(d.Strip[0].Untagged, "alice@example.com") {
				t.Errorf("%s: strip %+v", tc.name, d.Strip)
			}
		}
	}
}

// A sender-verification callout (MAIL FROM:<>, RCPT, QUIT) asks the store
// without counting, so probes never spend a tag's budget; the message
// counts at its end.
func TestCalloutsDoNotCount(t *testing.T) {
	e := testEngine(t, testSettings())
	s := e.Sign("alice@example.com", []string{"bob@remote.example"})
	r := e.CheckRecipient(s.Sender)
	q, ok := e.RcptQuery(Envelope{}, r, "203.0.113.9")
	if !ok || q.Count || q.Tag == "" {
		t.Fatalf("RCPT query %+v %v: want an uncounted tag query", q, ok)
	}
	j := e.Judge(Message{Env: Envelope{}, Rcpts: []RcptState{{R: r}}, ClientIP: "203.0.113.9"})
	if j.Rcpts[0].Query == nil || !j.Rcpts[0].Query.Count {
		t.Fatalf("end-of-message query %+v: want a counted one", j.Rcpts[0].Query)
	}
	// A forged tag counts against the client (online guessing).
	bad := e.CheckRecipient(strings.Replace(s.Sender, "=alice@", "=bob@", 1))
	if q, ok := e.RcptQuery(Envelope{}, bad, "203.0.113.9"); !ok || !q.Count || q.ClientIP == "" || q.Tag != "" {
		t.Fatalf("bad-tag query %+v %v", q, ok)
	}
}

func TestDecideCombine(t *testing.T) {
	e := testEngine(t, testSettings())
	s := e.Sign("alice@example.com", []string{"bob@remote.example"})
	rec := record("out-1@example.com", "carol@example.com")
	rep := dsn("carol@example.com", "out-1@example.com")
	// Mixed: carol has evidence, dave none: dave dropped, carol delivered.
	_, d := message(t, e, Envelope{}, rep, []string{"carol@example.com", "dave@example.com"}, rec)
	if d.Reply.Code != ReplyAccept || len(d.Drop) != 1 || d.Drop[0].Untagged != "dave@example.com" || !strings.HasPrefix(d.Header, "pass") {
		t.Errorf("mixed: %+v", d)
	}
	// A valid tag and an untagged recipient without evidence: the header is
	// the worst among the delivered.
	_, d = message(t, e, Envelope{}, rep, []string{s.Sender, "erin@tag.example"}, rec)
	if d.Reply.Code != ReplyAccept || !strings.HasPrefix(d.Header, "fail") || len(d.Strip) != 1 {
		t.Errorf("tag + tag mode: %+v", d)
	}
	// Tempfail wins.
	down := func(q evidence.InboundQuery) Answer {
		if q.Tag != "" {
			return Answer{Asked: true}
		}
		return Answer{Asked: true, Err: errors.New("down")}
	}
	_, d = message(t, e, Envelope{}, rep, []string{s.Sender, "dave@example.com"}, down)
	if d.Reply.Code != ReplyTempfail || d.Reply.SMTP != 451 {
		t.Errorf("tempfail: %+v", d)
	}
	// All refused: 550 with the first reason.
	_, d = message(t, e, Envelope{}, rep, []string{"dave@example.com", "erin@example.com"}, none)
	if d.Reply.Code != ReplyReject || !strings.Contains(d.Reply.Text, "no-evidence") {
		t.Errorf("all refused: %+v", d)
	}
	// Local submission is never refused, at RCPT or at the end.
	local := Envelope{Origin: Origin{Local: true}}
	rv, d := message(t, e, local, rep, []string{"dave@example.com", strings.Replace(s.Sender, "=alice@", "=x@", 1)}, none)
	if rv[1] != nil || d.Reply.Code != ReplyAccept || d.Header == "" {
		t.Errorf("local: rcpt %+v, %+v", rv[1], d)
	}
	// Ordinary mail (not a bounce) to our users: no header, nothing judged.
	_, d = message(t, e, Envelope{Sender: "bob@remote.example"}, nil, []string{"dave@example.com"}, none)
	if d.Reply.Code != ReplyAccept || d.Header != "" || len(d.Verdicts) != 0 {
		t.Errorf("ordinary: %+v", d)
	}
}

// The verdicts say what becomes of each recipient once the message is
// combined, so that the log and the metrics never count a refusal that
// does not happen: a refused recipient of a delivered message is dropped,
// every recipient of a deferred message is deferred, every recipient of a
// refused message refused, nothing of local submission refused; an
// adapter that cannot drop one recipient (NoDrop) refuses the message.
func TestDecideVerdictsSayWhatHappens(t *testing.T) {
	e := testEngine(t, testSettings())
	s := e.Sign("alice@example.com", []string{"bob@remote.example"})
	rep := dsn("carol@example.com", "out-1@example.com")
	actions := func(d Decision) string {
		var out []string
		for _, rv := range d.Verdicts {
			out = append(out, rv.R.Untagged+":"+rv.Verdict.Action.String())
		}
		return strings.Join(out, " ")
	}
	down := func(q cache.InboundQuery) Answer {
		if q.Tag != "" {
			return Answer{Asked: true}
		}
		return Answer{Asked: true, Err: errors.New("down")}
	}
	for _, tc := range []struct {
		name   string
		env    Envelope
		rcpts  []string
		answer func(cache.InboundQuery) Answer
		noDrop bool
		reply  ReplyCode
		want   string
	}{
		{"drop", Envelope{}, []string{"postmaster@example.com", "@x.test:dave@example.com"}, none, false, ReplyAccept,
			"postmaster@example.com:accept dave@example.com:drop-recipient"},
		{"no drop: refused whole", Envelope{}, []string{"postmaster@example.com", "dave@example.com"}, none, true, ReplyReject,
			"postmaster@example.com:reject dave@example.com:reject"},
		{"deferred", Envelope{}, []string{s.Sender, "dave@example.com"}, down, false, ReplyTempfail,
			"alice@example.com:tempfail dave@example.com:tempfail"},
		{"refused", Envelope{}, []string{"dave@example.com", "erin@example.com"}, none, false, ReplyReject,
			"dave@example.com:reject erin@example.com:reject"},
		{"local", Envelope{Origin: Origin{Local: true}}, []string{"dave@example.com", "erin@example.com"}, none, false, ReplyAccept,
			"dave@example.com:accept erin@example.com:accept"},
		{"local, store down", Envelope{Origin: Origin{Local: true}}, []string{"dave@example.com"}, down, false, ReplyAccept,
			"dave@example.com:accept"},
	} {
		var states []RcptState
		for _, raw := range tc.rcpts {
			r := e.CheckRecipient(raw)
			states = append(states, RcptState{R: r, AtRcpt: e.AtRcpt(tc.env, r, Answer{})})
		}
		j := e.Judge(Message{Env: tc.env, Rcpts: states, Report: rep, NoDrop: tc.noDrop})
		for i := range j.Rcpts {
			if q := j.Rcpts[i].Query; q != nil {
				j.Rcpts[i].Answer = tc.answer(*q)
			}
		}
		d := j.Decide()
		if got := actions(d); got != tc.want || d.Reply.Code != tc.reply {
			t.Errorf("%s: reply %v, verdicts %q; want %v, %q", tc.name, d.Reply.Code, got, tc.reply, tc.want)
		}
		if tc.reply != ReplyAccept && len(d.Drop) > 0 {
			t.Errorf("%s: drops %d recipients of a message not delivered", tc.name, len(d.Drop))
		}
	}
}

// Trust decides what is signed, not which bounces are believed: a bounce
// from a trusted network or an authenticated client is judged like any.
func TestTrustedOriginsAreJudged(t *testing.T) {
	e := testEngine(t, testSettings())
	for _, o := range []Origin{{Client: netip.MustParseAddr("192.0.2.5")}, {AuthUser: "alice"}, {Daemon: "ORIGINATING"}} {
		if e.OutboundReason(o) == "" {
			t.Fatalf("%+v is not outbound", o)
		}
		forged := "prvs=1001abcdef=alice@example.com"
		rv, _ := message(t, e, Envelope{Origin: o}, nil, []string{forged}, none)
		if rv[0] == nil || rv[0].Action != ActReject {
			t.Errorf("%+v: forged tag not refused", o)
		}
		_, d := message(t, e, Envelope{Origin: o}, dsn("alice@example.com", "x@remote"), []string{"alice@example.com"}, none)
		if d.Reply.Code != ReplyReject {
			t.Errorf("%+v: untagged backscatter not refused: %+v", o, d)
		}
	}
}

// The policy service reads no body: an untagged bounce is marked, never
// refused (a read receipt or a genuine bounce to an untagged address would
// be lost).
func TestUnreadBounceIsMarked(t *testing.T) {
	e := testEngine(t, testSettings())
	_, d := message(t, e, Envelope{}, nil, []string{"alice@example.com"}, none)
	if d.Reply.Code != ReplyAccept || !strings.HasPrefix(d.Header, "neutral (untagged bounce; not checked") {
		t.Errorf("%+v", d)
	}
}

func TestGap(t *testing.T) {
	e := testEngine(t, testSettings())
	gap := func(from, to time.Time) func(evidence.InboundQuery) Answer {
		return func(evidence.InboundQuery) Answer {
			return Answer{Asked: true, Facts: evidence.InboundFacts{Gaps: []evidence.Window{{From: from, To: to}}}}
		}
	}
	rep := dsn("alice@example.com", "lost@example.com")
	rep.OriginalDate = testNow.Add(-3 * time.Hour)
	_, d := message(t, e, Envelope{}, rep, []string{"alice@example.com"}, gap(testNow.Add(-4*time.Hour), testNow.Add(-2*time.Hour)))
	if d.Reply.Code != ReplyAccept || !strings.HasPrefix(d.Header, "neutral (untagged; the original was sent while the store") {
		t.Errorf("in gap: %+v", d)
	}
	_, d = message(t, e, Envelope{}, rep, []string{"alice@example.com"}, gap(testNow.Add(-10*time.Hour), testNow.Add(-8*time.Hour)))
	if d.Reply.Code != ReplyReject {
		t.Errorf("outside the gap: %+v", d)
	}
	noDate := dsn("alice@example.com", "lost@example.com")
	noDate.OriginalDate = time.Time{}
	_, d = message(t, e, Envelope{}, noDate, []string{"alice@example.com"}, gap(testNow.Add(-4*time.Hour), testNow))
	if d.Reply.Code != ReplyReject {
		t.Errorf("no date: %+v", d)
	}
	// The margins: mail written up to 30 minutes before a gap may have
	// been sent in it; mail dated more than a clock skew (5 minutes) after
	// it ended was written after it, and recorded.
	for _, c := range []struct {
		date time.Duration // from testNow; the gap is [testNow-4h, testNow-2h]
		in   bool
	}{
		{-4*time.Hour - 29*time.Minute, true},
		{-4*time.Hour - 31*time.Minute, false},
		{-2*time.Hour + 4*time.Minute, true},
		{-2*time.Hour + 6*time.Minute, false},
	} {
		r := dsn("alice@example.com", "lost@example.com")
		r.OriginalDate = testNow.Add(c.date)
		_, d := message(t, e, Envelope{}, r, []string{"alice@example.com"}, gap(testNow.Add(-4*time.Hour), testNow.Add(-2*time.Hour)))
		if in := d.Reply.Code != ReplyReject; in != c.in {
			t.Errorf("original dated %v from now: in gap %v, want %v (%+v)", c.date, in, c.in, d)
		}
	}
}

func TestCheckRecipientAddresses(t *testing.T) {
	e := testEngine(t, testSettings())
	for _, tc := range []struct {
		in               string
		ours, unparsable bool
		untagged, stored string
	}{
		{"alice@example.com", true, false, "alice@example.com", "alice@example.com"},
		{"<alice@EXAMPLE.com>", true, false, "alice@EXAMPLE.com", "alice@EXAMPLE.com"},
		{"@x.test:alice@example.com", true, false, "alice@example.com", "alice@example.com"},
		{"@a.test,@b.test:alice@example.com", true, false, "alice@example.com", "alice@example.com"},
		{"alice%example.com@localhost", true, false, "alice@example.com", "alice%example.com@localhost"},
		{"example.com!alice@localhost", true, false, "alice@example.com", "example.com!alice@localhost"},
		{"example.com!alice", true, false, "alice@example.com", "example.com!alice"},
		{"localhost!example.com!alice", true, false, "alice@example.com", "localhost!example.com!alice"},
		{"alice%example.com", true, false, "alice@example.com", "alice%example.com"},
		{"alice%example.com%mx.other.example@localhost", true, false, "alice@example.com", "alice%example.com%mx.other.example@localhost"},
		{"alice@example.com@localhost", true, false, "alice@example.com", "alice@example.com@localhost"},
		{`"alice@example.com"@localhost`, true, false, "alice@example.com", `"alice@example.com"@localhost`},
		{`"alice%example.com"@localhost`, true, false, "alice@example.com", `"alice%example.com"@localhost`},
		{`"example.com!alice"@localhost`, true, false, "alice@example.com", `"example.com!alice"@localhost`},
		{`@x.test:"alice@example.com"@localhost`, true, false, "alice@example.com", `"alice@example.com"@localhost`},
		{"alice%evil.test@example.com", true, false, "alice%evil.test@example.com", "alice%evil.test@example.com"},
		{"EXAMPLE.COM!alice@localhost", true, false, "alice@EXAMPLE.COM", "EXAMPLE.COM!alice@localhost"},
		{`"alice"@localhost`, false, false, "", ""},
		{"alice", false, false, "", ""},
		{"postmaster", false, false, "", ""},
		{`"alice x"@localhost`, false, false, "", ""},
		{`"alice x@example.com"@localhost`, true, true, "", ""},
		{"alice%@localhost", false, false, "", ""},
		{"!alice@localhost", false, false, "", ""},
		{strings.Repeat("a%", 30) + "example.com@localhost", true, false, strings.Repeat("a%", 29) + "a@example.com", strings.Repeat("a%", 30) + "example.com@localhost"},
		{strings.Repeat("relay.test!", 30) + "example.com!alice", true, true, "", ""},
		{"@x.test", false, false, "", ""},
		{"alice(x)@example.com(y)", true, false, "alice@example.com", "alice@example.com"},
		{`alice(a "(b)" \) c)@example.com`, true, false, "alice@example.com", "alice@example.com"},
		{`"a(b)"@example.com`, true, false, `"a(b)"@example.com`, `"a(b)"@example.com`},
		{"alice@example.com(unclosed", true, true, "", ""},
		{`"alice x"@example.com`, true, true, "", ""},
		{"alice\x01@example.com", true, true, "", ""},
		{strings.Repeat("a", 1100) + "@example.com", true, true, "", ""},
		{"bob@other.example", false, false, "bob@other.example", "bob@other.example"},
		{"@broken", false, false, "", ""},
	} {
		r := e.CheckRecipient(tc.in)
		if r.Ours != tc.ours || r.Unparsable != tc.unparsable {
			t.Errorf("%q: ours %v unparsable %v, want %v %v", tc.in, r.Ours, r.Unparsable, tc.ours, tc.unparsable)
			continue
		}
		if tc.unparsable || tc.untagged == "" {
			continue
		}
		if r.Untagged != tc.untagged || r.Stored != tc.stored {
			t.Errorf("%q: untagged %q stored %q, want %q %q", tc.in, r.Untagged, r.Stored, tc.untagged, tc.stored)
		}
	}
	if k := e.CheckRecipient("Alice+Promo@example.com").FloodKey(); k != "alice@example.com" {
		t.Errorf("flood key %q", k)
	}
}

// The address Postfix resolved ({rcpt_addr}) is decided on first: it
// knows what Postfix adds ($myorigin after a bare local part). It never
// turns an address the engine reads as ours into "not ours".
func TestCheckRecipientResolved(t *testing.T) {
	e := testEngine(t, testSettings())
	for _, tc := range []struct {
		rcpt, resolved   string
		ours, unparsable bool
		address          string
	}{
		{"alice", "alice@example.com", true, false, "alice@example.com"},
		{"alice", "<alice@example.com>", true, false, "alice@example.com"},
		{"alice", "alice@mx.other.example", false, false, ""},
		{"alice", "", false, false, ""},
		{`"a b"`, `"a b"@example.com`, true, true, `"a b"@example.com`},
		{"alice@example.com", "alice@other.example", true, false, "alice@example.com"},
		{"user%example.com@localhost", "user@example.com", true, false, "user@example.com"},
	} {
		r := e.CheckRecipientResolved(tc.rcpt, tc.resolved)
		if r.Ours != tc.ours || r.Unparsable != tc.unparsable || tc.ours && r.Address != tc.address {
			t.Errorf("%q resolved %q: ours %v unparsable %v address %q, want %v %v %q", tc.rcpt, tc.resolved,
				r.Ours, r.Unparsable, r.Address, tc.ours, tc.unparsable, tc.address)
		}
		if r.Stored != tc.rcpt {
			t.Errorf("%q: stored %q: DeleteRecipient must name the address as received", tc.rcpt, r.Stored)
		}
	}
}

func TestSignAndStatus(t *testing.T) {
	e := testEngine(t, testSettings())
	s := e.Sign("alice@long.example", []string{"x@remote.example"})
	if s.Sender == "" || s.TTL != 33*24*time.Hour {
		t.Errorf("long lifetime: %+v (the record must outlive a 30-day tag)", s)
	}
	if s := e.Sign("list-bounces+bob=remote.example@example.com", nil); s.Skip != ReasonVERP {
		t.Errorf("VERP sender: %+v", s)
	}
	// A list's own bounce and owner addresses are pass_through: left
	// unsigned; a user's address that merely resembles one is signed.
	for _, sender := range []string{"list-bounces@example.com", "Owner-List@example.com", "list-request@example.com"} {
		if s := e.Sign(sender, []string{"x@remote.example"}); s.Skip != ReasonPassThrough || s.Sender != "" {
			t.Errorf("pass_through sender %q: %+v", sender, s)
		}
	}
	if s := e.Sign("bounces@example.com", []string{"x@remote.example"}); s.Skip != "" || s.Sender == "" {
		t.Errorf("ordinary sender: %+v", s)
	}
	// A mixed-case sender is signed in lower case, so that the tag verifies
	// whatever case a relay gives the return path back in.
	s = e.Sign("Alice.Smith@Example.COM", []string{"x@remote.example"})
	if s.Sender == "" || s.Sender != strings.ToLower(s.Sender) {
		t.Fatalf("mixed-case sender signed as %+v", s)
	}
	for _, back := range []string{s.Sender, strings.ToUpper(s.Sender), strings.Replace(s.Sender, "alice.smith@example.com", "Alice.Smith@Example.COM", 1),
		strings.Replace(s.Sender, "example.com", "EXAMPLE.com", 1)} {
		if r := e.CheckRecipient(back); r.Err != nil || r.Verified == nil || !strings.EqualFold(r.Untagged, "alice.smith@example.com") {
			t.Errorf("tag back as %q: %+v", back, r)
		}
	}
	var newEx DomainStatus
	for _, st := range e.Status(testNow) {
		if st.Name == "new.example" {
			newEx = st
		}
	}
	if !newEx.InGraceNow || !strings.Contains(newEx.Describe(), "mode reject from 2026-12-05") {
		t.Errorf("status %+v: %s", newEx, newEx.Describe())
	}
}
