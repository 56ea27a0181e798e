package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

// signedOriginal returns a CRLF message signed by d=domain, s=s1, and a
// LookupTXT stub publishing the key.
func signedOriginal(t *testing.T, domain string) ([]byte, func(string) ([]string, error)) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.ReplaceAll(`From: Alice <alice@`+domain+`>
To: bob@remote.example.net
Subject: hello
Date: Mon, 01 Jan 2024 00:00:00 +0000
Message-ID: <signed-1@`+domain+`>
Received: from submit.`+domain+` (submit.`+domain+` [192.0.2.1])
	by mx1.`+domain+` with ESMTPSA id ABC; Mon, 01 Jan 2024 00:00:00 +0000

Hello Bob,
this is the body.
`, "\n", "\r\n")
	var signed bytes.Buffer
	err = dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "s1", Signer: priv,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	lookup := func(name string) ([]string, error) {
		if strings.EqualFold(name, "s1._domainkey."+domain) {
			return []string{rec}, nil
		}
		return nil, errors.New("nxdomain")
	}
	return signed.Bytes(), lookup
}

// wrapDSN embeds original as partType in an RFC 3464 report.
func wrapDSN(original []byte, partType string) []byte {
	return []byte("From: MAILER-DAEMON@remote.example.net\nTo: alice@example.com\n" +
		"Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n" +
		"--B\nContent-Type: text/plain\n\nI could not deliver it.\n\n" +
		"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; remote.example.net\n\n" +
		"Final-Recipient: rfc822; bob@remote.example.net\nAction: failed\nStatus: 5.1.1\n\n" +
		"--B\nContent-Type: " + partType + "\n\n" + string(original) + "\n--B--\n")
}

func TestCollectEvidenceDKIM(t *testing.T) {
	signed, lookup := signedOriginal(t, "example.com")
	headerEnd := bytes.Index(signed, []byte("\r\n\r\n")) + 2
	tampered := bytes.Replace(signed, []byte("this is the body"), []byte("this is THE body"), 1)
	cases := []struct {
		name    string
		msg     []byte
		domains []string
		want    string // expected dkim evidence, "" for none
	}{
		{"full original, our domain", wrapDSN(signed, "message/rfc822"), []string{"example.com"}, "dkim:example.com"},
		{"LF line ends", bytes.ReplaceAll(wrapDSN(signed, "message/rfc822"), []byte("\r\n"), []byte("\n")), []string{"EXAMPLE.com"}, "dkim:example.com"},
		{"parent domain listed", wrapDSN(signed, "message/rfc822"), []string{"com"}, "dkim:example.com"},
		{"not our domain", wrapDSN(signed, "message/rfc822"), []string{"example.org"}, ""},
		{"suffix but not a label", wrapDSN(signed, "message/rfc822"), []string{"ample.com"}, ""},
		{"headers only: no verdict", wrapDSN(signed[:headerEnd], "text/rfc822-headers"), []string{"example.com"}, ""},
		{"tampered body", wrapDSN(tampered, "message/rfc822"), []string{"example.com"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := bounce.Analyze(bytes.NewReader(c.msg), bounce.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Kind != bounce.KindDSN || rep.OriginalMessageID != "signed-1@example.com" {
				t.Fatalf("kind %s id %q", rep.Kind, rep.OriginalMessageID)
			}
			ev := dkimEvidence(context.Background(), rep, EvidenceOptions{OurDomains: c.domains, LookupTXT: lookup})
			got := strings.Join(ev, ",")
			if got != c.want {
				t.Errorf("dkim evidence %q, want %q", got, c.want)
			}
		})
	}
}

func TestCollectEvidenceDKIMTimeout(t *testing.T) {
	signed, _ := signedOriginal(t, "example.com")
	rep, err := bounce.Analyze(bytes.NewReader(wrapDSN(signed, "message/rfc822")), bounce.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	defer close(block)
	slow := func(string) ([]string, error) { <-block; return nil, errors.New("unreachable") }
	start := time.Now()
	ev := CollectEvidence(context.Background(), rep, EvidenceOptions{OurDomains: []string{"example.com"}, LookupTXT: slow, DKIMTimeout: 50 * time.Millisecond})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("hung resolver not bounded: took %v", d)
	}
	if len(ev) != 0 {
		t.Errorf("evidence %q from a resolver that never answered", ev)
	}
}

func TestCollectEvidenceRelay(t *testing.T) {
	signed, _ := signedOriginal(t, "example.com")
	rep, err := bounce.Analyze(bytes.NewReader(wrapDSN(signed, "message/rfc822")), bounce.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		relays []string
		want   string
	}{
		{[]string{"mx1.example.com"}, "relay:mx1.example.com"},
		{[]string{"EXAMPLE.COM."}, "relay:submit.example.com,relay:mx1.example.com"},
		{[]string{"192.0.2.1"}, "relay:192.0.2.1"},
		{[]string{"x1.example.com", "le.com"}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		got := strings.Join(CollectEvidence(context.Background(), rep, EvidenceOptions{OurRelays: c.relays}), ",")
		if got != c.want {
			t.Errorf("relays %q: evidence %q, want %q", c.relays, got, c.want)
		}
	}
	if ev := CollectEvidence(context.Background(), nil, EvidenceOptions{}); ev == nil || len(ev) != 0 {
		t.Errorf("nil report: %#v, want empty non-nil", ev)
	}
}

func TestAnalysisLadder(t *testing.T) {
	cases := []struct {
		ev   []string
		want string
		ok   bool
	}{
		{nil, "", false},
		{[]string{"relay:mx1.example.com", "dkim:example.com"}, "dkim:example.com", true},
		{[]string{"relay:mx1.example.com", "store:abc@example.com"}, "store:abc@example.com", true},
		{[]string{"relay:mx1.example.com"}, "relay:mx1.example.com", true},
		{[]string{"bogus"}, "", false},
	}
	for _, c := range cases {
		got, ok := AnalysisLadder(c.ev)
		if got != c.want || ok != c.ok {
			t.Errorf("AnalysisLadder(%q) = %q,%v want %q,%v", c.ev, got, ok, c.want, c.ok)
		}
	}
}

func TestDefaultLookupTXTTimeout(t *testing.T) {
	f := DefaultLookupTXT(time.Nanosecond)
	if _, err := f("s1._domainkey.invalid"); err == nil {
		t.Error("lookup with 1ns timeout succeeded")
	}
}
