// Package milter connects the decision engine to Postfix through the milter
// protocol (github.com/d--j/go-milter).
//
// Per message it signs the envelope sender of our users' mail at end of
// message, rejects recipients with forged, expired or unknown-key tags at
// RCPT, and decides untagged bounces at end of message, never at RCPT, so
// that sender-verification callouts (MAIL FROM:<>, RCPT, QUIT) still pass.
//
// It is built to cost Postfix as little as possible: it asks only for the
// events and macros it uses, tells Postfix not to wait for replies where it
// never decides anything (protocol v6 no-reply flags), buffers a body only
// when the message can be a bounce, and re-arms TCP_QUICKACK on tcp sockets
// so that Postfix's back-to-back writes do not stall on delayed ACKs.
package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

// Analysis is what the bounce analysis found in a buffered message.
type Analysis struct {
	Kind       string   // "dsn", "autoreply", "challenge", "mdn", "arf", "not-bounce"
	MessageIDs []string // ids to look up in the store (original, In-Reply-To, References)
	Evidence   []string // evidence found in the message itself (DKIM, Received)
	Note       string   // e.g. the cap that was hit
}

// Analyzer reads a buffered message (header and body, CRLF or LF).
type Analyzer interface {
	// LooksLikeBounce is the cheap test on a non-bounce sender's header
	// that decides whether the body is buffered at all.
	LooksLikeBounce(sender string, header func(name string) string) bool
	Analyze(ctx context.Context, raw []byte) Analysis
}

// Observer receives one call per decision, for metrics. An Observer that
// also has a FloodEntered() method is told each time a recipient or client
// enters the flood (strict) state.
type Observer interface {
	Decision(direction, verdict, reason, domain string)
	Signed(domain string, keyNum int)
	RecordDropped()
}

type nopObserver struct{}

func (nopObserver) Decision(string, string, string, string) {}
func (nopObserver) Signed(string, int)                      {}
func (nopObserver) RecordDropped()                          {}

// Options configure a Server.
type Options struct {
	Engine   *backscatter.Engine
	Store    cache.Store // nil: no store (no sent records, no replay or flood control)
	Analyzer Analyzer
	Logger   *slog.Logger
	Observer Observer
	// StripInMilter makes the milter replace a validly tagged recipient
	// by its untagged form. Off when Postfix strips tags itself through
	// the socketmap in recipient_canonical_maps (the milter sees the
	// recipient before that rewriting, and must not strip twice).
	StripInMilter bool
	// StoreTimeout bounds every store call made for a message.
	StoreTimeout time.Duration
	// TagTTL is how long sent records are kept (tag lifetime plus margin).
	TagTTL time.Duration
	// MaxConnections caps the milter connections open at once (0:
	// DefaultMaxConnections, < 0: no cap); see limits.go.
	MaxConnections int
}

// Server is the milter service. The engine can be swapped while it runs
// (configuration reload); sessions in flight keep the engine they began with.
type Server struct {
	engine atomic.Pointer[backscatter.Engine]
	opts   Options
	log    *slog.Logger
	obs    Observer
	srv    *gomilter.Server

	records chan cache.SentMessage
	wg      sync.WaitGroup
	closed  chan struct{}
}

// New makes a milter server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.TagTTL <= 0 {
		o.TagTTL = 10 * 24 * time.Hour
	}
	s := &Server{opts: o, log: o.Logger, obs: o.Observer, records: make(chan cache.SentMessage, 4096), closed: make(chan struct{})}
	s.engine.Store(o.Engine)
	s.srv = gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return &session{s: s} }),
		gomilter.WithProtocols(Protocol),
		gomilter.WithActions(Actions),
		gomilter.WithoutDefaultMacros(),
		gomilter.WithMacroRequest(gomilter.StageConnect, []gomilter.MacroName{gomilter.MacroDaemonName}),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroAuthAuthen}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
		gomilter.WithReadTimeout(10*time.Minute),
		gomilter.WithWriteTimeout(10*time.Second),
	)
	if o.Store != nil {
		s.wg.Add(1)
		go s.recordLoop()
	}
	return s
}

