package bounce

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFormatExamples reads the real reports of testdata/formats (see its
// README for sources and licences): recipients as their source projects
// label them, and our reasons.
func TestFormatExamples(t *testing.T) {
	type rc struct {
		addr   string
		reason Reason
		hard   bool
	}
	cases := map[string][]rc{
		// Netscape Messaging Server: a report without recipient blocks.
		"flufl-netscape_01.eml": {{"aaaaa@corel.com", ReasonExpired, false}, {"bbbbb@corel.com", ReasonExpired, false}},
		// SIMS: Final-Recipient at the internal host, Original-Recipient
		// the Internet address.
		"flufl-dsn_01.eml": {{"jimmymcegypt@go.com", ReasonMailboxFull, false}},
		// Exchange 5.5: X.400 address with the SMTP one in dda:SMTP=.
		"flufl-microsoft_01.eml": {{"djbennett@ikon.com", ReasonUserUnknown, true}},
		// Exchange IMS: "addr on <date>" and MSEXCH:IMS codes.
		"flufl-groupwise_01.eml": {{"thoff@mainex1.asu.edu", ReasonUserUnknown, true}},
		// AOL: screen names without a domain; the recipients refuse the
		// sender.
		"flufl-aol_01.eml": {{"screenname@aol.com", ReasonFiltered, false}},
		// Yahoo: six recipients, "disabled or discontinued".
		"flufl-yahoo_08.eml": {{"chatrathis@yahoo.com", ReasonSuspend, false}, {"crownjules01@yahoo.com", ReasonSuspend, false},
			{"cwl_999@yahoo.com", ReasonSuspend, false}, {"eichaiwiu@yahoo.com", ReasonSuspend, false},
			{"rjhoeks@yahoo.com", ReasonSuspend, false}, {"yuli_kolesnikov@yahoo.com", ReasonSuspend, false}},
		// SMTP32: two "Unknown user:" blocks.
		"flufl-smtp32_04.eml": {{"after_another@pacbell.net", ReasonUserUnknown, true}, {"one_bad_address@pacbell.net", ReasonUserUnknown, true}},
		// LLNL's Sendmail: prose only ("did not exactly match an LLNL
		// email address"), the original quoted with ">".
		"flufl-llnl_01.eml": {{"trotts1@llnl.gov", ReasonOnHold, false}},
		// Lotus Domino: "not listed in Domino Directory".
		"bounceparser-domino.unknown.eml": {{"recipient@example.net", ReasonUserUnknown, true}},
		// Novell GroupWise: "addr (user not found)".
		"bounceparser-novell-with-rhs.eml": {{"recipient@example.net", ReasonUserUnknown, true}},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "formats", "*.eml"))
	if err != nil || len(files) != len(cases) {
		t.Fatalf("%d example files for %d cases: %v", len(files), len(cases), err)
	}
	for name, want := range cases {
		b, err := os.ReadFile(filepath.Join("testdata", "formats", name))
		if err != nil {
			t.Fatal(err)
		}
		rep := analyzeBytes(b, DefaultLimits(), nil)
		if rep.Kind != KindDSN {
			t.Errorf("%s: kind %s", name, rep.Kind)
			continue
		}
		var got []rc
		for _, r := range rep.Recipients {
			got = append(got, rc{r.Address, r.Reason, r.Hard})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
}
