package policy

// The policy-delegation service (Postfix SMTPD_POLICY_README): for each
// check_policy_service it evaluates, smtpd sends name=value lines ending
// with an empty line, on a connection it keeps open, and waits for
// "action=..." and an empty line.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

// Protocol bounds. Postfix sends about 40 attributes of at most a few
// hundred bytes each (the longest are addresses, client_name, helo_name and
// TLS subjects); these leave room for that and refuse anything that could
// make the service hold unbounded memory per connection.
const (
	// MaxLine is the longest attribute line, name=value without the newline.
	MaxLine = 8 << 10
	// MaxName is the longest attribute name.
	MaxName = 64
	// MaxAttrs is the most attributes in one request.
	MaxAttrs = 128
	// MaxRequest is the most bytes in one request, newlines included.
	MaxRequest = 64 << 10
)

// Timeouts of a connection. Postfix closes idle policy connections after
// smtpd_policy_service_max_idle (300s) itself.
const (
	idleTimeout  = 10 * time.Minute
	writeTimeout = 10 * time.Second
)

// Request is the part of a policy request the decisions use; other
// attributes are read and ignored.
type Request struct {
	Request       string // "smtpd_access_policy"
	ProtocolState string // CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN
	Sender        string // "" for the null sender
	Recipient     string // at RCPT; at DATA and END-OF-MESSAGE only with a single recipient
	// RecipientCount is the number of accepted recipients (DATA and
	// END-OF-MESSAGE), -1 when absent or not a number.
	RecipientCount int
	ClientAddress  string
	ClientName     string
	QueueID        string
	Instance       string // the same for every request about one message
	SASLUsername   string
	PolicyContext  string // smtpd_policy_service_policy_context (Postfix 3.1)
	// Attrs is the number of attributes read, known or not.
	Attrs int
}

// ErrMalformed is wrapped by every protocol error ReadRequest returns.
var ErrMalformed = errors.New("malformed policy request")

// ReadRequest reads one request: attribute lines up to an empty line. It
// returns io.EOF when the connection ends cleanly between requests, and an
// error wrapping ErrMalformed for a line without '=', an empty or too long
// name, a too long line, too many attributes, a too large request or an
// empty request. Unknown attributes are ignored; a repeated one keeps its
// last value.
func ReadRequest(br *bufio.Reader) (Request, error) {
	req := Request{RecipientCount: -1}
	size := 0
	for {
		line, err := readLine(br, MaxLine)
		if err != nil {
			if errors.Is(err, io.EOF) && size == 0 {
				return req, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return req, fmt.Errorf("%w: connection closed inside a request: %w", ErrMalformed, io.ErrUnexpectedEOF)
			}
			return req, err
		}
		size += len(line) + 1
		if size > MaxRequest {
			return req, fmt.Errorf("%w: request over %d bytes", ErrMalformed, MaxRequest)
		}
		if len(line) == 0 {
			if req.Attrs == 0 {
				return req, fmt.Errorf("%w: empty request", ErrMalformed)
			}
			return req, nil
		}
		name, value, ok := strings.Cut(line, "=")
		switch {
		case !ok:
			return req, fmt.Errorf("%w: line without '=' (%.40q)", ErrMalformed, line)
		case name == "":
			return req, fmt.Errorf("%w: empty attribute name", ErrMalformed)
		case len(name) > MaxName:
			return req, fmt.Errorf("%w: attribute name over %d bytes (%.40q)", ErrMalformed, MaxName, name)
		}
		req.Attrs++
		if req.Attrs > MaxAttrs {
			return req, fmt.Errorf("%w: more than %d attributes", ErrMalformed, MaxAttrs)
		}
		switch name {
		case "request":
			req.Request = value
		case "protocol_state":
			req.ProtocolState = asciiUpper(value)
		case "sender":
			req.Sender = value
		case "recipient":
			req.Recipient = value
		case "recipient_count":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				n = -1
			}
			req.RecipientCount = n
		case "client_address":
			req.ClientAddress = value
		case "client_name":
			req.ClientName = value
		case "queue_id":
			req.QueueID = value
		case "instance":
			req.Instance = value
		case "sasl_username":
			req.SASLUsername = value
		case "policy_context":
			req.PolicyContext = value
		}
	}
}