// Protocol is what the milter asks of the MTA: no HELO, DATA or unknown
// command events, and no replies awaited where it never decides.
const Protocol = gomilter.OptNoHelo | gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoConnReply | gomilter.OptNoMailReply | gomilter.OptNoHeaderReply |
	gomilter.OptNoEOHReply | gomilter.OptNoBodyReply

// Actions are the modifications the milter may make.
const Actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptAddRcpt |
	gomilter.OptRemoveRcpt | gomilter.OptChangeFrom | gomilter.OptQuarantine

// SetEngine swaps the engine (configuration reload).
func (s *Server) SetEngine(e *backscatter.Engine) { s.engine.Store(e) }

// Serve accepts milter connections on ln until Shutdown or Close. Each
// packet goes out in one write; on tcp listeners each connection also
// re-arms TCP_QUICKACK after every read.
func (s *Server) Serve(ln net.Listener) error {
	if _, ok := ln.Addr().(*net.TCPAddr); ok {
		ln = quickAckListener{ln}
	}
	ln = newLimitListener(ln, s.opts.MaxConnections, s.log)
	err := s.srv.Serve(ln)
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the sessions in
// flight to end (or ctx to expire), then flushes pending store records.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.stopRecords()
	return err
}

// Close stops at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.stopRecords()
	return err
}

func (s *Server) stopRecords() {
	select {
	case <-s.closed:
		return
	default:
		close(s.closed)
	}
	s.wg.Wait()
}

// recordLoop writes sent records in the background: outbound mail is never
// delayed by the store, and a record that cannot be written is dropped
// (counted and logged), not retried into a pile-up.
func (s *Server) recordLoop() {
	defer s.wg.Done()
	write := func(m cache.SentMessage) {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
		defer cancel()
		if err := s.opts.Store.RecordSent(ctx, m); err != nil {
			s.obs.RecordDropped()
			s.log.Warn("sent record dropped", "sender", m.Sender, "tag", m.Tag, "err", err)
		}
	}
	for {
		select {
		case m := <-s.records:
			write(m)
		case <-s.closed:
			for {
				select {
				case m := <-s.records:
					write(m)
				default:
					return
				}
			}
		}
	}
}

func (s *Server) queueRecord(m cache.SentMessage) {
	select {
	case s.records <- m:
	default:
		s.obs.RecordDropped()
		s.log.Warn("sent record dropped: store queue full", "sender", m.Sender)
	}
}

// session is one milter connection (one SMTP connection, or several in a
// row when Postfix reuses it).
type session struct {
	gomilter.NoOpMilter
	s *Server
	e *backscatter.Engine

	host   string
	client netip.Addr
	local  bool

	msg message
}

// message is the state of one SMTP transaction.
type message struct {
	sender    string
	bounce    bool   // null or MAILER-DAEMON-like sender
	outbound  string // why the mail counts as ours ("" when not)
	rcpts     []string
	inbound   []rcptState
	needBody  bool // some untagged recipient of ours may need the analysis
	buffering bool
	buf       bytes.Buffer
	capHit    bool
	headers   map[string]string // first value of headers the cheap test reads
	verdictN  int               // copies of our verdict header seen
	messageID string
	queueID   string
}

type rcptState struct {
	r       backscatter.Recipient
	verdict *backscatter.Verdict // decided at RCPT (tagged recipients)
}

// headerNames are the header fields kept for the cheap bounce test.
var headerNames = map[string]bool{
	"auto-submitted": true, "x-autoreply": true, "x-autorespond": true, "precedence": true,
	"content-type": true, "subject": true, "from": true, "x-failed-recipients": true,
	"return-path": true, "x-auto-response-suppress": true, "in-reply-to": true,
}

