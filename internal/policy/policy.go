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
	"github.com/bounce-milter/bounce-milter/internal/stats"
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
	// "DEFER_IF_PERMIT 4.3.0 ...", "PREPEND X-Bounce-Check: ...".
	Action string
	// Verdicts are the engine's verdicts made by this request (none when
	// the request was not about a bounce to one of our recipients, or was
	// left to the milter).
	Verdicts []backscatter.RcptVerdict
	// Note says why nothing was decided, for the debug log.
	Note string
	// StoreErr is the store's error, when it was asked and failed.
	StoreErr error
	// FloodEntered and FloodLeft report that a store answer began or ended
	// a flood (strict) state, for the log and the metrics.
	FloodEntered, FloodLeft bool
}

// noteFlood records the flood transitions of a store answer.
func (r *Reply) noteFlood(a backscatter.Answer) {
	if a.Err == nil {
		r.FloodEntered = r.FloodEntered || a.Facts.FloodEntered
		r.FloodLeft = r.FloodLeft || a.Facts.FloodLeft
	}
}

// Dunno is the reply that lets Postfix go on with its other restrictions.
const Dunno = "DUNNO"

// TempfailAction is the reply when the decision needs a backend that
// cannot answer: a 4xx unless a later restriction rejects anyway.
const TempfailAction = "DEFER_IF_PERMIT " + backscatter.TempfailText

// Message is what the service remembers of one message between its
// requests (Postfix names it by the instance attribute): the recipients
// accepted at RCPT, so that DATA and END-OF-MESSAGE know them all even
// when Postfix names none (several recipients).
type Message struct {
	// mu serialises the requests about one message: Postfix sends them in
	// order on one connection, but a client on several connections could
	// name the same instance at once.
	mu      sync.Mutex
	held    int // recipients accounted for in the messageSet (under its lock)
	Rcpts   []backscatter.RcptState
	Decided bool // the verdicts were made (and logged) at DATA
	Counted bool // the bounces were counted (END-OF-MESSAGE)
}

// Env is what Decide needs besides the request.
type Env struct {
	Engine *backscatter.Engine
	// WithMilter is set when the milter runs from the same configuration.
	// The policy service then refuses bad tags at RCPT and leaves DATA and
	// END-OF-MESSAGE to the milter, which reads the body, counts every
	// bounce once, and writes the one verdict header (removing copies it
	// did not write, prepended ones included).
	WithMilter bool
	// Inbound asks the store; nil when there is no store. It must return
	// within a bounded time (the Service bounds it with the store timeout).
	Inbound func(cache.InboundQuery) (cache.InboundFacts, error)
}

func (env Env) ask(q cache.InboundQuery) backscatter.Answer {
	if env.Inbound == nil {
		return backscatter.Answer{}
	}
	f, err := env.Inbound(q)
	return backscatter.Answer{Asked: true, Facts: f, Err: err}
}

