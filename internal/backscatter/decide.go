package backscatter

import (
	"fmt"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/evidence"
)

// The decision about one message is made in two steps, so that the
// engine stays free of I/O while the adapters (milter, policy service)
// do the talking:
//
//  1. At RCPT, AtRcpt decides what can be decided on the address alone: a
//     forged, expired or unknown-key tag of ours is refused whoever sends
//     (it is never a real mailbox), an unreadable address of ours is
//     refused, a valid tag whose budget is already spent is refused
//     (RcptQuery says what to ask the store first; nothing is counted, so
//     that sender-verification callouts, which never send DATA, spend
//     nothing). Untagged recipients are never decided at RCPT: callout
//     probes (MAIL FROM:<>, RCPT, QUIT) must pass.
//  2. At end of message, Judge looks at the message (the bounce analysis,
//     when the body could be read) and says what to ask the store for
//     each recipient (counting this message once); Decide then applies the
//     evidence ladder, the gaps in the store's history, the modes and the
//     failure policy, and combines the recipients into what Postfix can
//     do with one message.

// Envelope is what is known of a message when its recipients arrive.
type Envelope struct {
	Sender string
	Origin Origin
}

// Answer is the store's answer to one query.
type Answer struct {
	Asked bool
	Facts evidence.InboundFacts
	Err   error
}

// bounceSender reports whether the envelope sender is a bounce's.
func (e *Engine) bounceSender(env Envelope) bool { return e.IsBounceSender(env.Sender) }

// RcptQuery is what to ask the store about r at RCPT, if anything: for a
// valid tag on a bounce, its replay budget (not counted); for a tag of ours
// that did not verify, a count against the client (online guessing of a
// 24-bit hash must not be free).
func (e *Engine) RcptQuery(env Envelope, r Recipient, clientIP string) (evidence.InboundQuery, bool) {
	if !r.Ours || r.Unparsable || !r.Tagged() || env.Origin.Local {
		return evidence.InboundQuery{}, false
	}
	now := e.Now()
	if r.Err != nil {
		if clientIP == "" {
			return evidence.InboundQuery{}, false
		}
		return evidence.InboundQuery{ClientIP: clientIP, Count: true, Now: now}, true
	}
	if !e.bounceSender(env) {
		return evidence.InboundQuery{}, false
	}
	return evidence.InboundQuery{Tag: TagKey(r.Tag.Raw), Now: now}, true
}

// TagKey is how a tagged address is named in the store: the sender the
// milter signed and the recipient a bounce comes back to must name the
// same record, whatever case the address came back in.
func TagKey(address string) string { return strings.ToLower(address) }

// AtRcpt decides a recipient at RCPT. nil means nothing is decided now:
// the recipient is accepted and the message decides at its end (or it is
// none of our business).
func (e *Engine) AtRcpt(env Envelope, r Recipient, a Answer) *Verdict {
	if !r.Ours || env.Origin.Local {
		// Postfix must not see a refusal of an emulated RCPT (local
		// submission through non_smtpd_milters).
		return nil
	}
	if r.Unparsable {
		return &Verdict{Action: ActReject, Result: ResultFail, Reason: ReasonBadAddress,
			Comment: "address of our domain cannot be read"}
	}
	if !r.Tagged() {
		return nil
	}
	if r.Err != nil {
		if r.Exempt {
			return nil
		}
		return &Verdict{Action: ActReject, Result: ResultFail, Reason: r.Err.Reason,
			Comment: fmt.Sprintf("%s tag: %s", r.Tag.Scheme, r.Err.Reason)}
	}
	if a.Asked && a.Err == nil && !r.Exempt && e.overBudget(r, a.Facts, 1) {
		v := replayedVerdict()
		return &v
	}
	return nil
}

func replayedVerdict() Verdict {
	return Verdict{Action: ActReject, Result: ResultFail, Reason: ReasonReplayed,
		Comment: "valid tag used more often than the message had recipients"}
}

