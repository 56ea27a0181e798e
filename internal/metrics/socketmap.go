package metrics

import "github.com/prometheus/client_golang/prometheus"

// initSocketmap counts the socketmap's lookups by result: "found" (a
// valid tag of ours, answered untagged), "notfound" (anything else),
// "bad-request". Behind the inline regexp postfix-config prints, Postfix
// asks only about tag-shaped recipients, so "notfound" is mostly forged,
// expired or foreign tags; without it, every recipient.
func (m *Metrics) initSocketmap() {
	m.socketmap = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bounce_milter_socketmap_lookups_total",
		Help: "Socketmap lookups by result: found (a valid tag, answered untagged), notfound, bad-request.",
	}, []string{"result"})
	for _, r := range []string{"found", "notfound", "bad-request"} {
		m.socketmap.WithLabelValues(r)
	}
	m.reg.MustRegister(m.socketmap)
}

// SocketmapLookup counts one socketmap lookup (result: found, notfound,
// bad-request).
func (m *Metrics) SocketmapLookup(result string) { m.socketmap.WithLabelValues(result).Inc() }
