// Package milter connects the decision engine to Postfix through the milter
// protocol (github.com/d--j/go-milter). It translates; the engine decides
// (backscatter.Engine.AtRcpt at RCPT, Judge and Decide at end of message),
// so the milter and the policy service decide alike.
//
// Per message it signs the envelope sender of our users' mail at end of
// message and records it, refuses recipients with forged, expired or
// unknown-key tags at RCPT, and decides untagged bounces at end of message,
// never at RCPT, so that sender-verification callouts (MAIL FROM:<>, RCPT,
// QUIT) pass and spend nothing.
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
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// Settings is everything the milter takes from the configuration; a
// reload swaps it whole (SetSettings), and a session keeps the settings
// it began its message with.
type Settings struct {
	Engine *backscatter.Engine
	// Limits bound the bounce analysis; MaxMessageBytes also bounds what
	// is buffered of a message.
	Limits bounce.Limits
	// StripInMilter makes the milter replace a validly tagged recipient by
	// its untagged form. Off when Postfix strips tags itself (the socketmap
	// or the regexp map in recipient_canonical_maps): the milter sees the
	// recipient before that rewriting and must not strip twice.
	StripInMilter bool
	// OnError is the action on an internal error for inbound mail;
	// OutboundOnError for our users' mail (accept-unsigned or tempfail).
	OnError, OutboundOnError backscatter.ErrorAction
}

// DKIM verifies the DKIM signatures of a returned original (package
// dkimcheck); ours says which d= domains are worth a lookup.
type DKIM func(ctx context.Context, original []byte, ours func(domain string) bool) []backscatter.DKIMSignature

// Observer receives one call per decision, for metrics.
type Observer interface {
	Decision(direction, verdict, reason, domain string)
	Signed(domain string, keyNum int)
	RecordDropped()
}

// FloodObserver is an Observer told about flood state changes.
type FloodObserver interface {
	FloodEntered()
	FloodLeft()
}

// DetailObserver is an Observer that also takes each decision's details
// and the flood state changes (package stats: the monitoring pages).
type DetailObserver interface {
	Decided(stats.Decision)
	FloodChanged(stats.FloodChange)
}

type nopObserver struct{}

func (nopObserver) Decision(string, string, string, string) {}
func (nopObserver) Signed(string, int)                      {}
func (nopObserver) RecordDropped()                          {}

// Options configure a Server.
type Options struct {
	Settings Settings
	// Store answers the engine's questions and takes the records of signed
	// mail. Its RecordSent must not block (cmd passes a cache.Recorder,
	// which queues and writes in batches); nil: no store.
	Store    cache.Store
	DKIM     DKIM // nil: no DKIM evidence
	Logger   *slog.Logger
	Observer Observer
	// StoreTimeout bounds every store call made for a message.
	StoreTimeout time.Duration
	// DKIMTimeout bounds the DKIM check of one message.
	DKIMTimeout time.Duration
	// SignOnly makes a milter for a submission service: it signs and
	// records our users' mail and judges nothing (Postfix's
	// "-o smtpd_milters=" on that service points at it), so it asks
	// Postfix for less.
	SignOnly bool
	// MaxConnections caps the milter connections open at once (0:
	// DefaultMaxConnections, < 0: no cap); see limits.go.
	MaxConnections int
	// Events takes the bounce events of genuine bounces delivered (nil:
	// none); it must not block (events.Recorder). Host names this host in
	// them; HashRecipient, when set, replaces remote addresses (privacy).
	Events        EventSink
	Host          string
	HashRecipient func(string) string
	// Responses returns the alerts' responses in force (package alerts;
	// nil: none): our users' mail held or left unsigned, domains judged
	// as in a flood. It must not block (an atomic load).
	Responses func() *backscatter.Responses
}

// EventSink takes bounce events without blocking.
type EventSink interface{ Record(...events.Event) }

