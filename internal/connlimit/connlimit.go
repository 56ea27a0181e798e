// Package connlimit caps the connections a listener holds open at once. The
// milter, the socketmap and the policy service each wrap their listener in
// one, so that whoever can reach a socket cannot hold memory (buffers, a
// goroutine, session state) without bound by opening connections and
// leaving them idle.
package connlimit

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Interval is how often, at most, refused connections are logged.
const Interval = 10 * time.Second

// Listener caps the connections open at once. Over the cap, a new
// connection is closed as soon as it is accepted: the Postfix client then
// applies its failure action (milter_default_action,
// smtpd_policy_service_default_action, a table lookup error) to that
// session at once, where a connection left waiting in the backlog would
// stall it for the client's connect timeout.
type Listener struct {
	net.Listener
	limit int
	slots chan struct{}
	log   *slog.Logger
	msg   string

	mu      sync.Mutex
	refused int // since the last log line
	lastLog time.Time
	// Now is the clock of the log interval (tests replace it).
	Now func() time.Time
}

// New caps ln at limit connections; limit <= 0 means no cap (ln is
// returned as it is). msg is the warning logged when connections are
// refused, at most once per Interval, with the limit and the count.
func New(ln net.Listener, limit int, log *slog.Logger, msg string) net.Listener {
	if limit <= 0 {
		return ln
	}
	if log == nil {
		log = slog.Default()
	}
	return &Listener{Listener: ln, limit: limit, slots: make(chan struct{}, limit), log: log, msg: msg, Now: time.Now}
}

// Accept returns the next connection under the cap, closing the ones over
// it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, l: l}, nil
		default:
			l.RefusedOne()
			_ = c.Close()
		}
	}
}

// Open is the number of connections holding a slot.
func (l *Listener) Open() int { return len(l.slots) }

// RefusedOne logs the first refused connection at once, then at most one
// line per interval with the count since the last line.
func (l *Listener) RefusedOne() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	now := l.Now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < Interval {
		return
	}
	l.log.Warn(l.msg, "limit", l.limit, "refused", l.refused)
	l.refused = 0
	l.lastLog = now
}

// conn gives its slot back when closed (once, however often Close is
// called).
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.l.slots })
	return err
}
