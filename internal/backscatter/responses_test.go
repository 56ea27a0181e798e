package backscatter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/evidence"
)

// A domain under a forgery alert with the strict response: its untagged
// bounces without evidence are judged as in a flood, even in the grace
// period; the mode still bounds the outcome, evidence still passes, and a
// store that cannot answer is not overruled.
func TestResponsesStrictDomain(t *testing.T) {
	e := testEngine(t, testSettings())
	resp := &Responses{Strict: map[string]bool{"new.example": true, "tag.example": true}}
	run := func(rcpt string, answer func(evidence.InboundQuery) Answer, r *Responses) Decision {
		t.Helper()
		env := Envelope{Sender: ""}
		st := []RcptState{{R: e.CheckRecipient(rcpt)}}
		j := e.Judge(Message{Env: env, Rcpts: st, Report: dsn(rcpt, "x@remote"), ClientIP: "203.0.113.9", Responses: r})
		for i := range j.Rcpts {
			if q := j.Rcpts[i].Query; q != nil {
				j.Rcpts[i].Answer = answer(*q)
			}
		}
		return j.Decide()
	}
	if d := run("a@new.example", none, nil); d.Reply.Code != ReplyAccept || d.Verdicts[0].Verdict.Reason != ReasonGrace {
		t.Fatalf("grace without the response: %+v", d)
	}
	d := run("a@new.example", none, resp)
	if d.Reply.Code != ReplyReject || d.Verdicts[0].Verdict.Reason != ReasonFlood || !strings.Contains(d.Verdicts[0].Verdict.Comment, "forged") {
		t.Fatalf("grace with the strict response: %+v", d)
	}
	if d := run("a@tag.example", none, resp); d.Reply.Code != ReplyAccept || d.Verdicts[0].Verdict.Reason != ReasonFlood {
		t.Fatalf("tag mode only marks: %+v", d)
	}
	if d := run("a@example.com", none, resp); d.Verdicts[0].Verdict.Reason != ReasonBackscatter {
		t.Fatalf("another domain: %+v", d)
	}
	down := func(evidence.InboundQuery) Answer { return Answer{Asked: true, Err: errors.New("down")} }
	if d := run("a@new.example", down, resp); d.Verdicts[0].Verdict.Reason != ReasonGrace {
		t.Fatalf("store down: %+v", d)
	}
	ev := func(q evidence.InboundQuery) Answer {
		return Answer{Asked: true, Facts: evidence.InboundFacts{Sent: &evidence.SentRecord{RecipientCount: 1, Time: testNow.Add(-time.Hour)},
			MatchedMessageID: "x@remote", SenderMatch: true}}
	}
	if d := run("a@new.example", ev, resp); d.Reply.Code != ReplyAccept || d.Verdicts[0].Verdict.Reason != ReasonEvidence {
		t.Fatalf("evidence: %+v", d)
	}
}

func TestResponsesOutbound(t *testing.T) {
	r := &Responses{Hold: map[string]bool{"mallory@example.com": true}, NoSign: map[string]bool{"eve@example.com": true, "mallory@example.com": true}}
	for sender, want := range map[string]Reason{
		"Mallory@Example.com":      ReasonAlertHold,
		"mallory+news@example.com": ReasonAlertHold,
		"eve@example.com":          ReasonAlertNoSign,
		"alice@example.com":        "",
		"":                         "",
	} {
		if got := r.Outbound(sender); got != want {
			t.Errorf("Outbound(%q) = %q, want %q", sender, got, want)
		}
	}
	var nilR *Responses
	if nilR.Outbound("eve@example.com") != "" || nilR.StrictDomain("example.com") || !nilR.Empty() {
		t.Fatal("a nil Responses asks nothing")
	}
	if r.Empty() || !(&Responses{}).Empty() {
		t.Fatal("Empty")
	}
	tagged, err := SignPRVS("eve@example.com", []byte("k"), 1, testNow, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Outbound(tagged); got != ReasonAlertNoSign {
		t.Fatalf("a tagged sender: %q", got)
	}
}

func TestHostOurs(t *testing.T) {
	e := testEngine(t, testSettings())
	for h, want := range map[string]bool{
		"out1.example.com": true, "OUT1.example.com.": true, "198.51.100.7": true, "[198.51.100.7]": true,
		"mx-out.example.com": true, "example.com": true, "evilexample.com": false, "203.0.113.1": false, "": false,
		"mx.remote.example": false,
	} {
		if got := e.HostOurs(h); got != want {
			t.Errorf("HostOurs(%q) = %v, want %v", h, got, want)
		}
	}
}
