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
	// Floors just under the measured figures (461/464, 346/346, 199/199,
	// 175/179), so a regression fails. sisimai: 310/346 ids, 193/197 sets.
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
	floor("recipients (+dsn-fields)", dsnOK, dsnTotal, 0.99)
	floor("recipients (+sisimai)", sisOK, sisTotal, 0.965)
}
