// Package metrics is bounce-milter's Prometheus instrumentation.
//
// It answers the operator's questions: what is being decided and why
// (decisions by verdict, reason and domain), whether an old key can be
// retired (tags signed per key number: once a key has signed nothing for a
// tag lifetime, no valid tag can name it), whether the store is healthy
// (latency, errors, circuit-breaker state, whether it can write, the
// records waiting for it and those given up, the gaps in its history) and
// whether a flood is on.
//
// Metrics has its own registry, not the global default one, so that only
// what is declared here (plus the Go and process collectors) is exposed,
// and tests can build as many as they like. Every label value comes from a
// fixed set: a value outside it is counted as "other". In particular
// domains are labelled only when they are ours (SetDomains), since a
// recipient domain is chosen by whoever sends the mail, and unbounded
// label values would let any sender grow the metrics without limit.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/labels"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Other is the label value for anything outside a label's fixed set.
const Other = labels.Other

// Label value sets. Reasons are the engine's closed set
// (backscatter.Reasons).
var (
	directions    = labels.Set("inbound", "outbound")
	verdicts      = labels.Set("accept", "reject", "tempfail", "quarantine", "drop-recipient")
	reasons       = reasonSet()
	storeOps      = labels.Set("record_sent", "inbound", "ping", "journal")
	breakerStates = []string{"closed", "open", "half-open"}
)

func reasonSet() map[string]bool {
	m := make(map[string]bool, len(backscatter.Reasons))
	for _, r := range backscatter.Reasons {
		m[string(r)] = true
	}
	return m
}

// Metrics holds every bounce-milter metric. It implements the milter's
// Observer (decisions, signatures, dropped records) and the store's
// observer (ObserveStore, BreakerState). Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	decisions    *prometheus.CounterVec
	signed       *prometheus.CounterVec
	dropped      prometheus.Counter
	storeDur     *prometheus.HistogramVec
	storeErrs    *prometheus.CounterVec
	breaker      *prometheus.GaugeVec
	floodEntered prometheus.Counter
	strict       strictStates

	domains   labels.Domains
	ev        eventMetrics
	socketmap *prometheus.CounterVec
	store     atomic.Pointer[storeState]
}

// strictStates follows the flood (strict) states this process saw begin,
// each until it ends: the FloodLeft the store reports for it (lazily, only
// when mail for that recipient or client arrives again), or its strict_for
// running out, whichever comes first, so that the gauge falls when a flood
// is over even if nothing arrives. Under Redis several hosts share the
// states; each process counts the ones its own queries began.
type strictStates struct {
	mu        sync.Mutex
	strictFor time.Duration
	until     []time.Time // ascending while strictFor does not change
	now       func() time.Time
}

// maxStrictStates bounds what is followed: past it the oldest is dropped
// (the gauge then undercounts a flood that large, and says so by being at
// the bound).
const maxStrictStates = 100000

func (s *strictStates) prune(now time.Time) {
	i := 0
	for i < len(s.until) && !s.until[i].After(now) {
		i++
	}
	if i > 0 {
		s.until = append(s.until[:0], s.until[i:]...)
	}
}

func (s *strictStates) entered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	if len(s.until) >= maxStrictStates {
		s.until = append(s.until[:0], s.until[1:]...)
	}
	s.until = append(s.until, now.Add(s.strictFor))
}

// left ends the state the store says is over. A state lasts strict_for
// from its start, so the one that ended is the first to end here, and has
// normally ended already; a second's slack covers a store whose clock
// (Redis, another host's query) runs a little ahead. A state this process
// did not see begin is not counted, and nothing else is removed for it.
func (s *strictStates) left() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	if len(s.until) > 0 && !s.until[0].After(now.Add(time.Second)) {
		s.until = s.until[1:]
	}
}

func (s *strictStates) count() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(s.now())
	return float64(len(s.until))
}

// StoreState is what the metrics read from the store's Recorder at each
// scrape (cache.Recorder implements it): its backlog, its counters, whether
// writes fail, and the gaps in the store's history.
type StoreState interface {
	Stats() cache.RecorderStats
	WriteError() error
	Gaps(now time.Time) []cache.Window
}

type storeState struct{ s StoreState }