// Server is the milter service.
type Server struct {
	settings atomic.Pointer[Settings]
	opts     Options
	log      *slog.Logger
	obs      Observer
	detail   DetailObserver // nil when obs is not one
	srv      *gomilter.Server
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
	if o.DKIMTimeout <= 0 {
		o.DKIMTimeout = 3 * time.Second
	}
	s := &Server{opts: o, log: o.Logger, obs: o.Observer}
	s.detail, _ = o.Observer.(DetailObserver)
	s.SetSettings(o.Settings)
	proto, actions := Protocol, Actions
	// {rcpt_addr} is the recipient as Postfix's smtpd resolved it (see
	// backscatter.Engine.CheckRecipientResolved).
	rcptMacros := []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroRcptAddr}
	if o.SignOnly {
		// Signing needs the sender, the recipients, the Message-ID and the
		// end of the message, and never refuses anything before that.
		proto, actions, rcptMacros = SignOnlyProtocol, SignOnlyActions, nil
	}
	opts := []gomilter.Option{
		gomilter.WithMilter(func() gomilter.Milter { return &session{s: s} }),
		gomilter.WithProtocols(proto),
		gomilter.WithActions(actions),
		gomilter.WithoutDefaultMacros(),
		// Both at MAIL, where they are read: one macro packet per
		// message, none with the connection's event.
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroDaemonName, gomilter.MacroAuthAuthen}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
		gomilter.WithReadTimeout(IdleTimeout),
		gomilter.WithWriteTimeout(10 * time.Second),
	}
	if rcptMacros != nil {
		opts = append(opts, gomilter.WithMacroRequest(gomilter.StageRcpt, rcptMacros))
	}
	s.srv = gomilter.NewServer(opts...)
	return s
}

// IdleTimeout is how long the milter waits for Postfix's next packet
// before it closes the connection (the patched go-milter keeps a deadline
// between IdleTimeout/2 and IdleTimeout). Postfix sends the header and body
// events only once the whole message is in, so a connection is legitimately
// quiet for as long as the client takes to send DATA, which Postfix does not
// bound (smtpd_timeout is per read); a shorter timeout would drop the
// milter in the middle of a large message on a slow link, and Postfix would
// apply milter_default_action to it. This is libmilter's default (7210 s).
// Idle connections cost memory only up to the connection cap (limits.go),
// which is what bounds an attacker, not this timeout.
const IdleTimeout = 2 * time.Hour

// Protocol is what the milter asks of the MTA: no HELO, DATA or unknown
// command events, and no replies awaited where it never decides. The end
// of the header is answered: there the milter accepts the mail that needs
// nothing more from it (most of an MX's mail: no bounce, no tag, nothing
// to sign or remove), and Postfix then sends it neither the body nor the
// end of the message (see Headers).
const Protocol = gomilter.OptNoHelo | gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoConnReply | gomilter.OptNoMailReply | gomilter.OptNoHeaderReply |
	gomilter.OptNoBodyReply

// Actions are the modifications the milter may make.
const Actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptAddRcpt |
	gomilter.OptRemoveRcpt | gomilter.OptChangeFrom | gomilter.OptQuarantine

// SignOnlyProtocol is what the sign-only milter asks: no body at all, and
// no reply awaited before the end of the message.
const SignOnlyProtocol = Protocol | gomilter.OptNoBody | gomilter.OptNoRcptReply | gomilter.OptNoEOHReply

// SignOnlyActions are the sign-only milter's modifications: the sender, and
// removing a forged verdict header.
const SignOnlyActions = gomilter.OptChangeHeader | gomilter.OptChangeFrom

// SetSettings swaps the settings (configuration reload).
func (s *Server) SetSettings(st Settings) {
	if st.Limits.MaxBytes <= 0 {
		st.Limits = bounce.DefaultLimits()
	}
	s.settings.Store(&st)
}

