// Command sitecheck drives a real Postfix set up like a real site (see
// test/t-40-site) with the mail a site meets: our users' outbound mail,
// then genuine bounces, auto-replies, read receipts and ordinary mail
// from other sites' postmasters, and backscatter of every kind. It
// checks each message's outcome against what must happen (genuine mail
// delivered, to the untagged address; backscatter refused, never
// delivered) and prints a line per case and a summary:
//
//	genuine delivered N/N, backscatter refused M/M
//
// It exits 1 when either is incomplete. It is a test tool, not part of
// bounce-milter.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/keyfile"
)

var (
	mxAddr     = flag.String("mx", "", "the MX listener, HOST:PORT")
	subAddr    = flag.String("sub", "", "the submission listener, HOST:PORT")
	sinkFile   = flag.String("sink", "", "the sink's JSONL file")
	keyFile    = flag.String("keys", "", "the key file (to forge tags the way an attacker cannot)")
	deployment = flag.String("deployment", "", "milter, milter-only, policy, policy-milter")
	token      = flag.String("token", fmt.Sprint(time.Now().UnixNano()), "unique token of this run")
	verbose    = flag.Bool("v", false, "print every case")
)

const domain = "example.com"

// outcome of one SMTP transaction.
type outcome struct {
	accepted bool
	stage    string // "rcpt", "data", "" when accepted
	code     int
	text     string
}

func (o outcome) String() string {
	if o.accepted {
		return "250"
	}
	return fmt.Sprintf("%d at %s (%s)", o.code, o.stage, firstLine(o.text))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 90 {
		s = s[:90] + "..."
	}
	return s
}

// send runs one SMTP transaction; rcpts refused at RCPT are reported in
// refused, and the transaction goes on with the others.
func send(addr, from string, rcpts []string, data string) (outcome, map[string]int) {
	refused := map[string]int{}
	c, err := dial(addr)
	if err != nil {
		return outcome{stage: "connect", code: -1, text: err.Error()}, refused
	}
	defer c.Close()
	if err := c.Hello("client.remote.example"); err != nil {
		return outcome{stage: "helo", code: code(err), text: err.Error()}, refused
	}
	if err := c.Mail(from, nil); err != nil {
		return outcome{stage: "mail", code: code(err), text: err.Error()}, refused
	}
	ok := 0
	var last error
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			refused[r] = code(err)
			last = err
			continue
		}
		ok++
	}
	if ok == 0 {
		return outcome{stage: "rcpt", code: code(last), text: last.Error()}, refused
	}
	w, err := c.Data()
	if err != nil {
		return outcome{stage: "data", code: code(err), text: err.Error()}, refused
	}
	if _, err := w.Write([]byte(data)); err != nil {
		return outcome{stage: "data", code: -1, text: err.Error()}, refused
	}
	if err := w.Close(); err != nil {
		return outcome{stage: "data", code: code(err), text: err.Error()}, refused
	}
	_ = c.Quit()
	return outcome{accepted: true}, refused
}

// probe is a sender-verification callout: MAIL FROM:<>, RCPT, QUIT.
func probe(addr, rcpt string) outcome {
	c, err := dial(addr)
	if err != nil {
		return outcome{code: -1, text: err.Error()}
	}
	defer c.Close()
	if err := c.Hello("callout.remote.example"); err != nil {
		return outcome{code: code(err), text: err.Error()}
	}
	if err := c.Mail("", nil); err != nil {
		return outcome{code: code(err), text: err.Error()}
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return outcome{stage: "rcpt", code: code(err), text: err.Error()}
	}
	_ = c.Quit()
	return outcome{accepted: true}
}

func dial(addr string) (*smtp.Client, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 60 * time.Second
	return c, nil
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return -1
}

// sink reads what the sink received.
type sinkMsg struct {
	From string   `json:"from"`
	To   []string `json:"to"`
	Data string   `json:"data"`
}

func readSink() []sinkMsg {
	f, err := os.Open(*sinkFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []sinkMsg
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m sinkMsg
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitFor returns the sink messages carrying tok (each delivery is one
// message per destination), waiting up to d for at least n.
func waitFor(tok string, n int, d time.Duration) []sinkMsg {
	deadline := time.Now().Add(d)
	for {
		var got []sinkMsg
		for _, m := range readSink() {
			if strings.Contains(m.Data, tok) {
				got = append(got, m)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForMatch waits up to d for a sink message carrying tok that match
// accepts, and returns the messages carrying tok.
func waitForMatch(tok string, match func(sinkMsg) bool, d time.Duration) []sinkMsg {
	deadline := time.Now().Add(d)
	for {
		got := waitFor(tok, 0, 0)
		for _, m := range got {
			if match(m) {
				return got
			}
		}
		if time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func header(data, name string) string {
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

var signer *backscatter.KeySet

// forge signs addr with our key as the daemon would at time t; used for
// expired tags (a forger has no key: forged tags are made by changing one).
func sign(addr string, t time.Time) string {
	k := signer.Signing
	secret, _ := signer.Secret(k)
	s, err := backscatter.SignPRVS(addr, secret, k, t, 7)
	if err != nil {
		panic(err)
	}
	return s
}

func main() {
	flag.Parse()
	if *mxAddr == "" || *subAddr == "" || *sinkFile == "" || *keyFile == "" {
		fmt.Fprintln(os.Stderr, "usage: sitecheck -mx HOST:PORT -sub HOST:PORT -sink FILE -keys FILE -deployment NAME")
		os.Exit(2)
	}
	ks, err := keyfile.LoadForTool(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	signer = ks
	os.Exit(run())
}
