package web

import (
	"context"
	"regexp"
	"strings"

	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

// masker hides addresses per [web] mask_addresses: "remote" hides the
// addresses of other domains (the recipients of our users' mail), "all"
// ours too. A masked address keeps the first character of its local part
// and its domain: "b***@example.org".
type masker struct {
	mode string
	ours func(domain string) bool
}

func (m masker) on() bool { return m.mode == config.MaskRemote || m.mode == config.MaskAll }

// addr masks one address (anything without an @ is left as it is).
func (m masker) addr(a string) string {
	if !m.on() {
		return a
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return a
	}
	if m.mode == config.MaskRemote && m.ours != nil && m.ours(strings.ToLower(a[at+1:])) {
		return a
	}
	local := a[:at]
	if local == "" {
		return "***" + a[at:]
	}
	first := local[:1]
	if strings.HasPrefix(local, "<") && len(local) > 1 {
		first = local[:2]
	}
	return first + "***" + a[at:]
}

var addrInText = regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[A-Za-z0-9.-]+`)

// text masks every address in a free text (a diagnostic).
func (m masker) text(s string) string {
	if !m.on() {
		return s
	}
	return addrInText.ReplaceAllStringFunc(s, m.addr)
}

func (m masker) event(e events.Event) events.Event {
	e.Sender = m.addr(e.Sender)
	e.Recipient = m.addr(e.Recipient)
	e.Diagnostic = m.text(e.Diagnostic)
	return e
}

// maskedReader masks what an events.Reader answers (the JSON API and the
// Bounces page alike); the query itself is passed unmasked.
type maskedReader struct {
	r events.Reader
	m masker
}

func (mr maskedReader) Events(ctx context.Context, q events.Query) ([]events.Event, error) {
	es, err := mr.r.Events(ctx, q)
	for i := range es {
		es[i] = mr.m.event(es[i])
	}
	return es, err
}

func (mr maskedReader) Suppressions(ctx context.Context, q events.SuppressionQuery) ([]events.Suppression, error) {
	ss, err := mr.r.Suppressions(ctx, q)
	for i := range ss {
		ss[i].Recipient = mr.m.addr(ss[i].Recipient)
		ss[i].Senders = append([]string(nil), ss[i].Senders...)
		for j := range ss[i].Senders {
			ss[i].Senders[j] = mr.m.addr(ss[i].Senders[j])
		}
	}
	return ss, err
}
