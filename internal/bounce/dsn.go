package bounce

import (
	"bytes"
	"html"
	"mime"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// This file holds the lenient readers the analysis is built on: header
// sections, multipart bodies and RFC 3464 field blocks. They are written by
// hand instead of using the strict readers (net/textproto, go-message's
// ReadHeader, mox's dsn) because real bounces break every rule: header
// lines without a colon, weekdays in Arrival-Date, boundaries that never
// close, per-recipient blocks without the blank line between them.

// headerField is one "Name: value" field, name lower-cased, value unfolded.
type headerField struct {
	name, value string
}

// dSNRecord is one block of delivery-status (or MDN/ARF) fields in order.
type dSNRecord []headerField

func (r dSNRecord) get(name string) string {
	for _, f := range r {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

func (r dSNRecord) has(name string) bool {
	for _, f := range r {
		if f.name == name {
			return true
		}
	}
	return false
}

// maxDSNRecords bounds the per-recipient blocks kept from one part; a real
// DSN reports on at most a few hundred recipients.
const maxDSNRecords = 1000

// parseDSNFields reads a message/delivery-status body: the per-message
// block, then per-recipient blocks. It never fails; whatever looks like a
// field is kept. Blocks are separated by blank lines; a block holding a
// Final-Recipient/Original-Recipient is a recipient block (whatever the
// order of its fields: some MTAs put Action first), and a second
// Final-Recipient inside one block starts a new recipient when the blank
// line is missing. Per-message fields glued to the first recipient block
// are moved back to the per-message record.
func parseDSNFields(b []byte) (perMessage dSNRecord, recipients []dSNRecord) {
	var block dSNRecord
	flush := func() {
		if len(block) == 0 {
			return
		}
		if !block.has("final-recipient") && !block.has("original-recipient") {
			perMessage = append(perMessage, block...)
			block = nil
			return
		}
		var cur dSNRecord
		seenRecipient := false
		for _, f := range block {
			isRcpt := f.name == "final-recipient" || f.name == "original-recipient"
			if !seenRecipient && !isRcpt && perMessageField(f.name) {
				perMessage = append(perMessage, f)
				continue
			}
			if isRcpt {
				if cur.has(f.name) {
					if len(recipients) < maxDSNRecords {
						recipients = append(recipients, cur)
					}
					cur = nil
				}
				seenRecipient = true
			}
			cur = append(cur, f)
		}
		if len(cur) > 0 && len(recipients) < maxDSNRecords {
			recipients = append(recipients, cur)
		}
		block = nil
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(block) > 0 {
				last := &block[len(block)-1]
				last.value = foldContinuation(last.value, string(bytes.TrimSpace(line)))
			}
			continue
		}
		name, value, ok := cutField(line)
		if !ok {
			// Not a field: either wrapped text of the previous value or
			// debris; appending keeps diagnostics whole and loses nothing.
			if len(block) > 0 {
				last := &block[len(block)-1]
				last.value = foldContinuation(last.value, string(bytes.TrimSpace(line)))
			}
			continue
		}
		if len(block) < 10000 {
			block = append(block, headerField{name: name, value: value})
		}
	}
	flush()
	return perMessage, recipients
}

// perMessageField reports the RFC 3464 per-message field names.
func perMessageField(name string) bool {
	switch name {
	case "reporting-mta", "received-from-mta", "arrival-date", "original-envelope-id", "dsn-gateway", "reporting-ua", "x-postfix-queue-id", "x-postfix-sender":
		return true
	}
	return false
}

// cutField splits "Name: value". The name must be a plausible field name
// (RFC 5322 ftext without spaces), so prose lines containing a colon are not
// taken as fields.
func cutField(line []byte) (name, value string, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || i > 76 {
		return "", "", false
	}
	n := line[:i]
	// Tolerate "Name :" (seen in old Lotus/Novell output).
	n = bytes.TrimRight(n, " \t")
	if len(n) == 0 {
		return "", "", false
	}
	for _, c := range n {
		if c <= ' ' || c >= 127 {
			return "", "", false
		}
	}
	return lowerName(n), strings.TrimSpace(string(line[i+1:])), true
}

// lowerName lower-cases a field name, without allocating twice for the
// common already-canonical spellings.
func lowerName(n []byte) string {
	for _, c := range n {
		if c >= 'A' && c <= 'Z' {
			return strings.ToLower(string(n))
		}
	}
	return string(n)
}

// recipientAddress normalises a Final-Recipient/Original-Recipient value
// as the corpus labels do: drop the address type ("rfc822;"), angle
// brackets, a source route and a trailing comment, lower-case the rest.
func recipientAddress(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ';'); i >= 0 && i < 20 && !strings.ContainsAny(v[:i], "@<") {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	} else if i := strings.IndexByte(v, ' '); i > 0 && strings.Contains(v[:i], "@") {
		v = v[:i] // "user@example.com (comment)"
	}
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1] // a quoted value, not a quoted local part
	}
	v = strings.Trim(v, "<>'")
	if strings.HasPrefix(v, "\"") && strings.Count(v, "\"") == 1 || strings.HasSuffix(v, "\"") && strings.Count(v, "\"") == 1 {
		v = strings.Trim(v, "\"")
	}
	if strings.HasPrefix(v, "@") {
		if i := strings.IndexByte(v, ':'); i > 0 {
			v = v[i+1:]
		}
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// dsnRecipients converts per-recipient blocks into BouncedRecipients.
func dSNRecipients(recs []dSNRecord) []Recipient {
	var out []Recipient
	for _, r := range recs {
		// Final-Recipient is the address the report is about, but some
		// MTAs put there what is no Internet address: an X.400 O/R
		// address, a Notes name, a bare local part, a local file or pipe.
		// The address the sender used is then in
		// Original-Recipient (or X-Actual-Recipient); failing that, the
		// walker looks in the header and the text (resolveAddresses).
		addr := recipientAddress(r.get("final-recipient"))
		if orig := recipientAddress(r.get("original-recipient")); isAddr(orig) && mailboxLike(addr) && !isAddr(addr) &&
			strings.EqualFold(localPart(addr), localPart(orig)) {
			// "user@sims-ms-daemon", "user@server": the same mailbox under
			// an internal host name; the Internet address is the original.
			addr = orig
		}
		if !mailboxLike(addr) {
			for _, f := range []string{"original-recipient", "x-actual-recipient"} {
				if alt := recipientAddress(r.get(f)); mailboxLike(alt) {
					addr = alt
					break
				}
			}
		}
		if addr == "" {
			addr = recipientAddress(r.get("original-recipient"))
		}
		if addr == "" {
			continue
		}
		action := strings.ToLower(strings.TrimSpace(r.get("action")))
		if i := strings.IndexAny(action, " (;"); i > 0 {
			action = action[:i]
		}
		if action == "failure" {
			action = "failed" // Netscape and SIMS write "failure"
		}
		diagType, diag := typedValue(r.get("diagnostic-code"))
		diag = decodeJIS(diag)
		if diag == "" {
			// "Status: 4.0.0 (example.net: host name lookup failure)":
			// Sendmail explains in a comment when it has no diagnostic.
			if st := r.get("status"); strings.Contains(st, "(") {
				diag = strings.Trim(strings.TrimSpace(st[strings.IndexByte(st, '(')+1:]), ")")
			}
		}
		_, remote := typedValue(r.get("remote-mta"))
		out = append(out, Recipient{
			Address:    addr,
			Action:     action,
			Status:     statusCode(r.get("status")),
			Diagnostic: clip(diag, 500),
			RemoteMTA:  hostName(remote),
			diagType:   diagType,
		})
	}
	return out
}

// decodeJIS converts ISO-2022-JP escape sequences, which Japanese MTAs
// (Domino, Notes) put raw into Diagnostic-Code fields, to UTF-8 so the
// textual rules see the words. Other text is returned unchanged.
func decodeJIS(s string) string {
	if !strings.Contains(s, "\x1b$") {
		return s
	}
	r, err := charset.Reader("iso-2022-jp", strings.NewReader(s))
	if err != nil {
		return s
	}
	out, err := readAllHint(r, len(s)*2, int64(len(s))*4+16)
	if err != nil || len(out) == 0 {
		return s
	}
	return string(out)
}

// localPart returns what precedes the last @.
func localPart(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[:i]
	}
	return a
}

