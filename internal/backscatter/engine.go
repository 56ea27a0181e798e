package backscatter

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"time"
)

// Engine makes bounce-milter's decisions from the settings and the key
// ring. It holds no connection state and does no I/O: the milter and the
// policy service feed it what they saw (and what the store answered) and
// act on what it returns, so both decide alike.
type Engine struct {
	s          Settings
	keys       *KeyRing
	exempt     patterns
	optOut     patterns
	verp       patterns
	pass       patterns
	relays     map[string]bool
	relayIPs   map[netip.Addr]bool
	bounceFrom map[string]bool
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New builds an engine.
func New(s Settings, keys *KeyRing) *Engine {
	if keys == nil {
		keys = NewKeyRing(nil)
	}
	if s.Header == "" {
		s.Header = "X-Bounce-Check"
	}
	if s.OnStoreError == ErrorUnset {
		s.OnStoreError = ErrorTempfail
	}
	doms := make(map[string]Domain, len(s.Domains))
	for name, d := range s.Domains {
		name = normDomain(name)
		d.Name = name
		if d.Lifetime < 1 || d.Lifetime > MaxLifetime {
			d.Lifetime = DefaultLifetime
		}
		if d.Delimiter == 0 {
			d.Delimiter = '+'
		}
		if d.Mode == ModeUnset {
			d.Mode = ModeReject
		}
		if d.Syntax == SyntaxUnset {
			d.Syntax = SyntaxPRVS
		}
		doms[name] = d
	}
	s.Domains = doms
	e := &Engine{
		s:          s,
		keys:       keys,
		exempt:     newPatterns(append([]string{"postmaster", "abuse"}, s.Exempt...)),
		optOut:     newPatterns(s.OptOut),
		verp:       newPatterns(s.VERPSenders),
		pass:       newPatterns(s.PassThrough),
		relays:     map[string]bool{},
		relayIPs:   map[netip.Addr]bool{},
		bounceFrom: map[string]bool{},
		Now:        time.Now,
	}
	for _, r := range s.Relays {
		r = strings.TrimSpace(r)
		if a, err := netip.ParseAddr(strings.Trim(r, "[]")); err == nil {
			e.relayIPs[a.Unmap()] = true
		} else if r != "" {
			e.relays[normDomain(r)] = true
		}
	}
	for _, b := range s.BounceSenders {
		e.bounceFrom[strings.ToLower(b)] = true
	}
	return e
}

func normDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}

// Settings returns the settings the engine was built from (defaults
// applied).
func (e *Engine) Settings() Settings { return e.s }

// Keys returns the key ring.
func (e *Engine) Keys() *KeyRing { return e.keys }

// Domain returns the settings of one of our domains.
func (e *Engine) Domain(name string) (Domain, bool) {
	d, ok := e.s.Domains[normDomain(name)]
	return d, ok
}

