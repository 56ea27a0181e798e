package bounce

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// manifestRow is one labelled corpus message (testdata/corpus/manifest.tsv).
type manifestRow struct {
	path, category, wantID string
	wantRcpts              []string
	basis                  string
}

func loadManifest(t testing.TB, dir string) []manifestRow {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "manifest.tsv"))
	if err != nil {
		t.Fatalf("opening manifest: %v", err)
	}
	defer f.Close()
	var rows []manifestRow
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 8 {
			continue
		}
		r := manifestRow{path: c[0], category: c[4], wantID: c[5], basis: c[7]}
		if c[6] != "" {
			r.wantRcpts = strings.Split(c[6], ",")
		}
		rows = append(rows, r)
	}
	return rows
}

// kindMatches maps our six kinds onto the corpus categories. A read
// receipt is filed under autoreply in the corpus.
func kindMatches(k Kind, category string) bool {
	switch category {
	case "bounce":
		return k == KindDSN
	case "autoreply":
		return k == KindAutoreply || k == KindMDN
	case "ordinary":
		return k == KindNotBounce
	default:
		return string(k) == category
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// TestCorpusLineEndingsAndEnvelope checks that the same message read with
// CRLF line ends, or without its mbox "From " line, gives the same result:
// the milter sees CRLF and no mbox line, the corpus mostly the opposite.
func TestCorpusLineEndingsAndEnvelope(t *testing.T) {
	dir := filepath.Join("testdata", "corpus")
	for _, r := range loadManifest(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			t.Fatal(err)
		}
		lf := bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
		if bytes.HasPrefix(lf, []byte("From ")) {
			_, rest, _ := bytes.Cut(lf, []byte("\n"))
			lf = rest
		}
		crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
		a, errA := Analyze(bytes.NewReader(lf), Limits{})
		c, errC := Analyze(bytes.NewReader(crlf), Limits{})
		if errA != nil || errC != nil {
			t.Fatalf("%s: %v %v", r.path, errA, errC)
		}
		if a.Kind != c.Kind || a.OriginalMessageID != c.OriginalMessageID || !slices.Equal(a.BouncedAddresses(), c.BouncedAddresses()) {
			t.Errorf("%s: LF %s %q %q, CRLF %s %q %q", r.path, a.Kind, a.OriginalMessageID, a.BouncedAddresses(), c.Kind, c.OriginalMessageID, c.BouncedAddresses())
		}
	}
}

func TestCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "corpus")
	rows := loadManifest(t, dir)
	if len(rows) < 400 {
		t.Fatalf("manifest has %d rows, want the whole corpus", len(rows))
	}
	verbose := os.Getenv("AN_CORPUS_VERBOSE") != ""
	var ordinaryFP, idTotal, idOK, dsnTotal, dsnOK, sisTotal, sisOK, classOK int
	for _, r := range rows {
		f, err := os.Open(filepath.Join(dir, r.path))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Analyze(f, Limits{})
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", r.path, err)
			continue
		}
		if kindMatches(rep.Kind, r.category) {
			classOK++
		} else if verbose {
			t.Logf("CLASS %s: got %s want %s", r.path, rep.Kind, r.category)
		}
		if r.category == "ordinary" && rep.Kind.IsBounceLike() {
			ordinaryFP++
		}
		if r.category == "bounce" && r.wantID != "" {
			idTotal++
			if rep.OriginalMessageID == r.wantID {
				idOK++
			} else if verbose {
				t.Logf("ID %s: got %q want %q", r.path, rep.OriginalMessageID, r.wantID)
			}
		}
		if r.category == "bounce" && strings.HasSuffix(r.basis, "+dsn-fields") {
			dsnTotal++
			if sameSet(rep.BouncedAddresses(), r.wantRcpts) {
				dsnOK++
			} else if verbose {
				t.Logf("RCPT-DSN %s: got %q want %q", r.path, rep.BouncedAddresses(), r.wantRcpts)
			}
		}
		if r.category == "bounce" && strings.HasSuffix(r.basis, "+sisimai") {
			sisTotal++
			if sameSet(rep.BouncedAddresses(), r.wantRcpts) {
				sisOK++
			} else if verbose {
				t.Logf("RCPT-SIS %s: got %q want %q", r.path, rep.BouncedAddresses(), r.wantRcpts)
			}
		}
	}
	t.Logf("class %d/%d, ordinary as bounce %d, ids %d/%d, dsn rcpts %d/%d, sisimai rcpts %d/%d",
		classOK, len(rows), ordinaryFP, idOK, idTotal, dsnOK, dsnTotal, sisOK, sisTotal)
	// Floors just under the measured figures (461/464, 346/346, 197/199,
	// 177/179), so a regression fails. sisimai: 310/346 ids, 193/197 sets.
	// The two +dsn-fields differences are deliberate (see the package
	// documentation): sisimai-lhost-exim-60.eml's Final-Recipient is a file
	// path and we report the address X-Failed-Recipients names, as sisimai
	// does; sisimai-lhost-messagingserver-02.eml's is "kijitora@server", an
	// internal host, and we report its Original-Recipient, as sisimai does.
	// The one "ordinary" message classified as a bounce is
	// sisimai-rb-issue-368-bug.eml, a genuine postmaster bounce (Return-Path
	// <>, "rejected ... Mailbox full", the original quoted) that sisimai's
	// maildir/not keeps as a parser regression case; no ordinary message
	// beyond it may become bounce-like.
	floor := func(name string, got, total int, min float64) {
		if total == 0 || float64(got)/float64(total) < min {
			t.Errorf("%s: %d/%d below the floor %.3f", name, got, total, min)
		}
	}
	if ordinaryFP > 1 {
		t.Errorf("%d ordinary messages classified as bounce-like, want at most 1", ordinaryFP)
	}
	floor("classification", classOK, len(rows), 0.99)
	floor("original Message-ID", idOK, idTotal, 0.99)
	floor("recipients (+dsn-fields)", dsnOK, dsnTotal, 0.985)
	floor("recipients (+sisimai)", sisOK, sisTotal, 0.965)
}

