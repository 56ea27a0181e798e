package bounce

import (
	"strings"
)

// This file reads what non-standard bounces put in plain text: the
// original's header quoted inline, and the failed recipients announced in
// MTA-specific prose. The patterns are generic shapes shared by many MTAs
// (qmail's "<addr>:", Sendmail's "addr... reason", Exim's indented list
// after "following address(es) failed", SMTP transcripts), not the wording
// of single providers.

// inlineHeader is a header block quoted in text.
type inlineHeader struct {
	fields    []headerField
	messageID string
}

func (h *inlineHeader) get(name string) string {
	for _, f := range h.fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

func (h *inlineHeader) values(name string) []string {
	var out []string
	for _, f := range h.fields {
		if f.name == name {
			out = append(out, f.value)
		}
	}
	return out
}

// originalHeaderNames are the fields whose presence next to a Message-ID
// shows a block is a quoted message header, not prose or DSN fields.
var originalHeaderNames = map[string]bool{
	"from": true, "to": true, "cc": true, "subject": true, "date": true,
	"received": true, "return-path": true, "reply-to": true, "sender": true,
	"mime-version": true, "content-type": true, "x-mailer": true,
	"in-reply-to": true, "references": true, "delivered-to": true, "user-agent": true,
}

// linePrefix returns the quoting/indentation prefix length of a line:
// whitespace and ">" quote marks.
func linePrefix(line string) int {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '>') {
		i++
	}
	return i
}

// inlineField splits a quoted "Name: value" line; names are restricted to
// header-name shape so "http://..." or prose are not fields.
func inlineField(s string) (name, value string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i > 40 {
		return "", "", false
	}
	n := s[:i]
	for j := 0; j < len(n); j++ {
		c := n[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && j > 0 || c == '-' && j > 0 || c == '_' && j > 0) {
			return "", "", false
		}
	}
	return strings.ToLower(n), strings.TrimSpace(s[i+1:]), true
}

// findInlineHeader returns the first quoted header block in the texts
// that carries a usable Message-ID and at least one other header field.
func findInlineHeader(texts []string) *inlineHeader {
	for _, t := range texts {
		if h := scanInlineHeaders(t, true); h != nil {
			return h
		}
	}
	return nil
}

// scanInlineHeaders finds the first quoted header block; with needID, one
// with a Message-ID, otherwise any block of at least two header fields that
// names a recipient (To:).
func scanInlineHeaders(text string, needID bool) *inlineHeader {
	// Cheap exit: most text parts quote no header at all.
	if needID && !containsFold(text, "message-id") {
		return nil
	}
	var block []headerField
	indent := -1
	check := func() *inlineHeader {
		if len(block) == 0 {
			return nil
		}
		var id string
		other := false
		for _, f := range block {
			if f.name == "message-id" && id == "" {
				id = firstMsgID(f.value)
			} else if originalHeaderNames[f.name] {
				other = true
			}
		}
		if id != "" && other {
			return &inlineHeader{fields: block, messageID: id}
		}
		if !needID && len(block) >= 2 {
			h := &inlineHeader{fields: block, messageID: id}
			if h.get("to") != "" && (h.get("from") != "" || h.get("subject") != "") {
				return h
			}
		}
		return nil
	}
	for len(text) > 0 {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimRight(line, "\r")
		p := linePrefix(line)
		content := line[p:]
		if strings.TrimSpace(content) == "" {
			if h := check(); h != nil {
				return h
			}
			block, indent = nil, -1
			continue
		}
		if name, value, ok := inlineField(content); ok && (indent < 0 || p <= indent+1) {
			if indent < 0 {
				indent = p
			}
			block = append(block, headerField{name: name, value: value})
			continue
		}
		if len(block) > 0 && p > indent {
			last := &block[len(block)-1]
			last.value = foldContinuation(last.value, strings.TrimSpace(content))
			continue
		}
		if h := check(); h != nil {
			return h
		}
		block, indent = nil, -1
	}
	return check()
}