func (ss *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.host = host
	ss.client, _ = netip.ParseAddr(addr)
	// For non_smtpd_milters Postfix's cleanup fakes a connection from
	// localhost with port 0; no SMTP client has port 0.
	ss.local = port == 0 && (host == "localhost" || addr == "127.0.0.1" || addr == "::1") && family != "unix"
	return gomilter.RespContinue, nil
}

func (ss *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.e = ss.s.engine.Load()
	ss.msg = message{sender: from}
	ss.msg.bounce = ss.e.IsBounceSender(from)
	ss.msg.outbound = ss.e.OutboundReason(backscatter.Origin{
		AuthUser: m.Get(gomilter.MacroAuthAuthen),
		Daemon:   m.Get(gomilter.MacroDaemonName),
		Client:   ss.client,
		Local:    ss.local,
	})
	return gomilter.RespContinue, nil
}

func (ss *session) RcptTo(rcpt, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer func() {
		// A bug must not take the process (and every other session) down:
		// let this recipient through and say so.
		if p := recover(); p != nil {
			ss.s.log.Error("internal error at RCPT", "queue_id", ss.queueID(), "rcpt", rcpt, "panic", fmt.Sprint(p))
			resp, err = gomilter.RespContinue, nil
		}
	}()
	if ss.e == nil {
		return gomilter.RespContinue, nil
	}
	if q := m.Get(gomilter.MacroQueueId); q != "" {
		ss.msg.queueID = q
	}
	if ss.msg.outbound != "" {
		ss.msg.rcpts = append(ss.msg.rcpts, rcpt)
		return gomilter.RespContinue, nil
	}
	r := ss.e.CheckRecipient(rcpt)
	if !r.Ours {
		return gomilter.RespContinue, nil
	}
	st := rcptState{r: r}
	switch {
	case r.Tagged() && (ss.msg.bounce || r.Err == nil):
		replayed := false
		if r.Err == nil && ss.msg.bounce {
			replayed = ss.replayed(r)
		}
		v := backscatter.TagVerdict(r, replayed)
		st.verdict = &v
		if v.Action == backscatter.ActReject {
			ss.logDecision("inbound", r.Raw, v)
			return gomilter.RejectWithCodeAndReason(550, backscatter.RejectText(v.Reason))
		}
	case !r.Tagged() && !r.Exempt:
		ss.msg.needBody = true
	}
	ss.msg.inbound = append(ss.msg.inbound, st)
	return gomilter.RespContinue, nil
}

// replayed asks the store whether a valid tag has been used for more
// bounces than its messages had recipients. A store that cannot answer
// does not stop a validly tagged bounce: the HMAC alone is proof enough.
func (ss *session) replayed(r backscatter.Recipient) bool {
	if ss.s.opts.Store == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.StoreTimeout)
	defer cancel()
	facts, err := ss.s.opts.Store.Inbound(ctx, r.ReplayQuery(ss.clientString(), true, ss.e.Now()))
	if err != nil {
		ss.s.log.Warn("store: replay check skipped", "queue_id", ss.queueID(), "rcpt", r.Raw, "err", err)
		return false
	}
	return facts.Replayed
}

func (ss *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	if ss.e == nil {
		return gomilter.RespContinue, nil
	}
	if strings.EqualFold(name, ss.e.Config().Inbound.Header) {
		ss.msg.verdictN++
	}
	if ss.msg.outbound != "" {
		if ss.msg.messageID == "" && strings.EqualFold(name, "Message-Id") {
			ss.msg.messageID = strings.TrimSpace(value)
		}
		return gomilter.RespContinue, nil
	}
	if !ss.msg.needBody {
		return gomilter.RespContinue, nil
	}
	lname := strings.ToLower(name)
	if headerNames[lname] {
		if ss.msg.headers == nil {
			ss.msg.headers = map[string]string{}
		}
		if _, seen := ss.msg.headers[lname]; !seen {
			ss.msg.headers[lname] = strings.TrimSpace(value)
		}
	}
	if ss.msg.buf.Len() == 0 {
		// The envelope sender, as the delivered message will carry it:
		// the analysis reads a null Return-Path as a bounce signal, and
		// Postfix adds this header only at delivery.
		ss.appendBuf([]byte("Return-Path: <"), []byte(ss.msg.sender), []byte(">\r\n"))
	}
	ss.appendBuf([]byte(name), []byte(":"), leadSpace(value), []byte(value), []byte("\r\n"))
	return gomilter.RespContinue, nil
}