// asciiUpper upper-cases ASCII letters only: strings.ToUpper would turn
// each invalid UTF-8 byte into a 3-byte U+FFFD and so break the bounds.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// readLine reads a line of at most max bytes (newline excluded) and returns
// it without its newline (and without a CR before it).
func readLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max+1 || (err != nil && len(buf)+len(frag) > max) {
			return "", fmt.Errorf("%w: line over %d bytes", ErrMalformed, max)
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			buf = buf[:len(buf)-1]
			if n := len(buf); n > 0 && buf[n-1] == '\r' {
				buf = buf[:n-1]
			}
			return string(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return "", fmt.Errorf("%w: connection closed inside a line: %w", ErrMalformed, io.ErrUnexpectedEOF)
		}
		return "", err
	}
}

// Reply is the answer to one request.
type Reply struct {
	// Action is what follows "action=": DUNNO, "550 5.7.1 ...",
	// "DEFER_IF_PERMIT 4.3.0 ...", "PREPEND X-Bounce-Check: ...", "HOLD ...".
	Action string
	// Verdict is the engine's verdict, nil when the request was not about
	// a bounce to one of our recipients (or was left to the milter).
	Verdict *backscatter.Verdict
	// Rcpt is the recipient decided about.
	Rcpt string
	// Message is set when the verdict is about the whole message (DATA,
	// END-OF-MESSAGE), so that a later stage of the same message does
	// not decide or count it again.
	Message bool
	// Note says why nothing was decided, for the debug log.
	Note string
	// StoreErr is the store's error, when it was asked and failed.
	StoreErr error
}

// Dunno is the reply that lets Postfix go on with its other restrictions.
const Dunno = "DUNNO"

// TempfailAction is the reply when the decision needs a backend that
// cannot answer: a 4xx unless a later restriction rejects anyway.
const TempfailAction = "DEFER_IF_PERMIT 4.3.0 Bounce check temporarily unavailable; try again later"

// Env is what Decide needs besides the request.
type Env struct {
	Engine *backscatter.Engine
	// WithMilter is set when the milter runs from the same configuration.
	// The policy service then counts nothing: at RCPT it asks the store
	// with Count=false (a tag already over its budget is refused before
	// DATA), and it answers DUNNO at DATA and END-OF-MESSAGE, leaving the
	// message to the milter, which reads the body, counts every bounce
	// once, and writes the one verdict header (removing copies it did not
	// write, prepended ones included).
	WithMilter bool
	// Inbound asks the store; nil when there is no store. It must return
	// within a bounded time (Policy bounds it with the store timeout).
	Inbound func(cache.InboundQuery) (cache.InboundFacts, error)
}

// Decide answers one policy request. It does no I/O besides env.Inbound,
// so it is the same function in tests and in the service.
//
// At RCPT, for a bounce (null or MAILER-DAEMON-like sender) to one of our
// domains: forged, expired and unknown-key tags, and valid tags used more
// often than their message had recipients, get 550; a valid tag gets DUNNO
// (its verdict header is prepended at DATA); an untagged recipient gets
// DUNNO, so that sender-verification callouts (MAIL FROM:<>, RCPT, QUIT)
// pass, and is decided at DATA.
//
// At DATA (or END-OF-MESSAGE, which cannot PREPEND), with a single
// recipient (Postfix names it only then): the untagged bounce is decided
// by the engine on the envelope and the store's flood state; a tagged one
// gets its verdict header. With several recipients the policy service
// cannot tell which of them a verdict is for, nor refuse one of them, so
// it answers DUNNO and leaves the message to the milter, if any. With the
// milter in the same configuration, see Env.WithMilter.
func Decide(env Env, req Request) Reply {
	e := env.Engine
	if req.Request != "" && req.Request != "smtpd_access_policy" {
		return Reply{Action: Dunno, Note: "not an smtpd_access_policy request"}
	}
	var data, canPrepend bool
	switch req.ProtocolState {
	case "RCPT":
	case "DATA":
		data, canPrepend = true, true
	case "END-OF-MESSAGE":
		data = true // PREPEND "cannot execute in smtpd_end_of_data_restrictions" (access(5))
	default:
		return Reply{Action: Dunno, Note: "not RCPT, DATA or END-OF-MESSAGE"}
	}
	if data && env.WithMilter {
		// The milter decides the message after reading the body, and
		// writes the one verdict header.
		return Reply{Action: Dunno, Note: "message left to the milter"}
	}
	client, _ := netip.ParseAddr(req.ClientAddress)
	if why := e.OutboundReason(backscatter.Origin{AuthUser: req.SASLUsername, Daemon: req.PolicyContext, Client: client}); why != "" {
		return Reply{Action: Dunno, Note: "outbound mail (" + why + ")"}
	}
	if !e.IsBounceSender(req.Sender) {
		return Reply{Action: Dunno, Note: "not a bounce sender"}
	}
	if req.Recipient == "" {
		if data && req.RecipientCount > 1 {
			return Reply{Action: Dunno, Note: "several recipients: not decided by the policy service"}
		}
		return Reply{Action: Dunno, Note: "no recipient"}
	}
	r := e.CheckRecipient(req.Recipient)
	if !r.Ours {
		return Reply{Action: Dunno, Note: "not our domain"}
	}
	clientIP := ""
	if client.IsValid() {
		clientIP = client.Unmap().String()
	}
	out := Reply{Rcpt: req.Recipient, Message: data}
	var v backscatter.Verdict
	switch {
	case r.Tagged() && !data:
		replayed := false
		if r.Err == nil && env.Inbound != nil {
			facts, err := env.Inbound(r.ReplayQuery(clientIP, !env.WithMilter, e.Now()))
			// A store that cannot answer does not stop a valid tag:
			// the HMAC is proof enough (as in the milter).
			out.StoreErr = err
			replayed = err == nil && facts.Replayed
		}
		v = backscatter.TagVerdict(r, replayed)
	case r.Tagged():
		// Replay was judged (and counted) at RCPT; this is for the
		// verdict header.
		v = backscatter.TagVerdict(r, false)
	case !data:
		return Reply{Action: Dunno, Rcpt: req.Recipient, Note: "untagged: decided at DATA (callout probes pass)"}
	default:
		in := backscatter.UntaggedInput{Recipient: r}
		if env.Inbound != nil {
			facts, err := env.Inbound(r.UntaggedQuery(nil, clientIP, e.Now()))
			in.AddStoreFacts(facts, err)
			out.StoreErr = err
		}
		v = e.UntaggedVerdict(in)
	}
	out.Verdict = &v
	out.Action = actionFor(e.Config(), v, canPrepend && !env.WithMilter)
	return out
}