// overBudget reports whether pending more bounces (1 at RCPT, where the
// store has not counted this one; 0 at end of message, where it has)
// would take a valid tag past its budget: the recipients signed with it
// plus the slack, or, with no record of signing at all, a small budget of
// its own. A budget the store cannot vouch for (its history has a gap
// during the day the tag was signed) never refuses.
func (e *Engine) overBudget(r Recipient, f evidence.InboundFacts, pending int64) bool {
	if r.Verified == nil {
		return false
	}
	signed := e.signingDay(r)
	from, to := signed.Add(-24*time.Hour), signed.Add(48*time.Hour)
	for _, g := range f.Gaps {
		// Only records lost can undercount a tag (mail that left unsigned
		// carried no tag at all).
		if !g.Unsigned && g.From.Before(to) && g.To.After(from) {
			return false
		}
	}
	bounces := f.TagBounces + pending
	if f.TagRecipients == 0 {
		budget := int64(e.s.UnrecordedTagBudget)
		if budget <= 0 {
			return false
		}
		return bounces > budget
	}
	return bounces > f.TagRecipients+int64(e.s.ReplaySlack)
}

// signingDay is the start of the UTC day a valid tag was signed on: its
// expiry day (the one within lifetime+1 days of today whose number mod 1000
// is the tag's stamp) minus the lifetime.
func (e *Engine) signingDay(r Recipient) time.Time {
	today := DayNumber(e.Now())
	stamp := int64(r.Verified.Stamp)
	exp := today - today%1000 + stamp
	for exp < today-1 {
		exp += 1000
	}
	for exp > today+int64(r.Lifetime)+1 {
		exp -= 1000
	}
	return time.Unix((exp-int64(r.Lifetime))*86400, 0).UTC()
}

// RcptState is one recipient accepted at RCPT, as the message's end sees it.
type RcptState struct {
	R Recipient
	// AtRcpt is the verdict made at RCPT (nil: none). Refused recipients
	// never reach the end of the message; accepted ones may carry nothing.
	AtRcpt *Verdict
}

// Message is what is known at the end of a message.
type Message struct {
	Env   Envelope
	Rcpts []RcptState
	// Report is the bounce analysis of the message; nil when the body was
	// not read (the policy service never reads it; the milter reads the
	// body of null-sender mail and of mail its pre-check flags).
	Report   *bounce.Report
	ClientIP string
	// NoDrop says the adapter cannot remove one recipient from a message
	// (the policy service answers for the whole message at DATA): a
	// message with a refused recipient is then refused whole, so that an
	// accepted recipient (postmaster, a valid tag) never carries the
	// refused ones in.
	NoDrop bool
	// Responses are the alerts' responses in force (nil: none).
	Responses *Responses
}

// Judgement is a message being decided: what to ask the store and which
// DKIM signatures to verify, then Decide.
type Judgement struct {
	e   *Engine
	msg Message
	// Kind is the analysis' kind, "" when the body was not read.
	Kind bounce.Kind
	// Bounce is set when the message is judged as a bounce, an auto-reply
	// or another answer to mail (a read receipt, a challenge).
	Bounce bool
	Rcpts  []RcptJudgement
	// DKIM holds the verified signatures of the returned original (the
	// adapter fills it when WantsDKIM).
	DKIM []DKIMSignature
}

// RcptJudgement is one recipient being judged.
type RcptJudgement struct {
	RcptState
	// Query is what to ask the store at end of message (nil: nothing);
	// the adapter puts the answer in Answer.
	Query  *evidence.InboundQuery
	Answer Answer
	judged bool // an untagged recipient judged as a bounce's
	unread bool // an untagged recipient of a bounce whose body was not read
}

// judgedKind reports whether a kind of automatic mail answers mail (and so
// can be backscatter): delivery reports, auto-replies, challenges and read
// receipts. Abuse reports go to abuse addresses; anything else is
// ordinary mail.
func judgedKind(k bounce.Kind) bool {
	switch k {
	case bounce.KindDSN, bounce.KindAutoreply, bounce.KindChallenge, bounce.KindMDN:
		return true
	}
	return false
}