// mailboxLike reports a value shaped like local@domain (the domain may be
// a bare host name), as opposed to an X.400 address, a file or a pipe.
func mailboxLike(a string) bool {
	at := strings.LastIndexByte(a, '@')
	return at > 0 && at < len(a)-1 && !strings.ContainsAny(a, " \t/|<>") && !strings.HasPrefix(a, "|")
}

// typedValue splits an RFC 3464 "type; value" field (Diagnostic-Code,
// Remote-MTA, Reporting-MTA) into its lower-cased type and value. A value
// without a type comes back whole.
func typedValue(v string) (typ, value string) {
	if i := strings.IndexByte(v, ';'); i >= 0 && i < 12 {
		if t := strings.TrimSpace(v[:i]); !strings.ContainsAny(t, " \t@<") {
			return strings.ToLower(t), strings.TrimSpace(v[i+1:])
		}
	}
	return "", strings.TrimSpace(v)
}

// hostName keeps the host of a Remote-MTA/Reporting-MTA value: its first
// word, without brackets or a trailing dot ("mx.example.net [192.0.2.1]",
// "mx.example.net.").
func hostName(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t("); i > 0 {
		v = v[:i]
	}
	v = strings.TrimSuffix(strings.Trim(v, "[]<>\"'"), ".")
	if len(v) > 255 {
		return ""
	}
	return strings.ToLower(v)
}

