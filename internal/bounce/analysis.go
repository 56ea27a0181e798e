package bounce

// The bounce analysis reads one message and answers three questions for the
// backscatter decision: what kind of automatic mail is it (Kind), what did
// it return (the original's Message-ID, sender, raw bytes for DKIM, the
// relays in its Received lines) and which recipients failed.
//
// Pipeline: read at most MaxBytes; normalise line ends; split header and
// body leniently (dsn.go); walk the MIME tree within MaxDepth/MaxParts,
// collecting delivery-status fields, returned originals and text; then pick
// the original (analysis.go), classify (classify.go) and, for DSNs, read the
// recipients from the RFC 3464 fields or, for the many MTAs that do not send
// them, from generic textual shapes (inline.go), and give each its reason
// and hard/soft (reason.go). Evidence that we sent the original is collected
// separately (internal/evidence) because it may need DNS.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	// Registers the charset decoders, so text parts in legacy charsets
	// (ISO-2022-JP, windows-1252, ...) are converted before the textual
	// patterns run. Unknown charsets stay non-fatal.
	_ "github.com/emersion/go-message/charset"
)

// Kind is the classification of a message as seen by the bounce analysis.
type Kind string

// The six kinds a message can be classified as.
const (
	KindDSN       Kind = "dsn"        // delivery status notification, standard or not
	KindAutoreply Kind = "autoreply"  // RFC 3834 auto-reply, vacation, out-of-office
	KindChallenge Kind = "challenge"  // challenge-response ("please confirm you are human")
	KindMDN       Kind = "mdn"        // RFC 8098 read receipt / disposition notification
	KindARF       Kind = "arf"        // RFC 5965 abuse feedback report
	KindNotBounce Kind = "not-bounce" // anything else
)

// Names of the caps, as reported in Report.CapHit.
const (
	CapBytes = "max-bytes"
	CapDepth = "max-depth"
	CapParts = "max-parts"
)

// Limits bounds the work Analyze does on one message. A zero field
// means "use the default" so a zero Limits is safe to pass.
type Limits struct {
	MaxBytes int64 // bytes of the message read and scanned
	MaxDepth int   // MIME nesting depth descended into
	MaxParts int   // MIME parts looked at
}

// DefaultLimits returns the limits the milter uses: large enough for
// any real bounce (which returns at most the original's first part), small
// enough that a hostile message cannot make the analysis expensive.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 1 << 20, MaxDepth: 8, MaxParts: 100}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	return l
}

// Recipient is one recipient a DSN reports on.
type Recipient struct {
	Address    string `json:"address"`              // normalised: lower case, no "rfc822;", no <>, no source route
	Action     string `json:"action"`               // failed, delayed, ... ("failed" when taken from non-standard text)
	Status     string `json:"status,omitempty"`     // enhanced status code, e.g. 5.1.1, when known
	Diagnostic string `json:"diagnostic,omitempty"` // Diagnostic-Code or the MTA's text, when known
	// Reason classifies the failure (see Reason); always set for a
	// recipient of a DSN ("delivered" for a success, "undefined" when
	// nothing tells).
	Reason Reason `json:"reason"`
	// Hard says the address itself failed for good (the mailbox or domain
	// does not exist, moved, or takes no mail) and a permanent status: a
	// sender should stop mailing it. False for temporary failures, delays,
	// and refusals that depend on the sender or the content.
	Hard bool `json:"hard"`
	// RemoteMTA is the host that refused the message, when the report
	// names it (Remote-MTA, or the MTA's text: "host X said").
	RemoteMTA string `json:"remote_mta,omitempty"`

	diagType string // Diagnostic-Code type (smtp, x-unix, ...), lower case
}