// Judge starts the decision about a message at its end.
//
// Which mail is judged: null-sender mail always (RFC 5321 reserves the null
// reverse-path for notifications); mail from any other sender only when the
// analysis finds a delivery report, an auto-reply, a challenge or a read
// receipt in it: a MAILER-DAEMON- or postmaster-like sender alone never
// makes a message backscatter (postmasters of other domains write to our
// users). Recipients left alone: not ours, exempt, pass-through (SRS, list
// bounce addresses).
func (e *Engine) Judge(m Message) *Judgement {
	j := &Judgement{e: e, msg: m}
	if m.Report != nil {
		j.Kind = m.Report.Kind
	}
	null := m.Env.Sender == ""
	j.Bounce = judgedKind(j.Kind) || null || (m.Report == nil && e.bounceSender(m.Env))
	now := e.Now()
	for _, st := range m.Rcpts {
		rj := RcptJudgement{RcptState: st}
		r := st.R
		switch {
		case !r.Ours || r.PassThrough || r.Unparsable:
		case r.Tagged():
			if r.Verified != nil && j.Bounce && !m.Env.Origin.Local {
				// Counted here, once per message that is delivered.
				rj.Query = &evidence.InboundQuery{Tag: TagKey(r.Tag.Raw), Recipient: strings.ToLower(r.Untagged),
					Delimiter: r.Delimiter, ClientIP: m.ClientIP, Count: true, Now: now}
			}
		case r.Exempt:
		case m.Report == nil && j.Bounce:
			// A bounce whose body was not read (policy service only).
			rj.unread = true
		case j.Bounce:
			rj.judged = true
			q := evidence.InboundQuery{MessageIDs: j.evidenceIDs(), Recipient: strings.ToLower(r.Untagged),
				Delimiter: r.Delimiter, ClientIP: m.ClientIP, Count: true, Now: now}
			rj.Query = &q
		}
		j.Rcpts = append(j.Rcpts, rj)
	}
	return j
}

// evidenceIDs are the Message-IDs a store record may prove we sent: the
// original a delivery report or read receipt returns, the message an
// auto-reply or challenge answers. Nothing from a message the analysis does
// not recognise as an answer: a References header alone is not evidence.
func (j *Judgement) evidenceIDs() []string {
	rep := j.msg.Report
	if rep == nil {
		return nil
	}
	var ids []string
	add := func(id string) {
		id = strings.TrimSpace(strings.Trim(strings.TrimSpace(id), "<>"))
		if id == "" || len(ids) >= evidence.MaxMessageIDs {
			return
		}
		for _, x := range ids {
			if x == id {
				return
			}
		}
		ids = append(ids, id)
	}
	switch rep.Kind {
	case bounce.KindDSN, bounce.KindMDN:
		add(rep.OriginalMessageID)
	case bounce.KindAutoreply, bounce.KindChallenge:
		add(rep.InReplyTo)
		for _, r := range rep.References {
			add(r)
		}
		add(rep.OriginalMessageID)
	}
	return ids
}

// WantsDKIM reports whether a DKIM verification of the returned original
// could change the decision: some untagged recipient is judged and the
// original was returned whole.
func (j *Judgement) WantsDKIM() bool {
	if j.msg.Report == nil || len(j.msg.Report.Original) == 0 || j.msg.Report.OriginalHeadersOnly {
		return false
	}
	for _, r := range j.Rcpts {
		if r.judged {
			return true
		}
	}
	return false
}

