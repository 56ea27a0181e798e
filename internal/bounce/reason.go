package bounce

import (
	"slices"
	"strings"
	"sync"
)

// Reason is why delivery to one recipient failed (or was delayed), in the
// taxonomy of sisimai (https://libsisimai.org/en/reason/), the de-facto
// vocabulary of bounce processors. The names and meanings are sisimai 4's;
// see the package documentation for where our rules differ.
type Reason string

// The reasons. Each comment says what the remote side refused or what went
// wrong; Hard in Recipient says whether retrying the address is pointless.
const (
	ReasonUndefined       Reason = "undefined"       // a failure with nothing to tell why
	ReasonOnHold          Reason = "onhold"          // a diagnostic too vague to classify
	ReasonUserUnknown     Reason = "userunknown"     // the mailbox does not exist (5.1.1)
	ReasonHostUnknown     Reason = "hostunknown"     // the domain does not exist or cannot be routed (5.1.2)
	ReasonHasMoved        Reason = "hasmoved"        // the mailbox moved, no forwarding (5.1.6)
	ReasonMailboxFull     Reason = "mailboxfull"     // over quota (x.2.2)
	ReasonSuspend         Reason = "suspend"         // the mailbox exists but is disabled or suspended
	ReasonFiltered        Reason = "filtered"        // refused by the recipient's own filter or mailbox setting (5.2.0, 5.2.1)
	ReasonRejected        Reason = "rejected"        // the envelope sender was refused (5.1.7, 5.1.8, at MAIL FROM)
	ReasonBlocked         Reason = "blocked"         // the sending host was refused: block lists, reputation, rDNS, HELO
	ReasonSpamDetected    Reason = "spamdetected"    // the content was judged spam
	ReasonVirusDetected   Reason = "virusdetected"   // the content carried malware
	ReasonPolicyViolation Reason = "policyviolation" // a site policy (DMARC, attachment types, content rules)
	ReasonSecurityError   Reason = "securityerror"   // authentication, TLS, SPF/DKIM or other security status (5.7.x)
	ReasonNoRelaying      Reason = "norelaying"      // relaying denied
	ReasonMesgTooBig      Reason = "mesgtoobig"      // the message is too big for the system (5.3.4)
	ReasonExceedLimit     Reason = "exceedlimit"     // the message exceeds an administrative limit (5.2.3)
	ReasonTooManyConn     Reason = "toomanyconn"     // connection or rate limits, too many recipients
	ReasonSystemError     Reason = "systemerror"     // an error of the remote system (configuration, loops, directory)
	ReasonSystemFull      Reason = "systemfull"      // the remote system's disk or spool is full (x.3.1)
	ReasonNetworkError    Reason = "networkerror"    // DNS or network failure on the way
	ReasonNotAccept       Reason = "notaccept"       // the destination accepts no mail at all (null MX, 5.3.2)
	ReasonExpired         Reason = "expired"         // delivery time expired in the queue; also delays
	ReasonContentError    Reason = "contenterror"    // the header or MIME structure was refused (5.6.x)
	ReasonMailerError     Reason = "mailererror"     // a local delivery program failed (X-Unix, pipes)
	ReasonSyntaxError     Reason = "syntaxerror"     // the SMTP dialogue failed (5xx command syntax)
	ReasonDelivered       Reason = "delivered"       // not a failure: a success notification
	ReasonVacation        Reason = "vacation"        // not a failure: an auto-reply (Kind autoreply)
	ReasonFeedback        Reason = "feedback"        // not a failure: an abuse report (Kind arf)
)

// Reasons lists every reason, failures first.
func Reasons() []Reason {
	return []Reason{ReasonUserUnknown, ReasonHostUnknown, ReasonHasMoved, ReasonNotAccept,
		ReasonMailboxFull, ReasonSuspend, ReasonFiltered, ReasonRejected, ReasonBlocked,
		ReasonSpamDetected, ReasonVirusDetected, ReasonPolicyViolation, ReasonSecurityError,
		ReasonNoRelaying, ReasonMesgTooBig, ReasonExceedLimit, ReasonTooManyConn, ReasonSystemError,
		ReasonSystemFull, ReasonNetworkError, ReasonExpired, ReasonContentError, ReasonMailerError,
		ReasonSyntaxError, ReasonOnHold, ReasonUndefined, ReasonDelivered, ReasonVacation, ReasonFeedback}
}

// hardReason reports the reasons that say the address itself is dead, so
// that mailing it again is pointless: the mailbox or domain does not exist,
// moved, or the domain accepts no mail. Everything else depends on the
// sender, the content or the moment.
func hardReason(r Reason) bool {
	switch r {
	case ReasonUserUnknown, ReasonHostUnknown, ReasonHasMoved, ReasonNotAccept:
		return true
	}
	return false
}

// EventReason is the reason a bounce event of this kind carries when the
// kind itself is the reason: vacation for an auto-reply, feedback for an
// abuse report. Other kinds carry a reason per recipient.
func (k Kind) EventReason() Reason {
	switch k {
	case KindAutoreply:
		return ReasonVacation
	case KindARF:
		return ReasonFeedback
	}
	return ""
}

// reasonInput is what the classification of one recipient looks at.
type reasonInput struct {
	action   string // lower case, as in Recipient
	status   string // enhanced status code, "" when unknown
	diag     string // the diagnostic text
	diagType string // the Diagnostic-Code type ("smtp", "x-unix", ...), lower case
	command  string // the SMTP command the remote server refused (CONN, HELO, MAIL, RCPT, DATA), "" when unknown
	context  string // the report's prose, for recipients without a usable diagnostic
	// prose, when set, is the report's prose shared by its recipients,
	// read on demand (most recipients are classified without it) and
	// once.
	prose *proseReason
}