// sisimaiRecord is one record of sisimai-results.tsv: one recipient with
// its reason and delivery status.
type sisimaiRecord struct {
	recipient, reason, status string
}

func loadSisimai(t testing.TB, dir string) map[string][]sisimaiRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sisimai-results.tsv"))
	if err != nil {
		t.Fatalf("reading sisimai results: %v", err)
	}
	out := map[string][]sisimaiRecord{}
	for i, line := range strings.Split(string(b), "\n") {
		c := strings.Split(line, "\t")
		if i == 0 || len(c) < 6 || c[3] == "" {
			continue
		}
		rcpts, reasons, statuses := strings.Split(c[1], ","), strings.Split(c[3], ","), strings.Split(c[5], ",")
		for k, reason := range reasons {
			rec := sisimaiRecord{reason: reason}
			if k < len(rcpts) {
				rec.recipient = rcpts[k]
			}
			if k < len(statuses) {
				rec.status = statuses[k]
			}
			out[c[0]] = append(out[c[0]], rec)
		}
	}
	return out
}

// sisimaiHard is sisimai 4's hard/soft rule for one of its records ("" for
// the reasons that are no failure).
func sisimaiHard(reason, status string) string {
	switch reason {
	case "delivered", "feedback", "vacation":
		return ""
	case "userunknown", "hostunknown", "hasmoved":
		return "hard"
	case "notaccept":
		if strings.HasPrefix(status, "4") {
			return "soft"
		}
		return "hard"
	}
	return "soft"
}

// TestCorpusReasons measures our reasons and hard/soft against sisimai's
// records on the committed corpus, as bench/corpus-eval.sh prints them,
// with floors under the measured figures so that a regression fails.
func TestCorpusReasons(t *testing.T) {
	dir := filepath.Join("testdata", "corpus")
	sis := loadSisimai(t, dir)
	verbose := os.Getenv("AN_CORPUS_VERBOSE") != ""
	var records, same, hardN, hardOK, none int
	for _, r := range loadManifest(t, dir) {
		recs := sis[r.path]
		if len(recs) == 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Analyze(bytes.NewReader(b), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", r.path, err)
		}
		for i, want := range recs {
			records++
			got, ok := Recipient{}, false
			if er := rep.Kind.EventReason(); er != "" {
				got, ok = Recipient{Reason: er}, true
			}
			for _, rc := range rep.Recipients {
				if !ok && rc.Address == want.recipient {
					got, ok = rc, true
				}
			}
			if !ok && len(rep.Recipients) == len(recs) {
				got, ok = rep.Recipients[i], true
			} else if !ok && len(rep.Recipients) == 1 {
				got, ok = rep.Recipients[0], true
			}
			if !ok {
				none++
				continue
			}
			if string(got.Reason) == want.reason {
				same++
			} else if verbose {
				t.Logf("REASON %s %s: got %s want %s (%s)", r.path, want.recipient, got.Reason, want.reason, want.status)
			}
			if h := sisimaiHard(want.reason, want.status); h != "" {
				hardN++
				if (h == "hard") == got.Hard {
					hardOK++
				}
			}
			if got.Reason == "" {
				t.Errorf("%s: recipient %s without a reason", r.path, got.Address)
			}
		}
	}
	t.Logf("reason = sisimai's: %d/%d records (%d without a matching recipient); hard/soft: %d/%d", same, records, none, hardOK, hardN)
	// Measured 341/416 and 361/401. Where we differ from sisimai on
	// purpose is documented in the package documentation.
	if float64(same)/float64(records) < 0.80 {
		t.Errorf("reason agreement %d/%d below the floor 0.80", same, records)
	}
	if float64(hardOK)/float64(hardN) < 0.88 {
		t.Errorf("hard/soft agreement %d/%d below the floor 0.88", hardOK, hardN)
	}
}
