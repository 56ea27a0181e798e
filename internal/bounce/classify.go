package bounce

import (
	"slices"
	"strings"
	"sync"
)

// Classification works from the strongest evidence down: the RFC report
// structures (multipart/report and its typed parts) decide on their own;
// without them, independent weak signals (who sent it, the subject, the
// wording of the body) must agree before a message is called a bounce, so
// that ordinary mail that merely talks about delivery is never one.

// bounceSubjects are lower-case fragments of the subjects MTAs give
// non-delivery and delay reports.
var bounceSubjects = []string{
	"undeliver", "undelivered", "delivery status notification", "returned mail",
	"failure notice", "delivery failure", "mail delivery failed", "delivery has failed",
	"non-delivery", "nondeliver", "non delivery", "not delivered", "could not be delivered",
	"couldn't be delivered", "delivery problem", "delivery notification", "warning: could not send",
	"delayed mail", "delivery delayed", "delivery is delayed", "mail system error",
	"returned to sender", "mail delivery system", "delivery report", "bounce notification",
	"message not delivered", "delivery final failure", "delivery failed", "failed delivery",
	"mail failure", "mail delivery failure", "failed mail", "unzustellbar", "non remis", "non recapitabile",
	"no se puede entregar", "onbestelbaar", "returned message", "rejected:", "undeliverable",
	"mail could not be delivered", "message delivery failure", "permanent delivery failure",
	"delivery failure notification", "delivery notification: delivery has", "message status - undelivered",
	"mail delivery problem", "notice of delivery failure", "delivery error", "bounced mail",
	"message you sent", "returned to you", "delivery warning", "warning: message",
	"mail failed", "returning to sender", "returned to sender", "error notification",
	"message blocked", "mail blocked", "message rejected", "mail rejected",
	"メールエラー", "未達", "配信エラー", "送信エラー",
}

// bounceStrong are body phrases that, in practice, only MTA-generated
// reports contain.
var bounceStrong = []string{
	"this is the qmail-send program",
	"created automatically by mail delivery software",
	"transcript of session follows",
	"permanent fatal errors",
	"following address(es) failed",
	"following addresses had permanent",
	"could not be delivered to one or more recipients",
	"delivery to the following recipient",
	"delivery to the following recipients failed",
	"the following recipient(s) could not be reached",
	"following recipients could not be reached",
	"this is the mail system at host",
	"i'm afraid i wasn't able to deliver",
	"message could not be delivered",
	"your message could not be delivered",
	"your message couldn't be delivered",
	"message was undeliverable",
	"has not yet been delivered",
	"could not be delivered to the following",
	"unable to deliver your message",
	"unable to deliver message to the following",
	"was not delivered to",
	"wasn't delivered to",
	"failed permanently",
	"delivery has failed to these recipients",
	"your message did not reach some or all",
	"original message follows",
	"unsent message follows",
	"undelivered message attached",
	"this is an automatically generated delivery status notification",
	"delivery status notification",
	"message delivery has failed",
	"returned mail: see transcript",
	"the message you sent to",
	"could not be delivered because",
	"delivery to this recipient",
	"permanent error. the following",
	"this message was created automatically",
	"message not delivered",
	"mail delivery failed",
	"retry time not reached",
	"message has been delayed",
	"delivery attempts will continue",
	"will keep trying",
	"reporting-mta:",
	"final-recipient:",
	"could not be delivered to",
	"failed addresses follow",
	"message log follows",
	"this is the mailer-daemon",
	"following list of recipients",
	"had delivery problems",
	"had fatal errors",
	"trouble delivering your message",
	"rejected recipient",
	"your message was blocked",
	"your message has been blocked",
	"message was rejected",
	"message has been rejected",
	"your message was rejected",
	"was rejected by the recipient",
	"failed recipients",
	"unable to deliver message",
	"did not reach the following recipient",
	"could not deliver message",
	"returned mail follows",
	"not delivered to the following",
}

// bounceWeak are phrases common in bounces but also in human mail.
var bounceWeak = []string{
	"user unknown", "unknown user", "no such user", "mailbox full", "over quota",
	"host unknown", "mailbox unavailable", "does not exist", "recipient rejected",
	"smtp error", "550 ", "554 ", "553 ", "5.1.1", "5.7.1", "rcpt to", "relay denied",
	"permanent error", "temporary error", "undeliverable", "returned to sender",
	"mailbox is full", "invalid user", "unknown host", "no valid recipients",
}

// challengeSubjects / challengeBody are the wording of challenge-
// response systems (TMDA, SpamArrest, Boxbe, Mailblocks, ChoiceMail,
// antispam "verify you are human" pages).
var challengeSubjects = []string{
	"please confirm your message", "confirm your message", "verify your email",
	"verification required", "please verify", "sender verification", "authentication required",
	"is awaiting your confirmation", "challenge", "approve your message", "requires confirmation",
	"message held", "confirmation required", "verify your message", "guest list",
	"sender approval", "awaiting verification", "confirm sender", "verification request",
}

var challengeBody = []string{
	"verify that you are a human", "prove that you are a human", "confirm that you are a human",
	"you are not a spammer", "not a spam robot", "to confirm that you are", "click the link below to confirm",
	"only accepts mail from", "approved senders", "whitelist", "spam protection", "challenge-response",
	"please confirm your message", "confirm your e-mail", "pending messages", "verify your address",
	"reply to this message to confirm", "tmda", "spamarrest", "boxbe", "mailblocks", "choicemail",
	"verification request", "sender verification", "i use a challenge",
}

// autoreplySubjects are subject fragments of vacation and auto replies.
var autoreplySubjects = []string{
	"automatic reply", "auto reply", "auto-reply", "autoreply", "auto response", "auto-response",
	"autoresponse", "automatic response", "out of office", "out of the office", "vacation",
	"abwesenheit", "réponse automatique", "respuesta automática", "risposta automatica",
	"automatisch antwoord", "auto:", "away from my", "on leave", "autosvar", "automaattinen vastaus",
}

// mdnSubjects are the subjects of read receipts that do not use
// multipart/report (Outlook's TNEF receipts, Notes, GroupWise).
var mdnSubjects = []string{
	"read:", "read receipt", "return receipt", "gelesen:", "lu :", "lu:", "leído:", "letto:",
	"disposition notification", "message displayed", "has been read", "delivered:",
}

