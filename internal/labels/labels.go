// Package labels bounds the values a label takes in the metrics and the
// statistics: a fixed set (verdicts, reasons) or our domains, anything else
// being Other. A label's values are then bounded by the code and the
// configuration, never by what senders write (every distinct value is a
// time series or a counter kept for the retention).
package labels

import (
	"strings"
	"sync/atomic"
)

// Other is the label of a domain that is not ours.
const Other = "other"

// Set returns the set of vals, for Bounded.
func Set(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

// Bounded returns v when allowed has it, else Other.
func Bounded(allowed map[string]bool, v string) string {
	if allowed[v] {
		return v
	}
	return Other
}

// Domains is the set of our domains, replaced whole at start and on every
// reload; safe for concurrent use. The zero Domains labels everything Other.
type Domains struct {
	names atomic.Pointer[map[string]bool]
}

// Replace makes names (case and a trailing dot ignored) our domains.
func (s *Domains) Replace(names []string) {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[normalize(n)] = true
	}
	s.names.Store(&m)
}

// Label returns d normalized when it is one of ours, else Other.
func (s *Domains) Label(d string) string {
	d = normalize(d)
	if m := s.names.Load(); m != nil && (*m)[d] {
		return d
	}
	return Other
}

func normalize(d string) string { return strings.ToLower(strings.TrimSuffix(d, ".")) }