// actionFor turns a verdict into a policy action.
func actionFor(cfg *config.Config, v backscatter.Verdict, prepend bool) string {
	switch v.Action {
	case backscatter.ActReject:
		return "550 " + backscatter.RejectText(v.Reason)
	case backscatter.ActTempfail:
		return TempfailAction
	case backscatter.ActQuarantine:
		// The milter's quarantine is Postfix's hold queue too.
		return oneLine("HOLD bounce-milter: backscatter (" + string(v.Reason) + ")")
	case backscatter.ActAccept:
		if prepend {
			return oneLine("PREPEND " + cfg.Inbound.Header + ": " + v.Header())
		}
	}
	return Dunno
}

// oneLine keeps an action on one protocol line whatever an address held.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// Observer receives one call per decision, for metrics; the milter's
// observer satisfies it.
type Observer interface {
	Decision(direction, verdict, reason, domain string)
}

// Option configures a Policy.
type Option func(*Policy)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Policy) { p.log = l } }

// WithObserver sets the metrics observer.
func WithObserver(o Observer) Option { return func(p *Policy) { p.obs = o } }

// WithStoreTimeout bounds every store call (default 300ms); Postfix waits
// for the answer, at most smtpd_policy_service_timeout (100s).
func WithStoreTimeout(d time.Duration) Option { return func(p *Policy) { p.storeTimeout = d } }

// WithMilter says whether the milter runs from the same configuration
// (see Env.WithMilter).
func WithMilter(on bool) Option { return func(p *Policy) { p.withMilter = on } }

// Policy is the policy-delegation service. The engine can be swapped while
// it runs (configuration reload).
type Policy struct {
	engine       atomic.Pointer[backscatter.Engine]
	store        cache.Store
	log          *slog.Logger
	obs          Observer
	storeTimeout time.Duration
	withMilter   bool
	decided      decidedSet
	server
}

// NewPolicy makes a policy service; store may be nil (no replay or flood
// control).
func NewPolicy(e *backscatter.Engine, store cache.Store, opts ...Option) *Policy {
	p := &Policy{store: store, storeTimeout: 300 * time.Millisecond}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.storeTimeout <= 0 {
		p.storeTimeout = 300 * time.Millisecond
	}
	p.decided.init(4096)
	p.engine.Store(e)
	p.server.handle = p.serveConn
	return p
}

// SetEngine swaps the engine (configuration reload).
func (p *Policy) SetEngine(e *backscatter.Engine) { p.engine.Store(e) }