// Decision is what becomes of a message.
type Decision struct {
	// Reply is the message's SMTP outcome.
	Reply Reply
	// Quarantine is set (with a reason) when the message goes to
	// Postfix's hold queue.
	Quarantine string
	// Header is our verdict header's value for the delivered message, ""
	// for none (the message was not judged).
	Header string
	// Drop lists recipients refused while others are delivered: the
	// adapter deletes them (both their Stored and Raw forms).
	Drop []Recipient
	// Strip lists recipients whose valid tag the adapter may strip.
	Strip []Recipient
	// Verdicts are the per-recipient decisions made here, for the log,
	// the metrics and the bounce events.
	Verdicts []RcptVerdict
	// Bounce is the Judgement's: the message was judged as a bounce, an
	// auto-reply or another automatic answer. A valid tag accepts any
	// mail (a person replying to a VERP return path too); only a bounce
	// tells what became of the mail we sent.
	Bounce bool
}

// RcptVerdict is one recipient's verdict.
type RcptVerdict struct {
	R       Recipient
	Verdict Verdict
	Kind    bounce.Kind
	// Facts are the store's facts about the recipient (zero when not asked).
	Facts evidence.InboundFacts
	// StoreErr is the store's error, when it failed.
	StoreErr error
	// AtRcpt is set when the verdict was made at RCPT and only confirmed.
	AtRcpt bool
}

// ReplyCode says what Postfix is told at the end of a message.
type ReplyCode int

// Reply codes.
const (
	ReplyAccept ReplyCode = iota
	ReplyReject
	ReplyTempfail
)

// Reply is an SMTP outcome.
type Reply struct {
	Code ReplyCode
	SMTP int    // 550, 451
	Text string // enhanced status code and text
}

// Decide makes the decision. It must be called after the adapter filled
// the answers to the queries and, when WantsDKIM, the DKIM results.
func (j *Judgement) Decide() Decision {
	d := Decision{Bounce: j.Bounce}
	for i := range j.Rcpts {
		rj := &j.Rcpts[i]
		r := rj.R
		var v Verdict
		switch {
		case !r.Ours || r.PassThrough:
			continue
		case r.Tagged() && r.Verified != nil:
			v = validTagVerdict(r)
			if rj.AtRcpt != nil {
				v = *rj.AtRcpt
			}
			if r.Exempt {
				v.Comment += "; exempt recipient"
			}
			if v.Action == ActAccept {
				d.Strip = append(d.Strip, r)
			}
		case r.Tagged() || r.Unparsable:
			// Refused at RCPT, unless exempt or local submission (or the
			// check did not run at RCPT: a policy service configured for
			// DATA only), so it is refused here.
			switch {
			case rj.AtRcpt != nil:
				v = *rj.AtRcpt
			case r.Exempt || j.msg.Env.Origin.Local:
				v = Verdict{Action: ActAccept, Result: ResultNone, Reason: ReasonExempt, Comment: "tag not valid; exempt recipient"}
			case r.Unparsable:
				v = Verdict{Action: ActReject, Result: ResultFail, Reason: ReasonBadAddress, Comment: "address of our domain cannot be read"}
			default:
				v = Verdict{Action: ActReject, Result: ResultFail, Reason: r.Err.Reason,
					Comment: fmt.Sprintf("%s tag: %s", r.Tag.Scheme, r.Err.Reason)}
			}
		case r.Exempt:
			if !j.Bounce {
				continue
			}
			v = Verdict{Action: ActAccept, Result: ResultNone, Reason: ReasonExempt, Comment: "exempt recipient"}
		case rj.unread:
			v = Verdict{Action: ActAccept, Result: ResultNeutral, Reason: ReasonNotChecked,
				Comment: "untagged bounce; not checked here (no body)"}
		case rj.judged:
			v = j.untaggedVerdict(rj)
		default:
			continue
		}
		d.Verdicts = append(d.Verdicts, RcptVerdict{R: r, Verdict: v, Kind: j.Kind, Facts: rj.Answer.Facts,
			StoreErr: rj.Answer.Err, AtRcpt: rj.AtRcpt != nil})
	}
	return j.combine(d)
}