// indexFold is a case-insensitive strings.Index for a lower-case needle
// (ASCII letters folded), without a lowered copy of the haystack.
func indexFold(s, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	first := needle[0]
	upper := first
	if first >= 'a' && first <= 'z' {
		upper = first - 32
	}
	if upper == first {
		// No case to fold in the first byte: let IndexByte (vectorised)
		// find the candidates.
		for i := 0; i+n <= len(s); {
			j := strings.IndexByte(s[i:len(s)-n+1], first)
			if j < 0 {
				return -1
			}
			i += j
			if strings.EqualFold(s[i:i+n], needle) {
				return i
			}
			i++
		}
		return -1
	}
	// Candidates start with either case of the first byte: the next of
	// each is found with IndexByte and remembered until passed.
	nextLo, nextUp := -2, -2
	for i := 0; i+n <= len(s); {
		if nextLo != -1 && nextLo < i {
			if j := strings.IndexByte(s[i:len(s)-n+1], first); j >= 0 {
				nextLo = i + j
			} else {
				nextLo = -1
			}
		}
		if nextUp != -1 && nextUp < i {
			if j := strings.IndexByte(s[i:len(s)-n+1], upper); j >= 0 {
				nextUp = i + j
			} else {
				nextUp = -1
			}
		}
		switch {
		case nextLo < 0 && nextUp < 0:
			return -1
		case nextLo < 0 || nextUp >= 0 && nextUp < nextLo:
			i = nextUp
		default:
			i = nextLo
		}
		if strings.EqualFold(s[i:i+n], needle) {
			return i
		}
		i++
	}
	return -1
}

// containsFold is a case-insensitive strings.Contains for an ASCII
// lower-case needle, without allocating a lowered copy of the haystack.
func containsFold(s, needle string) bool {
	return indexFold(s, needle) >= 0
}

// originalMarkers are phrases that introduce the returned original in a
// plain-text bounce; recipient patterns stop there so the original's own
// To:/Cc: addresses are not taken for failed recipients.
var originalMarkers = []string{
	"below this line is a copy",
	"copy of the message",
	"original message follows",
	"original message as received",
	"returned mail follows",
	"start of returned message",
	"undelivered message you sent follows",
	"message you sent follows",
	"unsent message below",
	"lines of your original message",
	"lines of the message follow",
	"header and top",
	"unsent message follows",
	"original message ---",
	"--- original message",
	"-- original message",
	"original message headers",
	"header of the original message",
	"headers of the original message",
	"returned message follows",
	"message header follows",
	"original-message-id",
	"text of the original message",
	"original message:",
	"the original message is attached",
	"----- message text follows",
}

// regions returns each text cut at the start of the returned original,
// within recipientScan: the report's own prose, where recipients and
// reasons are looked for.
func regions(texts []string) []string {
	out := make([]string, len(texts))
	for i, t := range texts {
		out[i] = beforeOriginal(clip(t, recipientScan))
	}
	return out
}

// beforeOriginal cuts a bounce text at the start of the returned
// original (a marker phrase or the first quoted Received/Return-Path line).
func beforeOriginal(text string) string {
	cut := len(text)
	if e := markerPhrases().firstEnd(text, 1); e >= 0 {
		cut = strings.LastIndexByte(text[:e], '\n') + 1 // start of the marker's line
	}
	// The first quoted header line, if it comes earlier: Received and
	// Return-Path start a returned header; Message-ID marks one too, from
	// the start of its block of fields, when the block holds fields that
	// only a whole header has (reports quote Message-ID, To and Subject of
	// the original in their own summary, never its MIME or list fields).
	blockStart := -1 // start of the current run of field and continuation lines
	for off := 0; off < cut; {
		line := text[off:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		c := strings.TrimLeft(line, " \t>")
		if len(c) >= 9 && strings.EqualFold(c[:9], "received:") || len(c) >= 12 && strings.EqualFold(c[:12], "return-path:") {
			return text[:off]
		}
		switch {
		case len(c) >= 11 && strings.EqualFold(c[:11], "message-id:"):
			if blockStart < 0 {
				blockStart = off
			}
			if wholeHeaderBlock(text[blockStart:]) {
				return text[:blockStart]
			}
		case c == "":
			blockStart = -1
		case len(c) < len(line) || isFieldLine(c):
			if blockStart < 0 {
				blockStart = off
			}
		default:
			blockStart = -1
		}
		off += len(line) + 1
	}
	return text[:cut]
}

// wholeHeaderBlock reports whether the block of field lines at the start
// of text holds a field that only a message's own header carries.
func wholeHeaderBlock(text string) bool {
	for n := 0; n < 60 && text != ""; n++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		c := strings.TrimLeft(line, " \t>")
		if c == "" {
			return false
		}
		name, _, ok := inlineField(c)
		if !ok {
			if len(c) < len(line) {
				continue // a continuation line
			}
			return false
		}
		switch {
		case name == "mime-version", name == "content-type", name == "content-transfer-encoding", name == "received",
			name == "return-path", name == "delivered-to", name == "references", name == "in-reply-to",
			strings.HasPrefix(name, "x-"), strings.HasPrefix(name, "list-"):
			return true
		}
	}
	return false
}