// Serve accepts milter connections on ln until Shutdown or Close. Each
// packet goes out in one write; on tcp listeners each connection also
// re-arms TCP_QUICKACK after every read.
func (s *Server) Serve(ln net.Listener) error {
	ln = QuickAck(ln)
	ln = newLimitListener(ln, s.opts.MaxConnections, s.log)
	err := s.srv.Serve(ln)
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// QuickAck returns ln, its tcp connections re-arming TCP_QUICKACK after
// every read (see quickAckListener); other listeners are returned as they
// are. Serve applies it; bench/floormilter too, so that its floor is fair.
func QuickAck(ln net.Listener) net.Listener {
	if _, ok := ln.Addr().(*net.TCPAddr); ok {
		return quickAckListener{ln}
	}
	return ln
}

// Shutdown stops accepting connections and waits for the sessions in
// flight to end (or ctx to expire). The records they made are the store's
// to write (cache.Recorder flushes and spools them when it is closed).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close stops at once.
func (s *Server) Close() error { return s.srv.Close() }

// session is one milter connection (one SMTP connection, or several in a
// row when Postfix reuses it).
type session struct {
	gomilter.NoOpMilter
	s *Server

	host   string
	client netip.Addr
	// clientText is client as the logs, statistics and store queries
	// name it, made once per connection (it is asked for several times
	// per recipient).
	clientText string
	local      bool

	msg message
}

// message is the state of one SMTP transaction.
type message struct {
	st        *Settings // the settings this message is decided by
	env       backscatter.Envelope
	outbound  string   // why the mail counts as ours ("" when not)
	rcpts     []string // our user's recipients (outbound), at most MaxRecipients
	rcptN     int      // every RCPT of the message, for the sent record's count
	inbound   []backscatter.RcptState
	needBody  bool // some recipient of ours may need the analysis
	buffering bool
	buf       bytes.Buffer
	capHit    bool
	precheck  bounce.Precheck
	verdictN  int // copies of our verdict header seen
	messageID string
	queueID   string
	reporter  string // the bounce's claimed reporting MTA, once read
}

func (ss *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.host = host
	ss.client, _ = netip.ParseAddr(addr)
	ss.clientText = ""
	if ss.client.IsValid() {
		ss.clientText = ss.client.Unmap().String()
	}
	// For non_smtpd_milters Postfix's cleanup fakes a connection from
	// localhost with port 0; no SMTP client has port 0.
	ss.local = port == 0 && (host == "localhost" || addr == "127.0.0.1" || addr == "::1") && family != "unix"
	return gomilter.RespContinue, nil
}

func (ss *session) engine() *backscatter.Engine { return ss.msg.st.Engine }

// responses is the alerts' responses in force, nil for none.
func (ss *session) responses() *backscatter.Responses {
	if ss.s.opts.Responses == nil {
		return nil
	}
	return ss.s.opts.Responses()
}

func (ss *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	st := ss.s.settings.Load()
	ss.msg = message{st: st}
	ss.msg.env = backscatter.Envelope{Sender: from, Origin: backscatter.Origin{
		AuthUser: m.Get(gomilter.MacroAuthAuthen),
		Daemon:   m.Get(gomilter.MacroDaemonName),
		Client:   ss.client,
		Local:    ss.local,
	}}
	if st.Engine != nil {
		ss.msg.outbound = st.Engine.OutboundReason(ss.msg.env.Origin)
	}
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
	if ss.msg.st == nil || ss.msg.st.Engine == nil {
		return gomilter.RespContinue, nil
	}
	e := ss.engine()
	if q := m.Get(gomilter.MacroQueueId); q != "" {
		ss.msg.queueID = q
	}
	ss.msg.rcptN++
	if ss.msg.rcptN > MaxRecipients {
		// What a message keeps per recipient is bounded. An SMTP client is
		// told to send the rest in another transaction (RFC 5321 section
		// 4.5.3.1.10); local submission is never refused, and the sign-only
		// milter is not asked for RCPT replies, so there the rest are only
		// counted (for the sent record) and not checked.
		if !ss.local && !ss.s.opts.SignOnly {
			return gomilter.RejectWithCodeAndReason(452, "4.5.3 Too many recipients")
		}
		return gomilter.RespContinue, nil
	}
	if ss.msg.outbound != "" {
		ss.msg.rcpts = append(ss.msg.rcpts, rcpt)
	}
	if ss.s.opts.SignOnly {
		return gomilter.RespContinue, nil
	}
	r := e.CheckRecipientResolved(rcpt, m.Get(gomilter.MacroRcptAddr))
	if !r.Ours {
		return gomilter.RespContinue, nil
	}
	var a backscatter.Answer
	if q, ok := e.RcptQuery(ss.msg.env, r, ss.clientString()); ok && ss.s.opts.Store != nil {
		a = ss.ask(q)
		if a.Err != nil {
			ss.s.log.Warn("store: check at RCPT skipped", "queue_id", ss.queueID(), "rcpt", r.Raw, "err", a.Err)
		}
		ss.floodLog(r, a)
	}
	if v := e.AtRcpt(ss.msg.env, r, a); v != nil && v.Action == backscatter.ActReject {
		ss.logDecision(r, *v, "stage", "rcpt")
		return gomilter.RejectWithCodeAndReason(550, backscatter.RejectText(v.Reason))
	}
	if !r.PassThrough {
		ss.msg.inbound = append(ss.msg.inbound, backscatter.RcptState{R: r})
		ss.msg.needBody = true
	}
	return gomilter.RespContinue, nil
}

// ask is one store call, bounded by the store timeout.
func (ss *session) ask(q cache.InboundQuery) backscatter.Answer {
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.StoreTimeout)
	defer cancel()
	f, err := ss.s.opts.Store.Inbound(ctx, q)
	return backscatter.Answer{Asked: true, Facts: f, Err: err}
}

