package events

import (
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

// Delivered is what the milter knows of a message it has just delivered.
type Delivered struct {
	Time    time.Time
	QueueID string
	Host    string
	// Decision is the engine's; only its genuine verdicts (a valid tag, or
	// evidence that we sent the original) make events.
	Decision backscatter.Decision
	// Report is the bounce analysis; nil when the body was not read.
	Report *bounce.Report
	// Sender is the envelope sender of the bounce or auto-reply.
	Sender string
	// Ours, when set, says whether a host name or address is one of our
	// own (the outbound relays, names under our domains); it helps
	// SendingHost find our host among the returned original's hops.
	Ours func(host string) bool
}

// Build returns the events of one delivered bounce or auto-reply (none for
// other mail): per genuine recipient
// of ours, one per bounced or delayed recipient the report names, or one
// for an auto-reply. hash, when not nil, replaces every remote address
// (privacy).
func Build(d Delivered, hash func(string) string) []Event {
	if !d.Decision.Bounce {
		// Ordinary mail to a valid tag (a reply to a list's signed VERP
		// address) is accepted, but it tells of no failure.
		return nil
	}
	var out []Event
	rep := d.Report
	for _, rv := range d.Decision.Verdicts {
		v := rv.Verdict
		if v.Action != backscatter.ActAccept || (v.Reason != backscatter.ReasonValidTag && v.Reason != backscatter.ReasonEvidence) {
			continue
		}
		base := Event{
			Time: d.Time, Sender: strings.ToLower(rv.R.Untagged), Domain: rv.R.Domain,
			QueueID: d.QueueID, Host: d.Host, Evidence: evidenceName(v),
		}
		var verpRcpt string
		if rv.R.Verified != nil {
			verpRcpt = rv.R.Verified.Recipient
		}
		switch {
		case rep != nil && rep.Kind == bounce.KindDSN:
			base.MessageID, base.ReportingMTA = rep.OriginalMessageID, rep.ReportingMTA
			n := 0
			for _, rc := range rep.Recipients {
				kind := KindBounce
				switch a := strings.ToLower(rc.Action); {
				case strings.HasPrefix(a, "failed"):
				case strings.HasPrefix(a, "delayed"):
					kind = KindDelay
				default:
					continue // delivered, relayed, expanded: nothing to tell
				}
				e := base
				e.Kind, e.Recipient, e.Action, e.Status = kind, rc.Address, rc.Action, rc.Status
				e.Diagnostic, e.RemoteMTA, e.Reason, e.Hard = rc.Diagnostic, rc.RemoteMTA, string(rc.Reason), rc.Hard
				if kind == KindDelay {
					e.Hard = false
				} else {
					e.SendingHost = SendingHost(rep, rc.Diagnostic, d.Ours)
					e.Blocklists = bounce.Blocklists(clipDiag(rc.Diagnostic))
				}
				out = append(out, finish(e, hash))
				n++
			}
			if n == 0 && verpRcpt != "" {
				e := base
				e.Kind, e.Recipient, e.Action, e.Reason = KindBounce, verpRcpt, "failed", string(bounce.ReasonUndefined)
				out = append(out, finish(e, hash))
			}
		case rep != nil && rep.Kind == bounce.KindAutoreply:
			e := base
			e.Kind, e.Reason, e.MessageID = KindAutoreply, string(bounce.ReasonVacation), rep.InReplyTo
			e.Recipient = addrOf(rep.From)
			if e.Recipient == "" {
				e.Recipient = d.Sender
			}
			if e.Recipient == "" {
				e.Recipient = verpRcpt
			}
			out = append(out, finish(e, hash))
		case rep == nil && verpRcpt != "":
			// No body read, but a signed VERP names the recipient.
			e := base
			e.Kind, e.Recipient, e.Action, e.Reason = KindBounce, verpRcpt, "failed", string(bounce.ReasonUndefined)
			out = append(out, finish(e, hash))
		}
	}
	return out
}

// clipDiag bounds what the diagnostic parsers read.
func clipDiag(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// SendingHost names our host that handed the original to the site that
// refused it, from what a bounce tells (the first that applies):
//
//  1. the client address the diagnostic names ("Client host [192.0.2.1]
//     blocked using ...": the refusing site saw it connect);
//  2. walking the returned original's Received hops from the topmost: a
//     hop whose client ours says is one of our hosts (the remote site
//     received the original from it), or whose receiving host is one of
//     ours (our own MTA wrote the bounce: the remote site refused the
//     original during the SMTP dialogue);
//  3. the reporting MTA, when it received the topmost hop from a private
//     or loopback address (our MTA, from one of our users);
//  4. the client of the topmost hop (the remote site's Received line
//     names the host it received the original from).
//
// An address is given when known, else a name; "" when nothing tells.
// ours may be nil.
func SendingHost(rep *bounce.Report, diag string, ours func(string) bool) string {
	if a := bounce.ClientAddr(clipDiag(diag)); a.IsValid() {
		return a.String()
	}
	if rep == nil || len(rep.OriginalReceived) == 0 {
		return ""
	}
	hopHost := func(h bounce.Hop) string {
		if h.IP.IsValid() {
			return h.IP.Unmap().String()
		}
		return clipHost(h.Name)
	}
	if ours != nil {
		for _, h := range rep.OriginalReceived {
			if (h.Name != "" && ours(h.Name)) || (h.IP.IsValid() && ours(h.IP.Unmap().String())) {
				return hopHost(h)
			}
			if h.By != "" && ours(h.By) {
				return clipHost(h.By)
			}
		}
	}
	top := rep.OriginalReceived[0]
	mta := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(rep.ReportingMTA), "."))
	if mta != "" && top.By == mta && top.IP.IsValid() && (top.IP.IsPrivate() || top.IP.IsLoopback()) {
		return clipHost(mta)
	}
	if h := hopHost(top); h != "" {
		return h
	}
	return ""
}