// recipientHints are phrases after which the failed recipients are
// listed, one per line, by most MTAs that do not send RFC 3464 reports.
var recipientHints = []string{
	"following address",
	"following recipient",
	"following destination",
	"following e-mail address",
	"following email address",
	"following mail address",
	"permanent fatal error",
	"could not be delivered to",
	"couldn't be delivered to",
	"could not deliver to",
	"unable to deliver",
	"not be delivered to",
	"were not delivered",
	"was not delivered",
	"delivery failed",
	"delivery has failed",
	"delivery to the following",
	"failed recipient",
	"undeliverable to",
	"invalid recipient",
	"recipient address",
	"unknown recipient",
	"your message to",
	"message to the following",
	"delivery problem",
	"could not be reached",
	"failed permanently",
	"temporary failure",
	"has not yet been delivered",
	"have not yet been delivered",
	"delayed",
	"i'm afraid i wasn't able to deliver",
	"wasn't able to deliver",
	"addresses had transient",
	"rejected your message",
	"no such user",
	"user unknown",
	"mailbox unavailable",
	"does not exist",
	"list of recipients",
	"failed addresses",
	"delivery problems",
	"fatal errors",
	"failure reasons",
	"rejected recipient",
	"addressed to",
	"was addressed",
	"intended recipient",
	"not accepted",
	"is unavailable",
	"did not reach",
	"not delivered to the following",
	"送信に失敗",
	"送信できません",
}

// recipientScan bounds the text of one part searched for recipients;
// MTAs list them before any quoted original.
const recipientScan = 32 << 10