// Report is the result of analysing one message.
type Report struct {
	Kind Kind

	// The returned original, if the message carries one.
	OriginalMessageID   string // without <>
	OriginalFrom        string // From: address of the returned original
	OriginalSender      string // envelope sender of the original (Return-Path, Original-Mail-From)
	Original            []byte // raw original (message/rfc822 or message/global), for DKIM
	OriginalHeadersOnly bool   // only the original's header section was returned
	ReceivedHosts       []string
	// OriginalReceived are the original's Received fields, topmost first;
	// OriginalDate its Date (zero when absent or unreadable).
	OriginalReceived []Hop
	OriginalDate     time.Time

	// Threading ids of the message itself: what an auto-reply answers.
	InReplyTo  string
	References []string

	Recipients []Recipient
	// ReportingMTA is the host that wrote the report (Reporting-MTA, or
	// the MTA's text), when known.
	ReportingMTA string

	// Diagnostics about how the message was read.
	Subject    string
	From       string   // From: of the analysed message itself
	Structural bool     // an RFC 3464/8098/5965 report structure was found
	CapHit     string   // "" or one of the AnalysisCap* names
	Warnings   []string // non-fatal problems (unknown charset, broken boundary, ...)
}

// BouncedAddresses returns the addresses of recipients whose delivery failed
// or was delayed, in order of appearance, without duplicates.
func (r *Report) BouncedAddresses() []string {
	out := []string{}
	seen := map[string]bool{}
	for _, rc := range r.Recipients {
		a := strings.ToLower(rc.Action)
		if !strings.HasPrefix(a, "failed") && !strings.HasPrefix(a, "delayed") {
			continue
		}
		if rc.Address == "" || seen[rc.Address] {
			continue
		}
		seen[rc.Address] = true
		out = append(out, rc.Address)
	}
	return out
}

// CandidateMessageIDs returns the ids worth looking up in the sent store:
// the returned original's id, then what the message replies to.
func (r *Report) CandidateMessageIDs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		id = strings.TrimSpace(strings.Trim(strings.TrimSpace(id), "<>"))
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		out = append(out, id)
	}
	add(r.OriginalMessageID)
	add(r.InReplyTo)
	for _, id := range r.References {
		add(id)
	}
	return out
}

// IsBounceLike reports whether the kind is one the backscatter decision
// applies to (everything but not-bounce).
func (k Kind) IsBounceLike() bool { return k != KindNotBounce && k != "" }

// ErrEmpty is returned by Analyze when no byte could be read.
var ErrEmpty = errors.New("backscatter: empty message")

// Analyze reads one message (header and body, CRLF or LF line ends, an mbox
// "From " line tolerated) and classifies it, extracting what identifies the
// returned original. It never panics on malformed input; it returns an error
// only when nothing could be read. When a limit is hit, what was read so far
// is analysed and Report.CapHit names the limit.
func Analyze(r io.Reader, lim Limits) (rep *Report, err error) {
	lim = lim.withDefaults()
	data, rerr := readAll(r, lim.MaxBytes+1)
	if len(data) == 0 {
		if rerr != nil {
			return nil, fmt.Errorf("backscatter: reading message: %w", rerr)
		}
		return nil, ErrEmpty
	}
	// A panic in a third-party parser must not take the milter down; the
	// analysis is advisory, so degrade to "not-bounce" with a warning.
	defer func() {
		if p := recover(); p != nil {
			rep = &Report{Kind: KindNotBounce, Warnings: []string{fmt.Sprintf("internal error: %v", p)}}
			err = nil
		}
	}()
	return analyzeBytes(data, lim, rerr), nil
}

// readAll reads at most n bytes, sizing the buffer up front when the
// reader knows its length (bytes.Reader, strings.Reader, bytes.Buffer): the
// milter and check both hand over in-memory messages, and growing the
// buffer was a measurable share of the analysis time.
func readAll(r io.Reader, n int64) ([]byte, error) {
	size := int64(32 << 10)
	if l, ok := r.(interface{ Len() int }); ok {
		size = int64(l.Len()) + 1
	}
	return readAllHint(r, int(size), n)
}