// proseReason is what the report's prose says, computed once for all the
// recipients that need it.
type proseReason struct {
	text   string
	done   bool
	reason Reason // from precise wording only
	status string
}

func (p *proseReason) get() (Reason, string) {
	if !p.done {
		p.done = true
		if r, strong := textReasonIn(p.text, proseReasonScan); strong {
			p.reason = r
		}
		p.status = failureStatus(p.text) // not "wxPython 2.3.0" in a quoted subject
	}
	return p.reason, p.status
}

// classifyRecipient sets Reason and Hard on r.
func classifyRecipient(r *Recipient, in reasonInput) {
	r.Reason = reasonFor(in)
	r.Hard = hardFor(r.Reason, in)
}

// hardFor decides hard or soft: a hard reason is soft when the failure is
// temporary (a 4.x.x status or 4xx reply, or a delay).
func hardFor(reason Reason, in reasonInput) bool {
	if !hardReason(reason) || strings.HasPrefix(in.action, "delayed") || successAction(in.action) {
		return false
	}
	switch statusClass(in.status) {
	case '4', '2':
		return false
	case '5':
		return true
	}
	if c := replyCode(in.diag); c != "" {
		return c[0] == '5'
	}
	return true
}

// successAction reports the RFC 3464 actions that are not failures, and
// the non-standard "deliverable".
func successAction(a string) bool {
	return strings.HasPrefix(a, "delivered") || strings.HasPrefix(a, "relayed") || strings.HasPrefix(a, "expanded") ||
		strings.HasPrefix(a, "deliverable")
}

func statusClass(s string) byte {
	if len(s) >= 2 && s[1] == '.' {
		return s[0]
	}
	return 0
}

// reasonFor derives the reason from, in order: success, the diagnostic's
// wording and the enhanced status code (combine), the SMTP reply code, the
// SMTP command that was refused, the report's prose, the action.
func reasonFor(in reasonInput) Reason {
	switch {
	case successAction(in.action):
		return ReasonDelivered
	case statusClass(in.status) == '2' && !strings.HasPrefix(in.action, "failed") && !strings.HasPrefix(in.action, "delayed"):
		return ReasonDelivered
	}
	failed := in.action != "" // a failed or delayed recipient: a success code in its text is noise
	status := in.status
	if statusClass(status) == '2' && failed {
		status = ""
	}
	if strings.HasSuffix(status, ".4.7") {
		// "Delivery time expired" is how the queue ended, not why: the
		// remote server's own code, when the diagnostic has one, says why.
		if s := bestStatus(in.diag); s != "" && s != status && statusClass(s) != '2' {
			status = s
		}
	}
	if !specificStatus(status) {
		// "Status: 5.0.0" says little; the diagnostic often holds the
		// code the remote server really gave.
		if s := bestStatus(in.diag); statusClass(s) != '2' && (specificStatus(s) ||
			(status == "" || strings.HasSuffix(status, ".0.0")) && s != "" && !strings.HasSuffix(s, ".0.0")) {
			status = s
		} else if status == "" && statusClass(s) != '2' {
			status = s
		}
	}
	text, strong := textReason(in.diag)
	st := statusReason(status)
	if in.diagType == "x-unix" || in.diagType == "x-local" {
		// A local delivery program's exit: its own words if they say
		// something precise, else the status, else a mailer error.
		switch {
		case strong && text != ReasonSystemError:
			return text
		case st != "":
			return st
		}
		return ReasonMailerError
	}
	r := combine(text, strong, st, status)
	precise := strong && r == text || specificStatus(status)
	if (r == ReasonHostUnknown || r == ReasonNotAccept && text == r) && statusClass(status) == '4' {
		// A temporary failure to resolve the domain is a DNS problem on
		// the way, not a verdict on the domain.
		r = ReasonNetworkError
	}
	if r == ReasonUserUnknown && !strings.HasPrefix(status, "5.1.") && in.command != "RCPT" && (st == ReasonFiltered || in.command == "DATA") {
		// "User unknown" with a mailbox-status code (5.2.x) and not in
		// reply to RCPT TO, or said after DATA when the recipient had been
		// accepted at RCPT TO, is the recipient's filter refusing this
		// sender (as Japanese mobile carriers do), not a missing mailbox.
		r = ReasonFiltered
	}
	if r == "" {
		r = replyReason(in.diag)
	}
	switch in.command {
	case "MAIL":
		// Refused at MAIL FROM: no recipient was named yet, so an unknown
		// user or domain is the sender's, and a vague refusal too.
		if r == "" || r == ReasonOnHold || !specificStatus(status) && (r == ReasonUserUnknown || r == ReasonHostUnknown ||
			r == ReasonFiltered) || !precise && (r == ReasonSecurityError || r == ReasonSystemError) {
			r = ReasonRejected
		}
	case "CONN", "HELO":
		// Refused before any address was given: the sending host. No
		// recipient or sender can be at fault yet.
		switch r {
		case "", ReasonOnHold, ReasonSecurityError, ReasonSystemError, ReasonRejected, ReasonUserUnknown,
			ReasonFiltered, ReasonSyntaxError:
			r = ReasonBlocked
		}
	}
	if r == "" && (in.context != "" || in.prose != nil) {
		// The recipient's own text said nothing: the report's prose (an
		// Exchange or Notes paragraph, a provider's explanation) often
		// does, in precise words; stock words in prose prove nothing.
		p := in.prose
		if p == nil {
			p = &proseReason{text: in.context}
		}
		cr, cst := p.get()
		r = cr
		if r == "" && st == "" {
			r = statusReason(cst)
		}
	}
	if r == "" && (strings.HasPrefix(in.action, "delayed") || strings.HasPrefix(in.action, "expired")) {
		// A delay without a stated cause is a message waiting in a queue.
		return ReasonExpired
	}
	if r == "" {
		if strings.TrimSpace(in.diag) != "" {
			return ReasonOnHold
		}
		return ReasonUndefined
	}
	return r
}