func containsAny(s string, list []string) bool {
	for _, p := range list {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, list []string) bool {
	for _, p := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// daemonSender reports a From/sender that names the mail system itself.
func daemonSender(v string) bool {
	lv := strings.ToLower(v)
	if strings.Contains(lv, "mailer-daemon") || strings.Contains(lv, "mailer daemon") || strings.Contains(lv, "mailer_daemon") ||
		strings.Contains(lv, "postmaster") ||
		strings.Contains(lv, "mail delivery") || strings.Contains(lv, "maildaemon") ||
		strings.Contains(lv, "mail administrator") || strings.Contains(lv, "delivery status") ||
		strings.Contains(lv, "mail-daemon") || strings.Contains(lv, "mail system") {
		return true
	}
	a := addrOf(v)
	local, _, _ := strings.Cut(a, "@")
	switch local {
	case "postmaster", "post_master", "mailer-daemon", "mailerdaemon", "daemon", "mdaemon", "root",
		"mail-daemon", "mailer", "double-bounce", "bounce", "bounces", "nobody", "noreply-dsn":
		return true
	}
	return false
}

// nullSender reports an empty Return-Path / envelope sender.
func nullSender(returnPath, mbox string) bool {
	rp := strings.TrimSpace(returnPath)
	if rp == "<>" || rp == "< >" {
		return true
	}
	lm := strings.ToLower(mbox)
	return lm == "mailer-daemon" || strings.HasPrefix(lm, "mailer-daemon@") || lm == "<>"
}

// autoSubmittedReply reports Auto-Submitted values that mark a reply.
func autoSubmittedReply(v string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "auto-replied")
}

// autoreplyHeaders reports the header fields of vacation programs and
// mailbox rules (AutoReplyField, the one list the milter's pre-check uses
// too).
func (a *walker) autoreplyHeaders() bool {
	for _, f := range a.top {
		if AutoReplyField(f.name, f.value) {
			return true
		}
	}
	return false
}

// AutoReplyField reports whether one header field marks a message as an
// automatic reply: Auto-Submitted: auto-replied (RFC 3834), Precedence:
// auto_reply, and the non-standard fields of vacation programs and mailbox
// rules (X-Autoreply, X-Autorespond, X-AutoReply-From, X-Mail-Autoreply,
// X-Autoresponder, X-Vacation, X-MS-Exchange-Inbox-Rules-Loop,
// X-Autogenerated: Reply). X-Auto-Response-Suppress is deliberately absent:
// Outlook sets it on ordinary mail too. This is the one list of these
// signals: the analysis and the milter's pre-check both use it.
func AutoReplyField(name, value string) bool {
	n := strings.ToLower(name)
	switch n {
	case "auto-submitted":
		return autoSubmittedReply(value)
	case "precedence":
		p := strings.ToLower(strings.TrimSpace(value))
		return p == "auto_reply" || p == "auto-reply"
	case "x-auto-response-suppress":
		return false
	case "x-ms-exchange-inbox-rules-loop":
		return true
	case "x-autogenerated":
		return strings.EqualFold(strings.TrimSpace(value), "reply")
	}
	return strings.HasPrefix(n, "x-") && (strings.Contains(n, "autorepl") || strings.Contains(n, "autorespon") ||
		strings.Contains(n, "auto-repl") || strings.Contains(n, "vacation"))
}

// classifyScan bounds the text of one part searched for phrases.
const classifyScan = 12 << 10

// lowerASCII lower-cases ASCII letters only, so byte offsets are kept
// (strings.ToLower may change the length of invalid UTF-8).
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// classify decides the kind of the analysed message.
func (a *walker) classify() Kind {
	rt := strings.ToLower(a.topParams["report-type"])
	if a.topType == "multipart/report" {
		a.rep.Structural = true
		switch {
		case strings.Contains(rt, "delivery-status"):
			return KindDSN
		case strings.Contains(rt, "disposition-notification"):
			return a.mdnKind()
		case strings.Contains(rt, "feedback-report"):
			return KindARF
		}
	}
	switch {
	case a.hasFeedback:
		a.rep.Structural = true
		return KindARF
	case a.dsnParts > 0:
		a.rep.Structural = true
		return KindDSN
	case a.hasMDN:
		a.rep.Structural = true
		return a.mdnKind()
	}

	h := a.top
	subj := strings.ToLower(a.rep.Subject)
	from := h.Get("From")
	daemon := daemonSender(from) || daemonSender(h.Get("Sender"))
	null := nullSender(h.Get("Return-Path"), a.mboxSender)

	// The report's own prose comes first; the returned original (quoted
	// in text bounces) follows, so the first kilobytes of each text part
	// are what the phrases are looked for in. The matcher folds ASCII case
	// itself, so the texts are scanned in place.
	scan := make([]string, 0, len(a.texts)+len(a.htmlTexts))
	for _, t := range a.texts {
		scan = append(scan, clip(t, classifyScan))
	}
	for _, t := range a.htmlTexts {
		scan = append(scan, clip(t, classifyScan/2))
	}

	autoHdr := a.autoreplyHeaders()
	// One pass over the text answers every phrase list at once.
	hit := bodyPhrases().match(scan...)
	strong := hit[groupStrong]

	// Challenge-response first: these systems also set auto-reply headers.
	// A challenge answers a message, so it must look like a response
	// (automatic-mail marks, a reply id, the original, or talk of "your
	// message"); that keeps sign-up "please verify your address" mail,
	// which answers a web form, out.
	chSubj := containsAny(subj, challengeSubjects)
	responds := null || autoHdr || a.rep.InReplyTo != "" || len(a.originals) > 0 || hit[groupYourMessage]
	if responds && (chSubj || hit[groupChallenge]) {
		chBody := hit[groupChallenge]
		if chSubj && (chBody || autoHdr || null || hit[groupConfirm]) ||
			chBody && hit[groupConfirm] && !strong {
			return KindChallenge
		}
	}

	score := 0
	if daemon {
		score += 2
	} else if null {
		score++
	}
	if containsAny(subj, bounceSubjects) {
		score += 2
	}
	if strong {
		score += 2
	}
	if hit[groupWeak] {
		score++
	}
	if len(a.originals) > 0 && (daemon || null) {
		score++ // a returned original from the mail system
	}
	if h.Has("X-Failed-Recipients") {
		score += 3
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "multipart/report") {
		score += 2 // report without (or with a damaged) report-type
	}
	// Mailing-list traffic that merely discusses or quotes a bounce comes
	// from a person through the list; it needs more than wording.
	listMail := !daemon && !null && (h.Has("List-Id") || h.Has("List-Unsubscribe") || h.Has("Mailing-List"))
	switch {
	case listMail && score >= 6:
		return KindDSN
	case !listMail && (score >= 4 || score >= 3 && (strong || daemon)):
		return KindDSN
	}
	// Antivirus notices to the (forged) sender are backscatter of the
	// same kind: a virus phrase together with what was done to the mail.
	if hit[groupVirus] && hit[groupVirusAction] {
		return KindDSN
	}
	if autoHdr || hasPrefixAny(subj, autoreplySubjects) && (null || daemon || a.rep.InReplyTo != "") {
		if hasPrefixAny(subj, mdnSubjects) && null {
			return KindMDN
		}
		return KindAutoreply
	}
	if null && hasPrefixAny(subj, mdnSubjects) {
		return KindMDN
	}
	// Complaint forwards that predate ARF (Hotmail JMRP style): a complaint
	// subject with the reported message attached.
	if len(a.originals) > 0 && containsAny(subj, []string{"complaint about message", "abuse report", "spam complaint", "spam report"}) {
		return KindARF
	}
	// Provider notifications (Amazon SES via SNS) carry complaint and
	// bounce reports as JSON.
	for _, t := range scan {
		t = clip(t, 4096)
		if !containsFold(t, "notificationtype") {
			continue
		}
		lt := lowerASCII(t)
		if i := strings.Index(lt, "notificationtype"); i >= 0 {
			// The value follows within a few bytes, quotes possibly
			// escaped (SNS wraps the SES JSON in a string).
			v := lt[i+len("notificationtype"):]
			v = clip(strings.TrimLeft(v, `\": `), 16)
			switch {
			case strings.HasPrefix(v, "complaint"):
				return KindARF
			case strings.HasPrefix(v, "bounce"), strings.HasPrefix(v, "delivery"):
				return KindDSN
			}
		}
	}
	return KindNotBounce
}

// extractRecipients fills Report.Recipients from the DSN fields or, for
// non-standard bounces, from the text.
func (a *walker) extractRecipients() {
	wellFormed := a.topType == "multipart/report" && strings.Contains(strings.ToLower(a.topParams["report-type"]), "delivery-status")
	if len(a.dsnRecips) > 0 {
		// RFC 3464 recipient blocks are authoritative: the prose of such
		// reports often names addresses that did not fail (group
		// members, the sender).
		a.rep.Recipients = dSNRecipients(a.dsnRecips)
		a.resolveAddresses()
		return
	}
	if wellFormed && a.dsnParts > 0 {
		// A report whose delivery-status part has no recipient block
		// (Netscape Messaging Server, Postfix when the report was lost)
		// names the recipients, if at all, only in its text; the
		// returned message's To is not evidence enough here.
		a.rep.Recipients = textRecipients(a.proseRegions())
		a.markDelayed()
		return
	}
	if v := a.top.Get("X-Failed-Recipients"); v != "" {
		for _, s := range strings.Split(v, ",") {
			if addr := recipientAddress(s); addr != "" {
				a.rep.Recipients = append(a.rep.Recipients, Recipient{Address: addr, Action: "failed"})
			}
		}
		if len(a.rep.Recipients) > 0 {
			// Add diagnostics from the text where they match; a lone
			// recipient takes the text's lone diagnostic even when the
			// text spells the address differently.
			trs := textRecipients(a.proseRegions())
			for _, r := range trs {
				for i := range a.rep.Recipients {
					if a.rep.Recipients[i].Address == r.Address || len(trs) == 1 && len(a.rep.Recipients) == 1 {
						a.rep.Recipients[i].Status, a.rep.Recipients[i].Diagnostic = r.Status, r.Diagnostic
					}
				}
			}
			a.markDelayed()
			return
		}
	}
	a.rep.Recipients = jSONRecipients(a.texts)
	if len(a.rep.Recipients) == 0 {
		a.rep.Recipients = textRecipients(a.proseRegions())
	}
	if len(a.rep.Recipients) == 0 {
		a.rep.Recipients = textRecipients(regions(a.htmlTexts))
	}
	if len(a.rep.Recipients) == 0 {
		// A report that names no recipient itself may carry the report
		// that does: a bounce of a bounce, or a bounce forwarded as text.
		a.rep.Recipients = a.innerReportRecipients()
	}
	if len(a.rep.Recipients) == 0 {
		a.rep.Recipients = a.bareLocalRecipients()
	}
	if len(a.rep.Recipients) == 0 {
		// Last resort: a bounce that names no recipient returned a message
		// sent to exactly one address; that address is what failed.
		if to := a.originalSoleRecipient(); to != "" {
			a.rep.Recipients = []Recipient{{Address: to, Action: "failed"}}
		}
	}
	a.markDelayed()
}

// bareLocalRecipients reads the recipients of reports that list local
// parts only (AOL's "could not be delivered ... following recipients:"
// followed by indented screen names): each is a mailbox of the domain the
// report comes from.
func (a *walker) bareLocalRecipients() []Recipient {
	from := addrOf(a.rep.From)
	_, domain, ok := strings.Cut(from, "@")
	if !ok || !daemonSender(a.rep.From) || !strings.Contains(domain, ".") {
		return nil
	}
	var out []Recipient
	for _, region := range a.proseRegions() {
		lines := strings.Split(region, "\n")
		for i, line := range lines {
			if !strings.Contains(lowerASCII(line), "following recipient") {
				continue
			}
			for _, l := range lines[i+1 : min(len(lines), i+12)] {
				if strings.TrimSpace(l) == "" {
					if len(out) > 0 {
						break
					}
					continue
				}
				tok := strings.TrimSpace(l)
				if len(tok) == len(l) || !localPartLike(tok) {
					break // an unindented line or prose ends the list
				}
				addr := strings.ToLower(tok) + "@" + domain
				if isAddr(addr) {
					out = append(out, Recipient{Address: addr, Action: "failed"})
				}
			}
			return out
		}
	}
	return out
}

// localPartLike reports a single token that can stand as a local part.
func localPartLike(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}

// maxNested bounds the reports analysed inside reports.
const maxNested = 2

// innerReportRecipients analyses the first returned message, or the first
// message pasted into the text, when it is itself a delivery report, and
// returns its recipients.
func (a *walker) innerReportRecipients() []Recipient {
	if a.nested >= maxNested {
		return nil
	}
	var inner []byte
	for _, o := range a.originals {
		if o.full != nil && (daemonSender(o.header.Get("From")) ||
			strings.Contains(strings.ToLower(o.header.Get("Content-Type")), "report")) {
			inner = o.full
			break
		}
	}
	if inner == nil {
		for _, t := range a.texts {
			if i := pastedReport(t); i >= 0 {
				inner = []byte(t[i:])
				break
			}
		}
	}
	if inner == nil {
		return nil
	}
	sub := analyzeNested(inner, a.lim, nil, a.nested+1)
	if sub.Kind != KindDSN {
		return nil
	}
	return sub.Recipients
}

// pastedReport returns the offset in text of a delivery report pasted in
// whole (its header starting with an mbox line from the mail system or a
// null Return-Path), -1 when there is none.
func pastedReport(text string) int {
	text = clip(text, recipientScan)
	for _, m := range []string{"\nFrom MAILER-DAEMON", "\nReturn-Path: <>"} {
		if i := strings.Index(text, m); i >= 0 {
			start := i + 1
			if strings.HasPrefix(text[start:], "From ") {
				// The mbox line is not part of the message.
				if j := strings.IndexByte(text[start:], '\n'); j >= 0 {
					start += j + 1
				}
			}
			return start
		}
	}
	return -1
}

// markDelayed turns the recipients read from a non-standard report into
// delayed ones when the report is a delay warning: those MTAs say so only
// in words ("will keep trying", "has not yet been delivered").
func (a *walker) markDelayed() {
	if !a.delayNotice() {
		return
	}
	for i := range a.rep.Recipients {
		if a.rep.Recipients[i].Action == "failed" {
			a.rep.Recipients[i].Action = "delayed"
		}
	}
}

// delayNotice reports a non-standard report that announces a delay, not a
// failure: delay wording and no word of a permanent failure.
func (a *walker) delayNotice() bool {
	subj := strings.ToLower(a.rep.Subject)
	delaySubj := strings.Contains(subj, "delay") || strings.Contains(subj, "warning") || strings.Contains(subj, "not yet been delivered")
	hit := uint64(0)
	m := delayPhrases()
	for _, r := range a.proseRegions() {
		hit |= m.matchBits(clip(r, dsnProseScan))
	}
	if hit&2 != 0 {
		return false // permanent wording wins
	}
	return hit&1 != 0 || delaySubj && hit == 0 && !strings.Contains(subj, "fail")
}

var (
	delayOnce    sync.Once
	delayMatcher *phraseMatcher
)

// delayPhrases matches delay wording (group 0) and permanent-failure
// wording (group 1).
func delayPhrases() *phraseMatcher {
	delayOnce.Do(func() {
		delayMatcher = newMatcher([][]string{
			{"has not yet been delivered", "have not yet been delivered", "will keep trying", "will continue trying",
				"will be retried", "will retry", "still trying", "only a temporary failure", "delivery attempts will continue",
				"not been delivered yet", "is delayed", "has been delayed", "delayed for more than", "no action is required",
				"you do not need to resend", "do not need to re-send", "will try again", "message is still in the queue"},
			{"permanent error", "permanently", "permanent fatal", "giving up", "gave up", "not going to try again",
				"will not be retried", "could not be delivered", "couldn't be delivered", "was not delivered",
				"has been deleted", "will be deleted", "failed:", "no further attempts", "undeliverable", "delivery has failed",
				"deleted from queue", "has expired", "rejected"},
		})
	})
	return delayMatcher
}

// resolveAddresses replaces recipient values that are no Internet
// address (an X.400 address, a file, a pipe, a bare local part, with no
// Original-Recipient to fall back on) by the address the report names
// elsewhere: Exim's "generated by <addr>" next to the value; for a bare
// local part, the one address with that local part in X-Failed-Recipients
// or the text; else, when exactly one value is unusable, the one address of
// X-Failed-Recipients or of the text that no other recipient already has.
func (a *walker) resolveAddresses() {
	var bad []int
	have := map[string]bool{}
	for i, r := range a.rep.Recipients {
		if mailboxLike(r.Address) {
			have[r.Address] = true
		} else {
			bad = append(bad, i)
		}
	}
	if len(bad) == 0 {
		return
	}
	for _, i := range bad {
		if g := generatedBy(a.texts, a.rep.Recipients[i].Address); g != "" && !have[g] {
			a.rep.Recipients[i].Address = g
			have[g] = true
		}
	}
	// A bare local part ("jsmith", "LOCAL; jsmith") names the address of
	// that local part which the header or text gives.
	var xf, tr []string
	for _, s := range strings.Split(a.top.Get("X-Failed-Recipients"), ",") {
		xf = append(xf, recipientAddress(s))
	}
	for _, r := range textRecipients(a.proseRegions()) {
		tr = append(tr, r.Address)
	}
	cands := append(slices.Clip(xf), tr...)
	for _, i := range bad {
		v := a.rep.Recipients[i].Address
		if v == "" || strings.ContainsAny(v, "@/|= \t") {
			continue
		}
		match := ""
		for _, c := range cands {
			if isAddr(c) && !have[c] && strings.EqualFold(localPart(c), v) {
				if match != "" && match != c {
					match = ""
					break
				}
				match = c
			}
		}
		if match != "" {
			a.rep.Recipients[i].Address = match
			have[match] = true
		}
	}
	var still []int
	for _, i := range bad {
		if !mailboxLike(a.rep.Recipients[i].Address) {
			still = append(still, i)
		}
	}
	if len(still) != 1 {
		return
	}
	pick := func(cands []string) bool {
		var fresh []string
		for _, c := range cands {
			if isAddr(c) && !have[c] && !slices.Contains(fresh, c) {
				fresh = append(fresh, c)
			}
		}
		if len(fresh) == 1 {
			a.rep.Recipients[still[0]].Address = fresh[0]
			return true
		}
		return false
	}
	if !pick(xf) {
		pick(tr)
	}
}

// generatedBy finds Exim's "generated by <addr>" line that follows value
// (a pipe or file the address was redirected to) in the texts.
func generatedBy(texts []string, value string) string {
	if value == "" {
		return ""
	}
	for _, t := range texts {
		lt := lowerASCII(clip(t, recipientScan))
		i := strings.Index(lt, value)
		if i < 0 {
			continue
		}
		rest := lt[i+len(value):]
		if j := strings.Index(clip(rest, 300), "generated by "); j >= 0 {
			if ad := firstAddr(rest[j:]); ad != "" {
				return recipientAddress(ad)
			}
		}
	}
	return ""
}

// originalEnvelopeRecipient returns the envelope recipient the returned
// original's Received fields name ("for <a@b>"), when they all name the
// same one: the address the bouncing host was asked to deliver to, which
// for list mail is not the To.
func (a *walker) originalEnvelopeRecipient() string {
	var vals []string
	if len(a.originals) > 0 {
		vals = a.originals[0].header.Values("Received")
	} else {
		for _, t := range a.texts {
			if h := scanInlineHeaders(clip(t, recipientScan), false); h != nil {
				vals = h.values("received")
				break
			}
		}
	}
	found := ""
	for _, v := range vals {
		lv := lowerASCII(v)
		i := strings.Index(lv, " for ")
		if i < 0 {
			continue
		}
		ad := firstAddr(v[i+5:])
		if j := strings.IndexByte(v[i+5:], ';'); j >= 0 && strings.Index(v[i+5:], ad) > j {
			ad = "" // the address is past the date: not this clause's
		}
		if ad == "" {
			continue
		}
		ad = recipientAddress(ad)
		if found != "" && found != ad {
			return ""
		}
		found = ad
	}
	return found
}

// originalSoleRecipient returns the only To: address of the returned
// original (attached or quoted), "" when there is none, several, or Cc.
func (a *walker) originalSoleRecipient() string {
	var to, cc string
	switch {
	case len(a.originals) > 0:
		h := a.originals[0].header
		if daemonSender(h.Get("From")) || strings.Contains(strings.ToLower(h.Get("Content-Type")), "report") {
			return "" // a returned bounce: its To is the bounce's recipient
		}
		to, cc = h.Get("To"), h.Get("Cc")
	default:
		for _, t := range a.texts {
			if h := scanInlineHeaders(clip(t, recipientScan), false); h != nil {
				to, cc = h.get("to"), h.get("cc")
				break
			}
		}
	}
	if r := a.originalEnvelopeRecipient(); r != "" {
		return r
	}
	if to == "" || cc != "" || strings.Count(to, "@") != 1 {
		return ""
	}
	addr := addrOf(to)
	if !isAddr(addr) {
		return ""
	}
	return addr
}

// Precheck is the milter's cheap test, made on the envelope sender and the
// header as it streams by: can this message be a bounce or an auto-reply,
// so that its body is worth buffering and analysing? It errs on the side
// of yes; Analyze decides. Feed every header field to Field, then ask
// LooksLikeBounce. The zero value is ready to use.
type Precheck struct {
	signal                bool // a field alone marks automatic mail
	subject, from, sender string
}

// Field looks at one header field.
func (p *Precheck) Field(name, value string) {
	if p.signal {
		return
	}
	switch {
	case AutoReplyField(name, value):
		p.signal = true
	case strings.EqualFold(name, "Auto-Submitted"):
		// auto-generated (a DSN, a notification) counts too.
		if v := strings.ToLower(strings.TrimSpace(value)); v != "" && v != "no" {
			p.signal = true
		}
	case strings.EqualFold(name, "X-Failed-Recipients"):
		p.signal = true
	case strings.EqualFold(name, "Content-Type"):
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(value)), "multipart/report") {
			p.signal = true
		}
	case strings.EqualFold(name, "Subject"):
		if p.subject == "" {
			p.subject = value
		}
	case strings.EqualFold(name, "From"):
		if p.from == "" {
			p.from = value
		}
	case strings.EqualFold(name, "Sender"):
		if p.sender == "" {
			p.sender = value
		}
	}
}

