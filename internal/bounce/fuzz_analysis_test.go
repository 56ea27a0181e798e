package bounce

import (
	"os"
	"path/filepath"
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