func clipHost(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}

func evidenceName(v backscatter.Verdict) string {
	if v.Reason == backscatter.ReasonValidTag {
		return "valid-tag"
	}
	if len(v.Evidence) > 0 {
		kind, _, _ := strings.Cut(v.Evidence[0], ":")
		return kind
	}
	return "evidence"
}

// finish gives the event its id and, with hashing, removes the remote
// address from every field that may carry it.
func finish(e Event, hash func(string) string) Event {
	e.Recipient = strings.ToLower(strings.TrimSpace(e.Recipient))
	e.ID = NewID(e.Time)
	if at := strings.LastIndexByte(e.Recipient, '@'); at >= 0 && at < len(e.Recipient)-1 {
		e.RecipientDomain = strings.TrimSuffix(e.Recipient[at+1:], ".")
		if len(e.RecipientDomain) > 255 {
			e.RecipientDomain = e.RecipientDomain[:255]
		}
	}
	if hash != nil && e.Recipient != "" {
		addr := e.Recipient
		e.Recipient = hash(addr)
		e.Diagnostic = replaceFold(e.Diagnostic, addr, "<recipient>")
		if e.RecipientDomain != "" {
			e.RecipientDomain = hash(e.RecipientDomain)
		}
	}
	if len(e.Diagnostic) > 1000 {
		e.Diagnostic = e.Diagnostic[:1000]
	}
	return e
}

func replaceFold(s, old, repl string) string {
	if old == "" {
		return s
	}
	lower := strings.ToLower(s)
	var b strings.Builder
	for {
		i := strings.Index(lower, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

func addrOf(from string) string {
	from = strings.TrimSpace(from)
	if i := strings.LastIndexByte(from, '<'); i >= 0 {
		if j := strings.IndexByte(from[i:], '>'); j > 0 {
			return from[i+1 : i+j]
		}
	}
	if strings.Contains(from, "@") && !strings.ContainsAny(from, " \t") {
		return from
	}
	return ""
}
