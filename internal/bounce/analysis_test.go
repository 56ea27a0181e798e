package bounce

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"slices"
	"strings"
	"testing"
	"time"
)

func analyzeString(t *testing.T, s string) *Report {
	t.Helper()
	rep, err := Analyze(strings.NewReader(s), Limits{})
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return rep
}

const origHeader = "Return-Path: <alice@example.com>\nReceived: from out1.example.com (out1.example.com [192.0.2.7])\n\tby mx.example.net with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\nFrom: Alice <alice@example.com>\nTo: bob@example.net\nSubject: hi\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <orig-1@example.com>\n"

func TestAnalyzeClassifyAndExtract(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(origHeader + "\nbody\n"))
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte(origHeader + "\nbody with a long line " + strings.Repeat("x", 100) + "\n"))
	w.Close()
	cases := []struct {
		name     string
		msg      string
		kind     Kind
		id       string
		rcpts    []string
		sender   string
		hdrsOnly bool
	}{
		{
			name: "RFC 3464, weekday in Arrival-Date, Action before Final-Recipient, no blank line between recipients",
			msg: "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\n\n" +
				"--b1\nContent-Type: text/plain\n\nSorry.\n\n--b1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\nArrival-Date: Mon, 1 Jan 2024 00:00:05 +0000\n\n" +
				"Action: failed\nFinal-Recipient: rfc822; <Bob@Example.NET>\nStatus: 5.1.1\nFinal-Recipient: rfc822;carol@example.net\nAction: delayed\nStatus: 4.4.1\n\n" +
				"Final-Recipient: rfc822; dave@example.net\nAction: delivered\nStatus: 2.0.0\n\n--b1\nContent-Type: message/rfc822\n\n" + origHeader + "\nbody\n--b1--\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net", "carol@example.net"}, sender: "alice@example.com",
		},
		{
			name: "CRLF, mbox line, base64 original, global delivery status",
			msg: strings.ReplaceAll("From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nFrom: postmaster@mx.example.net\nSubject: Delivery Status Notification (Failure)\nContent-Type: multipart/report; report-type=global-delivery-status; boundary=b2\n\n"+
				"--b2\nContent-Type: message/global-delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nOriginal-Recipient: rfc822;x@example.net\nFinal-Recipient: rfc822;@relay.example:y@example.net\nAction: failed\n\n"+
				"--b2\nContent-Type: message/global\nContent-Transfer-Encoding: base64\n\n"+b64+"\n--b2--\n", "\n", "\r\n"),
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"y@example.net"}, sender: "alice@example.com",
		},
		{
			name: "quoted-printable original, headers-only part",
			msg: "From: MAILER-DAEMON@mx.example.net\nSubject: failure\nContent-Type: multipart/report; report-type=delivery-status; boundary=b3\n\n" +
				"--b3\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;bob@example.net\nAction: failed\n\n" +
				"--b3\nContent-Type: text/rfc822-headers\nContent-Transfer-Encoding: quoted-printable\n\n" + qp.String() + "\n--b3--\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"}, sender: "alice@example.com", hdrsOnly: true,
		},
		{
			name: "qmail text bounce with the original quoted",
			msg: "From: MAILER-DAEMON@mx.example.jp\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.jp.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\n" +
				"<Bob@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n--- Below this line is a copy of the message.\n\n" + origHeader + "\nbody\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"}, sender: "alice@example.com", hdrsOnly: true,
		},
		{
			name: "Exim text bounce, X-Failed-Recipients",
			msg: "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nX-Failed-Recipients: bob@example.net\nSubject: Mail delivery failed: returning message to sender\n\n" +
				"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  bob@example.net\n    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n    550 5.1.1 User unknown\n\n" +
				"------ This is a copy of the message, including all the headers. ------\n\n" + origHeader + "\nbody\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"}, hdrsOnly: true,
		},
		{
			name: "Sendmail without top-level MIME headers",
			msg:  "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\nSubject: Returned mail: see transcript for details\n\nThe original message was received at Mon, 1 Jan 2024\n\n   ----- The following addresses had permanent fatal errors -----\n<bob@example.net>\n    (reason: 550 5.1.1 User unknown)\n\n   ----- Transcript of session follows -----\n... while talking to mx.example.net.:\n>>> RCPT To:<bob@example.net>\n<<< 550 5.1.1 User unknown\n",
			kind: KindDSN, rcpts: []string{"bob@example.net"},
		},
		{
			name: "bounce of a bounce: the directly returned message's id",
			msg: "From: MAILER-DAEMON@a.example\nSubject: Undelivered Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=o\n\n--o\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;postmaster@b.example\nAction: failed\n\n" +
				"--o\nContent-Type: message/rfc822\n\nFrom: MAILER-DAEMON@b.example\nMessage-ID: <inner-bounce@b.example>\nSubject: Undelivered\nContent-Type: multipart/report; report-type=delivery-status; boundary=i\n\n--i\nContent-Type: message/rfc822\n\n" + origHeader + "\n--i--\n\n--o--\n",
			kind: KindDSN, id: "inner-bounce@b.example", rcpts: []string{"postmaster@b.example"},
		},
		{
			name: "broken boundary read as text",
			msg:  "From: MAILER-DAEMON@mx.example.net\nSubject: Undeliverable: hi\nContent-Type: multipart/mixed; boundary=nope\n\nYour message could not be delivered to the following recipients:\n\n  bob@example.net\n\nOriginal message headers:\n\n" + origHeader,
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"}, sender: "alice@example.com", hdrsOnly: true,
		},
		{
			name: "antivirus notice to the sender",
			msg:  "From: scanner@gw.example.net\nTo: alice@example.com\nSubject: [hi]\n\nOur antivirus detected and blocked an infected message addressed to bob.\nVirus Name: W32.Bad\nAction taken: delete\n",
			kind: KindDSN,
		},
		{
			name: "multipart without its boundary parameter",
			msg: "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status\n\n" +
				"--XyZ\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;bob@example.net\nAction: failed\n\n--XyZ\nContent-Type: message/rfc822\n\n" + origHeader + "\n--XyZ--\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"}, sender: "alice@example.com",
		},
		{
			name: "RFC 3834 auto-reply",
			msg:  "From: Bob <bob@example.net>\nAuto-Submitted: auto-replied (vacation)\nSubject: Out of office\nIn-Reply-To: <orig-1@example.com>\nReferences: <a@example.com> <orig-1@example.com>\n\nI am away.\n",
			kind: KindAutoreply,
		},
		{
			name: "Exchange automatic reply without Auto-Submitted",
			msg:  "Return-Path: <>\nFrom: Bob <bob@example.net>\nSubject: Automatic reply: hi\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.net\n\nAway.\n",
			kind: KindAutoreply,
		},
		{
			name: "vendor auto-reply header",
			msg:  "From: Bob <bob@example.net>\nX-Autogenerated: Reply\nSubject: Re: hi\n\nI am away until Monday.\n",
			kind: KindAutoreply,
		},
		{
			name: "ordinary: Outlook's X-Auto-Response-Suppress is no auto-reply",
			msg:  "From: Bob <bob@example.net>\nX-Auto-Response-Suppress: All\nSubject: Re: hi\n\nSee you Monday.\n",
			kind: KindNotBounce,
		},
		{
			name: "challenge-response",
			msg:  "From: Bob <bob@example.net>\nAuto-Submitted: auto-replied\nSubject: Please confirm your message\n\nI use a challenge-response system. To confirm that you are a human, reply to this message.\n",
			kind: KindChallenge,
		},
		{
			name: "TMDA-style challenge that mimics a bounce",
			msg:  "From: bob-confirm+1234.abcd@example.net\nSubject: Please confirm your message\n\nThis message was created automatically by mail delivery software (TMDA).\n\nYour message attached below is being held because the address\n<alice@example.com> has not been verified.\n\nTo release your message for delivery, please send an empty message\nto the address above, or use your mailer's Reply feature.\n",
			kind: KindChallenge,
		},
		{
			name: "ordinary: list discussion quoting a bounce",
			msg:  "From: carol@example.org\nList-Id: <users.lists.example.org>\nSubject: Re: Undelivered Mail Returned to Sender\n\n> Your message could not be delivered to bob\n> Transcript of session follows\n> 550 user unknown\nDo you know why?\n",
			kind: KindNotBounce,
		},
		{
			name: "ordinary: web sign-up verification is no challenge",
			msg:  "From: Service <no-reply@service.example>\nSubject: Please verify your email address\n\nThanks for signing up! Click the link below to confirm your e-mail:\nhttps://service.example/v/123\n",
			kind: KindNotBounce,
		},
		{
			name: "RFC 8098 read receipt",
			msg:  "From: bob@example.net\nSubject: Read: hi\nContent-Type: multipart/report; report-type=disposition-notification; boundary=m\n\n--m\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822;bob@example.net\nOriginal-Message-ID: <orig-1@example.com>\nDisposition: manual-action/MDN-sent-manually; displayed\n\n--m--\n",
			kind: KindMDN, id: "orig-1@example.com",
		},
		{
			name: "Sieve reject MDN counts as a bounce; recipient from the original's sole To",
			msg:  "From: MAILER-DAEMON@example.net\nSubject: Automatically rejected mail\nContent-Type: multipart/report; report-type=disposition-notification; boundary=m\n\n--m\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822;bob@example.net\nDisposition: automatic-action/MDN-sent-automatically; deleted\n\n--m\nContent-Type: message/rfc822\n\n" + origHeader + "\n--m--\n",
			kind: KindDSN, id: "orig-1@example.com", rcpts: []string{"bob@example.net"},
		},
		{
			name: "RFC 5965 feedback report",
			msg:  "From: fbl@isp.example\nSubject: FW: hi\nContent-Type: multipart/report; report-type=feedback-report; boundary=f\n\n--f\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nOriginal-Mail-From: <alice@example.com>\n\n--f\nContent-Type: message/rfc822\n\n" + origHeader + "\n--f--\n",
			kind: KindARF, id: "orig-1@example.com", sender: "alice@example.com",
		},
		{
			name: "ordinary: auto-generated notification",
			msg:  "From: Bugzilla <bugzilla-daemon@bugs.example>\nAuto-Submitted: auto-generated\nSubject: [Bug 1] crash\n\nThe delivery of the fix is delayed.\n",
			kind: KindNotBounce,
		},
		{
			name: "ordinary: a person talking about bounces, with a forwarded message",
			msg:  "From: carol@example.org\nSubject: why?\nContent-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain\n\nMy mail to bob says user unknown, see attached.\n\n--z\nContent-Type: message/rfc822\n\n" + origHeader + "\n--z--\n",
			kind: KindNotBounce,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := analyzeString(t, c.msg)
			if rep.Kind != c.kind {
				t.Fatalf("kind %s, want %s", rep.Kind, c.kind)
			}
			if rep.OriginalMessageID != c.id {
				t.Errorf("original id %q, want %q", rep.OriginalMessageID, c.id)
			}
			if got := rep.BouncedAddresses(); !slices.Equal(got, c.rcpts) && !(len(got) == 0 && len(c.rcpts) == 0) {
				t.Errorf("recipients %q, want %q", got, c.rcpts)
			}
			if c.sender != "" && rep.OriginalSender != c.sender {
				t.Errorf("original sender %q, want %q", rep.OriginalSender, c.sender)
			}
			if c.id != "" && c.kind == KindDSN && rep.OriginalHeadersOnly != c.hdrsOnly {
				t.Errorf("headers only %v, want %v", rep.OriginalHeadersOnly, c.hdrsOnly)
			}
		})
	}
}