// textRecipients finds failed recipients in the prose of a bounce, given
// as regions: the text parts cut before the returned original (regions).
//
// Each line that names a recipient is a mention; a recipient's diagnostic
// is built from its mentions afterwards (mentionDiagnostic), because MTAs
// put the reason after the address (Exim, qmail, Gmail), on the same line
// (Postfix, Sendmail), before it (Notes) or in a session transcript further
// down (Sendmail).
func textRecipients(regions []string) []Recipient {
	var out []Recipient
	seen := map[string]bool{}
	for _, region := range regions {
		// Text-embedded RFC 3464 fields (a report pasted as text, or a
		// delivery-status part the MIME reader could not reach).
		if containsFold(region, "final-recipient:") || containsFold(region, "original-recipient:") {
			_, recs := parseDSNFields([]byte(region))
			for _, r := range dSNRecipients(recs) {
				if (r.Action == "" || r.Action == "failed" || r.Action == "delayed") && !seen[r.Address] && strings.Contains(r.Address, "@") {
					seen[r.Address] = true
					if r.Action == "" {
						r.Action = "failed"
					}
					if r.Status == "" {
						r.Status = failureStatus(r.Diagnostic)
					}
					out = append(out, r)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
		region = collapseBlanks(region)
		lines := strings.Split(region, "\n")
		var mentions []mention
		first := len(out)
		add := func(addr string, line int, shape mentionShape) {
			addr = recipientAddress(addr)
			if addr == "" || !strings.Contains(addr, "@") {
				return
			}
			if len(mentions) < 1000 {
				mentions = append(mentions, mention{line: line, addr: addr, shape: shape})
			}
			if seen[addr] {
				return
			}
			seen[addr] = true
			out = append(out, Recipient{Address: addr, Action: "failed"})
		}
		findMentions(region, lines, add)
		byLine := make(map[int]string, len(mentions))
		for _, m := range mentions {
			byLine[m.line] = m.addr
		}
		for i := first; i < len(out); i++ {
			diag := mentionDiagnostic(lines, mentions, byLine, out[i].Address)
			out[i].Status = failureStatus(diag)
			out[i].Diagnostic = clip(diag, 500)
		}
	}
	return out
}

// collapseBlanks turns runs of blanks inside lines into one space (the
// indentation that starts a line is kept): "undeliverable  to" must match
// the phrase "undeliverable to".
func collapseBlanks(s string) string {
	if !strings.Contains(s, "  ") && !strings.Contains(s, "\t") {
		return s
	}
	b := make([]byte, 0, len(s))
	lineStart, blank := true, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			lineStart, blank = true, false
			b = append(b, c)
		case c == ' ' || c == '\t':
			if lineStart {
				b = append(b, c)
			} else if !blank {
				b = append(b, ' ')
				blank = true
			}
		default:
			lineStart, blank = false, false
			b = append(b, c)
		}
	}
	return string(b)
}

// mentionShape says how a line names a recipient, which decides how much
// of the following text belongs to it.
type mentionShape int

const (
	shapeBlock   mentionShape = iota // the reason follows, possibly over several lines
	shapeLine                        // the line holds address and reason (Sendmail's "addr... reason")
	shapeCommand                     // an SMTP transcript line; the reply follows
)

// mention is one line naming a recipient.
type mention struct {
	line  int
	addr  string
	shape mentionShape
}

// findMentions calls add for every line of region that names a failed
// recipient.
func findMentions(region string, lines []string, add func(addr string, line int, shape mentionShape)) {
	lowRegion := lowerASCII(region)
	// The first hint phrase anywhere: lines from the one holding it on
	// are "hinted". One scan per phrase instead of one per line.
	hintAt := hintPhrases().firstEnd(lowRegion, 1)
	if hintAt < 0 {
		hintAt = len(lowRegion) + 1
	} else {
		hintAt-- // offset of the phrase's last byte: on the hint line
	}
	hinted := false
	off := 0
	for i, line := range lines {
		lc := lowRegion[off : off+len(line)]
		c := strings.TrimSpace(line)
		if off+len(line) >= hintAt && hintAt <= len(lowRegion) {
			hinted = true
		}
		off += len(line) + 1
		// Shapes that name a recipient wherever they occur.
		if a, ok := qmailShape(c); ok {
			add(a, i, shapeBlock)
			continue
		}
		if a, ok := sendmailShape(c); ok {
			add(a, i, shapeLine)
			continue
		}
		if j := strings.Index(lc, "rcpt to:"); j >= 0 {
			if a := firstAddr(line[j:]); a != "" {
				add(a, i, shapeCommand)
			}
			continue
		}
		// A line holding nothing but an address names the recipient in
		// many formats (Notes, Biglobe, m-FILTER, Gmail, Exim).
		if a := soleAddr(c); a != "" && (hinted || !daemonAddress(strings.ToLower(a))) {
			add(a, i, shapeBlock)
			continue
		}
		// "User mailbox exceeds allowed size: a@b": prose, a colon, and
		// the address closing the line.
		if a := trailingAddr(c); a != "" {
			add(a, i, shapeLine)
			continue
		}
		if !hinted {
			continue
		}
		// After a hint: an address at the start of a line, or named on
		// the hint line itself ("could not be delivered to <a@b>").
		if a := leadingAddr(c); a != "" {
			add(a, i, shapeBlock)
			continue
		}
		found := false
		if strings.IndexByte(line, '@') < 0 {
			continue
		}
		// Exchange's X.400 form of a recipient: "c=US;a= ;p=ORG;...;
		// dda:SMTP=user@example.com; on <date>".
		if k := strings.Index(lc, "smtp="); k >= 0 {
			if a := firstAddr(line[k+5:]); a != "" {
				add(a, i, shapeBlock)
				continue
			}
		}
		cl, cline := lc, line
		if strings.Contains(lc, "  ") || strings.ContainsRune(lc, '\t') {
			// Hint phrases are matched with runs of blanks collapsed.
			cl, cline = strings.Join(strings.Fields(lc), " "), strings.Join(strings.Fields(line), " ")
		}
		for _, h := range recipientHints {
			if k := strings.Index(cl, h); k >= 0 {
				if a := recipientAfter(cline[k:]); a != "" && !daemonAddress(strings.ToLower(a)) {
					add(a, i, shapeBlock)
					found = true
				}
				break
			}
		}
		// "... recipient <a@b> ...", "Address: <a@b>".
		if !found {
			for _, w := range []string{"recipient <", "recipient: <", "address: <", "address <", "recipient:", "address:", "mailbox <", "mailbox "} {
				if k := strings.Index(lc, w); k >= 0 {
					if a := firstAddr(line[k:]); a != "" {
						add(a, i, shapeBlock)
					}
					break
				}
			}
		}
	}
}

// Bounds of one recipient's diagnostic in prose.
const (
	diagBlockLines = 12   // lines after a mention
	diagMaxLen     = 1500 // bytes of diagnostic text assembled
)

// mentionDiagnostic assembles the diagnostic of addr from its mentions:
// each mention's line when it says more than the address, and the lines
// after it up to the next mention of another recipient, a separator line
// or a second blank line. When that yields nothing (Notes puts the reason
// above the address), the lines just above the first mention are used.
func mentionDiagnostic(lines []string, mentions []mention, byLine map[int]string, addr string) string {
	other := func(line int) bool {
		a, ok := byLine[line]
		return ok && a != addr
	}
	var b strings.Builder
	covered := -1
	put := func(s string) {
		if s == "" || b.Len() >= diagMaxLen {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	firstLine := -1
	for _, m := range mentions {
		if m.addr != addr || m.line <= covered {
			continue
		}
		if firstLine < 0 {
			firstLine = m.line
		}
		c := strings.TrimSpace(lines[m.line])
		if len(c) > len(addr)+4 {
			put(c)
		}
		covered = m.line
		if m.shape == shapeLine {
			// Sendmail's transcript gives the remote reply just above its
			// "addr... reason" line: "<<< 554 5.7.1 spam score too high".
			var above []string
			for j := m.line - 1; j >= 0 && len(above) < 3 && !other(j); j-- {
				l := strings.TrimSpace(lines[j])
				if !strings.HasPrefix(l, "<<<") {
					break
				}
				above = append(above, l)
			}
			for k := len(above) - 1; k >= 0; k-- {
				put(above[k])
			}
			continue
		}
		limit := diagBlockLines
		if m.shape == shapeCommand {
			limit = 3
		}
		blank := 0
		for j := m.line + 1; j < len(lines) && limit > 0 && !other(j); j++ {
			l := strings.TrimSpace(lines[j])
			covered = j
			if l == "" {
				blank++
				if blank >= 2 {
					break
				}
				continue
			}
			blank = 0
			if separatorLine(l) || strings.HasSuffix(l, ":") && !strings.Contains(l, "@") && hintPhrases().firstEnd(l, 1) >= 0 {
				break // a ruler, or the heading of the next list, ends this recipient's text
			}
			put(l)
			limit--
		}
	}
	if b.Len() == 0 && firstLine > 0 {
		// Nothing after the address: the reason may stand above it, in
		// the same paragraph.
		var above []string
		for j := firstLine - 1; j >= 0 && len(above) < 3 && !other(j); j-- {
			l := strings.TrimSpace(lines[j])
			if l == "" || separatorLine(l) {
				break
			}
			above = append(above, l)
		}
		for k := len(above) - 1; k >= 0; k-- {
			put(above[k])
		}
	}
	return clip(b.String(), diagMaxLen)
}

// separatorLine reports a ruler line ("-----", "=====", "*****"), with or
// without a title in it: the start of another section of the report.
func separatorLine(l string) bool {
	n := 0
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '-', '=', '*', '_', '#':
			n++
		}
	}
	return n >= 5 && (strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") || strings.HasPrefix(l, "***") ||
		strings.HasPrefix(l, "___") || strings.HasPrefix(l, "###"))
}

// qmailShape matches "<addr>:" lines (qmail, Yahoo and others).
func qmailShape(c string) (string, bool) {
	if len(c) < 5 || c[0] != '<' {
		return "", false
	}
	j := strings.IndexByte(c, '>')
	if j < 0 || j+1 >= len(c) || c[j+1] != ':' {
		return "", false
	}
	a := c[1:j]
	if !isAddr(a) {
		return "", false
	}
	return a, true
}

// sendmailShape matches "addr... reason" / "<addr>... reason" lines,
// skipping SMTP transcript lines that merely echo it.
func sendmailShape(c string) (string, bool) {
	if strings.HasPrefix(c, "<<<") {
		// The remote server's reply in a transcript; it may concern the
		// sender (MAIL FROM), and failed recipients are repeated unprefixed.
		return "", false
	}
	c = strings.TrimLeft(c, "0123456789.- <")
	j := strings.Index(c, "...")
	if j <= 0 {
		return "", false
	}
	a := strings.Trim(c[:j], "<> ")
	if !isAddr(a) {
		return "", false
	}
	return a, true
}

// recipientAfter returns the first address in s that is not the sender's:
// "not accepting mail from a@b" names the sender, not a recipient.
func recipientAfter(s string) string {
	for len(s) > 0 {
		a := firstAddr(s)
		if a == "" {
			return ""
		}
		i := strings.Index(s, a)
		before := strings.ToLower(strings.TrimRight(s[:i], " <'\"(:"))
		if !strings.HasSuffix(before, "from") && !strings.HasSuffix(before, "sender") {
			return a
		}
		s = s[i+len(a):]
	}
	return ""
}

// leadingAddr returns an address that starts the (trimmed) line.
func leadingAddr(c string) string {
	c = strings.TrimLeft(c, "*-•> \t\"'")
	c = strings.TrimPrefix(c, "<")
	if c == "" {
		return ""
	}
	end := strings.IndexAny(c, " \t>:;,\"'()")
	if end < 0 {
		end = len(c)
	}
	a := c[:end]
	a = strings.TrimRight(a, ".")
	if !isAddr(a) {
		return ""
	}
	// "phrase <addr>": a display part that happens to look like an
	// address is followed by the real one in angle brackets.
	if rest := strings.TrimLeft(c[end:], " \t"); strings.HasPrefix(rest, "<") {
		if j := strings.IndexByte(rest, '>'); j > 1 && isAddr(rest[1:j]) {
			return rest[1:j]
		}
	}
	return a
}

// firstAddr returns the first address-looking token in s.
func firstAddr(s string) string {
	at := strings.IndexByte(s, '@')
	for at > 0 {
		start := at
		for start > 0 && addrByte(s[start-1]) {
			start--
		}
		end := at + 1
		for end < len(s) && addrByte(s[end]) {
			end++
		}
		a := strings.TrimRight(s[start:end], ".")
		if strings.Count(a, "'")%2 == 1 || strings.HasPrefix(a, "'") && strings.HasSuffix(a, "'") {
			a = strings.Trim(a, "'") // 'user@example.com' quoted in prose
		}
		if isAddr(a) {
			return a
		}
		next := strings.IndexByte(s[at+1:], '@')
		if next < 0 {
			break
		}
		at = at + 1 + next
	}
	return ""
}

func addrByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

// isAddr accepts local@domain with a dotted (or bracketed) domain.
func isAddr(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 {
		return false
	}
	local, dom := a[:at], a[at+1:]
	for i := 0; i < len(local); i++ {
		if !addrByte(local[i]) && local[i] != '"' {
			return false
		}
	}
	if strings.HasPrefix(dom, "[") {
		return strings.HasSuffix(dom, "]")
	}
	if !strings.Contains(dom, ".") || strings.HasPrefix(dom, ".") || strings.HasSuffix(dom, ".") {
		return false
	}
	for i := 0; i < len(dom); i++ {
		c := dom[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// daemonAddress reports the addresses bounce texts name that are never the
// failed recipient (the reporting system itself).
func daemonAddress(a string) bool {
	local, _, _ := strings.Cut(a, "@")
	switch local {
	case "mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mailer_daemon", "double-bounce":
		return true
	}
	return false
}

// failureStatus is bestStatus without success codes: the status of a
// failed recipient named in text.
func failureStatus(s string) string {
	if st := bestStatus(s); statusClass(st) != '2' {
		return st
	}
	return ""
}

// findStatus returns the first enhanced status code (x.y.z) in s.
func findStatus(s string) string {
	for i := 0; i+5 <= len(s); i++ {
		c := s[i]
		if (c == '2' || c == '4' || c == '5') && s[i+1] == '.' && (i == 0 || s[i-1] == ' ' || s[i-1] == '(' || s[i-1] == '#' || s[i-1] == '[') {
			j := i + 2
			k := j
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k == j || k-j > 3 || k >= len(s) || s[k] != '.' {
				continue
			}
			m := k + 1
			for m < len(s) && s[m] >= '0' && s[m] <= '9' {
				m++
			}
			if m == k+1 || m-k-1 > 3 {
				continue
			}
			return s[i:m]
		}
	}
	return ""
}

// soleAddr returns the address when the trimmed line is only that address
// (optionally in angle brackets or followed by a colon).
func soleAddr(c string) string {
	c = strings.TrimSuffix(strings.TrimSpace(c), ":")
	c = strings.TrimSpace(c)
	if len(c) > 2 && (c[0] == '"' || c[0] == '\'') && c[len(c)-1] == c[0] {
		c = c[1 : len(c)-1]
	}
	if strings.HasPrefix(c, "<") && strings.HasSuffix(c, ">") {
		c = c[1 : len(c)-1]
	}
	if isAddr(c) {
		return c
	}
	return ""
}

// trailingAddr matches a prose line (words before a colon) ending in an
// address: "Mailbox is full: <a@b>". Header-like lines ("To: a@b") are not
// prose and do not match.
func trailingAddr(c string) string {
	i := strings.LastIndex(c, ": ")
	if i <= 0 || strings.HasPrefix(c, ">") || !strings.Contains(c[:i], " ") {
		return ""
	}
	// SMTP commands and header-ish labels name the sender, not a recipient.
	if p := strings.ToLower(c[:i]); strings.HasSuffix(p, "from") || strings.HasSuffix(p, "sender") || strings.HasSuffix(p, "reply-to") {
		return ""
	}
	a := strings.TrimSpace(c[i+2:])
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	if !isAddr(a) || daemonAddress(strings.ToLower(a)) {
		return ""
	}
	return a
}

// jSONRecipients reads the recipients of a provider notification in
// JSON (Amazon SES through SNS: "bouncedRecipients":[{"emailAddress":...}],
// possibly as an escaped string inside the SNS envelope). It scans instead
// of decoding: these notifications arrive re-wrapped by mail systems, which
// breaks strict JSON.
func jSONRecipients(texts []string) []Recipient {
	var out []Recipient
	for _, t := range texts {
		t = clip(t, recipientScan)
		if !containsFold(t, "recipients") {
			continue
		}
		t = strings.ReplaceAll(t, `\"`, `"`)
		lt := lowerASCII(t)
		for _, key := range []string{`"bouncedrecipients"`, `"delayedrecipients"`} {
			i := strings.Index(lt, key)
			if i < 0 {
				continue
			}
			end := strings.IndexByte(lt[i:], ']')
			if end < 0 {
				end = len(lt) - i
			}
			arr, larr := t[i:i+end], lt[i:i+end]
			action := "failed"
			if key == `"delayedrecipients"` {
				action = "delayed"
			}
			for _, obj := range strings.Split(larr, "}")[:max(0, strings.Count(larr, "}"))+1] {
				off := strings.Index(larr, obj)
				addr := jSONString(arr[off:off+len(obj)], obj, `"emailaddress"`)
				if addr == "" {
					continue
				}
				out = append(out, Recipient{
					Address:    recipientAddress(addr),
					Action:     action,
					Status:     jSONString(arr[off:off+len(obj)], obj, `"status"`),
					Diagnostic: clip(jSONString(arr[off:off+len(obj)], obj, `"diagnosticcode"`), 500),
				})
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return out
}

// jSONString returns the string value of key in a JSON fragment (orig
// and its lower-cased copy lower share offsets).
func jSONString(orig, lower, key string) string {
	i := strings.Index(lower, key)
	if i < 0 {
		return ""
	}
	rest := orig[i+len(key):]
	j := strings.IndexByte(rest, '"')
	if j < 0 || strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest[:j]), ":")) != "" {
		return ""
	}
	rest = rest[j+1:]
	k := strings.IndexByte(rest, '"')
	if k < 0 {
		return ""
	}
	return rest[:k]
}