// Decide answers one policy request. It does no I/O besides env.Inbound,
// so it is the same function in tests and in the service. msg is the
// message's state across its requests (nil: none kept).
//
// At RCPT the engine decides what it can on the address (AtRcpt): forged,
// expired and unknown-key tags of ours and unreadable addresses of ours
// get 550 whoever sends, a valid tag whose budget is spent gets 550;
// untagged recipients get DUNNO, so that sender-verification callouts
// (MAIL FROM:<>, RCPT, QUIT) pass and nothing is counted.
//
// Without the milter, at DATA the verdict header is prepended (the
// service cannot read the body, so an untagged bounce is marked "not
// checked", never refused: refusing it on the envelope alone would lose
// genuine bounces and read receipts), and at END-OF-MESSAGE each bounce to
// a valid tag is counted against the tag's budget, once per message that
// is delivered.
func Decide(env Env, req Request, msg *Message) Reply {
	e := env.Engine
	if req.Request != "" && req.Request != "smtpd_access_policy" {
		return Reply{Action: Dunno, Note: "not an smtpd_access_policy request"}
	}
	client, _ := netip.ParseAddr(req.ClientAddress)
	clientIP := ""
	if client.IsValid() {
		clientIP = client.Unmap().String()
	}
	be := backscatter.Envelope{Sender: req.Sender, Origin: backscatter.Origin{AuthUser: req.SASLUsername, Daemon: req.PolicyContext, Client: client}}
	switch req.ProtocolState {
	case "RCPT":
		if req.Recipient == "" {
			return Reply{Action: Dunno, Note: "no recipient"}
		}
		r := e.CheckRecipient(req.Recipient)
		if !r.Ours {
			return Reply{Action: Dunno, Note: "not our domain"}
		}
		var out Reply
		var a backscatter.Answer
		if q, ok := e.RcptQuery(be, r, clientIP); ok {
			a = env.ask(q)
			out.StoreErr = a.Err
			out.noteFlood(a)
		}
		if v := e.AtRcpt(be, r, a); v != nil && v.Action == backscatter.ActReject {
			out.Action = "550 " + backscatter.RejectText(v.Reason)
			out.Verdicts = []backscatter.RcptVerdict{{R: r, Verdict: *v, Facts: a.Facts, StoreErr: a.Err, AtRcpt: true}}
			return out
		}
		if msg != nil && !r.PassThrough && len(msg.Rcpts) < MaxMessageRcpts {
			msg.Rcpts = append(msg.Rcpts, backscatter.RcptState{R: r})
		}
		out.Action, out.Note = Dunno, "decided at end of message"
		return out
	case "DATA", "END-OF-MESSAGE":
	default:
		return Reply{Action: Dunno, Note: "not RCPT, DATA or END-OF-MESSAGE"}
	}
	if env.WithMilter {
		return Reply{Action: Dunno, Note: "message left to the milter"}
	}
	data := req.ProtocolState == "DATA"
	var rcpts []backscatter.RcptState
	if msg != nil && len(msg.Rcpts) > 0 {
		rcpts = msg.Rcpts
	} else if req.Recipient != "" {
		// No RCPT-stage state (the service is not in the recipient
		// restrictions): Postfix names the recipient when there is one.
		if r := e.CheckRecipient(req.Recipient); r.Ours && !r.PassThrough {
			rcpts = []backscatter.RcptState{{R: r}}
		}
	}
	if len(rcpts) == 0 {
		return Reply{Action: Dunno, Note: "no recipient of ours"}
	}
	j := e.Judge(backscatter.Message{Env: be, Rcpts: rcpts, ClientIP: clientIP, NoDrop: true})
	var out Reply
	if !data && (msg == nil || !msg.Counted) {
		// Counted at the end of the message, never at RCPT.
		for i := range j.Rcpts {
			if q := j.Rcpts[i].Query; q != nil {
				j.Rcpts[i].Answer = env.ask(*q)
				if j.Rcpts[i].Answer.Err != nil {
					out.StoreErr = j.Rcpts[i].Answer.Err
				}
				out.noteFlood(j.Rcpts[i].Answer)
			}
		}
		if msg != nil {
			msg.Counted = true
		}
	}
	d := j.Decide()
	if msg == nil || !msg.Decided {
		out.Verdicts = d.Verdicts
		if msg != nil {
			msg.Decided = true
		}
	}
	switch {
	case d.Reply.Code == backscatter.ReplyTempfail:
		out.Action = TempfailAction
	case d.Reply.Code == backscatter.ReplyReject:
		out.Action = fmt.Sprintf("%d %s", d.Reply.SMTP, d.Reply.Text)
	case d.Quarantine != "":
		// The milter's quarantine is Postfix's hold queue too.
		out.Action = oneLine("HOLD " + d.Quarantine)
	case data && d.Header != "":
		// PREPEND "cannot execute in smtpd_end_of_data_restrictions"
		// (access(5)): DATA only.
		out.Action = oneLine("PREPEND " + e.Settings().Header + ": " + d.Header)
	default:
		out.Action = Dunno
	}
	return out
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

// DetailObserver is an Observer that also takes each decision's details
// (package stats: the monitoring pages); the milter's satisfies it.
type DetailObserver interface {
	Decided(stats.Decision)
}

// Settings is what the service takes from the configuration; a reload
// swaps it whole.
type Settings struct {
	Engine  *backscatter.Engine
	OnError backscatter.ErrorAction // on an internal error
}

// Options configure a Service.
type Options struct {
	Settings Settings
	Store    cache.Store // nil: no replay or flood control
	Logger   *slog.Logger
	Observer Observer
	// StoreTimeout bounds every store call (default 300ms); Postfix waits
	// for the answer, at most smtpd_policy_service_timeout (100s).
	StoreTimeout time.Duration
	// WithMilter says whether the milter runs from the same configuration
	// (see Env.WithMilter).
	WithMilter bool
	// MaxConnections caps the connections open at once (0:
	// DefaultMaxConnections, < 0: no cap).
	MaxConnections int
}

// Service is the policy-delegation service.
type Service struct {
	settings     atomic.Pointer[Settings]
	store        cache.Store
	log          *slog.Logger
	obs          Observer
	storeTimeout time.Duration
	withMilter   bool
	messages     messageSet
	server
}

// NewService makes a policy service.
func NewService(o Options) *Service {
	p := &Service{store: o.Store, log: o.Logger, obs: o.Observer, storeTimeout: o.StoreTimeout, withMilter: o.WithMilter}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.storeTimeout <= 0 {
		p.storeTimeout = 300 * time.Millisecond
	}
	p.messages.init(maxMessages, maxRemembered)
	p.SetSettings(o.Settings)
	p.server.init(p.serveConn, o.MaxConnections, p.log,
		"policy connection limit reached: new connections closed at once (Postfix applies smtpd_policy_service_default_action)")
	return p
}

// SetSettings swaps the settings (configuration reload).
func (p *Service) SetSettings(s Settings) { p.settings.Store(&s) }

// Answer decides one request as the service does: store calls bounded by
// the store timeout, the message's state kept between its requests,
// internal errors answered per inbound.on_error, one log line per
// decision.
func (p *Service) Answer(req Request) (rep Reply) {
	st := p.settings.Load()
	defer func() {
		if x := recover(); x != nil {
			p.log.Error("policy: internal error", "queue_id", req.QueueID, "panic", fmt.Sprint(x))
			rep = Reply{Action: Dunno, Note: "internal error"}
			switch st.OnError {
			case backscatter.ErrorTempfail:
				rep.Action = TempfailAction
			case backscatter.ErrorReject:
				rep.Action = "550 5.3.0 Bounce check failed"
			}
		}
	}()
	env := Env{Engine: st.Engine, WithMilter: p.withMilter}
	if p.store != nil {
		env.Inbound = p.inbound
	}
	var msg *Message
	before := 0
	if !p.withMilter {
		if msg = p.messages.get(req.Instance); msg != nil {
			msg.mu.Lock()
			defer msg.mu.Unlock()
			before = len(msg.Rcpts)
		}
	}
	rep = Decide(env, req, msg)
	if msg != nil && len(msg.Rcpts) != before {
		p.messages.grew(req.Instance, len(msg.Rcpts)-before)
	}
	if rep.StoreErr != nil {
		p.log.Warn("policy: store unavailable", "queue_id", queueID(req), "rcpt", req.Recipient, "err", rep.StoreErr)
	}
	p.floodLog(req, rep)
	if len(rep.Verdicts) == 0 {
		if rep.Note != "" && req.Recipient != "" {
			p.log.Debug("policy: no decision", "queue_id", queueID(req), "state", req.ProtocolState, "rcpt", req.Recipient, "note", rep.Note)
		}
		return rep
	}
	for _, v := range rep.Verdicts {
		p.logDecision(req, v, rep.Action)
	}
	return rep
}

// FloodObserver is an Observer told about flood state changes (the
// milter's FloodObserver; the metrics implement it).
type FloodObserver interface {
	FloodEntered()
	FloodLeft()
}

// floodLog logs entering and leaving the flood state, once each, as the
// milter does.
func (p *Service) floodLog(req Request, rep Reply) {
	fo, _ := p.obs.(FloodObserver)
	if rep.FloodEntered {
		p.log.Warn("flood: strict state entered", "queue_id", queueID(req), "service", "policy", "rcpt", req.Recipient, "client", req.ClientAddress)
		if fo != nil {
			fo.FloodEntered()
		}
	}
	if rep.FloodLeft {
		p.log.Info("flood: strict state left", "queue_id", queueID(req), "service", "policy", "rcpt", req.Recipient, "client", req.ClientAddress)
		if fo != nil {
			fo.FloodLeft()
		}
	}
}

func queueID(req Request) string {
	if req.QueueID == "" {
		return "NOQUEUE"
	}
	return req.QueueID
}

func (p *Service) logDecision(req Request, rv backscatter.RcptVerdict, action string) {
	v := rv.Verdict
	p.log.Info("decision", "queue_id", queueID(req), "direction", "inbound", "service", "policy",
		"state", req.ProtocolState, "client", req.ClientAddress, "sender", req.Sender, "rcpt", rv.R.Raw,
		"verdict", v.Action.String(), "result", string(v.Result), "reason", string(v.Reason), "action", action)
	if p.obs != nil {
		p.obs.Decision("inbound", v.Action.String(), string(v.Reason), rv.R.Domain)
		if d, ok := p.obs.(DetailObserver); ok {
			d.Decided(stats.Decision{Direction: stats.Inbound, Verdict: v.Action.String(), Reason: string(v.Reason),
				Domain: rv.R.Domain, Recipient: rv.R.FloodKey(), Client: req.ClientAddress})
		}
	}
}

// inbound is one store call, bounded by the store timeout even when the
// store does not honour its context: Postfix must get an answer.
func (p *Service) inbound(q cache.InboundQuery) (cache.InboundFacts, error) {
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

func (p *Service) serveConn(c net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 1024)
	pipelined := 0
	for {
		p.armRead(c, idleTimeout)
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
		if br.Buffered() > 0 {
			if pipelined++; pipelined > MaxPipelined {
				_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
				_ = bw.Flush()
				p.log.Warn("policy: client sends requests without reading the answers; closing connection",
					"peer", c.RemoteAddr().String(), "pipelined", pipelined)
				return
			}
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

// MaxPipelined is how many requests a connection may send before reading
// the answers to earlier ones. Postfix never does (smtpd sends a request
// and waits for its answer; so does its socketmap client), so a client
// that keeps doing it is not Postfix: answering it without bound would let
// it make the service decide (and count in the store) as fast as it can
// write, while its unread answers pile up in socket buffers megabytes
// deep before a write would ever block.
const MaxPipelined = 64

// Bounds of what the service remembers between a message's requests, so
// that a client cannot make it hold memory without limit: messages by
// instance (the oldest is forgotten), recipients per message (Postfix's
// smtpd_recipient_limit is 1000 by default; more are decided at RCPT but
// not remembered for DATA), recipients in all, and the length of an
// instance name (Postfix's are some 20 bytes; a longer one keeps no
// state).
const (
	maxMessages     = 4096
	MaxMessageRcpts = 1000
	maxRemembered   = 20000
	maxInstanceLen  = 128
)

// messageSet keeps the state of the last messages by instance, so that
// the service knows a message's recipients at DATA and END-OF-MESSAGE and
// decides and counts each message once. Bounded: the oldest is forgotten,
// by count of messages and of recipients remembered.
type messageSet struct {
	mu    sync.Mutex
	set   map[string]*Message
	ring  []string
	next  int
	rcpts int // recipients remembered, in all
	max   int // bound of rcpts
}

func (d *messageSet) init(n, maxRcpts int) {
	d.set = make(map[string]*Message, n)
	d.ring = make([]string, n)
	d.max = maxRcpts
}

// get returns the state of instance id, created when new; nil for an
// empty or overlong id. The returned state is used by one request at a
// time (Postfix sends a message's requests in order on one connection).
func (d *messageSet) get(id string) *Message {
	if id == "" || len(id) > maxInstanceLen {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.set[id]; ok {
		return m
	}
	if old := d.ring[d.next]; old != "" {
		d.forget(old)
	}
	m := &Message{}
	d.ring[d.next] = id
	d.set[id] = m
	d.next = (d.next + 1) % len(d.ring)
	return m
}

// forget drops a message. Called with d.mu held.
func (d *messageSet) forget(id string) {
	if m, ok := d.set[id]; ok {
		d.rcpts -= m.held
		delete(d.set, id)
	}
}

// grew accounts for n recipients added to message id, and forgets the
// oldest other messages while more than the bound are remembered.
func (d *messageSet) grew(id string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.set[id]
	if !ok {
		return
	}
	m.held += n
	d.rcpts += n
	for i := 0; d.rcpts > d.max && i < len(d.ring); i++ {
		slot := (d.next + i) % len(d.ring)
		if old := d.ring[slot]; old != "" && old != id {
			d.forget(old)
			d.ring[slot] = ""
		}
	}
}

// len is the number of messages remembered (for tests).
func (d *messageSet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.set)
}
