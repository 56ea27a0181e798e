package bounce

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzSeeds adds every corpus message (and a few hand-made edge cases) to
// the fuzzer's seed corpus.
func fuzzSeeds(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "messages", "*", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus seeds: %v", err)
	}
	formats, _ := filepath.Glob(filepath.Join("testdata", "formats", "*.eml"))
	files = append(files, formats...)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"From \n",
		"Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: multipart/mixed; boundary=x\n\n--x\n",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nMessage-ID: <a@b>\n",
		"Content-Type: text/plain; charset=x-unknown\nContent-Transfer-Encoding: base64\n\n!!!!\n",
		"Content-Type: message/delivery-status\n\nFinal-Recipient: \nFinal-Recipient: rfc822;\n\tAction\n",
		// Formats with their own code paths: X.400 and internal-host
		// Final-Recipient values, a report without recipient blocks, a
		// bounce of a bounce, a report pasted as text, screen names.
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\nContent-Type: message/delivery-status\n\n" +
			"Original-Recipient: rfc822;a@b.example\nFinal-Recipient: x400; /C=US/S=Doe/\nAction: failure\nStatus: 5.0.0 (quota)\n\n" +
			"Final-Recipient: rfc822;c@ims-ms-daemon\nOriginal-Recipient: rfc822;c@d.example\nAction: failed\n--x--\n",
		"From: Postmaster <postmaster@e.example>\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n\n" +
			"The following recipients did not receive your message:\n\n     <f@e.example>\n\n--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; e.example\n--x--\n",
		"From: MAILER-DAEMON@g.example\nSubject: Returned mail\nContent-Type: multipart/mixed; boundary=y\n\n--y\n\n--y\nContent-Type: message/rfc822\n\n" +
			"From: MAILER-DAEMON@h.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=z\n\n--z\nContent-Type: message/delivery-status\n\n" +
			"Final-Recipient: rfc822;i@h.example\nAction: failed\nStatus: 5.1.1\n--z--\n--y--\n",
		"From: MAILER-DAEMON@j.example\nSubject: Undelivered Mail Returned to Sender\n\nsee below\n\nFrom MAILER-DAEMON Thu Apr 29 23:34:45 2015\nReturn-Path: <>\n" +
			"Subject: Undelivered Mail Returned to Sender\n\n<k@l.example>: host l.example said: 550 5.7.1 blocked using zen.spamhaus.org (in reply to RCPT TO command)\n",
		"From: MAILER-DAEMON@aol.example\nSubject: Mail Delivery Problem\n\nYour mail to the following recipients could not be delivered:\n\tscreen\n",
		"From: MAILER-DAEMON@m.example\nSubject: failure notice\n\n   ----- Transcript of session follows -----\n>>> DATA\n<<< 554 5.7.1 spam\n554 <n@m.example>... Service unavailable\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzAnalyze runs the analysis without Analyze's panic guard, so any panic
