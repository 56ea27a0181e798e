package backscatter

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

// Engine makes bounce-milter's decisions from the configuration and the key
// ring. It holds no connection state: the milter and the policy service
// feed it what they saw and act on what it returns, so both decide alike.
type Engine struct {
	cfg        *config.Config
	keys       *KeyRing
	exempt     patterns
	optOut     patterns
	verp       patterns
	bounceFrom map[string]bool
	since      map[string]time.Time
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// NewEngine builds an engine. since gives, per domain, when signing began
// (config's since, or the first start that saw the domain): until since +
// grace, untagged bounces to it are accepted.
func NewEngine(cfg *config.Config, keys *KeyRing, since map[string]time.Time) *Engine {
	e := &Engine{
		cfg:        cfg,
		keys:       keys,
		exempt:     newPatterns(append([]string{"postmaster", "abuse"}, cfg.Inbound.Exempt...)),
		optOut:     newPatterns(cfg.Outbound.OptOut),
		verp:       newPatterns(cfg.Outbound.VERPSenders),
		bounceFrom: map[string]bool{},
		since:      map[string]time.Time{},
		Now:        time.Now,
	}
	for _, s := range cfg.Inbound.BounceSenders {
		e.bounceFrom[strings.ToLower(s)] = true
	}
	for d, t := range since {
		e.since[strings.ToLower(d)] = t
	}
	return e
}

// Config returns the configuration the engine was built from.
func (e *Engine) Config() *config.Config { return e.cfg }

// Keys returns the key ring.
func (e *Engine) Keys() *KeyRing { return e.keys }

// Origin is what the MTA tells about where a message comes from.
type Origin struct {
	AuthUser string     // {auth_authen}
	Daemon   string     // {daemon_name}
	Client   netip.Addr // the SMTP client (invalid when unknown)
	Local    bool       // local submission (sendmail(1), pickup): non_smtpd_milters
}

// OutboundReason says why mail counts as our users' (or "" when it does not).
func (e *Engine) OutboundReason(o Origin) string {
	switch {
	case o.Local:
		return "local submission"
	case o.AuthUser != "":
		return "authenticated"
	}
	for _, d := range e.cfg.Outbound.OriginatingDaemons {
		if d != "" && strings.EqualFold(o.Daemon, d) {
			return "daemon " + d
		}
	}
	if o.Client.IsValid() {
		c := o.Client.Unmap()
		for _, p := range e.cfg.Outbound.TrustedNetworks {
			if p.Contains(c) {
				return "trusted network " + p.String()
			}
		}
	}
	return ""
}

// Signed is the outcome of Sign.
type Signed struct {
	Sender string // the new envelope sender; "" when not signed
	Domain string
	KeyNum int
	Scheme Scheme
	Skip   string // why not signed
}

// Sign returns the signed envelope sender for mail from sender to rcpts, or
// the reason it is left alone.
func (e *Engine) Sign(sender string, rcpts []string) Signed {
	if sender == "" {
		return Signed{Skip: "null sender"}
	}
	tag, err := ParseTag(sender, 0)
	if err != nil {
		return Signed{Skip: "unparsable sender"}
	}
	dom, ours := e.cfg.For(tag.Domain)
	if !ours {
		return Signed{Skip: "not our domain"}
	}
	if dom.Delimiter != '+' {
		if t2, err := ParseTag(sender, dom.Delimiter); err == nil && t2.Tagged() {
			tag = t2
		}
	}
	switch {
	case !dom.Sign:
		return Signed{Skip: "signing off for domain", Domain: dom.Name}
	case tag.Scheme == SchemeSRS:
		return Signed{Skip: "SRS sender", Domain: dom.Name}
	case tag.Tagged():
		return Signed{Skip: "already tagged (" + string(tag.Scheme) + ")", Domain: dom.Name}
	case looksVERP(tag.Local):
		return Signed{Skip: "VERP sender", Domain: dom.Name}
	case e.optOut.match(sender):
		return Signed{Skip: "opted out", Domain: dom.Name}
	}
	k, secret, ok := e.keys.Signer(dom.Name)
	if !ok {
		return Signed{Skip: "no signing key", Domain: dom.Name}
	}
	now := e.Now()
	var out string
	scheme := SchemePRVS
	switch {
	case len(rcpts) == 1 && e.verp.match(sender):
		out, err = SignVERP(sender, rcpts[0], secret, k, now, dom.Lifetime)
		scheme = SchemeVERP
	case dom.Syntax == config.SyntaxSubaddress:
		out, err = SignPRVSSubaddress(sender, dom.Delimiter, secret, k, now, dom.Lifetime)
		scheme = SchemePRVSSub
	default:
		out, err = SignPRVS(sender, secret, k, now, dom.Lifetime)
	}
	if err != nil {
		return Signed{Skip: "cannot sign: " + err.Error(), Domain: dom.Name}
	}
	return Signed{Sender: out, Domain: dom.Name, KeyNum: k, Scheme: scheme}
}

// looksVERP spots a local part that list software already made per
// recipient (owner+user=example.org): its bounces are the list's business,
// and a prvs tag around it would break the list's own parsing.
func looksVERP(local string) bool {
	plus := strings.IndexByte(local, '+')
	return plus > 0 && strings.IndexByte(local[plus:], '=') > 0
}

// IsBounceSender reports whether an envelope sender is a bounce's: null, or
// a configured MAILER-DAEMON-like local part.
func (e *Engine) IsBounceSender(sender string) bool {
	if sender == "" {
		return true
	}
	at := strings.LastIndexByte(sender, '@')
	local := sender
	if at >= 0 {
		local = sender[:at]
	}
	return e.bounceFrom[strings.ToLower(local)]
}

// Recipient is what the engine makes of one envelope recipient.
type Recipient struct {
	Raw      string
	Untagged string // without our tag (the raw address when untagged)
	Domain   string // lower-cased domain
	Ours     bool   // the domain is one of ours
	Mode     config.Mode
	Exempt   bool
	Tag      Tag
	Verified *Verified // set when our tag verified
	Err      *TagError // set when our tag did not verify
}

// Tagged reports whether the recipient carries a tag of ours.
func (r Recipient) Tagged() bool { return r.Tag.Ours() }

// CheckRecipient parses and, when it carries our tag, verifies a recipient.
func (e *Engine) CheckRecipient(rcpt string) Recipient {
	r := Recipient{Raw: rcpt, Untagged: rcpt}
	tag, err := ParseTag(rcpt, 0)
	if err != nil {
		return r
	}
	r.Domain = strings.ToLower(strings.TrimSuffix(tag.Domain, "."))
	dom, ours := e.cfg.For(r.Domain)
	if !ours {
		return r
	}
	r.Ours, r.Mode = true, dom.Mode
	if !tag.Ours() && dom.Delimiter != '+' {
		if t2, err := ParseTag(rcpt, dom.Delimiter); err == nil {
			tag = t2
		}
	}
	r.Tag = tag
	if tag.Ours() {
		r.Untagged = tag.Untagged()
		v, err := VerifyTag(tag, e.keys.Lookup, e.Now(), dom.Lifetime)
		if err != nil {
			te, _ := err.(*TagError)
			if te == nil {
				te = &TagError{Reason: ReasonMalformed, Address: rcpt, Detail: err.Error()}
			}
			r.Err = te
		} else {
			r.Verified = &v
			r.Untagged = v.Untagged
		}
	}
	r.Exempt = e.exempt.match(r.Untagged)
	return r
}

// InGrace reports whether untagged bounces to domain are still accepted
// because signing began too recently for all bounces to carry a tag.
func (e *Engine) InGrace(domain string) bool {
	since, ok := e.since[strings.ToLower(domain)]
	if !ok {
		return false
	}
	return e.Now().Before(since.Add(e.cfg.Grace.Duration))
}

// RejectText is the SMTP reply text for a recipient whose tag failed.
func RejectText(reason Reason) string {
	switch reason {
	case ReasonBadSignature:
		return "5.7.1 Bounce address tag is forged (bad-signature): we did not send the message this bounce is for"
	case ReasonExpired:
		return "5.7.1 Bounce address tag has expired (expired): we did not send the message this bounce is for recently"
	case ReasonUnknownKey:
		return "5.7.1 Bounce address tag names an unknown key (unknown-key): we did not send the message this bounce is for"
	case ReasonReplayed:
		return "5.7.1 Bounce address tag used more often than the message had recipients (replayed)"
	case ReasonBackscatter:
		return "5.7.1 Backscatter: this bounce or auto-reply is for mail we did not send (no-evidence)"
	case ReasonFlood:
		return "5.7.1 Backscatter: too many bounces to this address; untagged bounces refused for now (flood)"
	}
	return fmt.Sprintf("5.7.1 Bounce address tag not valid (%s)", reason)
}

// More reasons, for message-level verdicts.
const (
	ReasonReplayed    Reason = "replayed"
	ReasonBackscatter Reason = "no-evidence"
	ReasonFlood       Reason = "flood"
)

// Result is a verdict header's result word, as in Authentication-Results.
type Result string

// Results.
const (
	ResultPass    Result = "pass"
	ResultFail    Result = "fail"
	ResultNeutral Result = "neutral"
	ResultNone    Result = "none"
)

// Action is what the MTA is told to do with the message.
type Action int

// Actions.
const (
	ActAccept Action = iota
	ActReject
	ActTempfail
	ActQuarantine
	ActDiscardRecipient // drop this recipient, keep the message for others
)

func (a Action) String() string {
	return [...]string{"accept", "reject", "tempfail", "quarantine", "drop-recipient"}[a]
}

// Verdict is a decision with everything needed to act on it and log it.
type Verdict struct {
	Action  Action
	Result  Result
	Reason  Reason // machine-readable reason (metrics, logs)
	Comment string // human-readable, goes in the header's parentheses
	// Evidence that decided, e.g. "store:<id>", "dkim:example.com".
	Evidence []string
}

// Header is the verdict header's value: RESULT (COMMENT).
func (v Verdict) Header() string {
	if v.Comment == "" {
		return string(v.Result)
	}
	return fmt.Sprintf("%s (%s)", v.Result, v.Comment)
}

// TagVerdict is the verdict for a recipient that carries our tag. replayed
// comes from the store (false when it could not be judged).
func TagVerdict(r Recipient, replayed bool) Verdict {
	switch {
	case r.Err != nil && r.Exempt:
		return Verdict{Action: ActAccept, Result: ResultNone, Reason: r.Err.Reason,
			Comment: fmt.Sprintf("exempt recipient; tag %s", r.Err.Reason)}
	case r.Err != nil:
		return Verdict{Action: ActReject, Result: ResultFail, Reason: r.Err.Reason,
			Comment: fmt.Sprintf("%s tag: %s", r.Tag.Scheme, r.Err.Reason)}
	case replayed && !r.Exempt:
		return Verdict{Action: ActReject, Result: ResultFail, Reason: ReasonReplayed,
			Comment: "valid tag used more often than the message had recipients"}
	}
	v := r.Verified
	what := "prvs"
	if v.Scheme == SchemeVERP {
		what = "signed VERP"
	}
	comment := fmt.Sprintf("valid %s tag, key %d", what, v.KeyNum)
	if v.Recipient != "" {
		comment += ", for " + v.Recipient
	}
	return Verdict{Action: ActAccept, Result: ResultPass, Reason: "valid-tag", Comment: comment,
		Evidence: []string{fmt.Sprintf("tag:key%d", v.KeyNum)}}
}

// UntaggedInput is what is known at end of message about an untagged
// recipient of a bounce or auto-reply.
type UntaggedInput struct {
	Recipient Recipient
	Kind      string   // the analysis' kind ("dsn", "autoreply", ...)
	Evidence  []string // from the store, DKIM, Received lines
	Strict    bool     // the recipient or client is in a flood state
	StoreErr  error    // the store could not answer (and no other evidence)
}

// TagKey is how a tagged address is named in the store: the sender the
// milter signed and the recipient a bounce comes back to must name the
// same record, whatever case the address came back in.
func TagKey(address string) string { return strings.ToLower(address) }

// ReplayQuery asks the store about a recipient with a valid tag: its
// replay budget, and (with count) one more bounce against it.
func (r Recipient) ReplayQuery(clientIP string, count bool, now time.Time) cache.InboundQuery {
	return cache.InboundQuery{Tag: TagKey(r.Tag.Raw), Recipient: strings.ToLower(r.Untagged),
		ClientIP: clientIP, Count: count, Now: now}
}

// UntaggedQuery asks the store about an untagged recipient: a record of
// any of the original's ids, and the flood state (counting this message).
func (r Recipient) UntaggedQuery(messageIDs []string, clientIP string, now time.Time) cache.InboundQuery {
	return cache.InboundQuery{MessageIDs: messageIDs, Recipient: strings.ToLower(r.Untagged),
		ClientIP: clientIP, Count: true, Now: now}
}

// AddStoreFacts folds the store's answer to an UntaggedQuery into the
// input: a record of the original is evidence (first on the ladder), a
// flood state makes the decision strict. A store that cannot answer
// matters only when nothing else proves we sent the original.
func (in *UntaggedInput) AddStoreFacts(f cache.InboundFacts, err error) {
	if err != nil {
		if len(in.Evidence) == 0 {
			in.StoreErr = err
		}
		return
	}
	if f.Sent != nil {
		in.Evidence = append([]string{"store:" + f.MatchedMessageID}, in.Evidence...)
	}
	in.Strict = f.RecipientStrict || f.ClientStrict
}

// UntaggedVerdict decides an untagged bounce to one of our recipients: the
// evidence ladder, then exemptions and grace, then the domain's mode.
func (e *Engine) UntaggedVerdict(in UntaggedInput) Verdict {
	r := in.Recipient
	if len(in.Evidence) > 0 {
		return Verdict{Action: ActAccept, Result: ResultPass, Reason: "evidence",
			Comment: "untagged; we sent the original: " + strings.Join(in.Evidence, ", "), Evidence: in.Evidence}
	}
	if r.Exempt {
		return Verdict{Action: ActAccept, Result: ResultNone, Reason: "exempt", Comment: "exempt recipient"}
	}
	if r.Mode == config.ModeOff {
		return Verdict{Action: ActAccept, Result: ResultNone, Reason: "mode-off", Comment: "checks off for domain"}
	}
	if in.Strict {
		return Verdict{Action: ActReject, Result: ResultFail, Reason: ReasonFlood,
			Comment: "untagged bounce during a bounce flood"}
	}
	if e.InGrace(r.Domain) {
		return Verdict{Action: ActAccept, Result: ResultNeutral, Reason: "grace",
			Comment: "untagged; grace period after signing began"}
	}
	if in.StoreErr != nil {
		switch e.cfg.Inbound.OnStoreError {
		case config.ActionAccept:
			return Verdict{Action: ActAccept, Result: ResultNeutral, Reason: "store-error", Comment: "untagged; store unavailable"}
		case config.ActionReject:
			return Verdict{Action: ActReject, Result: ResultFail, Reason: "store-error", Comment: "untagged; store unavailable"}
		default:
			return Verdict{Action: ActTempfail, Result: ResultNeutral, Reason: "store-error", Comment: "untagged; store unavailable"}
		}
	}
	v := Verdict{Result: ResultFail, Reason: ReasonBackscatter, Comment: "untagged " + kindWord(in.Kind) + "; no evidence we sent the original"}
	switch r.Mode {
	case config.ModeTag:
		v.Action = ActAccept
	case config.ModeQuarantine:
		v.Action = ActQuarantine
	default:
		v.Action = ActReject
	}
	return v
}

func kindWord(kind string) string {
	switch kind {
	case "", "not-bounce", "dsn":
		return "bounce"
	}
	return kind
}

// patterns matches addresses against configured lists: "user@domain",
// "@domain", "user@" / bare local part "user", and globs with '*'.
type patterns []string

func newPatterns(list []string) patterns {
	out := make(patterns, 0, len(list))
	for _, p := range list {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (ps patterns) match(address string) bool {
	a := strings.ToLower(address)
	at := strings.LastIndexByte(a, '@')
	local, domain := a, ""
	if at >= 0 {
		local, domain = a[:at], a[at+1:]
	}
	for _, p := range ps {
		switch {
		case strings.ContainsAny(p, "*?["):
			if ok, _ := path.Match(p, a); ok {
				return true
			}
		case strings.HasPrefix(p, "@"):
			if domain == p[1:] {
				return true
			}
		case strings.HasSuffix(p, "@"):
			if local == p[:len(p)-1] {
				return true
			}
		case !strings.Contains(p, "@"):
			if local == p {
				return true
			}
		default:
			if a == p {
				return true
			}
		}
	}
	return false
}