// readAllHint reads at most n bytes into a buffer first sized hint.
func readAllHint(r io.Reader, hint int, n int64) ([]byte, error) {
	size := int64(hint)
	if size > n {
		size = n
	}
	buf := make([]byte, 0, size)
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):cap(buf)]
		if int64(len(room)) > n-int64(len(buf)) {
			room = room[:n-int64(len(buf))]
		}
		k, err := r.Read(room)
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// analyzeBytes is Analyze on a buffer already read (at most MaxBytes+1).
func analyzeBytes(data []byte, lim Limits, rerr error) *Report {
	return analyzeNested(data, lim, rerr, 0)
}

// analyzeNested analyses a message found inside another report (a bounce
// of a bounce, a bounce forwarded as text) at the given nesting level.
func analyzeNested(data []byte, lim Limits, rerr error, nested int) *Report {
	a := &walker{lim: lim, rep: &Report{}, nested: nested}
	if int64(len(data)) > lim.MaxBytes {
		data = data[:lim.MaxBytes]
		a.capHit(CapBytes)
	}
	if rerr != nil {
		a.warn("read error after %d bytes: %v", len(data), rerr)
	}
	// Line ends are normalised once so every scanner below deals with "\n"
	// only. go-msgauth restores CRLF for canonicalisation, so DKIM is not
	// affected.
	if bytes.IndexByte(data, '\r') >= 0 {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	// The mbox separator is not part of the message (a milter never sees it),
	// but it names the envelope sender, which is a useful bounce signal.
	if bytes.HasPrefix(data, []byte("From ")) {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		f := strings.Fields(string(line))
		if len(f) > 1 {
			a.mboxSender = f[1]
		}
		data = rest
	}
	hdr, body := splitHeader(data)
	a.top = hdr
	a.rep.Subject = decodeHeader(hdr.Get("Subject"))
	a.rep.From = hdr.Get("From")
	a.rep.InReplyTo = firstMsgID(hdr.Get("In-Reply-To"))
	a.rep.References = msgIDs(hdr.Get("References"))

	a.walk(hdr, body, 0, true)
	a.finish()
	return a.rep
}

// textDecodeCap bounds the decoded size of one text part.
const textDecodeCap = 96 << 10

// walker carries what the MIME walk collected.
type walker struct {
	lim        Limits
	rep        *Report
	nested     int // how deep inside bounces of bounces this analysis is
	top        fieldList
	mboxSender string
	parts      int

	topType   string            // media type of the top-level entity
	topParams map[string]string // its parameters

	dsnParts     int         // message/delivery-status parts seen
	dsnRecips    []dSNRecord // per-recipient blocks from them
	dsnMessage   dSNRecord   // per-message fields
	mdnFields    dSNRecord   // message/disposition-notification fields
	arfFields    dSNRecord   // message/feedback-report fields
	hasFeedback  bool
	hasMDN       bool
	originals    []returnedOriginal // returned originals in document order
	texts        []string           // decoded text/plain parts of the report itself
	textRegs     []string           // the texts cut before the original (proseRegions), once computed
	htmlTexts    []string           // text extracted from text/html parts
	bareIDs      []string           // Message-IDs of MIME parts that carry a header themselves
	brokenBounds bool
}

// returnedOriginal is one returned original (full or header-only).
type returnedOriginal struct {
	header      fieldList
	rawHeader   []byte // header section as carried, for the lenient re-scan
	full        []byte // whole message, nil for header-only parts
	headersOnly bool
}

func (a *walker) warn(format string, args ...any) {
	if len(a.rep.Warnings) < 20 {
		a.rep.Warnings = append(a.rep.Warnings, fmt.Sprintf(format, args...))
	}
}

func (a *walker) capHit(name string) {
	if a.rep.CapHit == "" {
		a.rep.CapHit = name
	}
}

// walk visits one MIME entity given its parsed header and raw (still
// transfer-encoded) body.
func (a *walker) walk(h fieldList, raw []byte, depth int, top bool) {
	if depth > a.lim.MaxDepth {
		a.capHit(CapDepth)
		return
	}
	a.parts++
	if a.parts > a.lim.MaxParts {
		a.capHit(CapParts)
		return
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt == "" {
		// RFC 2045 default; a broken Content-Type is read as text so the
		// textual patterns still get a chance.
		mt, params = "text/plain", map[string]string{}
		if ct := h.Get("Content-Type"); ct != "" {
			mt = looseMediaType(ct)
			params = looseParams(ct)
		}
	}
	if top {
		a.topType, a.topParams = mt, params
	}

	if strings.HasPrefix(mt, "multipart/") {
		boundary := params["boundary"]
		parts, ok := splitMultipart(raw, boundary)
		if !ok {
			// The declared boundary is missing or wrong (re-encoding
			// relays, truncated headers): try the delimiter the body uses.
			if g := guessBoundary(raw); g != "" && g != boundary {
				a.warn("multipart boundary %q not found, using %q", boundary, g)
				boundary = g
				parts, ok = splitMultipart(raw, boundary)
			}
		}
		if !ok {
			// A multipart whose boundary never occurs is read as text, as
			// some MTAs (and broken relays) produce exactly that.
			a.brokenBounds = true
			a.warn("multipart boundary %q not found", boundary)
			a.texts = append(a.texts, string(raw))
			return
		}
		for _, p := range parts {
			if a.rep.CapHit == CapParts {
				return
			}
			ph, pb := splitHeader(p)
			a.walk(ph, pb, depth+1, false)
		}
		return
	}

	// Text parts are only searched near their start (classifyScan,
	// recipientScan, the quoted header), so decoding stops at
	// textDecodeCap; returned originals are decoded whole for DKIM.
	limit := a.lim.MaxBytes
	if mt == "text/html" {
		limit = min(limit, textDecodeCap/4) // used for phrases and recipients only
	} else if strings.HasPrefix(mt, "text/") && mt != "text/rfc822-headers" && mt != "text/rfc822-header" {
		limit = min(limit, textDecodeCap)
	}
	body := a.decodeBody(h, raw, limit)
	switch mt {
	case "message/rfc822", "message/global", "message/partial", "message/news":
		a.addOriginal(body, false)
		return
	case "text/rfc822-headers", "message/rfc822-headers", "message/global-headers", "text/rfc822-header":
		a.addOriginal(body, true)
		return
	case "message/delivery-status", "message/global-delivery-status":
		a.dsnParts++
		pm, recs := parseDSNFields(body)
		if len(a.dsnMessage) == 0 {
			a.dsnMessage = pm
		}
		a.dsnRecips = append(a.dsnRecips, recs...)
		return
	case "message/disposition-notification", "message/global-disposition-notification":
		a.hasMDN = true
		pm, recs := parseDSNFields(body)
		a.mdnFields = pm
		for _, r := range recs {
			a.mdnFields = append(a.mdnFields, r...)
		}
		return
	case "message/feedback-report":
		a.hasFeedback = true
		pm, recs := parseDSNFields(body)
		a.arfFields = pm
		for _, r := range recs {
			a.arfFields = append(a.arfFields, r...)
		}
		return
	}
	if !top {
		// "An original attached as a bare part": a body part whose own
		// header carries the original's Message-ID.
		if id := firstMsgID(h.Get("Message-Id")); id != "" {
			a.bareIDs = append(a.bareIDs, id)
			if h.Get("From") != "" || h.Get("Received") != "" {
				a.originals = append(a.originals, returnedOriginal{header: h, headersOnly: true})
			}
		}
	}
	switch {
	case mt == "text/html":
		a.htmlTexts = append(a.htmlTexts, stripHTML(string(body)))
	case strings.HasPrefix(mt, "text/") || mt == "application/octet-stream" && top:
		a.texts = append(a.texts, string(body))
	}
}

// decodeQP decodes quoted-printable up to limit output bytes. Invalid
// escapes are kept literally; soft line breaks are removed.
func decodeQP(in []byte, limit int64) []byte {
	out := make([]byte, 0, min(int64(len(in)), limit))
	unhex := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	for i := 0; i < len(in) && int64(len(out)) < limit; i++ {
		c := in[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		// Soft line break: "=" then optional whitespace, then newline.
		j := i + 1
		for j < len(in) && (in[j] == ' ' || in[j] == '\t' || in[j] == '\r') {
			j++
		}
		if j < len(in) && in[j] == '\n' {
			i = j
			continue
		}
		if j == len(in) {
			break
		}
		if i+2 < len(in) {
			if hi, ok := unhex(in[i+1]); ok {
				if lo, ok := unhex(in[i+2]); ok {
					out = append(out, hi<<4|lo)
					i += 2
					continue
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// isUTF8Charset reports charsets that need no conversion (absent, ASCII,
// UTF-8).
func isUTF8Charset(cs string) bool {
	switch strings.Trim(cs, "\"' ") {
	case "", "us-ascii", "ascii", "utf-8", "utf8", "ansi_x3.4-1968":
		return true
	}
	return false
}

// guessBoundary returns the first "--X" line token that delimits at
// least two parts of body, or "".
func guessBoundary(body []byte) string {
	seen := map[string]int{}
	for n := 0; len(body) > 0 && n < 5000; n++ {
		line, rest, _ := bytes.Cut(body, []byte("\n"))
		body = rest
		line = bytes.TrimRight(line, " \t\r")
		if len(line) < 4 || line[0] != '-' || line[1] != '-' || bytes.ContainsAny(line, " \t") {
			continue
		}
		b := string(bytes.TrimSuffix(line[2:], []byte("--")))
		if b == "" || strings.Trim(b, "-") == "" {
			continue // "-----" rulers are not boundaries
		}
		seen[b]++
		if seen[b] == 2 {
			return b
		}
	}
	return ""
}

// decodeBody undoes the transfer encoding and, for text, the charset. Both
// errors are non-fatal: the raw bytes are better than nothing.
func (a *walker) decodeBody(h fieldList, raw []byte, limit int64) []byte {
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	if cte == "quoted-printable" {
		// Decoded here, leniently: mime/quotedprintable stops at the first
		// malformed escape, and bounces often carry damaged QP. The
		// charset step below then sees an 8bit body.
		raw = decodeQP(raw, limit)
		cte = "8bit"
		h = h.with("Content-Transfer-Encoding", "8bit")
	}
	if cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary" {
		mt := strings.ToLower(h.Get("Content-Type"))
		if !strings.HasPrefix(strings.TrimSpace(mt), "text/") || isUTF8Charset(looseParams(mt)["charset"]) {
			return raw[:min(int64(len(raw)), limit)] // fast path: nothing to decode
		}
	}
	e, err := message.New(h.toMessage(), bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) || e == nil {
		a.warn("decoding part: %v", err)
		return raw
	}
	if err != nil {
		a.warn("decoding part: %v", err)
	}
	// Decoded text is never much larger than the encoded form.
	out, rerr := readAllHint(e.Body, min(len(raw)+512, int(limit)), limit)
	if rerr != nil {
		// base64 with garbage, truncated QP...: keep what decoded so far
		// and fall back to raw if that is nothing.
		a.warn("decoding part body: %v", rerr)
		if len(out) == 0 {
			return raw
		}
	}
	return out
}

func (a *walker) addOriginal(body []byte, headersOnly bool) {
	// Some generators put a blank line before the returned header.
	trimmed := bytes.TrimLeft(body, " \t\n")
	h, rest := splitHeader(trimmed)
	o := returnedOriginal{header: h, headersOnly: headersOnly}
	o.rawHeader = trimmed[:len(trimmed)-len(rest)]
	if !headersOnly {
		o.full = trimmed
	}
	a.originals = append(a.originals, o)
}

// finish turns what the walk collected into the report.
func (a *walker) finish() {
	rep := a.rep
	a.extractOriginal()
	rep.Kind = a.classify()
	if rep.Kind == KindDSN {
		a.extractRecipients()
		a.classifyRecipients()
	}
	if rep.Kind == KindNotBounce {
		// Nothing of an ordinary message is "returned": do not hand ids or
		// recipients to the decision engine.
		rep.OriginalMessageID, rep.OriginalFrom, rep.OriginalSender = "", "", ""
		rep.Original, rep.OriginalHeadersOnly, rep.ReceivedHosts = nil, false, nil
		rep.OriginalReceived, rep.OriginalDate = nil, time.Time{}
		rep.Recipients = nil
	}
	if rep.Kind != KindDSN {
		rep.Recipients = nil
	}
}

// extractOriginal picks the returned original and fills the Original* fields.
func (a *walker) extractOriginal() {
	rep := a.rep
	var chosen *returnedOriginal
	for i := range a.originals {
		o := &a.originals[i]
		if id := firstMsgID(o.header.Get("Message-Id")); id != "" {
			chosen = o
			rep.OriginalMessageID = id
			break
		}
	}
	if chosen == nil && len(a.originals) > 0 {
		chosen = &a.originals[0]
	}
	if rep.OriginalMessageID == "" && len(a.mdnFields) > 0 {
		rep.OriginalMessageID = firstMsgID(a.mdnFields.get("original-message-id"))
	}
	if rep.OriginalMessageID == "" && len(a.bareIDs) > 0 {
		rep.OriginalMessageID = a.bareIDs[0]
	}
	var inline *inlineHeader
	if rep.OriginalMessageID == "" {
		// The header quoted in the report's text, or the raw header of an
		// embedded message the header parser gave up on.
		inline = findInlineHeader(a.texts)
		if inline == nil {
			for _, o := range a.originals {
				if ih := findInlineHeader([]string{string(o.rawHeader), string(o.full)}); ih != nil {
					inline = ih
					break
				}
			}
		}
		if inline != nil {
			rep.OriginalMessageID = inline.messageID
		}
	}
	if chosen != nil {
		rep.OriginalFrom = addrOf(chosen.header.Get("From"))
		rep.OriginalSender = addrOf(chosen.header.Get("Return-Path"))
		rep.OriginalHeadersOnly = chosen.full == nil
		if chosen.full != nil {
			rep.Original = chosen.full
		}
		rep.ReceivedHosts = receivedHosts(chosen.header.Values("Received"))
		rep.OriginalReceived = parseHops(chosen.header.Values("Received"))
		rep.OriginalDate = parseDate(chosen.header.Get("Date"))
	} else if inline == nil {
		// The id came from an MDN field or a bare part; a quoted header
		// may still name the sender and relays.
		inline = findInlineHeader(a.texts)
	}
	if chosen == nil && inline != nil {
		rep.OriginalFrom = addrOf(inline.get("from"))
		rep.OriginalSender = addrOf(inline.get("return-path"))
		rep.OriginalHeadersOnly = true
		rep.ReceivedHosts = receivedHosts(inline.values("received"))
		rep.OriginalReceived = parseHops(inline.values("received"))
		rep.OriginalDate = parseDate(inline.get("date"))
	}
	if rep.OriginalSender == "" && len(a.arfFields) > 0 {
		rep.OriginalSender = addrOf(a.arfFields.get("original-mail-from"))
	}
	if rep.OriginalSender == "" {
		// Postfix names the envelope sender in its per-message DSN fields.
		if addr := recipientAddress(a.dsnMessage.get("x-postfix-sender")); isAddr(addr) {
			rep.OriginalSender = addr
		}
	}
	if rep.OriginalSender == "" && chosen != nil {
		// "(envelope-from <a@b>)" in the original's Received lines (Exim).
		for _, v := range chosen.header.Values("Received") {
			if i := strings.Index(strings.ToLower(v), "envelope-from"); i >= 0 {
				seg := v[i+len("envelope-from"):]
				if j := strings.IndexByte(seg, ')'); j >= 0 {
					seg = seg[:j]
				}
				if addr := addrOf(seg); isAddr(addr) {
					rep.OriginalSender = addr
					break
				}
			}
		}
	}
}