// floodLog logs entering and leaving the flood state, once each.
func (ss *session) floodLog(r backscatter.Recipient, a backscatter.Answer) {
	if a.Err != nil {
		return
	}
	fo, _ := ss.s.obs.(FloodObserver)
	if ss.s.detail != nil {
		// One query can report both: the recipient's state over, the
		// client's begun.
		for _, entered := range []bool{false, true} {
			if (entered && a.Facts.FloodEntered) || (!entered && a.Facts.FloodLeft) {
				ss.s.detail.FloodChanged(stats.FloodChange{Entered: entered, Recipient: r.FloodKey(), Client: ss.clientString(),
					RecipientStrict: a.Facts.RecipientStrict, ClientStrict: a.Facts.ClientStrict})
			}
		}
	}
	if a.Facts.FloodEntered {
		ss.s.log.Warn("flood: strict state entered", "queue_id", ss.queueID(), "rcpt", r.FloodKey(), "client", ss.clientString())
		if fo != nil {
			fo.FloodEntered()
		}
	}
	if a.Facts.FloodLeft {
		ss.s.log.Info("flood: strict state left", "queue_id", ss.queueID(), "rcpt", r.FloodKey(), "client", ss.clientString())
		if fo != nil {
			fo.FloodLeft()
		}
	}
}

