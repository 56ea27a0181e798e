// Command smtpsink is the end-to-end tests' receiving MTA: it accepts every
// message on a loopback address and appends one JSON line per message (the
// envelope and the raw data) to a file, so that a test can assert exactly
// what Postfix relayed. It is a test tool, not part of bounce-milter.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

type record struct {
	From string   `json:"from"`
	To   []string `json:"to"`
	Data string   `json:"data"`
	Time string   `json:"time"`
}

type backend struct {
	mu     sync.Mutex
	out    *os.File
	reject string
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b   *backend
	rec record
}

func (s *session) AuthPlain(string, string) error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.rec = record{From: from}
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.b.reject != "" && strings.HasPrefix(strings.ToLower(to), s.b.reject) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable (test sink)"}
	}
	s.rec.To = append(s.rec.To, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.rec.Data = string(data)
	s.rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, _ := json.Marshal(s.rec)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	_, err = s.b.out.Write(append(line, '\n'))
	return err
}
func (s *session) Reset()        { s.rec = record{} }
func (s *session) Logout() error { return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:2526", "listen address (loopback)")
	out := flag.String("out", "sink.jsonl", "file to append messages to")
	reject := flag.String("reject", "nobody@", "refuse recipients that start with this (lower case)")
	flag.Parse()
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	s := smtp.NewServer(&backend{out: f, reject: *reject})
	s.Addr = *addr
	s.Domain = "sink.test"
	s.AllowInsecureAuth = true
	s.MaxRecipients = 1000
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	log.Fatal(s.ListenAndServe())
}