// bestStatus returns the most telling enhanced status code in a text that
// may hold several (a transcript, a reply and the MTA's translation of it):
// the first whose detail names a cause, else the first that is not x.0.0
// or a success, else the first.
func bestStatus(text string) string {
	first, fallback := "", ""
	for n := 0; n < 8; n++ {
		s := findStatus(text)
		if s == "" {
			break
		}
		if first == "" {
			first = s
		}
		if specificStatus(s) {
			return s
		}
		if fallback == "" && !strings.HasSuffix(s, ".0.0") && statusClass(s) != '2' {
			fallback = s
		}
		i := strings.Index(text, s)
		text = text[i+len(s):]
	}
	if fallback != "" {
		return fallback
	}
	return first
}

// smtpCommand finds which SMTP command a diagnostic or transcript says the
// remote server refused: the last command named, as transcripts end with
// the one that failed. "" when none is named.
func smtpCommand(text string) string {
	if text == "" {
		return ""
	}
	last := commandPhrases().lastMatch(clip(text, 4096))
	for i, c := range smtpCommands {
		if last&(1<<uint(i)) != 0 {
			return c
		}
	}
	return ""
}

// smtpCommands are the commands smtpCommandMarkers name, in the order of
// the matcher's groups.
var smtpCommands = []string{"RCPT", "DATA", "MAIL", "HELO", "CONN"}

var (
	commandOnce    sync.Once
	commandMatcher *phraseMatcher
)

// commandPhrases returns the matcher for smtpCommandMarkers, one group
// per command of smtpCommands.
func commandPhrases() *phraseMatcher {
	commandOnce.Do(func() {
		lists := make([][]string, len(smtpCommands))
		for _, m := range smtpCommandMarkers {
			i := slices.Index(smtpCommands, m.command)
			lists[i] = append(lists[i], m.marker)
		}
		commandMatcher = newMatcher(lists)
	})
	return commandMatcher
}

// smtpCommandMarkers are how MTAs name the refused command: Postfix "(in
// reply to RCPT TO command)", Exim "after RCPT TO:", Sendmail transcripts
// ">>> RCPT To:", qmail "Connected to ... but sender was rejected".
var smtpCommandMarkers = []struct{ marker, command string }{
	{"in reply to rcpt to", "RCPT"}, {"after rcpt to", "RCPT"}, {">>> rcpt to", "RCPT"},
	{"after rcpt command", "RCPT"}, {"[rcpt_to]", "RCPT"}, {"does not like recipient", "RCPT"},
	{"in reply to end of data", "DATA"}, {"after end of data", "DATA"}, {">>> data", "DATA"},
	{"in reply to data command", "DATA"}, {"after data", "DATA"}, {"during data", "DATA"},
	{"[data]", "DATA"}, {"failed after i sent the message", "DATA"},
	{"in reply to mail from", "MAIL"}, {"after mail from", "MAIL"}, {">>> mail from", "MAIL"},
	{"but sender was rejected", "MAIL"}, {"[mail_from]", "MAIL"}, {"after mail command", "MAIL"},
	{"in reply to helo", "HELO"}, {"in reply to ehlo", "HELO"}, {"after helo", "HELO"}, {"after ehlo", "HELO"},
	{">>> helo", "HELO"}, {">>> ehlo", "HELO"}, {"my name was rejected", "HELO"},
	{"after initial connection", "CONN"}, {"refused to talk to me", "CONN"}, {"while connected to", "CONN"},
	{"greeting", "CONN"}, {"in reply to initial", "CONN"},
}

// combine picks between the reason the text gives and the one the status
// code gives. A status whose detail names the cause precisely (5.1.1,
// 5.2.2, 5.3.4...) wins over wording, except wording that names what the
// remote filter saw (spam, a virus, a block list, a policy, relaying) next
// to an addressing or mailbox code: MTAs reuse 5.1.1 or 5.2.x for those
// refusals, never the other way round. A
// generic status (5.7.1, 5.1.0...) gives way to precise wording, never to
// a stock word.
func combine(text Reason, strong bool, st Reason, status string) Reason {
	if text == "" {
		return st
	}
	if st == "" {
		return text
	}
	if !strong {
		return st // a stock word never overrides what the status code says
	}
	if !specificStatus(status) {
		return text
	}
	if strings.HasPrefix(status[1:], ".6.") && (text == ReasonSpamDetected || text == ReasonVirusDetected || text == ReasonPolicyViolation) {
		return text // content codes are reused for content verdicts
	}
	if !strings.HasPrefix(status[1:], ".1.") && !strings.HasPrefix(status[1:], ".2.") {
		return st // 5.3.4, 5.6.x...: the code names the cause
	}
	switch text {
	case ReasonSpamDetected, ReasonVirusDetected, ReasonBlocked, ReasonPolicyViolation, ReasonNoRelaying,
		ReasonSuspend, ReasonMailboxFull, ReasonTooManyConn:
		return text
	case ReasonMesgTooBig:
		if strings.HasPrefix(status[1:], ".1.") {
			return text // 5.2.3 says "too big" itself; 5.1.1 does not
		}
	}
	return st
}