func leadSpace(v string) []byte {
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return nil
	}
	return []byte(" ")
}

func (ss *session) Headers(m gomilter.Modifier) (*gomilter.Response, error) {
	if ss.e == nil || !ss.msg.needBody {
		return gomilter.RespContinue, nil
	}
	ss.msg.buffering = ss.msg.bounce
	if !ss.msg.buffering && ss.s.opts.Analyzer != nil {
		ss.msg.buffering = ss.s.opts.Analyzer.LooksLikeBounce(ss.msg.sender, func(n string) string { return ss.msg.headers[strings.ToLower(n)] })
	}
	if ss.msg.buffering {
		ss.appendBuf([]byte("\r\n"))
	} else {
		ss.msg.buf = bytes.Buffer{}
	}
	return gomilter.RespContinue, nil
}

func (ss *session) appendBuf(parts ...[]byte) {
	max := int(ss.e.Config().Inbound.MaxMessageBytes)
	for _, p := range parts {
		if room := max - ss.msg.buf.Len(); room < len(p) {
			if room > 0 {
				ss.msg.buf.Write(p[:room])
			}
			ss.msg.capHit = true
			return
		}
		ss.msg.buf.Write(p)
	}
}

func (ss *session) BodyChunk(chunk []byte, m gomilter.Modifier) (*gomilter.Response, error) {
	if ss.msg.buffering && !ss.msg.capHit {
		ss.appendBuf(chunk)
	}
	return gomilter.RespContinue, nil
}

func (ss *session) Abort(m gomilter.Modifier) error {
	ss.msg = message{}
	return nil
}

func (ss *session) queueID() string {
	if ss.msg.queueID == "" {
		return "NOQUEUE"
	}
	return ss.msg.queueID
}

func (ss *session) clientString() string {
	if !ss.client.IsValid() {
		return ""
	}
	return ss.client.Unmap().String()
}

func (ss *session) logDecision(direction, rcpt string, v backscatter.Verdict, attrs ...any) {
	args := []any{"queue_id", ss.queueID(), "direction", direction, "client", ss.clientString(),
		"sender", ss.msg.sender, "rcpt", rcpt, "verdict", v.Action.String(), "result", string(v.Result),
		"reason", string(v.Reason)}
	if len(v.Evidence) > 0 {
		args = append(args, "evidence", strings.Join(v.Evidence, ","))
	}
	args = append(args, attrs...)
	ss.s.log.Info("decision", args...)
	domain := ""
	if at := strings.LastIndexByte(rcpt, '@'); at >= 0 {
		domain = strings.ToLower(rcpt[at+1:])
	}
	ss.s.obs.Decision(direction, v.Action.String(), string(v.Reason), domain)
}

func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	if q := m.Get(gomilter.MacroQueueId); q != "" {
		ss.msg.queueID = q
	}
	if ss.e == nil {
		return gomilter.RespAccept, nil
	}
	defer func() {
		// An internal error must never take the process down or lose mail:
		// follow the configured action.
		if p := recover(); p != nil {
			ss.s.log.Error("internal error", "queue_id", ss.queueID(), "panic", fmt.Sprint(p))
			resp, err = ss.onInternalError(), nil
		}
		ss.msg = message{}
	}()
	if ss.msg.outbound != "" {
		return ss.outboundEOM(m)
	}
	return ss.inboundEOM(m)
}