func TestAnalyzeOriginalSenderFallbacks(t *testing.T) {
	postfix := analyzeString(t, "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\nX-Postfix-Sender: rfc822; Alice@Example.com\n\nFinal-Recipient: rfc822;bob@example.net\nAction: failed\n\n--b--\n")
	if postfix.OriginalSender != "alice@example.com" {
		t.Errorf("X-Postfix-Sender: got %q", postfix.OriginalSender)
	}
	exim := analyzeString(t, "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nSubject: Mail delivery failed\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;bob@example.net\nAction: failed\n\n--b\nContent-Type: text/rfc822-headers\n\nReceived: from a by b with esmtp (envelope-from <carol@example.com>)\n\tid 1 for <bob@example.net>\nMessage-ID: <x@example.com>\nFrom: alice@example.com\n\n--b--\n")
	if exim.OriginalSender != "carol@example.com" || exim.OriginalFrom != "alice@example.com" {
		t.Errorf("envelope-from: sender %q from %q", exim.OriginalSender, exim.OriginalFrom)
	}
}

func TestAnalyzeSESNotifications(t *testing.T) {
	plain := `{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"Bob@example.net","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 user unknown"},{"emailAddress":"carol@example.net"}]},"mail":{"source":"alice@example.com"}}`
	escaped := `{"Type" : "Notification", "Message" : "` + strings.ReplaceAll(plain, `"`, `\"`) + `"}`
	complaint := `{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"bob@example.net"}]}}`
	for name, body := range map[string]string{"plain": plain, "SNS-escaped": escaped} {
		rep := analyzeString(t, "From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n\n"+body+"\n")
		if rep.Kind != KindDSN || !slices.Equal(rep.BouncedAddresses(), []string{"bob@example.net", "carol@example.net"}) || rep.Recipients[0].Status != "5.1.1" {
			t.Errorf("%s: kind %s recipients %+v", name, rep.Kind, rep.Recipients)
		}
	}
	if rep := analyzeString(t, "From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n\n"+complaint+"\n"); rep.Kind != KindARF {
		t.Errorf("complaint: kind %s", rep.Kind)
	}
}