// statusCode keeps the leading "x.y.z" of a Status value.
func statusCode(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t("); i > 0 {
		v = v[:i]
	}
	return v
}

// maxFieldValue caps an unfolded field value. Without it, a header of
// thousands of continuation lines costs quadratic time to unfold.
const maxFieldValue = 4 << 10

// foldContinuation appends a continuation line to a field value, up to the cap.
func foldContinuation(v, cont string) string {
	if len(v) >= maxFieldValue || cont == "" {
		return v
	}
	if v == "" {
		return clip(cont, maxFieldValue)
	}
	return clip(v+" "+cont, maxFieldValue)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// isFieldLine is cutField's test without building the strings.
func isFieldLine(line string) bool {
	i := strings.IndexByte(line, ':')
	if i <= 0 || i > 76 {
		return false
	}
	n := strings.TrimRight(line[:i], " \t")
	if len(n) == 0 {
		return false
	}
	for j := 0; j < len(n); j++ {
		if c := n[j]; c <= ' ' || c >= 127 {
			return false
		}
	}
	return true
}

// splitHeader splits a message (or part) into its header and body. Lines
// that are neither fields nor indented continuations are treated as
// continuations: unindented folding is the commonest damage in returned
// headers. A first line that is not a field means there is no header.
func splitHeader(data []byte) (fieldList, []byte) {
	// The header ends at the first blank line at the latest, so only that
	// much is converted to a string, once; field names and values are
	// slices of it. A folded value is a contiguous span of lines, unfolded
	// once when the field ends, so unfolding stays linear.
	if len(data) > 0 && data[0] == '\n' {
		return nil, data[1:] // empty header
	}
	if len(data) > 0 && (data[0] == ' ' || data[0] == '\t' || !isFieldLine(string(firstLine(data)))) {
		return nil, data // no header at all: a body
	}
	limit := len(data)
	if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		limit = i + 2
	}
	hs := string(data[:limit])
	fields := make([]headerField, 0, 16) // most sections have a handful of fields
	vstart, vend := 0, 0                 // span of the current field's value in hs
	folded := false
	closeField := func() {
		if len(fields) == 0 {
			return
		}
		v := hs[vstart:vend]
		if folded {
			v = unfoldValue(v)
		}
		fields[len(fields)-1].value = strings.TrimSpace(v)
		folded = false
	}
	pos := 0
	for pos < len(hs) {
		line, _, found := strings.Cut(hs[pos:], "\n")
		next := pos + len(line) + 1
		if !found {
			next = len(hs)
		}
		if len(line) == 0 {
			pos = next
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				break // indented text: a body without header
			}
			if len(strings.TrimSpace(line)) == 0 {
				// Whitespace-only line ends the header in practice.
				pos = next
				break
			}
			vend, folded = pos+len(line), true
			pos = next
			continue
		}
		i := strings.IndexByte(line, ':')
		if !isFieldLine(line) {
			if len(fields) == 0 {
				break
			}
			if strings.HasPrefix(line, "--") {
				break // a MIME boundary: header ended without blank line
			}
			vend, folded = pos+len(line), true
			pos = next
			continue
		}
		closeField()
		fields = append(fields, headerField{name: strings.TrimSpace(line[:i])})
		vstart, vend = pos+i+1, pos+len(line)
		pos = next
		if len(fields) > 500 {
			break
		}
	}
	closeField()
	if pos > len(data) {
		pos = len(data)
	}
	return fieldList(fields), data[pos:]
}