// Answer decides one request as the service does: store calls bounded by
// the store timeout, a message decided at DATA not decided again at
// END-OF-MESSAGE, internal errors answered per inbound.on_error, one log
// line per decision.
func (p *Policy) Answer(req Request) (rep Reply) {
	e := p.engine.Load()
	defer func() {
		if x := recover(); x != nil {
			p.log.Error("policy: internal error", "queue_id", req.QueueID, "panic", fmt.Sprint(x))
			rep = Reply{Action: Dunno, Note: "internal error"}
			switch e.Config().Inbound.OnError {
			case config.ActionTempfail:
				rep.Action = TempfailAction
			case config.ActionReject:
				rep.Action = "550 5.3.0 Bounce check failed"
			}
		}
	}()
	if req.ProtocolState == "END-OF-MESSAGE" && p.decided.has(req.Instance) {
		return Reply{Action: Dunno, Note: "decided at DATA"}
	}
	env := Env{Engine: e, WithMilter: p.withMilter}
	if p.store != nil {
		env.Inbound = p.inbound
	}
	rep = Decide(env, req)
	if rep.StoreErr != nil {
		p.log.Warn("policy: store unavailable", "queue_id", queueID(req), "rcpt", req.Recipient, "err", rep.StoreErr)
	}
	if rep.Verdict == nil {
		if rep.Note != "" && rep.Rcpt != "" {
			p.log.Debug("policy: no decision", "queue_id", queueID(req), "state", req.ProtocolState, "rcpt", rep.Rcpt, "note", rep.Note)
		}
		return rep
	}
	if rep.Message {
		p.decided.add(req.Instance)
	}
	p.logDecision(req, rep)
	return rep
}

func queueID(req Request) string {
	if req.QueueID == "" {
		return "NOQUEUE"
	}
	return req.QueueID
}

func (p *Policy) logDecision(req Request, rep Reply) {
	v := rep.Verdict
	p.log.Info("decision", "queue_id", queueID(req), "direction", "inbound", "service", "policy",
		"state", req.ProtocolState, "client", req.ClientAddress, "sender", req.Sender, "rcpt", rep.Rcpt,
		"verdict", v.Action.String(), "result", string(v.Result), "reason", string(v.Reason), "action", rep.Action)
	if p.obs != nil {
		domain := ""
		if at := strings.LastIndexByte(rep.Rcpt, '@'); at >= 0 {
			domain = strings.ToLower(rep.Rcpt[at+1:])
		}
		p.obs.Decision("inbound", v.Action.String(), string(v.Reason), domain)
	}
}

// inbound is one store call, bounded by the store timeout even when the
// store does not honour its context: Postfix must get an answer.
func (p *Policy) inbound(q cache.InboundQuery) (cache.InboundFacts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.storeTimeout)
	defer cancel()
	type result struct {
		facts cache.InboundFacts
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if x := recover(); x != nil {
				ch <- result{err: fmt.Errorf("store panicked: %v", x)}
			}
		}()
		f, err := p.store.Inbound(ctx, q)
		ch <- result{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return cache.InboundFacts{}, fmt.Errorf("store inbound query: %w", r.err)
		}
		return r.facts, nil
	case <-ctx.Done():
		return cache.InboundFacts{}, fmt.Errorf("store inbound query: no answer within %s: %w", p.storeTimeout, ctx.Err())
	}
}

func (p *Policy) serveConn(c net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 1024)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		req, err := ReadRequest(br)
		if err != nil {
			// Answers to the requests before this one still go out.
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			_ = bw.Flush()
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				p.log.Debug("policy: connection idle or shutting down; closing", "peer", c.RemoteAddr().String())
			default:
				// Postfix retries on a fresh connection, then applies
				// smtpd_policy_service_default_action.
				p.log.Warn("policy: bad request; closing connection", "peer", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		rep := p.Answer(req)
		bw.WriteString("action=")
		bw.WriteString(rep.Action)
		bw.WriteString("\n\n")
		// Pipelined requests get their answers in one write.
		if br.Buffered() == 0 {
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := bw.Flush(); err != nil {
				p.log.Debug("policy: cannot answer; closing connection", "peer", c.RemoteAddr().String(), "err", err)
				return
			}
		}
	}
}

// decidedSet remembers the last n message instances decided at DATA, so
// that a site with the check in both smtpd_data_restrictions and
// smtpd_end_of_data_restrictions decides and counts each message once.
type decidedSet struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func (d *decidedSet) init(n int) {
	d.set = make(map[string]struct{}, n)
	d.ring = make([]string, n)
}

func (d *decidedSet) add(id string) {
	if id == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.set[id]; ok {
		return
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.set, old)
	}
	d.ring[d.next] = id
	d.set[id] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
}

func (d *decidedSet) has(id string) bool {
	if id == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.set[id]
	return ok
}
