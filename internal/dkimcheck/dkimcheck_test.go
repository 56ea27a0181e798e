package dkimcheck

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

// signedOriginal returns a CRLF message signed by d=domain, s=s1 (Date among the signed fields when withTime), and a LookupTXT stub publishing the key.
func signedOriginal(t *testing.T, domain string, withTime bool) ([]byte, func(string) ([]string, error)) {
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

Hello Bob,
this is the body.
`, "\n", "\r\n")
	opts := &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: priv,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}
	if !withTime {
		opts.HeaderKeys = []string{"From", "To", "Subject", "Message-ID"}
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), opts); err != nil {
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

func oursFor(domains ...string) func(string) bool {
	return func(d string) bool {
		for _, x := range domains {
			if d == x || strings.HasSuffix(d, "."+x) {
				return true
			}
		}
		return false
	}
}

func TestVerify(t *testing.T) {
	signed, lookup := signedOriginal(t, "example.com", true)
	headerEnd := bytes.Index(signed, []byte("\r\n\r\n")) + 2
	tampered := bytes.Replace(signed, []byte("this is the body"), []byte("this is THE body"), 1)
	cases := []struct {
		name  string
		msg   []byte
		ours  func(string) bool
		valid bool
		none  bool
	}{
		{"full original, our domain", wrapDSN(signed, "message/rfc822"), oursFor("example.com"), true, false},
		{"LF line ends", bytes.ReplaceAll(wrapDSN(signed, "message/rfc822"), []byte("\r\n"), []byte("\n")), oursFor("example.com"), true, false},
		{"not our domain: not even looked up", wrapDSN(signed, "message/rfc822"), oursFor("example.org"), false, true},
		{"headers only: no verdict", wrapDSN(signed[:headerEnd], "text/rfc822-headers"), oursFor("example.com"), false, false},
		{"tampered body", wrapDSN(tampered, "message/rfc822"), oursFor("example.com"), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := bounce.Analyze(bytes.NewReader(c.msg), bounce.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			sigs := Checker{LookupTXT: lookup}.Verify(context.Background(), rep.Original, c.ours)
			if c.none {
				if len(sigs) != 0 {
					t.Fatalf("signatures %+v, want none", sigs)
				}
				return
			}
			valid := len(sigs) == 1 && sigs[0].Valid && sigs[0].Domain == "example.com" && !sigs[0].Signed.IsZero()
			if valid != c.valid {
				t.Errorf("signatures %+v, want valid %v", sigs, c.valid)
			}
		})
	}
	// The Date header is reported only when the signature covers it (the
	// engine's fallback when t= is absent).
	rep, _ := bounce.Analyze(bytes.NewReader(wrapDSN(signed, "message/rfc822")), bounce.Limits{})
	sigs := Checker{LookupTXT: lookup}.Verify(context.Background(), rep.Original, oursFor("example.com"))
	if len(sigs) != 1 || sigs[0].Date.Year() != 2024 {
		t.Errorf("Date signed: %+v", sigs)
	}
	noDate, lookup2 := signedOriginal(t, "example.com", false)
	rep, _ = bounce.Analyze(bytes.NewReader(wrapDSN(noDate, "message/rfc822")), bounce.Limits{})
	sigs = Checker{LookupTXT: lookup2}.Verify(context.Background(), rep.Original, oursFor("example.com"))
	if len(sigs) != 1 || !sigs[0].Valid || !sigs[0].Date.IsZero() {
		t.Errorf("Date not signed: %+v", sigs)
	}
}

func TestVerifyTimeout(t *testing.T) {
	signed, _ := signedOriginal(t, "example.com", true)
	block := make(chan struct{})
	defer close(block)
	slow := func(string) ([]string, error) { <-block; return nil, errors.New("unreachable") }
	start := time.Now()
	sigs := Checker{LookupTXT: slow, Timeout: 50 * time.Millisecond}.Verify(context.Background(), signed, oursFor("example.com"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("hung resolver not bounded: took %v", d)
	}
	for _, s := range sigs {
		if s.Valid {
			t.Errorf("valid signature from a resolver that never answered: %+v", s)
		}
	}
}

func TestDefaultLookupTXTTimeout(t *testing.T) {
	if _, err := DefaultLookupTXT(time.Nanosecond)("s1._domainkey.invalid"); err == nil {
		t.Error("lookup with 1ns timeout succeeded")
	}
}