// specificStatus reports codes whose detail names one cause.
func specificStatus(s string) bool {
	switch s {
	case "5.1.1", "5.1.2", "5.1.3", "5.1.6", "4.1.1", "4.1.2", "4.1.6",
		"5.2.2", "4.2.2", "5.2.3", "4.2.3", "5.3.1", "4.3.1", "5.3.4", "4.3.4",
		"5.1.7", "5.1.8", "4.1.7", "4.1.8", "5.7.13", "5.7.17", "5.7.18", "5.7.27":
		return true
	}
	return strings.HasPrefix(s, "5.6.") || strings.HasPrefix(s, "4.6.")
}

// statusReason maps an enhanced status code (RFC 3463, RFC 5248's
// registry) to a reason; "" for codes that do not name a cause.
func statusReason(s string) Reason {
	if len(s) < 5 || s[1] != '.' {
		return ""
	}
	class := s[0]
	if class == '2' {
		return ReasonDelivered
	}
	if class != '4' && class != '5' {
		return ""
	}
	sub, detail, ok := strings.Cut(s[2:], ".")
	if !ok {
		return ""
	}
	temp := class == '4'
	if temp && detail == "0" {
		return "" // "other temporary problem" of any kind
	}
	switch sub {
	case "1": // addressing
		switch detail {
		case "0", "1", "3":
			return ReasonUserUnknown
		case "2":
			return ReasonHostUnknown
		case "4":
			return ReasonFiltered
		case "6":
			return ReasonHasMoved
		case "7", "8":
			return ReasonRejected
		case "9":
			return ReasonSystemError
		case "10":
			return ReasonNotAccept
		}
	case "2": // mailbox
		switch detail {
		case "0", "4":
			return ReasonFiltered
		case "1":
			if temp {
				return ReasonSuspend
			}
			return ReasonFiltered
		case "2":
			return ReasonMailboxFull
		case "3":
			return ReasonExceedLimit
		}
	case "3": // mail system
		switch detail {
		case "0", "3", "5":
			return ReasonSystemError
		case "1":
			return ReasonSystemFull
		case "2":
			return ReasonNotAccept
		case "4":
			return ReasonMesgTooBig
		}
		return ReasonSystemError
	case "4": // network and routing
		switch detail {
		case "1":
			if temp {
				return ReasonExpired
			}
			return "" // 5.4.1: Exchange Online's "recipient address rejected", among others
		case "3":
			return ReasonSystemError
		case "4":
			if temp {
				return ReasonNetworkError
			}
			return ReasonHostUnknown
		case "5":
			return ReasonSystemFull
		case "7":
			return ReasonExpired
		}
		return ReasonNetworkError
	case "5": // protocol
		switch detail {
		case "0":
			return "" // Sendmail's catch-all "5.5.0"
		case "3":
			return ReasonTooManyConn
		case "4", "5":
			return ReasonSystemError
		case "6":
			return ReasonSecurityError
		}
		return ReasonSyntaxError
	case "6": // content
		return ReasonContentError
	case "7": // security and policy
		switch detail {
		case "1", "2":
			if temp {
				return ReasonBlocked
			}
			return ReasonSecurityError
		case "13":
			return ReasonSuspend
		case "16":
			return ReasonMesgTooBig
		case "17", "18":
			return ReasonHasMoved
		case "25":
			return ReasonBlocked
		case "27":
			return ReasonNotAccept
		}
		return ReasonSecurityError
	}
	return ""
}

// replyReason derives a reason from the basic SMTP reply code of a
// diagnostic when nothing else did (RFC 5321 section 4.2.3).
func replyReason(diag string) Reason {
	switch replyCode(diag) {
	case "552":
		return ReasonMailboxFull // "exceeded storage allocation"
	case "521", "556":
		return ReasonNotAccept // RFC 7504: the host accepts no mail
	case "500", "501", "502", "503", "504":
		return ReasonSyntaxError
	case "551":
		return ReasonHasMoved // "user not local; please try <forward-path>"
	}
	return ""
}

// replyCode returns the first SMTP reply code (2xx/4xx/5xx followed by a
// space, dash or end) near the start of a diagnostic, "" when none.
func replyCode(diag string) string {
	d := clip(diag, 200)
	for i := 0; i+3 <= len(d); i++ {
		c := d[i]
		if c != '2' && c != '4' && c != '5' {
			continue
		}
		if i > 0 && (d[i-1] >= '0' && d[i-1] <= '9' || d[i-1] == '.' || d[i-1] == '#' || d[i-1] == '-') {
			continue
		}
		if d[i+1] < '0' || d[i+1] > '5' || d[i+2] < '0' || d[i+2] > '9' {
			continue
		}
		if i+3 < len(d) && d[i+3] != ' ' && d[i+3] != '-' && d[i+3] != '\t' {
			continue
		}
		return d[i : i+3]
	}
	return ""
}

// reasonScan bounds the text the reason rules read: an MTA states the
// cause within its first lines.
const reasonScan = 1024

// textReason classifies a diagnostic by its wording; "" when no phrase
// matched. The first rule of textRules with a phrase in the text wins;
// strong says it was one of the strong tier.
func textReason(text string) (r Reason, strong bool) {
	return textReasonIn(text, reasonScan)
}

// proseReasonScan bounds the report's prose read for a reason: prose may
// open with paragraphs in other languages.
const proseReasonScan = 4096