func (ss *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	st := ss.msg.st
	if st == nil || st.Engine == nil {
		return gomilter.RespContinue, nil
	}
	if strings.EqualFold(name, st.Engine.Settings().Header) {
		ss.msg.verdictN++
	}
	if ss.msg.outbound != "" && ss.msg.messageID == "" && strings.EqualFold(name, "Message-Id") {
		ss.msg.messageID = strings.TrimSpace(value)
	}
	if !ss.msg.needBody {
		return gomilter.RespContinue, nil
	}
	ss.msg.precheck.Field(name, value)
	if ss.msg.buf.Len() == 0 {
		// The envelope sender, as the delivered message will carry it:
		// the analysis reads a null Return-Path as a bounce signal, and
		// Postfix adds this header only at delivery.
		ss.appendBuf([]byte("Return-Path: <"), []byte(ss.msg.env.Sender), []byte(">\r\n"))
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
	if ss.msg.st == nil || ss.msg.st.Engine == nil {
		return gomilter.RespContinue, nil
	}
	if ss.msg.needBody {
		ss.msg.buffering = ss.msg.precheck.LooksLikeBounce(ss.msg.env.Sender)
		if ss.msg.buffering {
			ss.appendBuf([]byte("\r\n"))
		} else {
			ss.msg.buf = bytes.Buffer{}
		}
	}
	if !ss.s.opts.SignOnly && ss.doneAtEOH() {
		// Accepted here, Postfix sends this milter nothing more of the
		// message; the next one starts at MAIL again.
		ss.msg = message{}
		return gomilter.RespAccept, nil
	}
	return gomilter.RespContinue, nil
}

// doneAtEOH reports whether the message needs nothing more from the
// milter once its header is read: nothing to sign, no copy of our verdict
// header to remove, and nothing the engine would judge at its end, which
// takes a message that does not look like a bounce or an auto-reply (by
// its envelope and header), from a sender that is not null or
// bounce-like, with no tagged recipient of ours (a tag is judged, and
// stripped by the milter when strip_tags = "milter").
func (ss *session) doneAtEOH() bool {
	msg := &ss.msg
	if msg.outbound != "" || msg.verdictN > 0 || msg.buffering || msg.env.Sender == "" ||
		ss.engine().IsBounceSender(msg.env.Sender) {
		return false
	}
	for _, st := range msg.inbound {
		if st.R.Tagged() {
			return false
		}
	}
	return true
}

func (ss *session) appendBuf(parts ...[]byte) {
	max := int(ss.msg.st.Limits.MaxBytes)
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

func (ss *session) clientString() string { return ss.clientText }

// logDecision is the one log line per recipient decided.
func (ss *session) logDecision(r backscatter.Recipient, v backscatter.Verdict, attrs ...any) {
	args := []any{"queue_id", ss.queueID(), "direction", "inbound", "client", ss.clientString(),
		"sender", ss.msg.env.Sender, "rcpt", r.Raw, "verdict", v.Action.String(), "result", string(v.Result),
		"reason", string(v.Reason)}
	if len(v.Evidence) > 0 {
		args = append(args, "evidence", strings.Join(v.Evidence, ","))
	}
	args = append(args, attrs...)
	ss.s.log.Info("decision", args...)
	ss.s.obs.Decision("inbound", v.Action.String(), string(v.Reason), r.Domain)
	if ss.s.detail != nil {
		ss.s.detail.Decided(stats.Decision{Direction: stats.Inbound, Verdict: v.Action.String(), Reason: string(v.Reason),
			Domain: r.Domain, Recipient: r.FloodKey(), Client: ss.clientString(), ReportingMTA: ss.msg.reporter})
	}
}

func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	if q := m.Get(gomilter.MacroQueueId); q != "" {
		ss.msg.queueID = q
	}
	if ss.msg.st == nil || ss.msg.st.Engine == nil {
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
	// Copies of our verdict header from outside are removed on every
	// path, our users' mail included, so the one a reader sees is ours.
	hdr := ss.engine().Settings().Header
	for i := ss.msg.verdictN; i >= 1; i-- {
		if err := m.ChangeHeader(i, hdr, ""); err != nil {
			return ss.onInternalError(), nil
		}
	}
	if ss.msg.outbound != "" {
		if resp := ss.sign(m); resp != nil {
			return resp, nil
		}
	}
	return ss.judge(m)
}

func (ss *session) onInternalError() *gomilter.Response {
	if ss.local {
		return gomilter.RespAccept
	}
	st := ss.msg.st
	act := st.OnError
	if ss.msg.outbound != "" {
		act = st.OutboundOnError
	}
	switch act {
	case backscatter.ErrorTempfail:
		return gomilter.RespTempFail
	case backscatter.ErrorReject:
		return gomilter.RespReject
	}
	return gomilter.RespAccept
}

// sign signs our user's mail and records it. It returns a response only
// when the message must end here (an internal error).
func (ss *session) sign(m gomilter.Modifier) *gomilter.Response {
	e := ss.engine()
	if resp, done := ss.alertResponse(); done {
		return resp
	}
	sig := e.Sign(ss.msg.env.Sender, ss.msg.rcpts)
	if sig.Sender == "" {
		if sig.Domain != "" {
			ss.s.log.Info("decision", "queue_id", ss.queueID(), "direction", "outbound", "client", ss.clientString(),
				"sender", ss.msg.env.Sender, "verdict", "not-signed", "reason", string(sig.Skip), "origin", ss.msg.outbound)
			if ss.s.detail != nil {
				ss.s.detail.Decided(stats.Decision{Direction: stats.Outbound, Verdict: stats.NotSigned, Reason: string(sig.Skip), Domain: sig.Domain})
			}
		}
		return nil
	}
	if err := m.ChangeFrom(sig.Sender, ""); err != nil {
		ss.s.log.Error("cannot change sender", "queue_id", ss.queueID(), "err", err)
		return ss.onInternalError()
	}
	ss.s.obs.Signed(sig.Domain, sig.KeyNum)
	if ss.s.detail != nil {
		ss.s.detail.Decided(stats.Decision{Direction: stats.Outbound, Verdict: stats.Signed, Reason: string(backscatter.ReasonSigned), Domain: sig.Domain})
	}
	ss.s.log.Info("decision", "queue_id", ss.queueID(), "direction", "outbound", "client", ss.clientString(),
		"sender", ss.msg.env.Sender, "verdict", "signed", "reason", ss.msg.outbound, "tag", sig.Sender, "key", sig.KeyNum, "rcpts", len(ss.msg.rcpts),
		"record_ttl", sig.TTL.String())
	if ss.s.opts.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.StoreTimeout)
		err := ss.s.opts.Store.RecordSent(ctx, cache.SentMessage{
			MessageID: ss.msg.messageID, Tag: backscatter.TagKey(sig.Sender), Sender: ss.msg.env.Sender,
			Recipients: recordRecipients(ss.msg.rcpts, ss.msg.rcptN), Time: e.Now(), TTL: sig.TTL,
		})
		cancel()
		if err != nil {
			ss.s.obs.RecordDropped()
			ss.s.log.Warn("sent record dropped", "queue_id", ss.queueID(), "err", err)
		}
	}
	return nil
}