// is reported, and checks that results stay within the limits.
func FuzzAnalyze(f *testing.F) {
	fuzzSeeds(f)
	lim := Limits{MaxBytes: 64 << 10, MaxDepth: 4, MaxParts: 20}.withDefaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		if int64(len(data)) > lim.MaxBytes+1 {
			data = data[:lim.MaxBytes+1]
		}
		rep := analyzeBytes(data, lim, nil)
		switch rep.Kind {
		case KindDSN, KindAutoreply, KindChallenge, KindMDN, KindARF, KindNotBounce:
		default:
			t.Fatalf("kind %q", rep.Kind)
		}
		switch rep.CapHit {
		case "", CapBytes, CapDepth, CapParts:
		default:
			t.Fatalf("cap %q", rep.CapHit)
		}
		if int64(len(rep.Original)) > lim.MaxBytes {
			t.Fatalf("original of %d bytes exceeds MaxBytes", len(rep.Original))
		}
		if len(rep.Warnings) > 20 || len(rep.ReceivedHosts) > 64 || len(rep.Recipients) > len(data) {
			t.Fatalf("unbounded result: %d warnings, %d hosts, %d recipients", len(rep.Warnings), len(rep.ReceivedHosts), len(rep.Recipients))
		}
		if strings.ContainsAny(rep.OriginalMessageID, "<> \t\n") {
			t.Fatalf("message id %q not bare", rep.OriginalMessageID)
		}
		for _, id := range rep.CandidateMessageIDs() {
			if id == "" {
				t.Fatal("empty candidate id")
			}
		}
		for _, a := range rep.BouncedAddresses() {
			if a == "" || a != strings.ToLower(a) {
				t.Fatalf("recipient %q not normalised", a)
			}
		}
		for _, r := range rep.Recipients {
			if !slices.Contains(Reasons(), r.Reason) {
				t.Fatalf("recipient %q with reason %q", r.Address, r.Reason)
			}
			if r.Hard && (!hardReason(r.Reason) || strings.HasPrefix(r.Action, "delayed")) {
				t.Fatalf("recipient %q hard with reason %q action %q", r.Address, r.Reason, r.Action)
			}
			if len(r.Diagnostic) > 500 || len(r.RemoteMTA) > 255 {
				t.Fatalf("unbounded recipient fields: %d %d", len(r.Diagnostic), len(r.RemoteMTA))
			}
		}
	})
}

// FuzzDSNFields checks the delivery-status field parser on arbitrary input.
func FuzzDSNFields(f *testing.F) {
	f.Add([]byte("Reporting-MTA: dns; a.example\nArrival-Date: Mon, 1 Jan 2024 00:00:05 +0000\n\nFinal-Recipient: rfc822; <a@b.example>\nAction: failed\nStatus: 5.1.1\n"))
	f.Add([]byte("Action: failed\nFinal-Recipient: rfc822;x@y\nFinal-Recipient: rfc822;z@y\nStatus: 4.0.0\n\n\n"))
	f.Add([]byte("Original-Recipient: rfc822;@relay:u@h\n\tcontinued\nno colon line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pm, recs := parseDSNFields(data)
		if len(recs) > maxDSNRecords {
			t.Fatalf("%d recipient blocks", len(recs))
		}
		for _, r := range recs {
			if !r.has("final-recipient") && !r.has("original-recipient") {
				t.Fatalf("recipient block without recipient field: %v", r)
			}
		}
		for _, fl := range pm {
			if fl.name == "" || fl.name != strings.ToLower(fl.name) {
				t.Fatalf("field name %q", fl.name)
			}
		}
		for _, br := range dSNRecipients(recs) {
			if br.Address == "" || len(br.Diagnostic) > 500 {
				t.Fatalf("bad recipient %+v", br)
			}
		}
	})
}

// FuzzReason checks the reason derivation on arbitrary diagnostics and
// status codes: a reason from the list, hard only for a hard reason.
func FuzzReason(f *testing.F) {
	f.Add("failed", "5.1.1", "550 5.1.1 <a@b>: Recipient address rejected: User unknown", "smtp", "")
	f.Add("delayed", "4.4.7", "452 4.4.5 Insufficient disk space", "", "")
	f.Add("failed", "", "550-5.7.26 domain's 550-5.7.26 DMARC policy", "", "Your message could not be delivered.")
	f.Add("failed", "5.0.0", "77", "x-unix", "")
	f.Add("", "2.0.0", "250 ok", "", "")
	f.Fuzz(func(t *testing.T, action, status, diag, diagType, context string) {
		in := reasonInput{action: action, status: statusCode(status), diag: diag, diagType: diagType, context: context}
		in.command = smtpCommand(diag)
		var r Recipient
		classifyRecipient(&r, in)
		if !slices.Contains(Reasons(), r.Reason) {
			t.Fatalf("reason %q", r.Reason)
		}
		if r.Hard && !hardReason(r.Reason) {
			t.Fatalf("hard %q", r.Reason)
		}
	})
}
