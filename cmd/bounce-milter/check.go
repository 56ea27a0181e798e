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
	"unicode"
	"unicode/utf8"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/dkimcheck"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

const checkUsage = `usage: bounce-milter check [--json] [--domains d1,d2] [--relays h1,h2] PATH...

Analyse messages offline as the milter would: classify each one (dsn,
autoreply, challenge, mdn, arf, not-bounce), extract the returned original's
Message-ID, sender and the bounced recipients with the reason of each
failure (sisimai's taxonomy: userunknown, mailboxfull, blocked, ...) and
whether it is hard (the address is dead) or soft, and list the evidence that
we sent the original (our DKIM signature, our relays in its Received lines).
Text mode escapes control characters, so a hostile message cannot drive the
terminal.

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
	RecipientsDetail  []bounce.Recipient `json:"recipients_detail,omitempty"` // with reason, hard, remote_mta
	EventReason       bounce.Reason      `json:"event_reason,omitempty"`      // vacation (autoreply), feedback (arf)
	ReportingMTA      string             `json:"reporting_mta,omitempty"`
	HeadersOnly       bool               `json:"original_headers_only,omitempty"`
	CapHit            string             `json:"cap_hit,omitempty"`
	Warnings          []string           `json:"warnings,omitempty"`
	// Refusals say, for the failed recipients whose refusal names it, our
	// host that sent the original and the block lists named (what the
	// alerts count: docs/alerts.md).
	Refusals []checkRefusal `json:"refusals,omitempty"`
}

// checkRefusal is one failed recipient's sending host and lists.
type checkRefusal struct {
	Recipient   string   `json:"recipient"`
	SendingHost string   `json:"sending_host,omitempty"`
	Blocklists  []string `json:"blocklists,omitempty"`
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

// engine is an engine knowing only our domains and relays.
func (o evidenceOptions) engine() *backscatter.Engine {
	s := backscatter.Settings{Domains: map[string]backscatter.Domain{}, Relays: o.relays}
	for _, d := range o.domains {
		s.Domains[strings.ToLower(d)] = backscatter.Domain{Mode: backscatter.ModeReject}
	}
	return backscatter.New(s, nil)
}

// refusals are the report's failed recipients with their sending host or
// block lists, as the bounce events record them.
func (o evidenceOptions) refusals(rep *bounce.Report) []checkRefusal {
	ours := o.engine().HostOurs
	var out []checkRefusal
	for _, r := range rep.Recipients {
		if !strings.HasPrefix(strings.ToLower(r.Action), "fail") {
			continue
		}
		x := checkRefusal{Recipient: r.Address, SendingHost: events.SendingHost(rep, r.Diagnostic, ours), Blocklists: bounce.Blocklists(r.Diagnostic)}
		if x.SendingHost != "" || len(x.Blocklists) > 0 {
			out = append(out, x)
		}
	}
	return out
}

// collect is the evidence a report carries by itself, as the engine's
// ladder reads it (DKIM checked only when domains are given: it queries
// DNS).
func (o evidenceOptions) collect(rep *bounce.Report) []string {
	e := o.engine()
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
		res.EventReason = rep.Kind.EventReason()
		res.ReportingMTA = rep.ReportingMTA
		res.InReplyTo = rep.InReplyTo
		res.References = rep.References
		res.HeadersOnly = rep.OriginalHeadersOnly
		res.CapHit = rep.CapHit
		res.Warnings = rep.Warnings
		if rep.Kind.IsBounceLike() {
			res.Evidence = c.opts.collect(rep)
		}
		res.Refusals = c.opts.refusals(rep)
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
	// Everything below comes from the message (or its file name) and is
	// escaped: a hostile bounce must not be able to drive the terminal.
	w := c.stdout
	fmt.Fprintf(w, "%s: %s\n", printable(res.Path), printable(string(res.Kind)))
	if res.OriginalMessageID != "" {
		fmt.Fprintf(w, "  original id:  <%s>\n", printable(res.OriginalMessageID))
	}
	if res.OriginalSender != "" {
		fmt.Fprintf(w, "  sender:       %s\n", printable(res.OriginalSender))
	}
	if res.ReportingMTA != "" {
		fmt.Fprintf(w, "  reported by:  %s\n", printable(res.ReportingMTA))
	}
	if res.EventReason != "" {
		fmt.Fprintf(w, "  reason:       %s\n", printable(string(res.EventReason)))
	}
	for _, r := range res.RecipientsDetail {
		severity := "soft"
		if r.Hard {
			severity = "hard"
		}
		line := strings.TrimSpace(strings.Join([]string{r.Address, r.Action, r.Status, string(r.Reason), severity}, " "))
		fmt.Fprintf(w, "  recipient:    %s\n", printable(strings.Join(strings.Fields(line), " ")))
		if r.RemoteMTA != "" {
			fmt.Fprintf(w, "    remote:     %s\n", printable(r.RemoteMTA))
		}
		if r.Diagnostic != "" {
			fmt.Fprintf(w, "    diagnostic: %s\n", printable(r.Diagnostic))
		}
		for _, x := range res.Refusals {
			if x.Recipient != r.Address {
				continue
			}
			if x.SendingHost != "" {
				fmt.Fprintf(w, "    our host:   %s\n", printable(x.SendingHost))
			}
			if len(x.Blocklists) > 0 {
				fmt.Fprintf(w, "    lists:      %s\n", printable(strings.Join(x.Blocklists, ", ")))
			}
			break
		}
	}
	if res.InReplyTo != "" {
		fmt.Fprintf(w, "  in reply to:  <%s>\n", printable(res.InReplyTo))
	}
	if len(res.Evidence) > 0 {
		fmt.Fprintf(w, "  evidence:     %s\n", printable(strings.Join(res.Evidence, ", ")))
	} else if res.Kind.IsBounceLike() {
		fmt.Fprintf(w, "  evidence:     none (backscatter unless the sent store knows the id)\n")
	}
	if res.CapHit != "" {
		fmt.Fprintf(w, "  cap hit:      %s\n", printable(res.CapHit))
	}
}

// printable escapes what a terminal would interpret or what hides text:
// C0 and C1 control characters (ESC starts terminal sequences), DEL,
// Unicode format characters (bidirectional overrides reorder the line),
// line and paragraph separators, and bytes that are not UTF-8. They are
// written as Go escapes (\x1b, \u202e); a backslash is doubled so that an
// escape in the output always means one in the input.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !printableRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case printableRune(r):
			b.WriteString(s[i : i+size])
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
		i += size
	}
	return b.String()
}

// printableRune reports runes that are safe to show as they are.
func printableRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return false
	case r == 0x2028, r == 0x2029:
		return false
	case unicode.Is(unicode.Cf, r):
		return false
	}
	return true
}