// New makes the metrics with their own registry; version is the build's
// version string, exposed in bounce_milter_build_info.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bounce_milter_decisions_total",
		Help: "Decisions about recipients of bounces and auto-replies, by direction, verdict, reason and our domain (\"other\" for anything else).",
	}, []string{"direction", "verdict", "reason", "domain"})
	m.signed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bounce_milter_signed_total",
		Help: "Envelope senders signed, by domain and key number. A key that has signed nothing for a tag lifetime can be retired.",
	}, []string{"domain", "key"})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bounce_milter_store_records_dropped_total",
		Help: "Records of signed outbound mail given up: neither written to the store nor kept (the outbox full, or a stop that could not spool them). Their time span is a gap in the store's history.",
	})
	m.storeDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bounce_milter_store_duration_seconds",
		Help: "Time taken by store operations, by operation, failed ones included.",
		// From a local bbolt write (well under a millisecond) to the
		// store timeout (a few hundred milliseconds) and beyond.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"op"})
	m.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bounce_milter_store_errors_total",
		Help: "Store operations that failed, by operation.",
	}, []string{"op"})
	m.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bounce_milter_store_breaker_state",
		Help: "The store's circuit-breaker state: 1 for the current state (closed, open, half-open), 0 for the others.",
	}, []string{"state"})
	m.strict.now = time.Now
	m.strict.strictFor = time.Hour
	floodStrict := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bounce_milter_flood_strict",
		Help: "Recipients and clients in the flood (strict) state, where untagged bounces without evidence are refused, as this process saw them enter it (under Redis, each host counts the states its own mail began).",
	}, m.strict.count)
	m.floodEntered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bounce_milter_flood_entered_total",
		Help: "Times a recipient or client entered the flood (strict) state.",
	})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bounce_milter_build_info",
		Help: "Always 1; the labels say which build is running.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.initEvents()
	m.initSocketmap()

	// Read from the store's Recorder at each scrape (WatchStore); until
	// then, and without a store, nothing is pending and writes work.
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bounce_milter_store_records_pending",
		Help: "Records of signed outbound mail waiting to be written: queued, or kept while the store cannot take them (retried; given up beyond 100,000).",
	}, func() float64 { return m.storeStat(func(s StoreState) float64 { return float64(s.Stats().Pending) }) })
	written := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bounce_milter_store_records_written_total",
		Help: "Records of signed outbound mail written to the store.",
	}, func() float64 { return m.storeStat(func(s StoreState) float64 { return float64(s.Stats().Written) }) })
	failed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bounce_milter_store_record_batches_failed_total",
		Help: "Batches of records the store did not take (kept and retried).",
	}, func() float64 {
		return m.storeStat(func(s StoreState) float64 { return float64(s.Stats().FailedBatches) })
	})
	writeOK := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bounce_milter_store_writes_ok",
		Help: "1 when the store takes writes, 0 while they fail (disk full, Redis down or read-only): records then wait in memory, and /healthz fails.",
	}, func() float64 {
		return m.storeStat(func(s StoreState) float64 {
			if s.WriteError() != nil {
				return 0
			}
			return 1
		}, 1)
	})
	gaps := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bounce_milter_store_gaps",
		Help: "Gaps in the store's history within the last 33 days (outages, lost data, downtime, records given up): an untagged bounce whose original was sent in one is accepted and marked (reason gap); a tag signed near one where records were lost is never refused as replayed.",
	}, func() float64 {
		return m.storeStat(func(s StoreState) float64 { return float64(len(s.Gaps(time.Now()))) })
	})

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.signed, m.dropped, m.storeDur, m.storeErrs, m.breaker,
		floodStrict, m.floodEntered, buildInfo,
		pending, written, failed, writeOK, gaps,
	)
	// Series that exist from the start, so that rate() and alerts see a
	// zero before the first event rather than nothing.
	m.BreakerState("closed")
	for op := range storeOps {
		m.storeErrs.WithLabelValues(op)
	}
	m.SetDomains(nil)
	return m
}

// WatchStore makes the store metrics (records pending, written, failed
// batches, writes ok, gaps) read s at each scrape.
func (m *Metrics) WatchStore(s StoreState) { m.store.Store(&storeState{s}) }

// storeStat is f of the watched store, or def (0 unless given) when none
// is watched.
func (m *Metrics) storeStat(f func(StoreState) float64, def ...float64) float64 {
	if st := m.store.Load(); st != nil && st.s != nil {
		return f(st.s)
	}
	if len(def) > 0 {
		return def[0]
	}
	return 0
}

// Registry is the registry the metrics are in (for tests and extra
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// SetDomains sets our domains: the only values the domain label takes
// besides "other". Called at start and on every reload.
func (m *Metrics) SetDomains(names []string) {
	m.domains.Replace(names)
}

func (m *Metrics) domain(d string) string {
	return m.domains.Label(d)
}

// Decision counts one decision (milter.Observer).
func (m *Metrics) Decision(direction, verdict, reason, domain string) {
	m.decisions.WithLabelValues(labels.Bounded(directions, direction), labels.Bounded(verdicts, verdict),
		labels.Bounded(reasons, reason), m.domain(domain)).Inc()
}

// Signed counts one signed envelope sender (milter.Observer).
func (m *Metrics) Signed(domain string, keyNum int) {
	key := Other
	if keyNum >= 0 && keyNum <= 9 {
		key = strconv.Itoa(keyNum)
	}
	m.signed.WithLabelValues(m.domain(domain), key).Inc()
}

// RecordDropped counts a sent record the store did not take
// (milter.Observer).
func (m *Metrics) RecordDropped() { m.dropped.Inc() }

// ObserveStore records one store operation: "record_sent", "inbound" or
// "ping" (cache.Observer).
func (m *Metrics) ObserveStore(op string, d time.Duration, err error) {
	op = labels.Bounded(storeOps, op)
	m.storeDur.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.storeErrs.WithLabelValues(op).Inc()
	}
}

// BreakerState records the store's circuit-breaker state: "closed",
// "open" or "half-open" (cache.Observer). An unknown state sets all three
// to 0, which an alert on "closed" != 1 catches.
func (m *Metrics) BreakerState(state string) {
	for _, s := range breakerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.breaker.WithLabelValues(s).Set(v)
	}
}

// SetFloodStrictFor is how long a strict state lasts (store.flood.strict_for):
// the gauge counts a state for at most that long.
func (m *Metrics) SetFloodStrictFor(d time.Duration) {
	m.strict.mu.Lock()
	m.strict.strictFor = d
	m.strict.mu.Unlock()
}

// FloodEntered counts a recipient or client entering the strict state
// (milter.FloodObserver); bounce_milter_flood_strict counts it while it
// lasts.
func (m *Metrics) FloodEntered() {
	m.floodEntered.Inc()
	m.strict.entered()
}

// FloodLeft ends a strict state (milter.FloodObserver).
func (m *Metrics) FloodLeft() { m.strict.left() }
