package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkDSN = `From: MAILER-DAEMON@mx.example.net
To: alice@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I could not deliver your message.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 1 Jan 2024 00:00:05 +0000

Final-Recipient: rfc822; <Bob@Example.NET>
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

Return-Path: <alice@example.com>
Received: from out1.example.com (out1.example.com [192.0.2.7]) by mx.example.net
Date: Mon, 1 Jan 2024 00:00:00 +0000
From: Alice <alice@example.com>
Message-ID: <orig-1@example.com>
Subject: hi

--B--
`

const checkPlain = "From: carol@example.org\nTo: alice@example.com\nSubject: lunch?\nMessage-ID: <p1@example.org>\n\nTomorrow at noon?\n"

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdCheck(args, &out, &errb)
	return code, out.String(), errb.String()
}

func decodeLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestCheckJSONFields(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dsn.eml")
	writeFile(t, p, checkDSN)
	code, out, errs := runCheck(t, "--json", "--relays", "out1.example.com", p)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	// The six interface fields come first, in this order.
	wantPrefix := `{"path":` + mustJSON(p) + `,"kind":"dsn","original_message_id":"orig-1@example.com","original_sender":"alice@example.com","bounced_recipients":["bob@example.net"],"evidence":["relay:out1.example.com"]`
	if !strings.HasPrefix(out, wantPrefix) {
		t.Errorf("output\n%s\nwant prefix\n%s", out, wantPrefix)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestCheckInputs(t *testing.T) {
	dir := t.TempDir()
	mbox := "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + checkDSN + "\nFrom carol@example.org Mon Jan  1 00:00:00 2024\n" + checkPlain + ">From the desk of Carol\n"
	writeFile(t, filepath.Join(dir, "box.mbox"), mbox)
	writeFile(t, filepath.Join(dir, "md", "cur", "1:2,S"), checkDSN)
	writeFile(t, filepath.Join(dir, "md", "new", "2"), checkPlain)
	writeFile(t, filepath.Join(dir, "tree", "a", "x.eml"), checkPlain)
	writeFile(t, filepath.Join(dir, "tree", "b.eml"), "")
	code, out, errs := runCheck(t, "--json", filepath.Join(dir, "box.mbox"), filepath.Join(dir, "md"), filepath.Join(dir, "tree"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	recs := decodeLines(t, out)
	var got []string
	for _, r := range recs {
		rel, _ := filepath.Rel(dir, r["path"].(string))
		got = append(got, rel+"="+r["kind"].(string))
		if r["bounced_recipients"] == nil || r["evidence"] == nil {
			t.Errorf("%s: null array in %v", rel, r)
		}
	}
	want := []string{"box.mbox#1=dsn", "box.mbox#2=not-bounce", "md/new/2=not-bounce", "md/cur/1:2,S=dsn", "tree/a/x.eml=not-bounce", "tree/b.eml=not-bounce"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records %q\nwant    %q", got, want)
	}
}

func TestCheckSplitMboxUnquotes(t *testing.T) {
	msgs := checkSplitMbox([]byte("From a Mon Jan  1 00:00:00 2024\nSubject: x\n\n>From here\nbody\n\nFrom b Mon Jan  1 00:00:00 2024\nSubject: y\n\nz\n"))
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if !bytes.Contains(msgs[0], []byte("\nFrom here\n")) {
		t.Errorf("mboxrd quoting not undone: %q", msgs[0])
	}
}

func TestCheckHumanAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dsn.eml")
	writeFile(t, p, checkDSN)
	code, out, _ := runCheck(t, p)
	if code != 0 || !strings.Contains(out, ": dsn") || !strings.Contains(out, "original id:  <orig-1@example.com>") || !strings.Contains(out, "bob@example.net failed 5.1.1") {
		t.Errorf("human output (exit %d):\n%s", code, out)
	}
	if code, out, _ := runCheck(t, "--help"); code != 0 || !strings.Contains(out, "usage: bounce-milter check") {
		t.Errorf("--help: exit %d, out %q", code, out)
	}
	if code, _, _ := runCheck(t, "--bogus", p); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := runCheck(t); code != 2 {
		t.Errorf("no path: exit %d, want 2", code)
	}
	if code, out, errs := runCheck(t, "--json", p, filepath.Join(dir, "missing")); code != 1 || !strings.Contains(errs, "missing") || len(decodeLines(t, out)) != 1 {
		t.Errorf("missing input: exit %d, stderr %q, out %q", code, errs, out)
	}
}

// TestCheckCorpus runs check over the whole corpus: every message is read
// and analysed without error.
func TestCheckCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "internal", "bounce", "testdata", "corpus", "messages")
	code, out, errs := runCheck(t, "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	recs := decodeLines(t, out)
	if len(recs) < 464 {
		t.Errorf("%d records, want at least one per corpus file (464)", len(recs))
	}
	kinds := map[string]int{}
	for _, r := range recs {
		kinds[r["kind"].(string)]++
	}
	if kinds["dsn"] < 390 {
		t.Errorf("only %d DSNs in the corpus output: %v", kinds["dsn"], kinds)
	}
}

// TestCheckReasons: each recipient carries its reason and hard/soft, in
// JSON and in text; an auto-reply carries "vacation".
func TestCheckReasons(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dsn.eml")
	writeFile(t, p, strings.Replace(checkDSN, "Status: 5.1.1\n", "Status: 5.1.1\nRemote-MTA: dns; mx.example.net\n"+
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown\n\n"+
		"Final-Recipient: rfc822; carol@example.net\nAction: delayed\nStatus: 4.2.2\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox full\n", 1))
	away := filepath.Join(dir, "away.eml")
	writeFile(t, away, "From: bob@example.net\nTo: alice@example.com\nAuto-Submitted: auto-replied\nSubject: Out of office\nIn-Reply-To: <orig-1@example.com>\n\nBack on Monday.\n")
	code, out, errs := runCheck(t, "--json", p, away)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	recs := decodeLines(t, out)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	detail, _ := recs[0]["recipients_detail"].([]any)
	if len(detail) != 2 {
		t.Fatalf("recipients_detail %v", recs[0]["recipients_detail"])
	}
	bob, carol := detail[0].(map[string]any), detail[1].(map[string]any)
	if bob["reason"] != "userunknown" || bob["hard"] != true || bob["remote_mta"] != "mx.example.net" {
		t.Errorf("bob: %v", bob)
	}
	if carol["reason"] != "mailboxfull" || carol["hard"] != false || carol["action"] != "delayed" {
		t.Errorf("carol: %v", carol)
	}
	if recs[0]["reporting_mta"] != "mx.example.net" {
		t.Errorf("reporting_mta %v", recs[0]["reporting_mta"])
	}
	if recs[1]["kind"] != "autoreply" || recs[1]["event_reason"] != "vacation" {
		t.Errorf("auto-reply record %v", recs[1])
	}
	_, text, _ := runCheck(t, p, away)
	for _, want := range []string{"bob@example.net failed 5.1.1 userunknown hard", "carol@example.net delayed 4.2.2 mailboxfull soft",
		"remote:     mx.example.net", "reason:       vacation"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

// TestCheckTextEscapes: text mode never writes the control characters of
// a hostile message (terminal escape sequences, bidirectional overrides,
// carriage returns that overwrite the line) or of a file name.
func TestCheckTextEscapes(t *testing.T) {
	dir := t.TempDir()
	hostile := strings.NewReplacer(
		"<Bob@Example.NET>", "<bob\x1b]0;pwned\x07@example.net>",
		"Status: 5.1.1\n", "Status: 5.1.1\nDiagnostic-Code: smtp; 550 \x1b[2J\x1b[31mfake\r\u202egnp.exe\x9b0m\xff\n",
		"<orig-1@example.com>", "<orig\x1b[1m-1@example.com>",
	).Replace(checkDSN)
	p := filepath.Join(dir, "evil\x1b[1m.eml")
	writeFile(t, p, hostile)
	code, out, errs := runCheck(t, p)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\u009b", "\xff"} {
		if strings.Contains(out, bad) {
			t.Errorf("text output contains %q:\n%q", bad, out)
		}
	}
	for _, want := range []string{`evil\x1b[1m.eml`, `\x1b[2J\x1b[31mfake\x0d\u202egnp.exe\x9b0m\xff`} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks the escaped %q:\n%s", want, out)
		}
	}
	if got := printable(`a\b`); got != `a\\b` {
		t.Errorf("printable(a\\b) = %q", got)
	}
}