func (ss *session) onInternalError() *gomilter.Response {
	cfg := ss.e.Config()
	if ss.local {
		return gomilter.RespAccept
	}
	act := cfg.Inbound.OnError
	if ss.msg.outbound != "" {
		act = cfg.Outbound.OnError
	}
	switch act {
	case config.ActionTempfail:
		return gomilter.RespTempFail
	case config.ActionReject:
		return gomilter.RespReject
	}
	return gomilter.RespAccept
}

func (ss *session) outboundEOM(m gomilter.Modifier) (*gomilter.Response, error) {
	sig := ss.e.Sign(ss.msg.sender, ss.msg.rcpts)
	if sig.Sender == "" {
		if sig.Domain != "" {
			ss.s.log.Info("decision", "queue_id", ss.queueID(), "direction", "outbound", "client", ss.clientString(),
				"sender", ss.msg.sender, "verdict", "not-signed", "reason", sig.Skip, "origin", ss.msg.outbound)
		}
		return gomilter.RespAccept, nil
	}
	if err := m.ChangeFrom(sig.Sender, ""); err != nil {
		ss.s.log.Error("cannot change sender", "queue_id", ss.queueID(), "err", err)
		return ss.onInternalError(), nil
	}
	ss.s.obs.Signed(sig.Domain, sig.KeyNum)
	ss.s.log.Info("decision", "queue_id", ss.queueID(), "direction", "outbound", "client", ss.clientString(),
		"sender", ss.msg.sender, "verdict", "signed", "reason", ss.msg.outbound, "tag", sig.Sender, "key", sig.KeyNum, "rcpts", len(ss.msg.rcpts))
	if ss.s.opts.Store != nil {
		ss.s.queueRecord(cache.SentMessage{
			MessageID: ss.msg.messageID, Tag: backscatter.TagKey(sig.Sender), Sender: ss.msg.sender,
			Recipients: ss.msg.rcpts, Time: ss.e.Now(), TTL: ss.s.opts.TagTTL,
		})
	}
	return gomilter.RespAccept, nil
}