// alertResponse applies an alert's response to our user's mail (see
// backscatter.Responses): a held sender's mail is deferred (local
// submission, which is never refused, leaves unsigned instead), a sender
// not to sign leaves unsigned. done says the message is decided here.
func (ss *session) alertResponse() (*gomilter.Response, bool) {
	act := ss.responses().Outbound(ss.msg.env.Sender)
	if act == "" {
		return nil, false
	}
	sender := ss.msg.env.Sender
	domain := ""
	if at := strings.LastIndexByte(sender, '@'); at >= 0 {
		domain = sender[at+1:]
	}
	verdict, note := stats.NotSigned, ""
	if act == backscatter.ReasonAlertHold {
		if ss.local {
			note = "local submission, not deferred"
		} else {
			verdict = "tempfail"
		}
	}
	args := []any{"queue_id", ss.queueID(), "direction", "outbound", "client", ss.clientString(),
		"sender", sender, "verdict", verdict, "reason", string(act), "origin", ss.msg.outbound}
	if note != "" {
		args = append(args, "note", note)
	}
	ss.s.log.Info("decision", args...)
	if verdict == "tempfail" {
		ss.s.obs.Decision("outbound", verdict, string(act), domain)
	}
	if ss.s.detail != nil {
		ss.s.detail.Decided(stats.Decision{Direction: stats.Outbound, Verdict: verdict, Reason: string(act), Domain: domain})
	}
	if verdict == "tempfail" {
		r, err := gomilter.RejectWithCodeAndReason(451, backscatter.HoldText)
		if err != nil {
			return gomilter.RespTempFail, true
		}
		return r, true
	}
	return nil, true
}

// MaxRecipients bounds the recipients a message keeps (Postfix's own
// smtpd_recipient_limit is 1000 by default).
const MaxRecipients = 10000

// maxCounted bounds the recipient count a sent record is given for the
// recipients not kept.
const maxCounted = 1 << 20

// recordRecipients is the recipient list of a sent record: the store keeps
// only their number, so the ones counted but not kept are empty strings.
func recordRecipients(kept []string, n int) []string {
	n = min(n, maxCounted)
	if n <= len(kept) {
		return kept
	}
	return append(kept[:len(kept):len(kept)], make([]string, n-len(kept))...)
}