// textReasonIn is textReason on the first n bytes of text.
func textReasonIn(text string, n int) (r Reason, strong bool) {
	if text == "" {
		return "", false
	}
	found := matchWords(reasonPhrases(), clip(text, n))
	if found == 0 {
		return "", false
	}
	for i, rule := range textRules {
		if found&(1<<uint(i)) != 0 {
			return rule.reason, i < strongRules
		}
	}
	return "", false
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isStatusToken reports an enhanced status code standing alone: "5.1.1",
// "4.7.650".
func isStatusToken(t string) bool {
	if len(t) < 5 || t[1] != '.' || (t[0] != '2' && t[0] != '4' && t[0] != '5') {
		return false
	}
	dots := 0
	for i := 2; i < len(t); i++ {
		switch c := t[i]; {
		case c == '.':
			if t[i-1] == '.' {
				return false
			}
			dots++
		case c < '0' || c > '9':
			return false
		}
	}
	return dots == 1 && t[len(t)-1] != '.'
}

// matchWords runs the automaton over a diagnostic prepared for the phrase
// rules, without building the prepared text: whitespace collapsed (folded
// lines break phrases), the reply and status codes that multi-line SMTP
// replies repeat on every line ("550-5.7.1 ... 550-5.7.1 ...") dropped, so
// that a phrase split over two reply lines still matches, and addresses
// dropped (links stay: a block list's URL names it). The kept words are
// fed with one space between them.
func matchWords(m *phraseMatcher, s string) uint64 {
	var found uint64
	nc := int32(m.nclass)
	state := int32(0)
	var high byte
	feed := func(c byte) {
		high |= c
		t := m.delta[state*nc+int32(m.class[c])]
		state = int32(t &^ outputFlag)
		if t&outputFlag != 0 {
			found |= m.groups[state]
		}
	}
	first := true
	for i := 0; i < len(s); {
		for i < len(s) && asciiSpace(s[i]) {
			i++
		}
		j := i
		for j < len(s) && !asciiSpace(s[j]) {
			j++
		}
		tok := s[i:j]
		i = j
		if tok == "" || isReplyToken(tok) || isStatusToken(tok) {
			continue
		}
		if len(tok) > 4 && isReplyToken(tok[:3]) && tok[3] == '-' {
			if tok = tok[4:]; isStatusToken(tok) {
				continue
			}
		}
		if strings.IndexByte(tok, '@') >= 0 && !strings.Contains(tok, "://") {
			continue
		}
		if !first {
			feed(' ')
		}
		first = false
		for k := 0; k < len(tok); k++ {
			feed(tok[k])
		}
	}
	if high >= 0x80 && len(m.wide) > 0 {
		found |= m.wideBits(s)
	}
	return found
}

// isReplyToken reports a bare SMTP reply code ("550", "550-", "421").
func isReplyToken(t string) bool {
	t = strings.TrimSuffix(t, "-")
	return len(t) == 3 && (t[0] == '2' || t[0] == '4' || t[0] == '5') && t[1] >= '0' && t[1] <= '5' && t[2] >= '0' && t[2] <= '9'
}

// reasonRule is one group of phrases (lower case, matched as substrings
// with ASCII case folded) that name one reason.
type reasonRule struct {
	reason  Reason
	phrases []string
}

// strongTextRules and weakTextRules are the diagnostic wordings in priority
// order: the first rule with a phrase in the text gives the reason. The
// strong rules come first:
// wording that names one cause. Their order encodes which cause is the
// precise one when a text names several: a refusal that names a block list
// and "spam" is a block-list refusal, "mailbox unavailable: over quota" is
// a full mailbox, "sender address rejected: domain not found" is about the
// sender. The weak rules follow: single words and stock phrases ("blocked",
// "not found", "policy") that only decide when nothing precise was said.
//
// The phrases are the wording of the major MTAs and providers (Postfix,
// Exim, Sendmail, qmail, Courier, Exchange and Outlook.com, Gmail, Yahoo,
// Lotus Domino, GroupWise, Amazon SES and others), written as fragments
// general enough to catch the variants of one wording.
var strongTextRules = []reasonRule{
	{ReasonVirusDetected, []string{
		"virus", "malware", "infected", "trojan", "worm detected", "ransomware",
	}},
	{ReasonNoRelaying, []string{
		"relay access denied", "relaying denied", "relay denied", "relay not permitted", "relaying not permitted",
		"relaying not allowed", "relay not allowed", "unable to relay", "not permitted to relay", "relay prohibited",
		"relaying prohibited", "we do not relay", "we don't relay", "no relaying", "relaying mail to",
		"relay operation rejected", "not a gateway", "relaying is prohibited", "relay attempt",
		"relay is not allowed", "cannot relay", "can't relay", "not authorized to relay", "relay rejected",
		"isn't allowed to relay", "not allowed to relay", "relaying disallowed", "relay access is denied",
		"not configured to relay", "relaying to <", "relay through this server", "as a relay", "rcpthosts",
		"insecure mail relay",
	}},
	{ReasonMailboxFull, []string{
		"mailbox full", "mailbox is full", "mailbox is currently full", "mail box full", "mailbox has exceeded",
		"mailbox exceeds", "mailbox would exceed", "mailbox size limit", "mailbox quota", "mailbox over quota",
		"over quota", "overquota", "over the quota", "over its quota", "quota exceeded", "quota exceed",
		"exceeded quota", "exceeds quota", "exceed quota", "exceeded its quota", "exceeded his quota",
		"exceeded her quota", "exceeded their quota", "exceeding quota", "exceeded the quota", "quota full",
		"quota violation", "disk quota", "storage quota", "exceeded storage", "exceeds storage",
		"exceeded the storage", "exceed the storage", "out of storage", "storage allocation",
		"mailfolder is full", "mail folder full", "mail folder is full", "inbox is full", "inbox full",
		"account is full", "mailbox is over", "user is over", "is over its", "too much mail", "full mailbox",
		"no space left in mailbox", "maildir over", "mailbox size exceeded", "recipient's mailbox is full",
		"recipients mailbox is full", "mailbox exceeded", "exceeded the maximum mailbox", "user has exceeded",
		"boîte pleine", "postfach voll", "casella piena", "buzón lleno", "quotum", "mailbox capacity",
		"insufficient storage for", "quota for the mailbox", "over storage", "容量超過", "容量オーバー",
		"too many messages on the server", "too many messages in", "zuviele mails", "exceeding their quota",
		"exceeding its quota", "exceeding the quota", "exceeding his quota", "exceeding her quota",
	}},
	{ReasonMesgTooBig, []string{
		"message too large", "message too big", "message is too large", "message is too big",
		"message size exceeds", "message size limit", "message size exceeded", "exceeds maximum message size",
		"exceeds the maximum message size", "exceeded maximum message size", "maximum message size",
		"max message size", "message length exceeds", "email is too large", "message was too large",
		"exceeded maximum inbound message size", "message file too big", "size of your message",
		"exceeds size limit", "exceeds the size limit", "size limit exceeded", "mail size limit",
		"message exceeds the maximum", "message exceeds maximum", "too large for", "too big for",
		"size limit", "incoming message size",
	}},
	{ReasonExceedLimit, []string{
		"administrative limit", "exceeds local limit",
	}},
	{ReasonHasMoved, []string{
		"has moved", "no longer on server", "no longer on this server", "address has changed",
		"changed its address", "changed his address", "changed her address", "is no longer with",
		"no longer works at", "no longer employed", "moved to a new", "mailbox has moved",
		"user not local; please try",
	}},
	{ReasonSuspend, []string{
		"account suspended", "account has been suspended", "account is suspended", "mailbox suspended",
		"mailbox has been suspended", "mailbox is suspended", "user suspended", "suspended account",
		"recipient suspended", "address suspended", "has been suspended", "currently suspended", "account disabled", "account is disabled", "account has been disabled",
		"account has been deactivated", "account is deactivated", "deactivated", "mailbox disabled",
		"mailbox is disabled", "mailbox has been disabled", "user disabled", "disabled account",
		"account is locked", "account has been locked", "account locked", "account inactive",
		"account is inactive", "inactive account", "inactive user", "account expired", "account has expired",
		"mailbox is inactive", "mailbox inactive", "account is not active", "blocked account",
		"account is blocked", "account has been blocked", "account temporarily", "mailbox temporarily disabled",
		"account closed", "account has been closed", "closed account", "mailbox closed", "discontinued",
		"no longer active", "unpaid", "is disabled", "has been disabled", "disabled or discontinued", "temporary locked",
		"temporarily locked", "is locked",
	}},
	{ReasonRejected, []string{
		"sender address rejected", "sender rejected", "sender denied", "sender is denied", "sender not allowed",
		"sender verify failed", "sender verification failed", "sender address verification",
		"unverified address", "domain of sender", "sender domain", "sender's domain", "senders domain",
		"envelope sender", "envelope-sender", "bad sender", "invalid sender", "unknown sender", "sender unknown",
		"sender is blocked", "sender blocked", "sender address is blocked", "blocked sender", "banned sender",
		"sender address has been", "sender is on", "sender is not", "sender not", "mail from address",
		"return path", "mail from: rejected", "from address rejected", "address of the sender",
		"denied sender", "sender has been", "rejected sender", "sender mx", "sender was rejected",
		"permission to post", "address is not verified", "identities failed",
	}},
	{ReasonMailerError, []string{
		"mailer error", "command died", "command failed", "program exited", "exited with", "exit status",
		"procmail", "maildrop", "pipe to", "unknown mailer", "local mailer", "delivery program", "command output",
	}},
	{ReasonNetworkError, []string{
		// Temporary DNS failures, which also name the host or domain.
		"not found, try again", "name server reply", "temporary lookup failure",
		"lookup timed out", "dns timeout",
	}},
	{ReasonHostUnknown, []string{
		"host unknown", "unknown host", "host not found", "host or domain name not found",
		"domain not found", "domain does not exist", "domain doesn't exist", "domain name not found",
		"no such domain", "unknown domain", "domain unknown", "non-existent domain", "nonexistent domain",
		"no such host", "name or service not known", "nodename nor servname", "unrouteable mail domain",
		"unroutable mail domain", "unrouteable domain", "domain is not configured", "not a valid domain",
		"illegal host", "host name lookup failure", "nxdomain", "bad destination system address",
		"no valid mx", "domain has no mx", "all relevant mx records point to non-existent hosts",
		"unknown hostname", "hostname not found", "unrouteable address", "unroutable address",
		"no mail exchanger", "domain not exist", "couldn't find a mail exchanger", "could not find a mail exchanger",
		"recipient domain does not", "domain is not valid", "domain is not reachable", "domain could not be found",
		"domain not reachable",
	}},
	{ReasonUserUnknown, []string{
		"user unknown", "unknown user", "user is unknown", "unknown recipient", "recipient unknown",
		"unknown address", "address unknown", "addressee unknown", "unknown local", "unknown mailbox",
		"mailbox unknown", "no such user", "no such recipient", "no such mailbox", "no such address",
		"no such person", "no such account", "no such local user", "no such e-mail", "no such email",
		"no mailbox", "no account by", "user not found", "recipient not found", "address not found",
		"mailbox not found", "account not found", "user does not exist", "recipient does not exist",
		"address does not exist", "mailbox does not exist", "account does not exist", "user doesn't exist",
		"mailbox doesn't exist", "account doesn't exist", "non-existent user", "nonexistent user",
		"not a valid mailbox", "invalid mailbox", "invalid recipient", "invalid user", "bad recipient",
		"bad destination mailbox", "rejected recipient",
		"mailbox unavailable", "mailbox is unavailable", "mailbox not available", "unavailable mailbox",
		"not a known user", "not listed in", "not in the directory", "no one at this address",
		"no one by that name", "no mailbox here", "recipnotfound", "recipientnotfound", "recipient not",
		"user not listed", "unknown or illegal", "illegal alias", "badrcptto", "not our customer",
		"not a valid user", "is not a valid", "validrcptto", "doesn't have a", "bad_recipient", "no mail box",
		"not an active address",
		"does not have an account", "address does not", "no longer exists", "no such", "undeliverable address",
		"unknown in", "could not be found", "unbekannt", "inconnu", "sconosciuto", "desconocido",
		"existiert nicht", "n'existe pas", "no existe", "non esiste", "introuvable", "user not", "not exist", "dest. address", "not a valid recipient",
		"no valid recipient", "invalid address", "invalid e-mail address", "invalid email address", "bad address",
		"宛先不明", "存在しません", "ディレクトリのリストにありません", "final delivery userid",
	}},
	{ReasonSpamDetected, []string{
		// Unmistakable spam verdicts, which also mention the filter.
		"appears to be spam", "rejected as spam", "antispam checks", "anti-spam checks", "spam pattern",
		"spam content", "identified as spam", "classified as spam", "detected as spam", "considered spam",
		"considered as spam", "flagged as spam", "looks like spam", "spam score", "mass mailer",
		"due to spam", "marked as spam", "suspected spam", "spam message",
	}},
	{ReasonFiltered, []string{
		"content filter", "rejected by filter", "filter rejected", "refused by recipient's filter",
		"recipient has blocked", "recipient does not accept", "recipient refuses", "refuses to accept",
		"receiving refused", "recipient has chosen", "not accept mail from", "not accepting mail from", "user refuses",
		"blocked by the recipient", "blocked by recipient", "not in my whitelist", "not on the whitelist",
		"approved sender", "filtered out", "filtered",
	}},
	{ReasonNotAccept, []string{
		"does not accept mail", "doesn't accept mail", "not accept any mail", "accepts no mail",
		"null mx", "nullmx", "no mail service", "does not receive mail", "not accepting mail",
		"not accepting messages", "not accepting e-mail", "not accepting email",
		"does not accept e-mail", "does not accept email", "indicated no smtp service", "no mx record",
		"no mx found",
	}},
	{ReasonBlocked, []string{
		// A rate limit imposed because of the sender's reputation is a
		// verdict on the sender (sisimai 5: "badreputation").
		"reputation",
	}},
	{ReasonTooManyConn, []string{
		"too many connections", "too many concurrent", "too many simultaneous", "connection limit",
		"connection rate", "rate limit", "ratelimit", "rate-limit", "throttl", "too many messages",
		"too many mails", "too many emails", "too many sessions", "too many hosts", "too many errors",
		"sending rate", "exceeded the rate", "slow down", "load too high", "too many recipients",
		"recipient limit", "number of recipients", "frequency limited", "receiving mail at a rate",
	}},
	{ReasonPolicyViolation, []string{
		// The sending domain's DMARC policy says reject: a policy, the
		// domain owner's.
		"dmarc", "unauthenticated email",
	}},
	{ReasonSecurityError, []string{
		"sender is unauthenticated", "required authentication",
	}},
	{ReasonSpamDetected, []string{
		// Block lists of URLs judge the content, not the sending host.
		"blacklisted url", "uribl", "surbl", "url in message", "urls in message", "url blacklist",
	}},
	{ReasonBlocked, []string{
		// The sending host is not authorised for the sending domain (SPF,
		// Sender ID) or the message fails authentication: sisimai 4 files
		// these under blocked (sisimai 5 has "authfailure").
		"spf", "dkim", "sender policy framework", "authentication checks", "authentication information",
		"purported responsible", "sender id",
	}},
	{ReasonBlocked, []string{
		"spamhaus", "spamcop", "sorbs", "barracudacentral", "barracuda reputation", "spews", "mailspike",
		"abuseat", "dnsbl", " rbl", "-rbl", ".rbl", "rbl:", "blacklist", "black list", "blocklist", "block list",
		"listed in", "listed on", "listed at", "is listed", "are listed", "been listed", "reputation",
		"reverse dns", "reverse lookup", "rdns", "ip name lookup", "ptr record", "no ptr", "ptr lookup", "dns ptr", "ptr resource",
		"client host rejected", "client host blocked", "dynamic ip", "residential", "dial-up", "dialup",
		"dynamic address", "blocked using", "refused to talk", "invalid ip", "ip blocked", "blocked ip",
		"sending ip", "connecting ip", "client ip", "fqdn", "invalid hostname", "unauthorized host",
		"you have been blocked", "greylist", "graylist", "currently blocked", "temporarily blocked",
		"my name was rejected", "not accepting connections", "open relay",
	}},
	{ReasonSpamDetected, []string{
		"spam", "unsolicited", "junk mail", "junk e-mail", "bulk mail", "bulk e-mail", "bulk email",
		" ube ", " ube,", " ube.", ",ube", "(ube", " uce ", " uce,", " uce.", "(uce", "looks like",
		"message content rejected",
		"classified as", "identified as", "spam score", "scored", "suspicious",
	}},
	{ReasonPolicyViolation, []string{
		"policy", "policies", "prohibited", "attachment not allowed", "attachments are not allowed",
		"banned attachment", "file type", "violates", "violation", "terms of service", "acceptable use",
		"multiple addresses in from", "header error", "content presents a potential",
	}},
	{ReasonSecurityError, []string{
		"authentication required", "authentication failed", "must authenticate", "not authenticated",
		"unauthenticated", "auth required", "smtp authentication", "tls required", "starttls",
		"encryption required", "must use tls", "requires tls", "certificate", "cryptograph",
		"required authentication",
		"forged", "spoof", "impersonat", "not authorized", "unauthorized",
	}},
	{ReasonSystemFull, []string{
		"system full", "disk full", "insufficient system storage", "out of disk", "no space left",
		"mail system full", "spool full", "insufficient disk", "filesystem full", "file system full",
		"not enough disk",
	}},
	{ReasonContentError, []string{
		"8-bit", "8bit", "8 bit", "line too long", "lines too long", "illegal character",
		"invalid character", "bare lf", "bare cr", "rfc 5322", "rfc5322", "rfc 822", "rfc 2822", "rfc2822",
		"invalid message", "too many received", "header too", "mime-version", "invalid mime", "mime header",
		"mime structure",
	}},
	{ReasonSyntaxError, []string{
		"syntax error", "command unrecognized", "command not recognized", "unrecognized command",
		"bad sequence", "improper sequence", "out of sequence", "command not implemented",
		"parameter not implemented", "invalid command", "bad command", "unknown command",
		"parameters not recognized", "syntactically", "malformed address",
	}},
	{ReasonExpired, []string{
		"retry timeout exceeded", "delivery time expired", "message expired", "could not be delivered within",
		"message timeout", "timeout exceeded", "delivery period", "lifetime", "not been delivered for",
		"has not yet been delivered", "has been delayed", "no answer from host", "retry time not reached",
		"failing for a long time", "timed out", "did not accept our requests to connect", "expired",
		"not delivered within", "not responding", "not been collected", "queue period", "reachable within",
	}},
	{ReasonNetworkError, []string{
		"network error", "network is unreachable", "no route to host", "host unreachable",
		"host is unreachable", "lost connection", "connection reset", "connection dropped",
		"could not connect", "couldn't connect", "cannot connect", "can't connect", "unable to connect",
		"failed to connect", "dns error", "dns failure", "dns problem", "temporary lookup failure",
		"routing loop", "mail loop", "loop detected", "loops back", "is looping", "message looping", "too many hops",
		"hop count",
		"servfail", "name server", "nameserver", "wasn't able to establish", "unable to establish",
		"not reachable", "connection refused",
	}},
	{ReasonSystemError, []string{
		"system error", "internal error", "server error", "local error", "mail system error",
		"configuration error", "misconfigur", "config error", "i/o error", "ldap", "directory server",
		"database", "out of memory", "local delivery failed", "internal server", "error in processing",
		"processing error", "unable to process", "cannot process", "system problem", "transaction failed",
		"currently unavailable",
	}},
}

// weakTextRules are single words and stock phrases, consulted only when
// no strong rule matched.
var weakTextRules = []reasonRule{
	{ReasonUserUnknown, []string{
		"not found", "does not exist", "doesn't exist", "there is no", "unable to find", "not known",
		"not valid", "no longer valid", "by that name", "inexistent", "non-existent", "nonexistent",
		"unknown", "見つかりません", "recipient address rejected", "recipient rejected", "address rejected",
		"address is correct", "check the address",
		"check if address",
	}},
	{ReasonBlocked, []string{
		"blocked", "block", "refused", "access denied", "banned", "not allowed", "denied", "helo", "ehlo",
		"hostname", "host name", "your ip", "ip address", "rejected due to", "messages from", "your mta",
		"your domain", "your host", "your server", "connection rejected", "mail refused",
	}},
	{ReasonSpamDetected, []string{
		"content rejected", "score", "probability",
	}},
	{ReasonPolicyViolation, []string{
		"restricted", "forbidden", "not permitted", "disallowed", "compliance", "extension",
	}},
	{ReasonRejected, []string{
		"mail from", "from address", "your address", "senders", "sender",
	}},
	{ReasonSecurityError, []string{
		"authorization", "authentication", "signature", "encryption", "tls", "security",
	}},
	{ReasonTooManyConn, []string{
		"too many", "too fast", "too busy",
	}},
	{ReasonContentError, []string{
		"charset", "corrupt", "improper", "mime", "malformed",
	}},
	{ReasonNetworkError, []string{
		"timeout", "unreachable", "connection closed", "connection lost", "connect to",
	}},
	{ReasonExpired, []string{
		"in the queue too long", "too long in", "queue too long", "been in the queue", "giving up", "gave up",
		"not going to try again", "delayed", "will continue", "will retry", "will keep trying", "still trying",
		"delivery attempts", "attempts", "retry time",
	}},
	{ReasonSystemError, []string{
		"resource", "not capable", "unexpected", "service unavailable", "could not load",
	}},
}

// textRules is the strong tier followed by the weak one; strongRules is
// the number of strong rules.
var (
	textRules   = append(append([]reasonRule{}, strongTextRules...), weakTextRules...)
	strongRules = len(strongTextRules)
)

var (
	reasonOnce    sync.Once
	reasonMatcher *phraseMatcher
)

// reasonPhrases returns the matcher for textRules (one group per rule).
func reasonPhrases() *phraseMatcher {
	reasonOnce.Do(func() {
		lists := make([][]string, len(textRules))
		for i, r := range textRules {
			lists[i] = r.phrases
		}
		reasonMatcher = newCoarseMatcher(lists)
	})
	return reasonMatcher
}