// firstLine returns data up to its first line break (at most 1000 bytes:
// a field name is never longer).
func firstLine(data []byte) []byte {
	if len(data) > 1000 {
		data = data[:1000]
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i]
	}
	return data
}

// unfoldValue joins folded lines: each line break and the whitespace around it
// become one space.
func unfoldValue(v string) string {
	if len(v) > maxFieldValue*4 {
		v = v[:maxFieldValue*4]
	}
	var b strings.Builder
	b.Grow(len(v))
	for len(v) > 0 {
		line, rest, found := strings.Cut(v, "\n")
		t := strings.TrimSpace(line)
		if t != "" {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(t)
		}
		if !found {
			break
		}
		v = rest
	}
	return b.String()
}

// fieldList is a parsed header section, fields in order, names as written.
// It is a plain slice because most headers are only asked for a handful of
// fields; go-message's map-based Header is built only for the parts whose
// body has to be decoded.
type fieldList []headerField

// Get returns the first value of the field (name case-insensitive).
func (h fieldList) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// Has reports whether the field is present.
func (h fieldList) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// Values returns every value of the field in order.
func (h fieldList) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// with returns a copy of h with the field set to value (replacing all
// occurrences, or appended).
func (h fieldList) with(name, value string) fieldList {
	out := make(fieldList, 0, len(h)+1)
	done := false
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			if done {
				continue
			}
			f.value, done = value, true
		}
		out = append(out, f)
	}
	if !done {
		out = append(out, headerField{name: name, value: value})
	}
	return out
}

// toMessage converts to go-message's header for message.New.
func (h fieldList) toMessage() message.Header {
	var th textproto.Header
	// go-message's Header.Add prepends, so add in reverse to keep order.
	for i := len(h) - 1; i >= 0; i-- {
		th.Add(h[i].name, h[i].value)
	}
	return message.Header{Header: th}
}

// splitMultipart splits a multipart body at its boundary lines. ok is
// false when the boundary never occurs. A missing closing delimiter ends the
// last part at the end of the data.
func splitMultipart(raw []byte, boundary string) (parts [][]byte, ok bool) {
	if boundary == "" {
		return nil, false
	}
	delim := []byte("--" + boundary)
	start := -1 // start of the current part's content
	pos := 0
	for pos < len(raw) {
		i := bytes.Index(raw[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		// The delimiter must start a line.
		if i > 0 && raw[i-1] != '\n' {
			pos = i + len(delim)
			continue
		}
		end := i + len(delim)
		closing := bytes.HasPrefix(raw[end:], []byte("--"))
		// The rest of the delimiter line must be blank (transport padding).
		eol := bytes.IndexByte(raw[end:], '\n')
		var lineRest []byte
		next := len(raw)
		if eol >= 0 {
			lineRest = raw[end : end+eol]
			next = end + eol + 1
		} else {
			lineRest = raw[end:]
		}
		if !closing && len(bytes.TrimSpace(lineRest)) != 0 {
			pos = end
			continue
		}
		ok = true
		if start >= 0 {
			stop := i
			if stop > start && raw[stop-1] == '\n' {
				stop--
			}
			if stop < start {
				stop = start
			}
			parts = append(parts, raw[start:stop])
		}
		if closing {
			return parts, true
		}
		start = next
		pos = next
	}
	if start >= 0 && start < len(raw) {
		parts = append(parts, raw[start:])
	}
	return parts, ok
}

// looseMediaType extracts the media type from a Content-Type that
// mime.ParseMediaType rejects (duplicate or malformed parameters).
func looseMediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	if !strings.Contains(ct, "/") {
		return "text/plain"
	}
	return ct
}

// looseParams extracts the parameters that matter (boundary, report-type,
// charset) from a malformed Content-Type.
func looseParams(ct string) map[string]string {
	out := map[string]string{}
	for _, seg := range strings.Split(ct, ";")[1:] {
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "\"") {
			v = strings.TrimPrefix(v, "\"")
			if j := strings.IndexByte(v, '"'); j >= 0 {
				v = v[:j]
			}
		} else if j := strings.IndexAny(v, " \t"); j >= 0 {
			v = v[:j]
		}
		if _, dup := out[k]; !dup {
			out[k] = v
		}
	}
	return out
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader decodes RFC 2047 encoded words; undecodable input is
// returned as is.
func decodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

// firstMsgID returns the first message id in a header value, without <>.
// Values that are transfer-encoding debris (a QP soft break "=" at the end,
// HTML entities) are rejected: a wrong id is worse than none.
func firstMsgID(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	var id string
	if i := strings.IndexByte(v, '<'); i >= 0 {
		rest := v[i+1:]
		j := strings.IndexByte(rest, '>')
		if j < 0 {
			id = rest
			if k := strings.IndexAny(id, " \t"); k >= 0 {
				id = id[:k]
			}
		} else {
			id = rest[:j]
		}
	} else {
		id = v
		if k := strings.IndexAny(id, " \t"); k >= 0 {
			id = id[:k]
		}
	}
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, " \t<>\"") || strings.HasSuffix(id, "=") ||
		strings.Contains(id, "&lt") || strings.Contains(id, "&gt") || strings.Contains(id, "&#") {
		return ""
	}
	return id
}

