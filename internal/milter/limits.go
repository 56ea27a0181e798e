package milter

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultMaxConnections caps the milter connections open at once when
// Options.MaxConnections is 0. Postfix opens one per SMTP session (smtpd)
// and one per message of non_smtpd_milters (cleanup), so this is about the
// busiest site's smtpd process limit; an idle connection costs some 10 KB.
const DefaultMaxConnections = 1000

// limitInterval is how often, at most, refused connections are logged.
const limitInterval = 10 * time.Second

// limitListener caps the connections open at once. Over the cap, a new
// connection is closed as soon as it is accepted: Postfix then applies
// milter_default_action to that SMTP session at once, where a connection
// left waiting in the backlog would stall it for milter_connect_timeout.
// Without a cap, anyone who reaches the socket could hold any number of
// idle connections (each one until the read timeout) and their memory.
type limitListener struct {
	net.Listener
	limit int
	slots chan struct{}
	log   *slog.Logger

	mu       sync.Mutex
	refused  int // since the last log line
	lastLog  time.Time
	nowFunc  func() time.Time
	interval time.Duration
}

// newLimitListener caps ln at limit connections; limit < 0 means no cap,
// 0 the default.
func newLimitListener(ln net.Listener, limit int, log *slog.Logger) net.Listener {
	if limit < 0 {
		return ln
	}
	if limit == 0 {
		limit = DefaultMaxConnections
	}
	return &limitListener{Listener: ln, limit: limit, slots: make(chan struct{}, limit), log: log,
		nowFunc: time.Now, interval: limitInterval}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		default:
			_ = c.Close()
			l.refusedOne()
		}
	}
}

// refusedOne logs the first refused connection at once, then at most one
// line per interval with the count since the last line.
func (l *limitListener) refusedOne() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	now := l.nowFunc()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < l.interval {
		return
	}
	l.log.Warn("milter connection limit reached: new connections closed at once (Postfix applies milter_default_action)",
		"limit", l.limit, "refused", l.refused)
	l.refused = 0
	l.lastLog = now
}

// limitConn gives its slot back when closed (once, however often Close is
// called).
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.l.slots })
	return err
}