// LooksLikeBounce gives the verdict for envelope sender and the fields seen.
func (p *Precheck) LooksLikeBounce(envelopeSender string) bool {
	s := strings.ToLower(strings.Trim(strings.TrimSpace(envelopeSender), "<>"))
	if s == "" || p.signal {
		return true
	}
	local, _, _ := strings.Cut(s, "@")
	switch local {
	case "mailer-daemon", "postmaster", "mailer_daemon", "mailerdaemon", "double-bounce":
		return true
	}
	if daemonSender(p.from) || daemonSender(p.sender) {
		return true
	}
	subj := strings.ToLower(decodeHeader(p.subject))
	return containsAny(subj, bounceSubjects) || hasPrefixAny(subj, autoreplySubjects) ||
		containsAny(subj, challengeSubjects) || hasPrefixAny(subj, mdnSubjects)
}

// LooksLikeBounce is Precheck over a header given as a lookup function
// (first value of a field by name, "" when absent), for callers that
// already hold the header.
func LooksLikeBounce(sender string, get func(name string) string) bool {
	var p Precheck
	if get != nil {
		for _, n := range precheckNames {
			if v := get(n); v != "" {
				p.Field(n, v)
			}
		}
	}
	return p.LooksLikeBounce(sender)
}

// precheckNames are the fields LooksLikeBounce asks a lookup function for.
var precheckNames = []string{"Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "X-Autoresponder",
	"X-AutoReply-From", "X-Mail-Autoreply", "X-Vacation", "X-MS-Exchange-Inbox-Rules-Loop", "X-Autogenerated",
	"X-Failed-Recipients", "Content-Type", "Subject", "From", "Sender"}

