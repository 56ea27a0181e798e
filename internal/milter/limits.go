package milter

import (
	"log/slog"
	"net"

	"github.com/bounce-milter/bounce-milter/internal/connlimit"
)

// DefaultMaxConnections caps the milter connections open at once when
// Options.MaxConnections is 0. Postfix opens one per SMTP session (smtpd)
// and one per message of non_smtpd_milters (cleanup), so this is about the
// busiest site's smtpd process limit; an idle connection costs some 10 KB.
const DefaultMaxConnections = 1000

// newLimitListener caps ln at limit connections (package connlimit);
// limit < 0 means no cap, 0 the default. Without a cap, anyone who reaches
// the socket could hold any number of idle connections (each one until the
// read timeout) and their memory.
func newLimitListener(ln net.Listener, limit int, log *slog.Logger) net.Listener {
	if limit < 0 {
		return ln
	}
	if limit == 0 {
		limit = DefaultMaxConnections
	}
	return connlimit.New(ln, limit, log,
		"milter connection limit reached: new connections closed at once (Postfix applies milter_default_action)")
}