func TestAnalyzeRecipientDetails(t *testing.T) {
	rep := analyzeString(t, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n"+
		"Final-Recipient: rfc822; bob@example.net\nAction: failed (permanent)\nStatus: 5.1.1 (user unknown)\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.net>:\n  user unknown\n\n--b--\n")
	want := Recipient{Address: "bob@example.net", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 <bob@example.net>: user unknown",
		Reason: ReasonUserUnknown, Hard: true, diagType: "smtp"}
	if len(rep.Recipients) != 1 || rep.Recipients[0] != want {
		t.Errorf("recipients %+v, want %+v", rep.Recipients, want)
	}
}

func TestAnalyzeAutoreplyIDs(t *testing.T) {
	rep := analyzeString(t, "From: bob@example.net\nAuto-Submitted: auto-replied\nSubject: Re: hi\nIn-Reply-To: <orig-1@example.com>\nReferences: <a@example.com>\n <orig-1@example.com>\n\naway\n")
	got := rep.CandidateMessageIDs()
	if want := []string{"orig-1@example.com", "a@example.com"}; !slices.Equal(got, want) {
		t.Errorf("candidate ids %q, want %q", got, want)
	}
}

func TestAnalyzeCaps(t *testing.T) {
	big := "From: MAILER-DAEMON@x.example\nSubject: Undelivered\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;bob@example.net\nAction: failed\n\n--b\nContent-Type: text/plain\n\n" + strings.Repeat("filler line\n", 1000) + "--b--\n"
	rep, err := Analyze(strings.NewReader(big), Limits{MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CapHit != CapBytes || rep.Kind != KindDSN || len(rep.BouncedAddresses()) != 1 {
		t.Errorf("max-bytes: cap %q kind %s recipients %q", rep.CapHit, rep.Kind, rep.BouncedAddresses())
	}
	nested := "Content-Type: multipart/mixed; boundary=b0\n\n"
	for i := 1; i < 20; i++ {
		nested += fmt.Sprintf("--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i-1, i)
	}
	if rep, _ := Analyze(strings.NewReader(nested), Limits{MaxDepth: 3}); rep.CapHit != CapDepth {
		t.Errorf("depth cap: %q", rep.CapHit)
	}
	many := "Content-Type: multipart/mixed; boundary=a\n\n" + strings.Repeat("--a\nContent-Type: text/plain\n\nx\n", 50) + "--a--\n"
	if rep, _ := Analyze(strings.NewReader(many), Limits{MaxParts: 10}); rep.CapHit != CapParts {
		t.Errorf("parts cap: %q", rep.CapHit)
	}
	if rep, _ := Analyze(strings.NewReader(many), Limits{}); rep.CapHit != "" {
		t.Errorf("default limits hit %q on a small message", rep.CapHit)
	}
}

type errReader struct{ data string }

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestAnalyzeReadErrors(t *testing.T) {
	if _, err := Analyze(strings.NewReader(""), Limits{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty input: %v", err)
	}
	if _, err := Analyze(&errReader{}, Limits{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("failing reader: %v", err)
	}
	rep, err := Analyze(&errReader{data: "From: MAILER-DAEMON@x.example\nSubject: Undelivered\n\nHi. This is the qmail-send program\n<bob@example.net>:\nno\n"}, Limits{})
	if err != nil || rep.Kind != KindDSN || len(rep.Warnings) == 0 {
		t.Errorf("partial read: err %v, report %+v", err, rep)
	}
}

// TestAnalyzeAdversarialInputsAreCheap guards against quadratic behaviour
// (found by FuzzAnalyze: unfolding thousands of continuation lines).
func TestAnalyzeAdversarialInputsAreCheap(t *testing.T) {
	const n = 120000
	inputs := map[string]string{
		"folded header":    "Subject: x\n" + strings.Repeat(" a\n", n),
		"folded dsn field": "Content-Type: message/delivery-status\n\nFinal-Recipient: a\n" + strings.Repeat(" a\n", n),
		"folded inline":    "Subject: x\n\nMessage-ID: <a@b>\n" + strings.Repeat(" c\n", n),
		"no-colon header":  "Subject: x\n" + strings.Repeat("a\n", n),
		"boundaries":       "Content-Type: multipart/mixed; boundary=a\n\n" + strings.Repeat("--a\n", n/2),
		"addresses":        "From: MAILER-DAEMON\nSubject: Undelivered\n\nfollowing addresses failed\n" + strings.Repeat("a@b.cc\n", n/3),
	}
	for name, in := range inputs {
		start := time.Now()
		if _, err := Analyze(strings.NewReader(in), Limits{MaxBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: %v for %d bytes", name, d, len(in))
		}
	}
}

func TestLooksLikeBounce(t *testing.T) {
	hdr := func(kv ...string) func(string) string {
		return func(name string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if strings.EqualFold(kv[i], name) {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		sender string
		get    func(string) string
		want   bool
	}{
		{"", hdr(), true},
		{"<>", nil, true},
		{"MAILER-DAEMON@mx.example.net", hdr(), true},
		{"alice@example.com", hdr("Auto-Submitted", "auto-replied"), true},
		{"alice@example.com", hdr("Auto-Submitted", "no"), false},
		{"alice@example.com", hdr("X-Autoreply", "yes"), true},
		{"alice@example.com", hdr("Precedence", "auto_reply"), true},
		{"alice@example.com", hdr("Content-Type", "multipart/report; report-type=delivery-status"), true},
		{"alice@example.com", hdr("Subject", "Undeliverable: hello"), true},
		{"alice@example.com", hdr("Subject", "=?UTF-8?Q?Automatic_reply:_hello?="), true},
		{"alice@example.com", hdr("From", "Mail Delivery System <mailer-daemon@x.example>"), true},
		{"alice@example.com", hdr("Subject", "lunch tomorrow?", "From", "alice@example.com"), false},
		{"alice@example.com", nil, false},
	}
	for _, c := range cases {
		if got := LooksLikeBounce(c.sender, c.get); got != c.want {
			t.Errorf("LooksLikeBounce(%q, %v) = %v, want %v", c.sender, c.get != nil, got, c.want)
		}
	}
}

func TestRecipientAddressNormalisation(t *testing.T) {
	cases := map[string]string{
		"rfc822; <Bob@Example.NET>":             "bob@example.net",
		"RFC822;bob@example.net":                "bob@example.net",
		"rfc822;@relay.example:bob@example.net": "bob@example.net",
		"bob@example.net (Bob)":                 "bob@example.net",
		"<bob@example.net>":                     "bob@example.net",
		"rfc822; /var/mail/bob":                 "/var/mail/bob",
		"":                                      "",
	}
	for in, want := range cases {
		if got := recipientAddress(in); got != want {
			t.Errorf("recipientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatcherAgreesWithContains(t *testing.T) {
	m := bodyPhrases()
	texts := []string{
		"", "this is the qmail-send program", "user unknow", "xxuser unknownxx", "please confirm",
		"transcript of session follows and 550 ", strings.Repeat("a", 100) + "final-recipient:",
		"delivery status notificatio", "送信に失敗",
	}
	for _, tx := range texts {
		got := m.match(tx)
		want := [numGroups]bool{
			groupStrong:    containsAny(tx, bounceStrong),
			groupWeak:      containsAny(tx, bounceWeak),
			groupChallenge: containsAny(tx, challengeBody),
			groupConfirm:   strings.Contains(tx, "confirm"),
		}
		got[groupVirus], got[groupVirusAction], got[groupYourMessage] = false, false, false
		if got != want {
			t.Errorf("match(%q) = %v, want %v", tx, got, want)
		}
	}
	if !m.match("Hi. THIS IS THE QMAIL-SEND Program")[groupStrong] {
		t.Error("matcher does not fold ASCII case")
	}
	if got := m.match("nothing", "550 "); !got[groupWeak] || got[groupStrong] {
		t.Errorf("match over several texts: %v", got)
	}
	h := hintPhrases()
	if got := h.firstEnd("abc user unknown and following address", 1); got != len("abc user unknown") {
		t.Errorf("firstEnd = %d", got)
	}
	if got := h.firstEnd("nothing here", 1); got != -1 {
		t.Errorf("firstEnd on no match = %d", got)
	}
}

func TestDecodeQP(t *testing.T) {
	cases := map[string]string{
		"a=3Db":           "a=b",
		"soft=\nbreak":    "softbreak",
		"soft= \t\nbreak": "softbreak",
		"bad=ZZescape":    "bad=ZZescape",
		"lower=3d":        "lower=",
		"trailing=":       "trailing",
		"=E3=81=82":       "\xe3\x81\x82",
	}
	for in, want := range cases {
		if got := string(decodeQP([]byte(in), 1<<20)); got != want {
			t.Errorf("decodeQP(%q) = %q, want %q", in, got, want)
		}
	}
	if got := decodeQP([]byte("abcdef"), 3); string(got) != "abc" {
		t.Errorf("limit not applied: %q", got)
	}
}

func TestSplitMultipartTolerance(t *testing.T) {
	parts, ok := splitMultipart([]byte("preamble\n--b\nA\n--bx not a delimiter\n--b  \nB\n"), "b")
	if !ok || len(parts) != 2 || string(parts[0]) != "A\n--bx not a delimiter" || string(parts[1]) != "B\n" {
		t.Errorf("parts %q ok %v", parts, ok)
	}
	if _, ok := splitMultipart([]byte("no boundary here"), "b"); ok {
		t.Error("missing boundary reported as found")
	}
}

func TestBeforeOriginal(t *testing.T) {
	cases := map[string]string{
		"a@b failed\n--- Below this line is a copy of the message.\nTo: c@d\n":  "a@b failed\n",
		"a@b failed\n  Received: from x\nTo: c@d\n":                             "a@b failed\n",
		"a@b failed\nReturn-Path: <x@y>\n":                                      "a@b failed\n",
		"no original here\n":                                                    "no original here\n",
		"x\n------ This is a COPY OF THE MESSAGE, including all the headers.\n": "x\n",
	}
	for in, want := range cases {
		if got := beforeOriginal(in); got != want {
			t.Errorf("beforeOriginal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReceivedHosts(t *testing.T) {
	got := receivedHosts([]string{
		"from Out1.Example.COM. (out1.example.com [192.0.2.7]) by mx.example.net (Exim 4.80) with esmtp id 1P1c-0001; Mon, 1 Jan 2024",
		"from [IPv6:2001:db8::1] by relay.example.org (8.14.4/8.14.4) for <bob@example.net>; 5.1.1",
	})
	want := []string{"out1.example.com", "192.0.2.7", "mx.example.net", "2001:db8::1", "relay.example.org"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hosts %q, want %q", got, want)
	}
}

// The pre-check and the analysis read the same auto-reply signals: a
// message marked only by one of the rarer fields is buffered by the
// pre-check and classified as an auto-reply by the analysis.
func TestPrecheckAndAnalysisShareSignals(t *testing.T) {
	for _, field := range []string{"X-Autoresponder: yes", "X-Vacation: on", "X-MS-Exchange-Inbox-Rules-Loop: bob@example.net",
		"X-AutoReply-From: bob@example.net", "X-Autogenerated: Reply", "Precedence: auto_reply", "Auto-Submitted: auto-replied"} {
		name, value, _ := strings.Cut(field, ": ")
		var p Precheck
		p.Field("From", "Bob <bob@example.net>")
		p.Field("Subject", "Re: your mail")
		p.Field(name, value)
		if !p.LooksLikeBounce("bob@example.net") {
			t.Errorf("%s: pre-check says not a bounce", field)
		}
		msg := "From: Bob <bob@example.net>\nTo: alice@example.com\nSubject: Re: your mail\n" + field +
			"\nIn-Reply-To: <orig-1@example.com>\n\nI am away until Monday and will read your message then.\n"
		rep, err := Analyze(strings.NewReader(msg), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Kind != KindAutoreply {
			t.Errorf("%s: analysis kind %s, want autoreply", field, rep.Kind)
		}
	}
	var p Precheck
	p.Field("From", "Bob <bob@example.net>")
	p.Field("Subject", "lunch?")
	p.Field("X-Auto-Response-Suppress", "All")
	if p.LooksLikeBounce("bob@example.net") {
		t.Error("ordinary mail with X-Auto-Response-Suppress looks like a bounce")
	}
}