// mdnKind tells a read receipt from an MDN that reports a refusal: RFC 5429
// Sieve "reject" returns the message as an MDN with a "deleted" (or older
// "rejected"/"failed") disposition, which for backscatter purposes is a
// bounce.
func (a *walker) mdnKind() Kind {
	d := strings.ToLower(a.mdnFields.get("disposition"))
	if i := strings.IndexByte(d, ';'); i >= 0 {
		d = d[i+1:]
	}
	for _, w := range []string{"deleted", "rejected", "failed", "denied", "error"} {
		if strings.Contains(d, w) {
			return KindDSN
		}
	}
	// An empty disposition part: the Auto-Submitted comment or the subject
	// still says the message was refused.
	if d == "" && (strings.Contains(strings.ToLower(a.top.Get("Auto-Submitted")), "reject") ||
		strings.Contains(strings.ToLower(a.rep.Subject), "rejected")) {
		return KindDSN
	}
	return KindMDN
}

// Phrase groups of the body matcher.
const (
	groupStrong = iota
	groupWeak
	groupChallenge
	groupConfirm
	groupVirus
	groupVirusAction
	groupYourMessage
	numGroups
)

var (
	bodyOnce    sync.Once
	bodyMatcher *phraseMatcher
)

// bodyPhrases returns the matcher for the body phrase lists, built once.
func bodyPhrases() *phraseMatcher {
	bodyOnce.Do(func() {
		bodyMatcher = newMatcher([][]string{
			groupStrong:    bounceStrong,
			groupWeak:      bounceWeak,
			groupChallenge: challengeBody,
			groupConfirm:   {"confirm"},
			groupVirus: {"infected message", "virus detected", "contains a virus", "contained a virus",
				"detected a virus", "virus found", "infected with", "was infected", "virus name"},
			groupVirusAction: {"action taken", "has been quarantined", "was quarantined", "blocked", "has been deleted",
				"was deleted", "was removed", "has been removed", "not delivered", "was not delivered"},
			groupYourMessage: {"your message", "your e-mail to", "your email to", "your mail to", "message you sent",
				"you sent", "you recently sent", "your recent message"},
		})
	})
	return bodyMatcher
}