// validTagVerdict is a valid tag's verdict.
func validTagVerdict(r Recipient) Verdict {
	v := r.Verified
	what := "prvs"
	if v.Scheme == SchemeVERP {
		what = "signed VERP"
	}
	comment := fmt.Sprintf("valid %s tag, key %d", what, v.KeyNum)
	if v.Recipient != "" {
		comment += ", for " + v.Recipient
	}
	return Verdict{Action: ActAccept, Result: ResultPass, Reason: ReasonValidTag, Comment: comment,
		Evidence: []string{fmt.Sprintf("tag:key%d", v.KeyNum)}}
}

// untaggedVerdict decides an untagged recipient of a judged message: the
// evidence ladder, then the gaps in the store's history, exemption, mode
// off, flood, grace, the store's failure, and the domain's mode. The mode
// bounds every outcome: in tag mode a message is only marked and in
// quarantine mode only held, whatever the store says.
func (j *Judgement) untaggedVerdict(rj *RcptJudgement) Verdict {
	e := j.e
	r := rj.R
	a := rj.Answer
	if ev := j.evidence(r, a); len(ev) > 0 {
		return Verdict{Action: ActAccept, Result: ResultPass, Reason: ReasonEvidence,
			Comment: "untagged; we sent the original: " + strings.Join(ev, ", "), Evidence: ev}
	}
	if r.Mode == ModeOff {
		return Verdict{Action: ActAccept, Result: ResultNone, Reason: ReasonModeOff, Comment: "checks off for domain"}
	}
	if a.Asked && a.Err == nil && j.inGap(a.Facts.Gaps) {
		return Verdict{Action: ActAccept, Result: ResultNeutral, Reason: ReasonGap,
			Comment: "untagged; the original was sent while the store could not record it"}
	}
	kind := kindWord(j.Kind)
	var v Verdict
	switch {
	case a.Asked && a.Err == nil && (a.Facts.RecipientStrict || a.Facts.ClientStrict):
		v = Verdict{Result: ResultFail, Reason: ReasonFlood, Comment: "untagged " + kind + " during a bounce flood"}
	case a.Err == nil && j.msg.Responses.StrictDomain(r.Domain):
		v = Verdict{Result: ResultFail, Reason: ReasonFlood, Comment: "untagged " + kind + " while the domain is being forged (alert)"}
	case e.InGrace(r.Domain):
		return Verdict{Action: ActAccept, Result: ResultNeutral, Reason: ReasonGrace,
			Comment: "untagged; grace period after signing began"}
	case a.Err != nil:
		v = Verdict{Result: ResultNeutral, Reason: ReasonStoreError, Comment: "untagged; store unavailable"}
		if r.Mode == ModeReject {
			switch e.s.OnStoreError {
			case ErrorAccept:
				v.Action = ActAccept
			case ErrorReject:
				v.Action, v.Result = ActReject, ResultFail
			default:
				v.Action = ActTempfail
			}
			return v
		}
	default:
		v = Verdict{Result: ResultFail, Reason: ReasonBackscatter, Comment: "untagged " + kind + "; no evidence we sent the original"}
	}
	switch r.Mode {
	case ModeTag:
		v.Action = ActAccept
	case ModeQuarantine:
		v.Action = ActQuarantine
	default:
		v.Action = ActReject
	}
	return v
}

// inGap reports whether the returned original was sent during a gap in
// the store's history: its Date falls in one, from gapBefore ahead of it
// (the sender's software dates a message when it writes it, before it is
// sent) to gapAfter past its end (clock skew).
func (j *Judgement) inGap(gaps []evidence.Window) bool {
	rep := j.msg.Report
	if rep == nil || rep.OriginalDate.IsZero() || len(gaps) == 0 {
		return false
	}
	t := rep.OriginalDate
	for _, g := range gaps {
		if !t.Before(g.From.Add(-gapBefore)) && !t.After(g.To.Add(gapAfter)) {
			return true
		}
	}
	return false
}

