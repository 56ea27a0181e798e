// Package policy serves Postfix's two table-style protocols from the
// decision engine: the socketmap that strips valid tags for
// recipient_canonical_maps, and the policy-delegation service for
// check_policy_service.
//
// The policy service exists because some sites cannot or will not run a
// milter, and because every site gains from refusing the cheapest cases
// (forged, expired, unknown-key and replayed tags) at RCPT, before the
// client sends any data. It decides with the same engine, configuration
// and store as the milter, so both say the same thing about the same
// envelope. What it cannot do is read the body: without the milter an
// untagged bounce is decided on the envelope alone (exemptions, grace,
// flood state, then the domain's mode), where the milter would first look
// for evidence that we sent the original.
package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/connlimit"
)

// maxNetstring bounds a socketmap request; Postfix's own limit for a reply
// is 100000 bytes, and a request is a map name and one address.
const maxNetstring = 100000

// Socketmap answers Postfix socketmap lookups (socketmap_table(5)): for a
// validly tagged address of ours it answers the untagged address, for
// anything else NOTFOUND. Used as recipient_canonical_maps it strips tags
// before delivery, lets tagged recipients pass reject_unlisted_recipient,
// and repairs the DSNs Postfix itself sends to tagged senders, which never
// pass through smtpd milters.
type Socketmap struct {
	engine   atomic.Pointer[backscatter.Engine]
	log      *slog.Logger
	onLookup func(result string)
	server
}

// SocketmapOptions configure a Socketmap.
type SocketmapOptions struct {
	Engine *backscatter.Engine
	Logger *slog.Logger
	// MaxConnections caps the connections open at once (0:
	// DefaultMaxConnections, < 0: no cap).
	MaxConnections int
	// OnLookup, when set, is told each lookup's result: "found",
	// "notfound" or "bad-request" (metrics).
	OnLookup func(result string)
}

// NewSocketmap makes a socketmap service.
func NewSocketmap(o SocketmapOptions) *Socketmap {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Socketmap{log: o.Logger, onLookup: o.OnLookup}
	if s.onLookup == nil {
		s.onLookup = func(string) {}
	}
	s.engine.Store(o.Engine)
	s.server.init(s.serveConn, o.MaxConnections, o.Logger,
		"socketmap connection limit reached: new connections closed at once (Postfix's lookup fails and the mail is deferred)")
	return s
}

// SetEngine swaps the engine (configuration reload).
func (s *Socketmap) SetEngine(e *backscatter.Engine) { s.engine.Store(e) }

// Lookup answers one request: the reply without netstring framing.
func (s *Socketmap) Lookup(name, key string) string {
	e := s.engine.Load()
	r := e.CheckRecipient(key)
	if r.Verified == nil {
		return "NOTFOUND "
	}
	return "OK " + r.Untagged
}

func (s *Socketmap) serveConn(c net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	pipelined := 0
	for {
		s.armRead(c, idleTimeout)
		req, err := readNetstring(br, maxNetstring)
		if err != nil {
			// Answers to the requests before this one still go out.
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			_ = bw.Flush()
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				// Idle for 10 minutes, or shutting down.
			default:
				s.log.Warn("socketmap: bad request; closing connection", "client", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		if br.Buffered() > 0 {
			// See MaxPipelined.
			if pipelined++; pipelined > MaxPipelined {
				_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
				_ = bw.Flush()
				s.log.Warn("socketmap: client sends requests without reading the answers; closing connection",
					"client", c.RemoteAddr().String(), "pipelined", pipelined)
				return
			}
		}
		name, key, ok := cutSpace(req)
		var reply string
		if !ok || key == "" {
			reply = "PERM request must be \"name key\""
			s.onLookup("bad-request")
		} else {
			reply = s.Lookup(name, key)
			if reply[0] == 'O' {
				s.onLookup("found")
			} else {
				s.onLookup("notfound")
			}
		}
		writeNetstring(bw, reply)
		if br.Buffered() == 0 || bw.Buffered() >= 4096 {
			// A client that pipelines and never reads must not pin this
			// goroutine: every write has a deadline.
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// readNetstring reads "LEN:DATA," (djb's netstrings, as Postfix's
// socketmap client writes them).
func readNetstring(r *bufio.Reader, max int) (string, error) {
	n := 0
	digits := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			if digits == 0 {
				return "", err
			}
			return "", fmt.Errorf("netstring length: %w", io.ErrUnexpectedEOF)
		}
		if b == ':' {
			break
		}
		if b < '0' || b > '9' || digits > 6 {
			return "", fmt.Errorf("netstring: bad length byte %q", b)
		}
		if digits == 1 && n == 0 {
			return "", errors.New("netstring: leading zero in the length")
		}
		n = n*10 + int(b-'0')
		digits++
		if n > max {
			return "", fmt.Errorf("netstring: length %d over %d", n, max)
		}
	}
	if digits == 0 {
		return "", errors.New("netstring: empty length")
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("netstring data: %w", err)
	}
	if buf[n] != ',' {
		return "", errors.New("netstring: missing trailing comma")
	}
	return string(buf[:n]), nil
}

func writeNetstring(w *bufio.Writer, s string) {
	w.WriteString(strconv.Itoa(len(s)))
	w.WriteByte(':')
	w.WriteString(s)
	w.WriteByte(',')
}

// DefaultMaxConnections caps the connections a service holds open at once
// when its options say 0: Postfix keeps one per smtpd process using the
// policy service and one per cleanup or trivial-rewrite process using the
// socketmap (default_process_limit is 100).
const DefaultMaxConnections = 1000

// server is the accept loop shared by the socketmap and policy services:
// one goroutine per connection, at most maxConns of them (package
// connlimit), graceful shutdown waits for them.
type server struct {
	handle   func(net.Conn)
	maxConns int
	log      *slog.Logger
	capMsg   string
	mu       sync.Mutex
	lns      []net.Listener
	conns    map[net.Conn]struct{}
	// closing is set by Shutdown before it cuts the idle connections
	// short (see armRead).
	closing atomic.Bool
	wg      sync.WaitGroup
	closed  bool
}

func (s *server) init(handle func(net.Conn), maxConns int, log *slog.Logger, capMsg string) {
	if maxConns == 0 {
		maxConns = DefaultMaxConnections
	}
	s.handle, s.maxConns, s.log, s.capMsg = handle, maxConns, log, capMsg
}

// Serve accepts connections on ln until Shutdown.
func (s *server) Serve(ln net.Listener) error {
	ln = connlimit.New(ln, s.maxConns, s.log, s.capMsg)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns = append(s.lns, ln)
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				s.wg.Done()
			}()
			s.handle(c)
		}()
	}
}

// armRead sets the read deadline for the next request. A handler re-arms
// it after each answer; were Shutdown to cut the connection short just
// before, the new deadline would undo it and Shutdown would wait for an
// idle client. So the handler looks at closing after arming: either it
// sees Shutdown's flag and cuts itself short, or Shutdown's own deadline
// comes after its own.
func (s *server) armRead(c net.Conn, d time.Duration) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	if s.closing.Load() {
		_ = c.SetReadDeadline(time.Now())
	}
}

// Shutdown stops accepting, then waits for the connections in flight to
// finish their current request (idle ones are closed) or ctx to expire.
func (s *server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	// Postfix keeps table connections open while idle; closing the read
	// side makes each handler return after its current reply.
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
