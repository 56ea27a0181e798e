package events

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

func genuine(untagged, domain string) backscatter.Decision {
	return backscatter.Decision{Bounce: true, Verdicts: []backscatter.RcptVerdict{{
		R:       backscatter.Recipient{Untagged: untagged, Domain: domain},
		Verdict: backscatter.Verdict{Action: backscatter.ActAccept, Reason: backscatter.ReasonValidTag},
	}}}
}

// The events of a refusal name our sending host, the lists and the
// recipient's domain (hashed with the recipient).
func TestBuildSendingHostAndLists(t *testing.T) {
	rep := &bounce.Report{Kind: bounce.KindDSN, ReportingMTA: "mx.remote.example",
		OriginalReceived: []bounce.Hop{
			{Name: "mx-out.example.com", IP: netip.MustParseAddr("192.0.2.25"), By: "mx.remote.example"},
			{Name: "client.lan", IP: netip.MustParseAddr("10.0.0.5"), By: "mx-out.example.com"},
		},
		Recipients: []bounce.Recipient{
			{Address: "a@one.example", Action: "failed", Reason: bounce.ReasonBlocked, Diagnostic: "554 5.7.1 Service unavailable; Client host [192.0.2.26] blocked using zen.spamhaus.org"},
			{Address: "b@Two.Example", Action: "failed", Reason: bounce.ReasonSpamDetected, Diagnostic: "550 5.7.1 Message rejected as spam"},
			{Address: "c@three.example", Action: "delayed", Reason: bounce.ReasonExpired},
		}}
	es := Build(Delivered{Decision: genuine("alice@example.com", "example.com"), Report: rep}, nil)
	if len(es) != 3 {
		t.Fatalf("%d events", len(es))
	}
	if e := es[0]; e.SendingHost != "192.0.2.26" || len(e.Blocklists) != 1 || e.Blocklists[0] != "zen.spamhaus.org" || e.RecipientDomain != "one.example" {
		t.Errorf("blocked: %+v", e)
	}
	if e := es[1]; e.SendingHost != "192.0.2.25" || len(e.Blocklists) != 0 || e.RecipientDomain != "two.example" {
		t.Errorf("spam: %+v", e)
	}
	if e := es[2]; e.SendingHost != "" || e.Kind != KindDelay {
		t.Errorf("delay: %+v", e)
	}
	hashed := Build(Delivered{Decision: genuine("alice@example.com", "example.com"), Report: rep}, func(s string) string { return "h:" + strings.ToUpper(s) })
	if e := hashed[1]; e.Recipient != "h:B@TWO.EXAMPLE" || e.RecipientDomain != "h:TWO.EXAMPLE" {
		t.Errorf("hashed: %+v", e)
	}
}

func TestSendingHost(t *testing.T) {
	ip := netip.MustParseAddr
	ours := func(h string) bool { return strings.HasSuffix(h, ".example.com") || h == "198.51.100.7" }
	for _, c := range []struct {
		name string
		rep  *bounce.Report
		diag string
		want string
	}{
		{"diagnostic names the client", &bounce.Report{}, "Client host [192.0.2.1] blocked", "192.0.2.1"},
		{"our MTA reported", &bounce.Report{ReportingMTA: "mx-out.example.com.",
			OriginalReceived: []bounce.Hop{{Name: "laptop.lan", IP: ip("10.1.1.1"), By: "mx-out.example.com"}}}, "550 spam", "mx-out.example.com"},
		{"a hop of ours", &bounce.Report{ReportingMTA: "filter.remote.example", OriginalReceived: []bounce.Hop{
			{Name: "mx.remote.example", IP: ip("203.0.113.1"), By: "filter.remote.example"},
			{Name: "relay.example.com", IP: ip("192.0.2.2"), By: "mx.remote.example"}}}, "virus found", "192.0.2.2"},
		{"an address of ours without a name", &bounce.Report{OriginalReceived: []bounce.Hop{
			{IP: ip("203.0.113.1"), By: "filter.remote.example"}, {IP: ip("198.51.100.7"), By: "mx.remote.example"}}}, "", "198.51.100.7"},
		{"the topmost hop", &bounce.Report{OriginalReceived: []bounce.Hop{{Name: "out.other.example", By: "mx.remote.example"}}}, "", "out.other.example"},
		{"nothing", &bounce.Report{}, "550 spam", ""},
		{"no report", nil, "", ""},
	} {
		if got := SendingHost(c.rep, c.diag, ours); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestQuerySendingHost(t *testing.T) {
	q := Query{SendingHost: "192.0.2.1"}
	if !q.Match(Event{SendingHost: "192.0.2.1"}) || q.Match(Event{SendingHost: "192.0.2.2"}) {
		t.Fatal("sending_host filter")
	}
	pq, err := ParseQuery(func(k string) string { return map[string]string{"sending_host": " 192.0.2.1 "}[k] }, time.Now())
	if err != nil || pq.SendingHost != "192.0.2.1" {
		t.Fatalf("%+v %v", pq, err)
	}
}

// A valid signed-VERP tag names the recipient of the mail it answers, but
// only a bounce says that mail failed: a person's reply to the VERP address
// (not judged a bounce) makes no event.
func TestBuildOnlyForBounces(t *testing.T) {
	d := genuine("news@example.com", "example.com")
	d.Verdicts[0].R.Verified = &backscatter.Verified{Recipient: "reader@remote.example"}
	if es := Build(Delivered{Decision: d}, nil); len(es) != 1 || es[0].Recipient != "reader@remote.example" {
		t.Fatalf("bounce without a body read: %+v, want one event for reader@remote.example", es)
	}
	d.Bounce = false
	if es := Build(Delivered{Decision: d}, nil); len(es) != 0 {
		t.Errorf("ordinary reply to a VERP address: %+v, want no event", es)
	}
}