// phraseMatcher is an Aho-Corasick automaton over byte classes: it finds which
// phrase groups occur in a text in one pass, instead of one strings.Index
// scan per phrase (the phrase lists have ~150 entries and dominated the
// analysis time).
//
// The automaton covers the ASCII phrases; its table (states x byte
// classes, 16-bit states) stays small enough for the cache. Phrases with
// other bytes (Japanese, accented words) would each add classes for their
// bytes to every state, so they are looked for with a plain search, and
// only in texts that have such bytes at all.
type phraseMatcher struct {
	class  [256]uint8
	nclass int
	delta  []uint16 // state*nclass + class -> next state, outputFlag set when it ends a phrase
	groups []uint64 // per state: bit set of groups ending here (incl. suffixes)
	wide   []widePhrase
}

// Transitions are 16-bit: 15 bits of state and a flag for "a phrase ends
// here", so that the groups are read only when something matched.
const (
	outputFlag = 1 << 15
	maxStates  = 1 << 15
)

// widePhrase is a phrase with non-ASCII bytes and its group.
type widePhrase struct {
	text  string
	group int
}

// isASCII reports a string of 7-bit bytes only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func newMatcher(lists [][]string) *phraseMatcher {
	return buildMatcher(lists, false)
}

// coarseByte is the byte a coarse matcher reads in place of c: every digit
// is '0' and every punctuation mark but the hyphen and the apostrophe is
// '.', so that the rows of its table fit a cache line (the reason rules,
// matched once per recipient on a cold cache). A phrase "8bit" then also
// matches "9bit", "(ube" also ",ube": harmless for words that name causes.
func coarseByte(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return '0'
	case c == '-' || c == '\'' || c == ' ' || c >= 0x80:
		return c
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return c
	case c > ' ' && c < 0x7f:
		return '.'
	}
	return c
}

