package backscatter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

func testEngine(t *testing.T, cfgText string, since time.Time) *Engine {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := ParseKeys(strings.NewReader("1 engine-secret\n"), "k")
	e := NewEngine(cfg, NewKeyRing(ks), map[string]time.Time{"example.com": since, "tag.example": since})
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	e.Now = func() time.Time { return now }
	return e
}

func TestUntaggedVerdict(t *testing.T) {
	const cfgText = `grace = "10d"
[domains."example.com"]
mode = "reject"
[domains."tag.example"]
mode = "tag"
[domains."q.example"]
mode = "quarantine"
[domains."off.example"]
mode = "off"
`
	e := testEngine(t, cfgText, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	down := errors.New("store down")
	for _, tc := range []struct {
		name   string
		rcpt   string
		in     UntaggedInput
		action Action
		reason Reason
	}{
		{"no evidence, reject mode", "u@example.com", UntaggedInput{}, ActReject, ReasonBackscatter},
		{"no evidence, tag mode", "u@tag.example", UntaggedInput{}, ActAccept, ReasonBackscatter},
		{"no evidence, quarantine", "u@q.example", UntaggedInput{}, ActQuarantine, ReasonBackscatter},
		{"off", "u@off.example", UntaggedInput{}, ActAccept, "mode-off"},
		{"evidence beats the mode", "u@example.com", UntaggedInput{Evidence: []string{"dkim:example.com"}}, ActAccept, "evidence"},
		{"exempt", "postmaster@example.com", UntaggedInput{}, ActAccept, "exempt"},
		{"flood, even in tag mode", "u@tag.example", UntaggedInput{Strict: true}, ActReject, ReasonFlood},
		{"store down: tempfail by default", "u@example.com", UntaggedInput{StoreErr: down}, ActTempfail, "store-error"},
		{"store down but evidence", "u@example.com", UntaggedInput{StoreErr: down, Evidence: []string{"relay:mx"}}, ActAccept, "evidence"},
	} {
		in := tc.in
		in.Recipient = e.CheckRecipient(tc.rcpt)
		v := e.UntaggedVerdict(in)
		if v.Action != tc.action || v.Reason != tc.reason {
			t.Errorf("%s: %s %s, want %s %s", tc.name, v.Action, v.Reason, tc.action, tc.reason)
		}
	}
	// Grace: a domain switched on yesterday accepts untagged bounces.
	g := testEngine(t, cfgText, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
	if v := g.UntaggedVerdict(UntaggedInput{Recipient: g.CheckRecipient("u@example.com")}); v.Action != ActAccept || v.Reason != "grace" {
		t.Errorf("grace: %+v", v)
	}
}

func TestAddStoreFacts(t *testing.T) {
	var in UntaggedInput
	in.AddStoreFacts(cache.InboundFacts{Sent: &cache.SentRecord{}, MatchedMessageID: "<a@b>", ClientStrict: true}, nil)
	if len(in.Evidence) != 1 || in.Evidence[0] != "store:<a@b>" || !in.Strict || in.StoreErr != nil {
		t.Fatalf("%+v", in)
	}
	err := errors.New("down")
	var none UntaggedInput
	none.AddStoreFacts(cache.InboundFacts{}, err)
	if none.StoreErr != err {
		t.Fatal("a store error without other evidence must reach the verdict")
	}
	withDKIM := UntaggedInput{Evidence: []string{"dkim:example.com"}}
	withDKIM.AddStoreFacts(cache.InboundFacts{}, err)
	if withDKIM.StoreErr != nil {
		t.Fatal("a store error must not override other evidence")
	}
}

// The key a signed sender is recorded under is the key its bounce asks
// for, whatever case the tag comes back in.
func TestTagKeyMatchesReplayQuery(t *testing.T) {
	e := testEngine(t, "[domains.\"example.com\"]\n", time.Time{})
	s := e.Sign("Alice@example.com", []string{"x@example.org"})
	if s.Sender == "" {
		t.Fatal(s.Skip)
	}
	for _, back := range []string{s.Sender, strings.ToUpper(s.Sender[:16]) + s.Sender[16:], "PRVS=" + s.Sender[5:]} {
		r := e.CheckRecipient(back)
		if r.Verified == nil {
			t.Fatalf("%s: %v", back, r.Err)
		}
		if q := r.ReplayQuery("", false, e.Now()); q.Tag != TagKey(s.Sender) {
			t.Errorf("bounce to %s asks for %q, the record is %q", back, q.Tag, TagKey(s.Sender))
		}
	}
}
