package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/dkimcheck"
)

const checkUsage = `usage: bounce-milter check [--json] [--domains d1,d2] [--relays h1,h2] PATH...

Analyse messages offline as the milter would: classify each one (dsn,
autoreply, challenge, mdn, arf, not-bounce), extract the returned original's
Message-ID, sender and the bounced recipients, and list the evidence that we
sent the original (our DKIM signature, our relays in its Received lines).

PATH is a message file, an mbox (first line "From "; messages are reported
as FILE#N), a maildir (a directory with cur/ and new/) or a directory of
message files (searched recursively).

Exit status: 0 when every input was read, 1 when some could not be, 2 on
usage errors.

Options:
`

// checkMaxFile bounds how much of one file check reads; the analysis itself
// looks at DefaultAnalysisLimits().MaxBytes per message.
const checkMaxFile = 256 << 20

// checkResult is one output record. The first six fields are the stable
// interface; the rest are informational and may grow.
type checkResult struct {
	Path              string             `json:"path"`
	Kind              bounce.Kind        `json:"kind"`
	OriginalMessageID string             `json:"original_message_id"`
	OriginalSender    string             `json:"original_sender"`
	BouncedRecipients []string           `json:"bounced_recipients"`
	Evidence          []string           `json:"evidence"`
	OriginalFrom      string             `json:"original_from,omitempty"`
	InReplyTo         string             `json:"in_reply_to,omitempty"`
	References        []string           `json:"references,omitempty"`
	RecipientsDetail  []bounce.Recipient `json:"recipients_detail,omitempty"`
	HeadersOnly       bool               `json:"original_headers_only,omitempty"`
	CapHit            string             `json:"cap_hit,omitempty"`
	Warnings          []string           `json:"warnings,omitempty"`
}

// cmdCheck implements "bounce-milter check".
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed below, to the right stream
	asJSON := fs.Bool("json", false, "print one JSON object per message")
	domains := fs.String("domains", "", "comma-separated DKIM domains that are ours (enables DKIM checks, which query DNS)")
	relays := fs.String("relays", "", "comma-separated host names or IPs of our relays")
	dkimTimeout := fs.Duration("dkim-timeout", 3*time.Second, "bound on the DKIM check of one message")
	usage := func(w io.Writer) {
		fmt.Fprint(w, checkUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "bounce-milter check: %v\n", err)
		usage(stderr)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "bounce-milter check: no PATH given")
		usage(stderr)
		return 2
	}
	c := &checker{
		json:   *asJSON,
		stdout: stdout,
		stderr: stderr,
		opts: evidenceOptions{
			domains: checkSplitList(*domains),
			relays:  checkSplitList(*relays),
			timeout: *dkimTimeout,
		},
	}
	for _, p := range fs.Args() {
		c.path(p)
	}
	if c.failed {
		return 1
	}
	return 0
}

// evidenceOptions say what check counts as evidence: DKIM signatures of
// these domains, these relays in the returned original's topmost hop.
type evidenceOptions struct {
	domains, relays []string
	timeout         time.Duration
}

// collect is the evidence a report carries by itself, as the engine's
// ladder reads it (DKIM checked only when domains are given: it queries
// DNS).
func (o evidenceOptions) collect(rep *bounce.Report) []string {
	s := backscatter.Settings{Domains: map[string]backscatter.Domain{}, Relays: o.relays}
	for _, d := range o.domains {
		s.Domains[strings.ToLower(d)] = backscatter.Domain{Mode: backscatter.ModeReject}
	}
	e := backscatter.New(s, nil)
	if !rep.OriginalDate.IsZero() {
		// Judged as on arrival: a file analysed months later still shows
		// the evidence it carried then.
		arrived := rep.OriginalDate.Add(time.Hour)
		e.Now = func() time.Time { return arrived }
	}
	var sigs []backscatter.DKIMSignature
	if len(o.domains) > 0 && len(rep.Original) > 0 && !rep.OriginalHeadersOnly {
		sigs = dkimcheck.Checker{Timeout: o.timeout}.Verify(context.Background(), rep.Original, e.DKIMDomainOurs)
	}
	return e.MessageEvidence(rep, sigs)
}

func checkSplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

type checker struct {
	json           bool
	stdout, stderr io.Writer
	opts           evidenceOptions
	failed         bool
}

func (c *checker) fail(format string, args ...any) {
	c.failed = true
	fmt.Fprintf(c.stderr, "bounce-milter check: "+format+"\n", args...)
}

// path dispatches on what PATH is.
func (c *checker) path(p string) {
	st, err := os.Stat(p)
	if err != nil {
		c.fail("%v", err)
		return
	}
	if !st.IsDir() {
		c.file(p)
		return
	}
	if checkIsMaildir(p) {
		for _, sub := range []string{"new", "cur"} {
			entries, err := os.ReadDir(filepath.Join(p, sub))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					c.fail("reading maildir %s: %v", p, err)
				}
				continue
			}
			for _, e := range entries {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
					c.file(filepath.Join(p, sub, e.Name()))
				}
			}
		}
		return
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			c.fail("walking %s: %v", path, err)
			return nil
		}
		if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		c.fail("walking %s: %v", p, err)
	}
	sort.Strings(files)
	for _, f := range files {
		c.file(f)
	}
}