// newCoarseMatcher is newMatcher over coarseByte.
func newCoarseMatcher(lists [][]string) *phraseMatcher {
	return buildMatcher(lists, true)
}

func buildMatcher(lists [][]string, coarse bool) *phraseMatcher {
	m := &phraseMatcher{nclass: 1} // class 0: bytes in no phrase
	ascii := make([][]string, len(lists))
	for g, list := range lists {
		for _, p := range list {
			if !isASCII(p) {
				m.wide = append(m.wide, widePhrase{p, g})
				continue
			}
			ascii[g] = append(ascii[g], p)
		}
	}
	lists = ascii
	for _, list := range lists {
		for _, p := range list {
			for i := 0; i < len(p); i++ {
				c := p[i]
				if coarse {
					c = coarseByte(c)
				}
				if m.class[c] == 0 {
					m.class[c] = uint8(m.nclass)
					m.nclass++
				}
			}
		}
	}
	if coarse {
		for c := 0; c < 256; c++ {
			m.class[c] = m.class[coarseByte(byte(c))]
		}
	}
	// Phrases are lower case; upper-case ASCII shares the class of its
	// lower-case letter, so texts need not be lowered first.
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+32]
	}
	// Trie with -1 for "no edge".
	type node struct {
		next   []int32
		fail   int32
		groups uint64
	}
	newNode := func() node {
		n := node{next: make([]int32, m.nclass)}
		for i := range n.next {
			n.next[i] = -1
		}
		return n
	}
	nodes := []node{newNode()}
	for g, list := range lists {
		for _, p := range list {
			s := int32(0)
			for i := 0; i < len(p); i++ {
				c := m.class[p[i]]
				if nodes[s].next[c] < 0 {
					nodes = append(nodes, newNode())
					nodes[s].next[c] = int32(len(nodes) - 1)
				}
				s = nodes[s].next[c]
			}
			nodes[s].groups |= 1 << uint(g)
		}
	}
	// Breadth-first: failure links and the full transition table.
	queue := []int32{}
	for c := 0; c < m.nclass; c++ {
		if t := nodes[0].next[c]; t >= 0 {
			nodes[t].fail = 0
			queue = append(queue, t)
		} else {
			nodes[0].next[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		nodes[s].groups |= nodes[nodes[s].fail].groups
		for c := 0; c < m.nclass; c++ {
			t := nodes[s].next[c]
			if t >= 0 {
				nodes[t].fail = nodes[nodes[s].fail].next[c]
				queue = append(queue, t)
			} else {
				nodes[s].next[c] = nodes[nodes[s].fail].next[c]
			}
		}
	}
	if len(nodes) > maxStates {
		panic("phrase matcher: too many states") // static lists; TestMatcherSizes keeps them in bounds
	}
	// States are numbered in breadth-first order: the shallow states,
	// where almost every byte of a text leads, share the first cache lines
	// of the table.
	order := make([]int32, 0, len(nodes))
	order = append(order, 0)
	seen := make([]bool, len(nodes))
	seen[0] = true
	for k := 0; k < len(order); k++ {
		for _, t := range nodes[order[k]].next {
			if !seen[t] {
				seen[t] = true
				order = append(order, t)
			}
		}
	}
	renum := make([]uint16, len(nodes))
	for newID, old := range order {
		renum[old] = uint16(newID)
	}
	m.delta = make([]uint16, len(nodes)*m.nclass)
	m.groups = make([]uint64, len(nodes))
	for _, old := range order {
		i := int(renum[old])
		for c, t := range nodes[old].next {
			m.delta[i*m.nclass+c] = renum[t]
			if nodes[t].groups != 0 {
				m.delta[i*m.nclass+c] |= outputFlag
			}
		}
		m.groups[i] = nodes[old].groups
	}
	return m
}

// wideBits returns the groups of the non-ASCII phrases occurring in text.
func (m *phraseMatcher) wideBits(text string) uint64 {
	var found uint64
	for _, w := range m.wide {
		if found&(1<<uint(w.group)) == 0 && containsFold(text, w.text) {
			found |= 1 << uint(w.group)
		}
	}
	return found
}

// match reports which groups have a phrase occurring in one of the texts.
func (m *phraseMatcher) match(texts ...string) [numGroups]bool {
	found := m.matchBits(texts...)
	var out [numGroups]bool
	for g := range out {
		out[g] = found&(1<<uint(g)) != 0
	}
	return out
}

// matchBits returns the set of groups (bit g for group g) with a phrase
// occurring in one of the texts.
func (m *phraseMatcher) matchBits(texts ...string) uint64 {
	var found uint64
	nc := int32(m.nclass)
	for _, text := range texts {
		s := int32(0)
		var high byte
		for i := 0; i < len(text); i++ {
			c := text[i]
			high |= c
			t := m.delta[s*nc+int32(m.class[c])]
			s = int32(t &^ outputFlag)
			if t&outputFlag != 0 {
				found |= m.groups[s]
			}
		}
		if high >= 0x80 && len(m.wide) > 0 {
			found |= m.wideBits(text)
		}
	}
	return found
}

// lastMatch returns the groups of the phrase that ends last in text (0
// when none occurs): for transcripts, where the last command named is the
// one that failed.
// Non-ASCII phrases are not looked for.
func (m *phraseMatcher) lastMatch(text string) uint64 {
	var last uint64
	s := int32(0)
	nc := int32(m.nclass)
	for i := 0; i < len(text); i++ {
		t := m.delta[s*nc+int32(m.class[text[i]])]
		s = int32(t &^ outputFlag)
		if t&outputFlag != 0 {
			last = m.groups[s]
		}
	}
	return last
}

// firstEnd returns the offset just past the first phrase of any group in
// want (a bit set) occurring in text, or -1.
func (m *phraseMatcher) firstEnd(text string, want uint64) int {
	s := int32(0)
	nc := int32(m.nclass)
	end := -1
	var high byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		high |= c
		t := m.delta[s*nc+int32(m.class[c])]
		s = int32(t &^ outputFlag)
		if t&outputFlag != 0 && m.groups[s]&want != 0 {
			end = i + 1
			break
		}
	}
	if len(m.wide) > 0 && (high >= 0x80 || end < 0 && !isASCII(text)) {
		for _, w := range m.wide {
			if want&(1<<uint(w.group)) == 0 {
				continue
			}
			if i := indexFold(text, w.text); i >= 0 && (end < 0 || i+len(w.text) < end) {
				end = i + len(w.text)
			}
		}
	}
	return end
}