// msgIDs returns every <id> of a References-style value.
func msgIDs(v string) []string {
	var out []string
	for len(out) < 50 {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && !strings.ContainsAny(id, " \t") {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
	return out
}

// addrOf extracts a bare lower-cased address from a From/Return-Path
// style value; "" for the null path.
func addrOf(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.ToLower(strings.TrimSpace(v[i+1 : i+j]))
		}
	}
	for _, f := range strings.Fields(v) {
		if strings.Contains(f, "@") {
			return strings.ToLower(strings.Trim(f, "<>\"'(),;"))
		}
	}
	return ""
}

// receivedHosts collects host names and IP literals from Received values.
// It tokenises by hand: it runs on every returned original and
// strings.FieldsFunc plus a lower-cased copy per token was a visible cost.
func receivedHosts(values []string) []string {
	var out []string
	sep := func(c byte) bool {
		switch c {
		case ' ', '\t', '(', ')', '[', ']', ';', ',', '=', '<', '>':
			return true
		}
		return false
	}
	for _, v := range values {
		for i := 0; i < len(v); {
			for i < len(v) && sep(v[i]) {
				i++
			}
			j := i
			for j < len(v) && !sep(v[j]) {
				j++
			}
			tok := strings.TrimSuffix(v[i:j], ".")
			i = j
			if len(tok) < 3 || !hostLike(tok) {
				continue
			}
			tok = strings.TrimPrefix(strings.ToLower(tok), "ipv6:")
			if slices.Contains(out, tok) {
				continue
			}
			out = append(out, tok)
			if len(out) >= 64 {
				return out
			}
		}
	}
	return out
}

// hostLike accepts dotted host names and IPv4/IPv6 literals.
func hostLike(s string) bool {
	if len(s) < 3 || len(s) > 253 {
		return false
	}
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	dots, colons, letters := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			dots++
		case c == ':':
			colons++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters++
		case c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	if colons >= 2 {
		return dots == 0 || dots == 3
	}
	if letters == 0 && dots != 3 {
		return false // "4.80", "5.1.1": versions and status codes, not hosts
	}
	return colons == 0 && dots >= 1 && s[0] != '.' && s[0] != '-'
}

// stripHTML reduces HTML to its text for the textual patterns.
func stripHTML(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '<':
			in = true
			// Block-level tags end a line.
			if i+3 < len(s) {
				t := strings.ToLower(s[i+1 : i+3])
				if t == "br" || t == "p>" || t == "p " || t == "/p" || t == "di" || t == "/d" || t == "tr" || t == "li" {
					b.WriteByte('\n')
				}
			}
		case c == '>' && in:
			in = false
		case !in:
			b.WriteByte(c)
		}
	}
	return html.UnescapeString(b.String())
}
