// Package domainlabel keeps the values a "domain" label may take in the
// metrics and the statistics: one of our domains, or Other. A label's values
// are then bounded by the configuration, never by what senders write (every
// distinct value is a time series or a counter kept for the retention).
package domainlabel

import (
	"strings"
	"sync/atomic"
)

// Other is the label of a domain that is not ours.
const Other = "other"

// Set is the set of our domains, replaced whole at start and on every
// reload; safe for concurrent use. The zero Set labels everything Other.
type Set struct {
	names atomic.Pointer[map[string]bool]
}

// Replace makes names (case and a trailing dot ignored) our domains.
func (s *Set) Replace(names []string) {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[normalize(n)] = true
	}
	s.names.Store(&m)
}

// Label returns d normalized when it is one of ours, else Other.
func (s *Set) Label(d string) string {
	d = normalize(d)
	if m := s.names.Load(); m != nil && (*m)[d] {
		return d
	}
	return Other
}

func normalize(d string) string { return strings.ToLower(strings.TrimSuffix(d, ".")) }