var (
	hintOnce    sync.Once
	hintMatcher *phraseMatcher
)

// hintPhrases returns the matcher for recipientHints (group 0).
func hintPhrases() *phraseMatcher {
	hintOnce.Do(func() { hintMatcher = newMatcher([][]string{recipientHints}) })
	return hintMatcher
}

var (
	markerOnce    sync.Once
	markerMatcher *phraseMatcher
)

// markerPhrases returns the matcher for originalMarkers (group 0).
func markerPhrases() *phraseMatcher {
	markerOnce.Do(func() { markerMatcher = newMatcher([][]string{originalMarkers}) })
	return markerMatcher
}

// classifyRecipients gives every recipient its reason and hard/soft, and
// the report its reporting MTA.
func (a *walker) classifyRecipients() {
	rep := a.rep
	if _, v := typedValue(a.dsnMessage.get("reporting-mta")); v != "" {
		rep.ReportingMTA = hostName(v)
	}
	if len(rep.Recipients) == 0 {
		return
	}
	prose := a.reportProse()
	shared := &proseReason{text: prose}
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		in := reasonInput{action: r.Action, status: r.Status, diag: r.Diagnostic, diagType: r.diagType}
		// What the prose says next to this recipient: Postfix's "<a@b>:
		// host X said: ... (in reply to RCPT TO command)" beside its DSN
		// fields, a transcript naming the refused command. Bounded: a
		// report of hundreds of recipients gets its prose read for the
		// first ones only.
		para := ""
		if i < maxProseRecipients {
			para = proseParagraph(prose, r.Address, rep.Recipients[:min(len(rep.Recipients), maxProseRecipients)])
		}
		in.command = smtpCommand(in.diag)
		if in.command == "" {
			in.command = smtpCommand(para)
		}
		if in.command == "" && para == "" && len(rep.Recipients) == 1 {
			in.command = smtpCommand(clip(prose, 2048))
		}
		if strings.TrimSpace(in.diag) == "" {
			in.diag = para
			r.Diagnostic = clip(strings.Join(strings.Fields(para), " "), 500)
		}
		if r.RemoteMTA == "" {
			r.RemoteMTA = remoteHost(in.diag)
			if r.RemoteMTA == "" {
				r.RemoteMTA = remoteHost(para)
			}
		}
		in.prose = shared
		classifyRecipient(r, in)
		if r.Reason == ReasonUndefined || r.Reason == ReasonOnHold || r.Reason == ReasonUserUnknown && r.Status == "" {
			if pr := providerReason(r.Address); pr != "" {
				r.Reason, r.Hard = pr, hardFor(pr, in)
			}
		}
		if r.Status == "" {
			if s := findStatus(in.diag); statusClass(s) == '4' || statusClass(s) == '5' {
				r.Status = s
			}
		}
	}
	if rep.ReportingMTA == "" {
		rep.ReportingMTA = reportingHost(prose)
	}
}

