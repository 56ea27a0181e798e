// Command corpus-eval measures the bounce analysis against the labelled
// corpus (see the corpus README): per category, classification accuracy,
// original Message-ID extraction and bounced-recipient extraction, side by
// side with sisimai's figures from sisimai-results.tsv, and the run time.
// With -sisimai it also runs sisimai (perl + Debian's libsisimai-perl) over
// the same files in the same run and prints the speed ratio.
//
//	go run ./bench/corpus-eval -corpus ../shared/corpus [-sisimai]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

type row struct {
	path, category, wantID, basis string
	wantRcpts                     []string
}

type sisRow struct {
	recipients, reasons []string
	ids                 []string
	statuses            []string
	any                 bool
}

func main() {
	corpus := flag.String("corpus", "internal/bounce/testdata/corpus", "corpus directory (with manifest.tsv)")
	runSisimai := flag.Bool("sisimai", false, "also time sisimai (perl -MSisimai) over the same files")
	runs := flag.Int("runs", 5, "timed runs of our analysis (the best is reported)")
	verbose := flag.Bool("v", false, "list every miss")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parallel workers for the whole-run timing")
	flag.Parse()
	if err := run(*corpus, *runSisimai, *runs, *workers, *verbose); err != nil {
		fmt.Fprintf(os.Stderr, "corpus-eval: %v\n", err)
		os.Exit(1)
	}
}

func readTSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for first := true; sc.Scan(); first = false {
		if !first {
			out = append(out, strings.Split(sc.Text(), "\t"))
		}
	}
	return out, sc.Err()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// kindMatches maps our kinds onto corpus categories; a read receipt (mdn)
// is filed under autoreply in the corpus.
func kindMatches(k bounce.Kind, category string) bool {
	switch category {
	case "bounce":
		return k == bounce.KindDSN
	case "autoreply":
		return k == bounce.KindAutoreply || k == bounce.KindMDN
	case "ordinary":
		return k == bounce.KindNotBounce
	}
	return string(k) == category
}

// sisimaiCategory is what sisimai's result says the message is.
func sisimaiCategory(s sisRow) string {
	if !s.any {
		return "ordinary"
	}
	for _, r := range s.reasons {
		switch r {
		case "vacation":
			return "autoreply"
		case "feedback":
			return "arf"
		}
	}
	return "bounce"
}

// sisimaiRecipients keeps the records whose reason is a failure, as the
// corpus labels do.
func sisimaiRecipients(s sisRow) []string {
	var out []string
	for i, r := range s.recipients {
		reason := ""
		if i < len(s.reasons) {
			reason = s.reasons[i]
		}
		if reason == "delivered" || reason == "vacation" || reason == "feedback" {
			continue
		}
		out = append(out, r)
	}
	return out
}

type counter struct{ ok, n int }

func (c *counter) add(ok bool) {
	c.n++
	if ok {
		c.ok++
	}
}

func (c counter) String() string {
	if c.n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%d/%d = %5.1f %%", c.ok, c.n, 100*float64(c.ok)/float64(c.n))
}

// wholeRun reads and analyses files with n workers, as a batch tool would,
// and returns the wall time.
func wholeRun(files []string, n int) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	for w := 0; w < max(n, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 256<<10) // reused: a batch tool need not allocate per file
			for p := range next {
				var err error
				buf, err = readInto(buf[:0], p)
				if err == nil {
					_, err = bounce.Analyze(bytes.NewReader(buf), bounce.Limits{})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", p, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range files {
		next <- p
	}
	close(next)
	wg.Wait()
	return time.Since(start), firstErr
}

