package backscatter

import (
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

// The evidence ladder: what proves that an untagged bounce (or auto-reply,
// challenge, read receipt) answers mail we sent. Any one rung suffices;
// the strongest found is named first. Every rung is bound to the bounce:
// the original must have been sent by the address the bounce comes back
// to, so that a bounce to dave@ quoting a Message-ID alice@ sent proves
// nothing.
//
//  1. store: the store holds a record of a message we signed with one of
//     the ids the report returns (the original's Message-ID for a delivery
//     report or read receipt; In-Reply-To and References for an auto-reply
//     or challenge), and the record's sender is the bounced address
//     (InboundFacts.SenderMatch).
//  2. dkim: the returned original (whole, not headers only) carries a
//     valid DKIM signature of one of our domains (or a subdomain), made
//     within the tag lifetime (its t= tag, else a signed Date header), and
//     the original's From or Return-Path is the bounced address.
//  3. relay: the topmost Received hop of the returned original, the one
//     written by the first host outside our network that received it,
//     names one of our outbound relays exactly (its resolved name or IP
//     address, never the name the client gave in HELO, never a subdomain
//     or a comment), the original's From or Return-Path is the bounced
//     address, and its Date is within the tag lifetime. Lower hops can be
//     forged by whoever wrote the original, so they never count.

// Evidence kinds (prefixes of the evidence strings).
const (
	EvidenceStore = "store"
	EvidenceDKIM  = "dkim"
	EvidenceRelay = "relay"
)

// DKIMSignature is one verified DKIM signature of a returned original, as
// the adapter's DKIM check (package dkimcheck) reports it.
type DKIMSignature struct {
	Domain string    // d=, lower case
	Valid  bool      // the signature verified
	Signed time.Time // t=, zero when absent
	// Date is the original's Date header when the signature covers it
	// (zero otherwise): the signing time when t= is absent.
	Date time.Time
}

// evidence returns what proves we sent the original a judged untagged
// recipient's bounce returns, strongest first; empty when nothing does.
func (j *Judgement) evidence(r Recipient, a Answer) []string {
	var out []string
	if a.Asked && a.Err == nil && a.Facts.Sent != nil && a.Facts.SenderMatch {
		out = append(out, EvidenceStore+":"+a.Facts.MatchedMessageID)
	}
	rep := j.msg.Report
	if rep == nil || !j.boundTo(r) {
		return out
	}
	now := j.e.Now()
	maxAge := time.Duration(r.Lifetime+skewDays+1) * 24 * time.Hour
	for _, s := range j.DKIM {
		if !s.Valid || !j.e.dkimDomainOurs(s.Domain) {
			continue
		}
		t := s.Signed
		if t.IsZero() {
			t = s.Date
		}
		if t.IsZero() || now.Sub(t) > maxAge || t.Sub(now) > 24*time.Hour {
			continue
		}
		out = append(out, EvidenceDKIM+":"+strings.ToLower(s.Domain))
		break
	}
	if len(rep.OriginalReceived) > 0 && !rep.OriginalDate.IsZero() &&
		now.Sub(rep.OriginalDate) <= maxAge && rep.OriginalDate.Sub(now) <= 24*time.Hour {
		top := rep.OriginalReceived[0]
		switch {
		case top.IP.IsValid() && j.e.relayIPs[top.IP.Unmap()]:
			out = append(out, EvidenceRelay+":"+top.IP.String())
		case top.Name != "" && j.e.relays[top.Name]:
			out = append(out, EvidenceRelay+":"+top.Name)
		}
	}
	return out
}

// boundTo reports whether the returned original was sent by the address
// the bounce is for: its From or its Return-Path (or the DSN's note of the
// envelope sender) is the untagged recipient, compared without case and,
// failing that, without a sub-address extension on either side.
func (j *Judgement) boundTo(r Recipient) bool {
	rep := j.msg.Report
	want := strings.ToLower(r.Untagged)
	base := stripExtension(want, r.Delimiter)
	for _, a := range []string{rep.OriginalFrom, rep.OriginalSender} {
		a = strings.ToLower(strings.Trim(strings.TrimSpace(a), "<>"))
		if a == "" {
			continue
		}
		if t, err := ParseTag(a, r.Delimiter); err == nil && t.Ours() {
			a = strings.ToLower(t.Untagged())
		}
		if a == want || stripExtension(a, r.Delimiter) == base {
			return true
		}
	}
	return false
}

func stripExtension(addr string, delim byte) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || delim == 0 {
		return addr
	}
	if i := strings.IndexByte(addr[:at], delim); i > 0 {
		return addr[:i] + addr[at:]
	}
	return addr
}

// dkimDomainOurs reports whether a DKIM d= domain is one of ours or a
// subdomain of one (whole labels: "evilexample.com" is not "example.com").
func (e *Engine) dkimDomainOurs(d string) bool {
	d = normDomain(d)
	for name := range e.s.Domains {
		if d == name || strings.HasSuffix(d, "."+name) {
			return true
		}
	}
	return false
}

// DKIMDomains are the d= domains whose keys are worth a DNS lookup: ours.
// A foreign signature can never be evidence, and skipping it keeps a
// hostile bounce from making us query arbitrary names.
func (e *Engine) DKIMDomainOurs(d string) bool { return e.dkimDomainOurs(d) }

// MessageEvidence is the evidence a report carries by itself (DKIM and
// relay rungs; the store is not asked), taking the bounce to be addressed
// to the original's own sender: what `bounce-milter check` shows.
func (e *Engine) MessageEvidence(rep *bounce.Report, dkim []DKIMSignature) []string {
	out := []string{}
	if rep == nil {
		return out
	}
	sender := rep.OriginalSender
	if sender == "" {
		sender = rep.OriginalFrom
	}
	r := e.CheckRecipient(sender)
	if r.Lifetime == 0 {
		r.Lifetime = DefaultLifetime
	}
	r.Untagged = sender
	j := &Judgement{e: e, msg: Message{Report: rep}, Kind: rep.Kind, DKIM: dkim}
	return append(out, j.evidence(r, Answer{})...)
}