func checkIsMaildir(p string) bool {
	for _, sub := range []string{"cur", "new"} {
		if st, err := os.Stat(filepath.Join(p, sub)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// file analyses one file: a single message or an mbox.
func (c *checker) file(p string) {
	f, err := os.Open(p)
	if err != nil {
		c.fail("%v", err)
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, checkMaxFile))
	f.Close()
	if err != nil {
		c.fail("reading %s: %v", p, err)
		return
	}
	msgs := checkSplitMbox(data)
	if len(msgs) <= 1 {
		// One message, with or without an mbox "From " line: the path
		// stays the file name.
		c.message(p, data)
		return
	}
	for i, m := range msgs {
		c.message(fmt.Sprintf("%s#%d", p, i+1), m)
	}
}

// checkSplitMbox splits an mbox at "From " lines that follow a blank line
// (or start the file), undoing mboxrd ">From " quoting. A file that does not
// start with "From " is one message.
func checkSplitMbox(data []byte) [][]byte {
	if !bytes.HasPrefix(data, []byte("From ")) {
		return [][]byte{data}
	}
	var out [][]byte
	start := 0
	for i := 0; ; {
		j := bytes.Index(data[i:], []byte("\nFrom "))
		if j < 0 {
			break
		}
		j += i
		// A separator is preceded by an empty line (LF or CRLF).
		if j > 0 && (data[j-1] == '\n' || j > 1 && data[j-1] == '\r' && data[j-2] == '\n') {
			out = append(out, data[start:j+1])
			start = j + 1
		}
		i = j + 1
	}
	out = append(out, data[start:])
	for k, m := range out {
		if bytes.Contains(m, []byte("\n>From ")) {
			// mboxrd: one level of ">" was added to body "From " lines.
			var b bytes.Buffer
			for _, line := range bytes.SplitAfter(m, []byte("\n")) {
				t := bytes.TrimLeft(line, ">")
				if len(t) < len(line) && bytes.HasPrefix(t, []byte("From ")) {
					line = line[1:]
				}
				b.Write(line)
			}
			out[k] = b.Bytes()
		}
	}
	return out
}

// message analyses one message and prints its record.
func (c *checker) message(path string, data []byte) {
	res := checkResult{Path: path, Kind: bounce.KindNotBounce, BouncedRecipients: []string{}, Evidence: []string{}}
	rep, err := bounce.Analyze(bytes.NewReader(data), bounce.Limits{})
	switch {
	case errors.Is(err, bounce.ErrEmpty):
		res.Warnings = []string{"empty message"}
	case err != nil:
		c.fail("analysing %s: %v", path, err)
		return
	default:
		res.Kind = rep.Kind
		res.OriginalMessageID = rep.OriginalMessageID
		res.OriginalSender = rep.OriginalSender
		if res.OriginalSender == "" {
			res.OriginalSender = rep.OriginalFrom
		}
		res.OriginalFrom = rep.OriginalFrom
		res.BouncedRecipients = rep.BouncedAddresses()
		res.RecipientsDetail = rep.Recipients
		res.InReplyTo = rep.InReplyTo
		res.References = rep.References
		res.HeadersOnly = rep.OriginalHeadersOnly
		res.CapHit = rep.CapHit
		res.Warnings = rep.Warnings
		if rep.Kind.IsBounceLike() {
			res.Evidence = c.opts.collect(rep)
		}
	}
	if c.json {
		b, err := json.Marshal(res)
		if err != nil {
			c.fail("encoding %s: %v", path, err)
			return
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", res.Path, res.Kind)
	if res.OriginalMessageID != "" {
		fmt.Fprintf(c.stdout, "  original id:  <%s>\n", res.OriginalMessageID)
	}
	if res.OriginalSender != "" {
		fmt.Fprintf(c.stdout, "  sender:       %s\n", res.OriginalSender)
	}
	for _, r := range res.RecipientsDetail {
		fmt.Fprintf(c.stdout, "  recipient:    %s %s %s\n", r.Address, r.Action, r.Status)
	}
	if res.InReplyTo != "" {
		fmt.Fprintf(c.stdout, "  in reply to:  <%s>\n", res.InReplyTo)
	}
	if len(res.Evidence) > 0 {
		fmt.Fprintf(c.stdout, "  evidence:     %s\n", strings.Join(res.Evidence, ", "))
	} else if res.Kind.IsBounceLike() {
		fmt.Fprintf(c.stdout, "  evidence:     none (backscatter unless the sent store knows the id)\n")
	}
	if res.CapHit != "" {
		fmt.Fprintf(c.stdout, "  cap hit:      %s\n", res.CapHit)
	}
}