// readInto reads the file at p into buf (grown as needed).
func readInto(buf []byte, p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func bestWholeRun(files []string, n, runs int) (time.Duration, error) {
	var best time.Duration
	for k := 0; k < max(runs, 1); k++ {
		d, err := wholeRun(files, n)
		if err != nil {
			return 0, err
		}
		if k == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

func run(dir string, withSisimai bool, runs, workers int, verbose bool) error {
	mrows, err := readTSV(filepath.Join(dir, "manifest.tsv"))
	if err != nil {
		return err
	}
	srows, err := readTSV(filepath.Join(dir, "sisimai-results.tsv"))
	if err != nil {
		return err
	}
	sis := map[string]sisRow{}
	for _, c := range srows {
		if len(c) < 4 {
			continue
		}
		sr := sisRow{recipients: splitList(c[1]), ids: splitList(c[2]), reasons: splitList(c[3]), any: c[1] != "" || c[2] != "" || c[3] != ""}
		if len(c) > 5 {
			sr.statuses = splitList(c[5])
		}
		sis[c[0]] = sr
	}
	var rows []row
	for _, c := range mrows {
		if len(c) < 8 {
			continue
		}
		rows = append(rows, row{path: c[0], category: c[4], wantID: c[5], wantRcpts: splitList(c[6]), basis: c[7]})
	}
	// Read every file once; timing covers analysis of bytes in memory plus
	// the reads in a second, separate figure.
	data := make([][]byte, len(rows))
	var readTime time.Duration
	for k := 0; k < max(runs, 1); k++ {
		readStart := time.Now()
		for i, r := range rows {
			if data[i], err = os.ReadFile(filepath.Join(dir, r.path)); err != nil {
				return fmt.Errorf("reading corpus: %w", err)
			}
		}
		if d := time.Since(readStart); k == 0 || d < readTime {
			readTime = d
		}
	}

	reps := make([]*bounce.Report, len(rows))
	analyse := func(onlySisimaiSet bool) (time.Duration, error) {
		start := time.Now()
		for i, r := range rows {
			if onlySisimaiSet && r.category == "ordinary" {
				continue
			}
			rep, err := bounce.Analyze(bytes.NewReader(data[i]), bounce.Limits{})
			if err != nil {
				return 0, fmt.Errorf("%s: %w", r.path, err)
			}
			reps[i] = rep
		}
		return time.Since(start), nil
	}
	var best, bestSet time.Duration
	for k := 0; k < max(runs, 1); k++ {
		d, err := analyse(false)
		if err != nil {
			return err
		}
		if k == 0 || d < best {
			best = d
		}
		d, err = analyse(true)
		if err != nil {
			return err
		}
		if k == 0 || d < bestSet {
			bestSet = d
		}
	}
	// reps now holds the results of the last full run... except ordinary
	// rows were skipped in the sisimai-set run; redo the full run.
	if _, err := analyse(false); err != nil {
		return err
	}

	cats := []string{"bounce", "autoreply", "challenge", "arf", "ordinary"}
	type stats struct {
		class, sisClass, id, sisID, rDSN, sisRDSN, rSis, sisRSis counter
		bounceLike                                               int
	}
	st := map[string]*stats{}
	for _, c := range cats {
		st[c] = &stats{}
	}
	var reasons reasonTally
	for i, r := range rows {
		s := st[r.category]
		if s == nil {
			s = &stats{}
			st[r.category] = s
			cats = append(cats, r.category)
		}
		rep := reps[i]
		sr := sis[r.path]
		if r.category != "ordinary" {
			reasons.add(r.path, r.category, rep, sr)
		}
		ok := kindMatches(rep.Kind, r.category)
		s.class.add(ok)
		if !ok && verbose {
			fmt.Printf("miss class   %s: %s (want %s)\n", r.path, rep.Kind, r.category)
		}
		if r.category != "ordinary" {
			s.sisClass.add(sisimaiCategory(sr) == r.category)
		}
		if r.category == "ordinary" && rep.Kind.IsBounceLike() {
			s.bounceLike++
			if verbose {
				fmt.Printf("ordinary as %s: %s\n", rep.Kind, r.path)
			}
		}
		if r.wantID != "" {
			s.id.add(rep.OriginalMessageID == r.wantID)
			if rep.OriginalMessageID != r.wantID && verbose {
				fmt.Printf("miss id      %s: %q (want %q)\n", r.path, rep.OriginalMessageID, r.wantID)
			}
			s.sisID.add(slices.Contains(sr.ids, r.wantID) && len(sr.ids) == 1)
		}
		if r.category != "bounce" {
			continue
		}
		got := rep.BouncedAddresses()
		// As in the corpus README: +dsn-fields rows with an unambiguous id
		// basis; "+sisimai" rows are sisimai's own output (100 % for it by
		// construction).
		switch {
		case strings.HasSuffix(r.basis, "+dsn-fields") && !strings.HasPrefix(r.basis, "ambiguous"):
			s.rDSN.add(sameSet(got, r.wantRcpts))
			s.sisRDSN.add(sameSet(sisimaiRecipients(sr), r.wantRcpts))
			if verbose && !sameSet(got, r.wantRcpts) {
				fmt.Printf("miss rcpt    %s: %q (want %q)\n", r.path, got, r.wantRcpts)
			}
		case strings.HasSuffix(r.basis, "+sisimai"):
			s.rSis.add(sameSet(got, r.wantRcpts))
			s.sisRSis.add(sameSet(sisimaiRecipients(sr), r.wantRcpts))
			if verbose && !sameSet(got, r.wantRcpts) {
				fmt.Printf("miss rcpt    %s: %q (want %q)\n", r.path, got, r.wantRcpts)
			}
		}
	}

	fmt.Printf("corpus %s: %d messages\n\n", dir, len(rows))
	fmt.Printf("%-10s %-28s %-24s %-24s\n", "category", "measure", "bounce-milter", "sisimai (results.tsv)")
	line := func(cat, what string, ours, theirs counter) {
		if ours.n == 0 && theirs.n == 0 {
			return
		}
		fmt.Printf("%-10s %-28s %-24s %-24s\n", cat, what, ours, theirs)
	}
	for _, c := range cats {
		s := st[c]
		if s.class.n == 0 {
			fmt.Printf("%-10s (no messages in this set)\n", c)
			continue
		}
		line(c, "classification", s.class, s.sisClass)
		line(c, "original Message-ID", s.id, s.sisID)
		line(c, "recipients (+dsn-fields)", s.rDSN, s.sisRDSN)
		if c == "bounce" && s.sisRDSN.n > 0 {
			fmt.Printf("%-10s %-28s %-24s %-24s\n", "", "", "", "(README: 193/197; it counts the 2 empty-label reports as agreeing)")
		}
		line(c, "recipients (+sisimai)", s.rSis, s.sisRSis)
		if c == "ordinary" {
			fmt.Printf("%-10s %-28s %-24d %-24s\n", c, "classified bounce-like", s.bounceLike, "n/a (not run)")
		}
	}
	reasons.print(os.Stdout, verbose)

	var sisFiles []string
	for _, r := range rows {
		if r.category != "ordinary" {
			sisFiles = append(sisFiles, filepath.Join(dir, r.path))
		}
	}
	seq, err := bestWholeRun(sisFiles, 1, runs)
	if err != nil {
		return err
	}
	par, err := bestWholeRun(sisFiles, workers, runs)
	if err != nil {
		return err
	}
	fmt.Printf("\ntiming, best of %d runs:\n", runs)
	fmt.Printf("  bounce-milter analysis only, %d files in memory:   %v (%.0f files/s)\n", len(rows), best.Round(time.Microsecond), float64(len(rows))/best.Seconds())
	fmt.Printf("  bounce-milter analysis only, the %d sisimai files: %v\n", len(sisFiles), bestSet.Round(time.Microsecond))
	fmt.Printf("  reading the %d files alone:                        %v\n", len(rows), readTime.Round(time.Microsecond))
	fmt.Printf("  bounce-milter whole run (read + analyse) of the %d sisimai files: %v sequential, %v with %d workers\n",
		len(sisFiles), seq.Round(time.Microsecond), par.Round(time.Microsecond), workers)
	if !withSisimai {
		fmt.Printf("  sisimai (corpus README): about 0.8 s for the %d files => about %.0fx sequential, %.0fx with %d workers\n",
			len(sisFiles), 0.8/seq.Seconds(), 0.8/par.Seconds(), workers)
		return nil
	}
	sisTime, startup, n, err := timeSisimai(sisFiles, runs)
	if err != nil {
		return err
	}
	fmt.Printf("  sisimai, Sisimai->make over the same %d files in one perl process (best of %d): %v, %d records\n", len(sisFiles), runs, sisTime.Round(time.Millisecond), n)
	fmt.Printf("  perl -MSisimai -e1 (start-up alone):              %v\n", startup.Round(time.Millisecond))
	fmt.Printf("  speed ratio, whole run (sisimai / bounce-milter):  %.0fx sequential, %.0fx with %d workers\n",
		sisTime.Seconds()/seq.Seconds(), sisTime.Seconds()/par.Seconds(), workers)
	fmt.Printf("  speed ratio, analysis only ((sisimai - start-up) / in-memory analysis): %.0fx\n", (sisTime-startup).Seconds()/bestSet.Seconds())
	return nil
}

const sisimaiScript = `use strict; use Sisimai;
my $n = 0;
for my $f (@ARGV) { my $v = Sisimai->make($f, delivered => 1); $n += scalar @$v if $v; }
print "$n\n";`

// timeSisimai runs sisimai over files in one perl process (as the corpus
// README measured it), best of runs (as many as ours, so both sides get the
// same chance at a quiet moment), plus perl's start-up alone.
func timeSisimai(files []string, runs int) (best, startup time.Duration, records int, err error) {
	sort.Strings(files)
	for k := 0; k < max(runs, 1); k++ {
		cmd := exec.Command("perl", append([]string{"-e", sisimaiScript}, files...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, 0, 0, fmt.Errorf("running sisimai (apt-get install libsisimai-perl): %w: %s", err, errb.String())
		}
		d := time.Since(start)
		if k == 0 || d < best {
			best = d
		}
		fmt.Sscan(out.String(), &records)
	}
	for k := 0; k < 3; k++ {
		start := time.Now()
		if err := exec.Command("perl", "-MSisimai", "-e1").Run(); err != nil {
			return 0, 0, 0, fmt.Errorf("perl -MSisimai: %w", err)
		}
		d := time.Since(start)
		if k == 0 || d < startup {
			startup = d
		}
	}
	return best, startup, records, nil
}