// providerReason is the reason a provider's report means without saying
// it in a code or in English: Google Groups refuses a post from a
// non-member (or to a group that is gone) in the sender's language, with
// no status code; sisimai files these as rejected.
func providerReason(addr string) Reason {
	if strings.HasSuffix(addr, "@googlegroups.com") {
		return ReasonRejected
	}
	return ""
}

// dsnProseScan bounds the prose read beside delivery-status fields: the
// paragraph of each recipient, the refused command.
const dsnProseScan = 4 << 10

// maxProseRecipients bounds the recipients whose paragraph of prose is
// looked up (each lookup scans the prose).
const maxProseRecipients = 64

// proseRegions returns regions(a.texts), computed once.
func (a *walker) proseRegions() []string {
	if a.textRegs == nil {
		a.textRegs = regions(a.texts)
	}
	return a.textRegs
}

// reportProse is the human-readable part of the report, up to the
// returned original: where non-standard MTAs explain the failure.
func (a *walker) reportProse() string {
	regs := a.textRegs
	if regs == nil {
		// Recipients from delivery-status fields need only the start of
		// the prose, not the text recipients are searched in.
		regs = make([]string, len(a.texts))
		for i, t := range a.texts {
			regs[i] = beforeOriginal(clip(t, dsnProseScan))
		}
	}
	if len(regs) == 1 {
		return clip(regs[0], classifyScan)
	}
	var b strings.Builder
	for _, r := range regs {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(clip(r, classifyScan))
		if b.Len() >= classifyScan {
			break
		}
	}
	if b.Len() == 0 {
		for _, t := range a.htmlTexts {
			b.WriteString(beforeOriginal(clip(t, classifyScan)))
			break
		}
	}
	return clip(b.String(), classifyScan)
}

// proseParagraph returns what the prose says where it names addr: for
// each of the first few places, from the start of that line to the next
// blank line, at most 1 KiB in all; "" when the prose does not name it.
// Sendmail names a recipient in its list and again in the transcript.
func proseParagraph(prose, addr string, all []Recipient) string {
	if addr == "" {
		return ""
	}
	// The paragraph ends early at a line naming another recipient:
	// several recipients are often listed without blank lines between.
	otherAt := func(from, to int) int {
		for _, o := range all {
			if o.Address == addr || o.Address == "" {
				continue
			}
			if j := indexFold(prose[from:to], o.Address); j >= 0 {
				ls := strings.LastIndexByte(prose[:from+j], '\n') + 1
				if ls > from {
					to = ls
				}
			}
		}
		return to
	}
	var b strings.Builder
	covered := 0
	for n := 0; n < 4 && covered < len(prose) && b.Len() < 1024; n++ {
		i := indexFold(prose[covered:], addr)
		if i < 0 {
			break
		}
		i += covered
		start := max(strings.LastIndexByte(prose[:i], '\n')+1, covered)
		// A Sendmail transcript names the command on the line above the
		// reply that names the recipient: ">>> DATA" / "<<< 550 ... <a@b>".
		for k := 0; k < 3 && start > covered+1; k++ {
			prev := strings.LastIndexByte(prose[:start-1], '\n') + 1
			if prev < covered || !strings.HasPrefix(strings.TrimLeft(prose[prev:start], " \t"), ">>>") &&
				!strings.HasPrefix(strings.TrimLeft(prose[prev:start], " \t"), "<<<") {
				break
			}
			start = prev
		}
		end := min(len(prose), i+1024)
		if j := strings.Index(prose[i:end], "\n\n"); j >= 0 {
			end = i + j
		}
		if nl := strings.IndexByte(prose[i:end], '\n'); nl >= 0 && len(all) > 1 {
			end = otherAt(i+nl, end)
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prose[start:end])
		covered = end
	}
	return clip(b.String(), 1024)
}

// remoteHost finds the remote server an MTA's text names: Postfix "host
// mx.example.net[192.0.2.1] said:", Exim "host mx.example.net
// [192.0.2.1]:", Sendmail "while talking to mx.example.net.:".
func remoteHost(text string) string {
	if text == "" {
		return ""
	}
	lt := clip(text, 2048)
	for _, m := range []string{"while talking to ", "host ", "connected to ", "remote host "} {
		from := 0
		for from < len(lt) {
			i := indexFold(lt[from:], m)
			if i < 0 {
				break
			}
			i += from + len(m)
			from = i
			if i > len(m) && lt[i-len(m)-1] != ' ' && lt[i-len(m)-1] != '(' && lt[i-len(m)-1] != '\n' && lt[i-len(m)-1] != ':' {
				continue // "...host " inside a word: "localhost "
			}
			tok := lt[i:]
			if j := strings.IndexAny(tok, " \t\n[(:;,"); j >= 0 {
				tok = tok[:j]
			}
			tok = strings.TrimSuffix(tok, ".")
			if hostLike(tok) && strings.ContainsAny(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				return strings.ToLower(tok)
			}
		}
	}
	return ""
}

// reportingHost finds the reporting MTA in prose: Postfix "This is the
// mail system at host mx.example.net.", qmail "This is the qmail-send
// program at mx.example.net."
func reportingHost(prose string) string {
	lt := clip(prose, 2048)
	for _, m := range []string{"this is the mail system at host ", "qmail-send program at ", "this is the mailer-daemon at "} {
		if i := indexFold(lt, m); i >= 0 {
			tok := lt[i+len(m):]
			if j := strings.IndexAny(tok, " \t\n(:;,"); j >= 0 {
				tok = tok[:j]
			}
			if tok = strings.TrimSuffix(tok, "."); hostLike(tok) {
				return strings.ToLower(tok)
			}
		}
	}
	return ""
}
