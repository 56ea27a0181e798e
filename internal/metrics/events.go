package metrics

import "github.com/prometheus/client_golang/prometheus"

// eventMetrics count bounce events (package events).
type eventMetrics struct {
	events *prometheus.CounterVec
}

func (m *Metrics) initEvents() {
	m.ev.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bounce_milter_events_total",
		Help: "Bounce events, by outcome: written to the store, or dropped (store unavailable, queue full).",
	}, []string{"outcome"})
	m.ev.events.WithLabelValues("written")
	m.ev.events.WithLabelValues("dropped")
	m.reg.MustRegister(m.ev.events)
}

// EventsWritten counts events written to the store.
func (m *Metrics) EventsWritten(n int) { m.ev.events.WithLabelValues("written").Add(float64(n)) }

// EventsDropped counts events dropped.
func (m *Metrics) EventsDropped(n int) { m.ev.events.WithLabelValues("dropped").Add(float64(n)) }