// DomainNames lists our domains, sorted.
func (e *Engine) DomainNames() []string {
	out := make([]string, 0, len(e.s.Domains))
	for d := range e.s.Domains {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// MaxRecordTTL is the longest a record of any of our domains must be kept.
func (e *Engine) MaxRecordTTL() time.Duration {
	max := Domain{Lifetime: DefaultLifetime}.RecordTTL()
	for _, d := range e.s.Domains {
		if t := d.RecordTTL(); t > max {
			max = t
		}
	}
	return max
}

// DomainStatus is what runs for one domain, for the start-up log and
// postfix-config: the mode and, during the grace period, when untagged
// bounces start to be judged by it.
type DomainStatus struct {
	Name       string
	Mode       Mode
	Sign       bool
	GraceEnds  time.Time // zero when there is no grace period
	InGraceNow bool
	Lifetime   int
	Syntax     Syntax
	SigningKey int // -1 when the domain has no key
}

// Status describes every domain at time now.
func (e *Engine) Status(now time.Time) []DomainStatus {
	var out []DomainStatus
	for _, name := range e.DomainNames() {
		d := e.s.Domains[name]
		st := DomainStatus{Name: name, Mode: d.Mode, Sign: d.Sign, Lifetime: d.Lifetime, Syntax: d.Syntax, SigningKey: -1}
		if k, _, ok := e.keys.Signer(name); ok {
			st.SigningKey = k
		}
		if !d.Since.IsZero() && e.s.Grace > 0 {
			st.GraceEnds = d.Since.Add(e.s.Grace)
			st.InGraceNow = now.Before(st.GraceEnds)
		}
		out = append(out, st)
	}
	return out
}

// Describe is one line per domain saying what runs, e.g. "example.com:
// mode reject (grace period until 2026-12-09 12:00 UTC: untagged bounces
// accepted until then), signing with key 1".
func (s DomainStatus) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: mode %s", s.Name, s.Mode)
	if s.InGraceNow && s.Mode != ModeOff {
		fmt.Fprintf(&b, " from %s (grace period: untagged bounces without evidence accepted until then)", s.GraceEnds.UTC().Format("2006-01-02 15:04 MST"))
	}
	switch {
	case !s.Sign:
		b.WriteString(", signing off")
	case s.SigningKey < 0:
		b.WriteString(", no signing key")
	default:
		fmt.Fprintf(&b, ", signing with key %d (%s, %d-day tags)", s.SigningKey, s.Syntax, s.Lifetime)
	}
	return b.String()
}

// Origin is what the MTA tells about where a message comes from.
type Origin struct {
	AuthUser string     // {auth_authen}
	Daemon   string     // {daemon_name}
	Client   netip.Addr // the SMTP client (invalid when unknown)
	Local    bool       // local submission (sendmail(1), pickup): non_smtpd_milters
}

// OutboundReason says why mail counts as our users' (or "" when it does
// not). Only signing follows from it: a bounce from one of our own
// networks is judged like any other.
func (e *Engine) OutboundReason(o Origin) string {
	switch {
	case o.Local:
		return "local submission"
	case o.AuthUser != "":
		return "authenticated"
	}
	for _, d := range e.s.OriginatingDaemons {
		if d != "" && strings.EqualFold(o.Daemon, d) {
			return "daemon " + d
		}
	}
	if o.Client.IsValid() {
		c := o.Client.Unmap()
		for _, p := range e.s.TrustedNetworks {
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
	// TTL is how long the record of the message must be kept.
	TTL  time.Duration
	Skip Reason // why not signed
}

// Sign returns the signed envelope sender for mail from sender to rcpts, or
// the reason it is left alone.
//
// The tag is made for the sender in lower case. A relay may fold the case
// of the return path before it bounces (a sendmail canonicalizes the
// domain; some gateways lower-case the whole address), and a tag hashed
// over "Alice@Example.COM" cannot be checked once it comes back as
// "alice@example.com": the genuine bounce would be refused as forged. A
// tag hashed over the lower-case form verifies in any case (VerifyPRVS
// retries in lower case), and it is still Exim's ${prvs} of that form.
// Postfix finds the mailbox whatever the case of the address.
func (e *Engine) Sign(sender string, rcpts []string) Signed {
	if sender == "" {
		return Signed{Skip: ReasonNullSender}
	}
	tag, err := ParseTag(sender, 0)
	if err != nil {
		return Signed{Skip: ReasonUnparsable}
	}
	dom, ours := e.Domain(tag.Domain)
	if !ours {
		return Signed{Skip: ReasonNotOurDomain}
	}
	if dom.Delimiter != '+' {
		if t2, err := ParseTag(sender, dom.Delimiter); err == nil && t2.Tagged() {
			tag = t2
		}
	}
	out := Signed{Domain: dom.Name, TTL: dom.RecordTTL()}
	switch {
	case !dom.Sign:
		out.Skip = ReasonSigningOff
	case tag.Scheme == SchemeSRS:
		out.Skip = ReasonSRS
	case tag.Tagged():
		out.Skip = ReasonAlreadyTagged
	case looksVERP(tag.Local):
		out.Skip = ReasonVERP
	case e.optOut.match(sender):
		out.Skip = ReasonOptedOut
	case e.pass.match(sender):
		out.Skip = ReasonPassThrough
	}
	if out.Skip != "" {
		return out
	}
	k, secret, ok := e.keys.Signer(dom.Name)
	if !ok {
		out.Skip = ReasonNoKey
		return out
	}
	now := e.Now()
	scheme := SchemePRVS
	var signed string
	sender = strings.ToLower(sender)
	switch {
	case len(rcpts) == 1 && e.verp.match(sender):
		signed, err = SignVERP(sender, rcpts[0], secret, k, now, dom.Lifetime)
		scheme = SchemeVERP
	case dom.Syntax == SyntaxSubaddress:
		signed, err = SignPRVSSubaddress(sender, dom.Delimiter, secret, k, now, dom.Lifetime)
		scheme = SchemePRVSSub
	default:
		signed, err = SignPRVS(sender, secret, k, now, dom.Lifetime)
	}
	if err != nil {
		out.Skip = ReasonSignError
		return out
	}
	out.Sender, out.KeyNum, out.Scheme = signed, k, scheme
	return out
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
	Raw    string // as received
	Stored string // as Postfix stores it (what DeleteRecipient must name)
	// Address is the address decided about: where Postfix delivers
	// (source route dropped, bang path and percent hack applied), tag
	// included.
	Address  string
	Untagged string // Address without our tag
	Domain   string // lower-cased domain of Address
	Ours     bool   // the domain is one of ours
	// Unparsable is set for an address of ours that cannot be read: it is
	// refused rather than waved through.
	Unparsable  bool
	PassThrough bool // SRS or list bounce address: left alone
	Exempt      bool
	Mode        Mode
	Lifetime    int
	Delimiter   byte
	Tag         Tag
	Verified    *Verified // set when our tag verified
	Err         *TagError // set when our tag did not verify
}

// Tagged reports whether the recipient carries a tag of ours.
func (r Recipient) Tagged() bool { return r.Tag.Ours() }

// FloodKey is the address flood control counts under: lower case, without
// a sub-address extension, so that "user+1@", "user+2@"... count as one.
func (r Recipient) FloodKey() string {
	a := strings.ToLower(r.Untagged)
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return a
	}
	if i := strings.IndexByte(a[:at], r.Delimiter); r.Delimiter != 0 && i > 0 {
		return a[:i] + a[at:]
	}
	return a
}

// ours reports whether domain is one of ours.
func (e *Engine) ours(domain string) bool {
	_, ok := e.s.Domains[normDomain(domain)]
	return ok
}

// CheckRecipient parses and, when it carries our tag, verifies a recipient.
func (e *Engine) CheckRecipient(rcpt string) Recipient { return e.CheckRecipientResolved(rcpt, "") }

// CheckRecipientResolved is CheckRecipient with the address the MTA itself
// resolved rcpt to (Postfix's {rcpt_addr} milter macro: source route
// dropped, bang path, percent hack and quoted routes applied, a bare local
// part qualified with $myorigin), "" when unknown. The MTA's reading comes
// first; the engine's own reading of rcpt (address.go) still applies, so
// that an address of ours is decided however it is written.
func (e *Engine) CheckRecipientResolved(rcpt, resolved string) Recipient {
	a, ok := interpretAddress(rcpt)
	r := Recipient{Raw: a.Raw, Stored: a.Stored, Address: a.Stored, Untagged: a.Stored}
	var cands []string
	if res := strings.TrimSpace(resolved); res != "" {
		if len(res) >= 2 && res[0] == '<' && res[len(res)-1] == '>' {
			res = res[1 : len(res)-1]
		}
		if res != "" {
			cands = append(cands, res)
		}
	}
	cands = append(cands, a.Routes...)
	var tag Tag
	var dom Domain
	found := false
	for _, c := range cands {
		t, err := ParseTag(c, 0)
		if err != nil {
			// An address of our domain that we cannot read (a space or a
			// control character in the local part, over 1024 bytes) is
			// refused, not waved through as "not ours".
			if at := strings.LastIndexByte(c, '@'); at >= 0 && e.ours(c[at+1:]) || len(c) > maxAddressLength && mentionsDomain(c, e.ours) {
				r.Unparsable, r.Ours, r.Address = true, true, c
				return r
			}
			continue
		}
		if d, ok := e.Domain(t.Domain); ok {
			tag, dom, found = t, d, true
			r.Address = c
			break
		}
	}
	if !found && !ok {
		// Not an address Postfix can route as written, with one of our
		// domains in it: refused rather than guessed at.
		r.Unparsable = mentionsDomain(a.Raw, e.ours)
		r.Ours = r.Unparsable
		return r
	}
	if !found {
		return r
	}
	r.Untagged = r.Address
	r.Domain, r.Ours, r.Mode, r.Lifetime, r.Delimiter = dom.Name, true, dom.Mode, dom.Lifetime, dom.Delimiter
	if !tag.Ours() && dom.Delimiter != '+' {
		if t2, err := ParseTag(r.Address, dom.Delimiter); err == nil {
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
	r.PassThrough = !tag.Ours() && (tag.Scheme == SchemeSRS || e.pass.match(r.Untagged))
	return r
}

// InGrace reports whether untagged bounces to domain are still accepted
// because signing began too recently for all bounces to carry a tag.
func (e *Engine) InGrace(domain string) bool {
	d, ok := e.Domain(domain)
	if !ok || d.Since.IsZero() {
		return false
	}
	return e.Now().Before(d.Since.Add(e.s.Grace))
}

// patterns matches addresses against configured lists: "user@domain",
// "@domain", "user@" / bare local part "user", and globs with '*' (a glob
// without '@' matches the local part).
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
			subject := a
			if !strings.Contains(p, "@") {
				subject = local
			}
			if ok, _ := path.Match(p, subject); ok {
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