// judge decides the message's recipients of ours and applies the engine's
// decision.
func (ss *session) judge(m gomilter.Modifier) (*gomilter.Response, error) {
	if len(ss.msg.inbound) == 0 {
		return gomilter.RespAccept, nil
	}
	e := ss.engine()
	st := ss.msg.st
	var rep *bounce.Report
	var note string
	if ss.msg.buffering {
		r, err := bounce.Analyze(bytes.NewReader(ss.msg.buf.Bytes()), st.Limits)
		switch {
		case err != nil:
			note = "unreadable: " + err.Error()
			rep = &bounce.Report{Kind: bounce.KindNotBounce}
		default:
			rep = r
			ss.msg.reporter = r.ReportingMTA
			if ss.msg.capHit {
				note = "cap " + bounce.CapBytes
			} else if r.CapHit != "" {
				note = "cap " + r.CapHit
			}
		}
	}
	j := e.Judge(backscatter.Message{Env: ss.msg.env, Rcpts: ss.msg.inbound, Report: rep, ClientIP: ss.clientString(), Responses: ss.responses()})
	if j.WantsDKIM() && ss.s.opts.DKIM != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.DKIMTimeout)
		j.DKIM = ss.s.opts.DKIM(ctx, rep.Original, e.DKIMDomainOurs)
		cancel()
	}
	for i := range j.Rcpts {
		rj := &j.Rcpts[i]
		if rj.Query == nil || ss.s.opts.Store == nil {
			continue
		}
		rj.Answer = ss.ask(*rj.Query)
		if rj.Answer.Err != nil {
			ss.s.log.Warn("store unavailable", "queue_id", ss.queueID(), "rcpt", rj.R.Raw, "err", rj.Answer.Err)
		}
		ss.floodLog(rj.R, rj.Answer)
	}
	d := j.Decide()
	resp, failed := ss.apply(m, d)
	if failed == "" && resp == gomilter.RespAccept && ss.s.opts.Events != nil {
		if es := events.Build(events.Delivered{Time: e.Now(), QueueID: ss.queueID(), Host: ss.s.opts.Host,
			Decision: d, Report: rep, Sender: ss.msg.env.Sender, Ours: e.HostOurs}, ss.s.opts.HashRecipient); len(es) > 0 {
			ss.s.opts.Events.Record(es...)
		}
	}
	if failed != "" {
		// The decision could not be carried out: the internal-error
		// action applies to the message, and the log says so rather than
		// what was meant to happen.
		act := backscatter.ActAccept
		switch resp {
		case gomilter.RespTempFail:
			act = backscatter.ActTempfail
		case gomilter.RespReject:
			act = backscatter.ActReject
		}
		for i := range d.Verdicts {
			d.Verdicts[i].Verdict.Action = act
		}
		note = strings.TrimPrefix(note+"; internal error: "+failed, "; ")
	}
	kind := string(j.Kind)
	if kind == "" {
		kind = "unread"
	}
	for _, rv := range d.Verdicts {
		attrs := []any{"kind", kind}
		if note != "" {
			attrs = append(attrs, "note", note)
		}
		ss.logDecision(rv.R, rv.Verdict, attrs...)
	}
	return resp, nil
}

// apply carries out the engine's decision. failed says what could not be
// done (the response is then the internal-error action).
func (ss *session) apply(m gomilter.Modifier, d backscatter.Decision) (resp *gomilter.Response, failed string) {
	e := ss.engine()
	fail := func(what string, err error) (*gomilter.Response, string) {
		ss.s.log.Error("cannot "+what, "queue_id", ss.queueID(), "err", err)
		return ss.onInternalError(), what + ": " + err.Error()
	}
	switch d.Reply.Code {
	case backscatter.ReplyTempfail, backscatter.ReplyReject:
		r, err := gomilter.RejectWithCodeAndReason(uint16(d.Reply.SMTP), d.Reply.Text)
		if err != nil {
			return fail("reply", err)
		}
		return r, ""
	}
	for _, r := range d.Drop {
		if err := deleteRecipient(m, r); err != nil {
			return fail("delete recipient", err)
		}
	}
	if ss.msg.st.StripInMilter {
		for _, r := range d.Strip {
			if err := deleteRecipient(m, r); err != nil {
				return fail("delete recipient", err)
			}
			if err := m.AddRecipient(r.Untagged, ""); err != nil {
				return fail("add recipient", err)
			}
		}
	}
	if d.Header != "" {
		if err := m.InsertHeader(0, e.Settings().Header, d.Header); err != nil {
			return fail("insert header", err)
		}
	}
	if d.Quarantine != "" {
		if err := m.Quarantine(d.Quarantine); err != nil {
			return fail("quarantine", err)
		}
	}
	return gomilter.RespAccept, ""
}

// deleteRecipient removes a recipient the way Postfix stored it, and the
// way the client wrote it when that differs (Postfix matches the milter's
// address against the recipient as received, source route dropped; an
// address that matches nothing is ignored).
func deleteRecipient(m gomilter.Modifier, r backscatter.Recipient) error {
	if err := m.DeleteRecipient(r.Stored); err != nil {
		return err
	}
	if r.Raw != r.Stored {
		return m.DeleteRecipient(r.Raw)
	}
	return nil
}