// The margins of a gap for a returned original's Date. A message is dated
// when its sender's software writes it, so mail sent during a gap can be
// dated well before it began (written, then held in an outbox or a
// queue): gapBefore. Mail written after a gap ended was sent after it and
// recorded, so only a clock running fast dates mail of the gap later than
// its end: gapAfter allows that skew and no more (a wide margin after the
// end would accept backscatter of spam sent just now for that long after
// every restart of the daemon, which ends a downtime gap; make chaos
// showed it with 30 minutes).
const (
	gapBefore = 30 * time.Minute
	gapAfter  = 5 * time.Minute
)

func kindWord(k bounce.Kind) string {
	switch k {
	case "", bounce.KindNotBounce, bounce.KindDSN:
		return "bounce"
	case bounce.KindMDN:
		return "read receipt"
	}
	return string(k)
}

// combine turns per-recipient verdicts into what Postfix can do with one
// message: a temporary failure of any recipient defers the whole message
// (a milter cannot defer one recipient after DATA, and a retry decides
// the others again); a message whose every recipient is refused is
// refused; otherwise the refused recipients are dropped and the rest
// delivered with one verdict header, the worst result among them. Local
// submission is never refused (Postfix would keep it in the queue): at
// worst it is marked.
//
// The verdicts are then rewritten to say what becomes of each recipient,
// so that the log and the metrics never count a refusal that does not
// happen: a dropped recipient is ActDrop, every recipient of a deferred
// message ActTempfail, a refused recipient of local submission ActAccept,
// every recipient of a refused message ActReject.
func (j *Judgement) combine(d Decision) Decision {
	if len(d.Verdicts) == 0 {
		return d
	}
	local := j.msg.Env.Origin.Local
	var accepted, rejected []int
	tempfail, quarantine := false, ""
	for i, rv := range d.Verdicts {
		switch rv.Verdict.Action {
		case ActTempfail:
			if local {
				d.Verdicts[i].Verdict.Action = ActAccept
				d.Verdicts[i].Verdict.Comment = appendComment(rv.Verdict.Comment, "local submission, not deferred")
			}
			tempfail = true
			accepted = append(accepted, i)
		case ActReject:
			if local {
				d.Verdicts[i].Verdict.Action = ActAccept
				d.Verdicts[i].Verdict.Comment = appendComment(rv.Verdict.Comment, "local submission, not refused")
				accepted = append(accepted, i)
				continue
			}
			rejected = append(rejected, i)
		case ActQuarantine:
			quarantine = "bounce-milter: backscatter (" + string(rv.Verdict.Reason) + ")"
			accepted = append(accepted, i)
		default:
			accepted = append(accepted, i)
		}
	}
	all := func(a Action, note string) {
		for i := range d.Verdicts {
			if d.Verdicts[i].Verdict.Action != a {
				d.Verdicts[i].Verdict.Action = a
				d.Verdicts[i].Verdict.Comment = appendComment(d.Verdicts[i].Verdict.Comment, note)
			}
		}
	}
	if tempfail && !local {
		d.Reply = Reply{Code: ReplyTempfail, SMTP: 451, Text: TempfailText}
		d.Strip = nil
		all(ActTempfail, "message deferred")
		return d
	}
	if len(rejected) > 0 && (len(accepted) == 0 || j.msg.NoDrop) {
		d.Reply = Reply{Code: ReplyReject, SMTP: 550, Text: RejectText(d.Verdicts[rejected[0]].Verdict.Reason)}
		d.Strip = nil
		all(ActReject, "message refused")
		return d
	}
	for _, i := range rejected {
		d.Drop = append(d.Drop, d.Verdicts[i].R)
		d.Verdicts[i].Verdict.Action = ActDrop
	}
	worst := d.Verdicts[accepted[0]].Verdict
	for _, i := range accepted[1:] {
		if v := d.Verdicts[i].Verdict; v.Result.rank() > worst.Result.rank() {
			worst = v
		}
	}
	d.Header = worst.Header()
	d.Quarantine = quarantine
	return d
}

func appendComment(c, note string) string {
	if c == "" {
		return note
	}
	return c + "; " + note
}