func (ss *session) inboundEOM(m gomilter.Modifier) (*gomilter.Response, error) {
	cfg := ss.e.Config()
	if len(ss.msg.inbound) == 0 && ss.msg.verdictN == 0 {
		return gomilter.RespAccept, nil
	}
	// Copies of our verdict header from outside are removed first, so the
	// one the user sees is ours.
	for i := ss.msg.verdictN; i >= 1; i-- {
		if err := m.ChangeHeader(i, cfg.Inbound.Header, ""); err != nil {
			return ss.onInternalError(), nil
		}
	}
	if len(ss.msg.inbound) == 0 {
		return gomilter.RespAccept, nil
	}

	var analysis *Analysis
	analyse := func() *Analysis {
		if analysis == nil {
			analysis = &Analysis{Kind: "not-bounce"}
			if ss.msg.buffering && ss.s.opts.Analyzer != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				a := ss.s.opts.Analyzer.Analyze(ctx, ss.msg.buf.Bytes())
				cancel()
				analysis = &a
			}
		}
		return analysis
	}

	type decided struct {
		rcpt string
		v    backscatter.Verdict
	}
	var all []decided
	var strip []backscatter.Recipient
	for _, st := range ss.msg.inbound {
		r := st.r
		switch {
		case st.verdict != nil:
			all = append(all, decided{r.Raw, *st.verdict})
			if st.verdict.Action == backscatter.ActAccept && r.Verified != nil {
				strip = append(strip, r)
			}
			continue
		case r.Tagged():
			// A non-bounce sender to an invalid tag: not a bounce, and
			// Postfix refuses the address if it does not exist.
			continue
		}
		if !ss.msg.bounce {
			if !ss.msg.buffering {
				continue
			}
			switch analyse().Kind {
			case "dsn", "autoreply", "challenge":
			default:
				continue
			}
		}
		a := analyse()
		in := backscatter.UntaggedInput{Recipient: r, Kind: a.Kind, Evidence: append([]string(nil), a.Evidence...)}
		if ss.s.opts.Store != nil {
			ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.StoreTimeout)
			facts, err := ss.s.opts.Store.Inbound(ctx, r.UntaggedQuery(a.MessageIDs, ss.clientString(), ss.e.Now()))
			cancel()
			in.AddStoreFacts(facts, err)
			if err != nil {
				ss.s.log.Warn("store unavailable", "queue_id", ss.queueID(), "rcpt", r.Raw, "err", err)
			}
			if facts.FloodEntered {
				ss.s.log.Warn("flood: strict state entered", "rcpt", r.Untagged, "client", ss.clientString())
				if fo, ok := ss.s.obs.(interface{ FloodEntered() }); ok {
					fo.FloodEntered()
				}
			}
			if facts.FloodLeft {
				ss.s.log.Info("flood: strict state left", "rcpt", r.Untagged, "client", ss.clientString())
			}
		}
		v := ss.e.UntaggedVerdict(in)
		if a.Note != "" {
			ss.logDecision("inbound", r.Raw, v, "kind", a.Kind, "note", a.Note)
		} else {
			ss.logDecision("inbound", r.Raw, v, "kind", a.Kind)
		}
		all = append(all, decided{r.Raw, v})
	}
	for _, st := range ss.msg.inbound {
		if st.verdict != nil && st.verdict.Action == backscatter.ActAccept {
			ss.logDecision("inbound", st.r.Raw, *st.verdict)
		}
	}
	if len(all) == 0 {
		return gomilter.RespAccept, nil
	}

	// Combine per-recipient verdicts into what Postfix can do with one
	// message: reject or tempfail only when no recipient is accepted;
	// otherwise drop the refused recipients and deliver to the rest.
	var accepted, rejected, tempfailed []decided
	quarantine := false
	for _, d := range all {
		switch d.v.Action {
		case backscatter.ActReject:
			rejected = append(rejected, d)
		case backscatter.ActTempfail:
			tempfailed = append(tempfailed, d)
		case backscatter.ActQuarantine:
			quarantine = true
			accepted = append(accepted, d)
		default:
			accepted = append(accepted, d)
		}
	}
	if ss.local {
		// Local submission: never reject or tempfail (mail would stick
		// in the queue); at worst mark it.
		accepted = append(accepted, append(rejected, tempfailed...)...)
		rejected, tempfailed = nil, nil
	}
	if len(tempfailed) > 0 {
		return gomilter.RejectWithCodeAndReason(451, "4.3.0 Bounce check temporarily unavailable; try again later")
	}
	if len(accepted) == 0 && len(rejected) > 0 {
		return gomilter.RejectWithCodeAndReason(550, backscatter.RejectText(rejected[0].v.Reason))
	}
	for _, d := range rejected {
		if err := m.DeleteRecipient(d.rcpt); err != nil {
			return ss.onInternalError(), nil
		}
	}
	if ss.s.opts.StripInMilter {
		for _, r := range strip {
			if err := m.DeleteRecipient(r.Raw); err != nil {
				return ss.onInternalError(), nil
			}
			if err := m.AddRecipient(r.Untagged, ""); err != nil {
				return ss.onInternalError(), nil
			}
		}
	}
	worst := accepted[0].v
	for _, d := range accepted[1:] {
		if rank(d.v.Result) > rank(worst.Result) {
			worst = d.v
		}
	}
	if err := m.InsertHeader(0, cfg.Inbound.Header, worst.Header()); err != nil {
		return ss.onInternalError(), nil
	}
	if quarantine {
		if err := m.Quarantine("bounce-milter: backscatter (" + string(worst.Reason) + ")"); err != nil {
			return ss.onInternalError(), nil
		}
	}
	return gomilter.RespAccept, nil
}

func rank(r backscatter.Result) int {
	switch r {
	case backscatter.ResultFail:
		return 3
	case backscatter.ResultNeutral:
		return 2
	case backscatter.ResultPass:
		return 1
	}
	return 0
}
