package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDecisionsBoundedLabels(t *testing.T) {
	m := New("test-1")
	m.SetDomains([]string{"example.com", "Example.ORG."})
	m.Decision("inbound", "reject", "bad-signature", "EXAMPLE.com")
	m.Decision("inbound", "reject", "bad-signature", "example.com")
	m.Decision("inbound", "accept", "valid-tag", "example.org")
	// Values an outsider chooses, or that are not in the fixed sets.
	m.Decision("inbound", "reject", "no-evidence", "attacker-chosen.example")
	m.Decision("sideways", "explode", "because", "")

	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"inbound", "reject", "bad-signature", "example.com"}, 2},
		{[]string{"inbound", "accept", "valid-tag", "example.org"}, 1},
		{[]string{"inbound", "reject", "no-evidence", Other}, 1},
		{[]string{Other, Other, Other, Other}, 1},
	} {
		if got := testutil.ToFloat64(m.decisions.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("decisions%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.decisions); n != 4 {
		t.Errorf("%d decision series, want 4 (labels not bounded?)", n)
	}

	// A reload that drops a domain stops labelling it.
	m.SetDomains([]string{"example.org"})
	m.Decision("inbound", "reject", "bad-signature", "example.com")
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("inbound", "reject", "bad-signature", Other)); got != 1 {
		t.Errorf("after reload: decisions for a dropped domain = %v under \"other\", want 1", got)
	}
}

func TestSignedByKey(t *testing.T) {
	m := New("test-1")
	m.SetDomains([]string{"example.com"})
	m.Signed("example.com", 2)
	m.Signed("example.com", 2)
	m.Signed("example.com", 3)
	m.Signed("example.com", 42)
	if got := testutil.ToFloat64(m.signed.WithLabelValues("example.com", "2")); got != 2 {
		t.Errorf("signed key 2 = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.signed.WithLabelValues("example.com", "3")); got != 1 {
		t.Errorf("signed key 3 = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.signed.WithLabelValues("example.com", Other)); got != 1 {
		t.Errorf("signed key out of range = %v, want 1 under other", got)
	}
}

func TestStoreAndBreaker(t *testing.T) {
	m := New("test-1")
	m.ObserveStore("inbound", 3*time.Millisecond, nil)
	m.ObserveStore("inbound", 400*time.Millisecond, errors.New("timeout"))
	m.ObserveStore("record_sent", time.Millisecond, errors.New("down"))
	m.ObserveStore("drop table", time.Millisecond, nil)
	m.RecordDropped()

	if got := testutil.ToFloat64(m.storeErrs.WithLabelValues("inbound")); got != 1 {
		t.Errorf("inbound errors = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.storeErrs.WithLabelValues("ping")); got != 0 {
		t.Errorf("ping errors = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.dropped); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	want := `
# HELP bounce_milter_store_breaker_state The store's circuit-breaker state: 1 for the current state (closed, open, half-open), 0 for the others.
# TYPE bounce_milter_store_breaker_state gauge
bounce_milter_store_breaker_state{state="closed"} 0
bounce_milter_store_breaker_state{state="half-open"} 0
bounce_milter_store_breaker_state{state="open"} 1
`
	m.BreakerState("open")
	if err := testutil.CollectAndCompare(m.breaker, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`bounce_milter_store_duration_seconds_count{op="inbound"} 2`,
		`bounce_milter_store_duration_seconds_bucket{op="inbound",le="0.005"} 1`,
		`bounce_milter_store_duration_seconds_count{op="other"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if n := testutil.CollectAndCount(m.storeDur); n != 3 {
		t.Errorf("%d histogram series, want 3 (inbound, record_sent, other)", n)
	}
}

func TestExposition(t *testing.T) {
	m := New("v1.2.3")
	m.SetDomains([]string{"example.com"})
	m.Decision("inbound", "reject", "expired", "example.com")
	for range 3 {
		m.FloodEntered()
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	out := string(body)
	for _, want := range []string{
		`bounce_milter_build_info{goversion="go`,
		`version="v1.2.3"} 1`,
		`bounce_milter_decisions_total{direction="inbound",domain="example.com",reason="expired",verdict="reject"} 1`,
		`bounce_milter_flood_strict 3`,
		`bounce_milter_flood_entered_total 3`,
		`bounce_milter_store_breaker_state{state="closed"} 1`,
		`bounce_milter_store_errors_total{op="record_sent"} 0`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// Lint the exposition the way promtool check metrics does.
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// bounce_milter_flood_strict counts the strict states this process saw
// begin while they last: until strict_for runs out (even when no mail
// arrives to report it), or until the store reports one over.
func TestFloodStrictGauge(t *testing.T) {
	m := New("v")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.strict.now = func() time.Time { return now }
	m.SetFloodStrictFor(time.Hour)
	gauge := func() float64 {
		t.Helper()
		return testutil.ToFloat64(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, m.strict.count))
	}
	m.FloodEntered()
	now = now.Add(10 * time.Minute)
	m.FloodEntered()
	if g := gauge(); g != 2 {
		t.Fatalf("two states entered: gauge %v", g)
	}
	m.FloodLeft() // a state another host began: nothing of ours ended
	if g := gauge(); g != 2 {
		t.Fatalf("a foreign state left: gauge %v, want 2", g)
	}
	now = now.Add(50 * time.Minute)
	if g := gauge(); g != 1 {
		t.Fatalf("first state over (strict_for): gauge %v, want 1", g)
	}
	now = now.Add(10*time.Minute - 500*time.Millisecond)
	m.FloodLeft() // the store's clock a little ahead
	if g := gauge(); g != 0 {
		t.Fatalf("second state left: gauge %v, want 0", g)
	}
	if n := testutil.ToFloat64(m.floodEntered); n != 2 {
		t.Fatalf("entered %v, want 2", n)
	}
}

// Every reason and action the engine can give an inbound decision has its
// own label value: none is lumped into "other".
func TestEngineLabelsKnown(t *testing.T) {
	for _, r := range backscatter.Reasons {
		switch r {
		case backscatter.ReasonSigned, backscatter.ReasonNotOurDomain, backscatter.ReasonAlreadyTagged, backscatter.ReasonSRS,
			backscatter.ReasonVERP, backscatter.ReasonOptedOut, backscatter.ReasonPassThrough, backscatter.ReasonSigningOff, backscatter.ReasonNoKey,
			backscatter.ReasonNullSender, backscatter.ReasonUnparsable, backscatter.ReasonSignError:
			continue // outbound: not a decision label
		}
		if !reasons[string(r)] {
			t.Errorf("reason %q has no label value", r)
		}
	}
	for _, a := range []backscatter.Action{backscatter.ActAccept, backscatter.ActReject, backscatter.ActTempfail,
		backscatter.ActQuarantine, backscatter.ActDrop} {
		if !verdicts[a.String()] {
			t.Errorf("verdict %q has no label value", a)
		}
	}
}

// fakeStore is a StoreState whose answers the test sets.
type fakeStore struct {
	stats cache.RecorderStats
	err   error
	gaps  []cache.Window
}

func (f *fakeStore) Stats() cache.RecorderStats        { return f.stats }
func (f *fakeStore) WriteError() error                 { return f.err }
func (f *fakeStore) Gaps(now time.Time) []cache.Window { return f.gaps }

func TestStoreState(t *testing.T) {
	m := New("test-1")
	gather := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	// No store watched: nothing pending, writes work.
	for _, want := range []string{"bounce_milter_store_records_pending 0", "bounce_milter_store_writes_ok 1", "bounce_milter_store_gaps 0"} {
		if out := gather(); !strings.Contains(out, want+"\n") {
			t.Errorf("before WatchStore: exposition lacks %q", want)
		}
	}
	now := time.Now()
	f := &fakeStore{stats: cache.RecorderStats{Pending: 1234, Written: 99, FailedBatches: 7},
		err: errors.New("no space left on device"), gaps: []cache.Window{{From: now.Add(-time.Hour), To: now}}}
	m.WatchStore(f)
	out := gather()
	for _, want := range []string{
		"bounce_milter_store_records_pending 1234",
		"bounce_milter_store_records_written_total 99",
		"bounce_milter_store_record_batches_failed_total 7",
		"bounce_milter_store_writes_ok 0",
		"bounce_milter_store_gaps 1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// Read at each scrape: writes recover, the backlog drains.
	f.err, f.stats.Pending = nil, 0
	out = gather()
	for _, want := range []string{"bounce_milter_store_writes_ok 1", "bounce_milter_store_records_pending 0"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("after recovery: exposition lacks %q", want)
		}
	}
	m.ObserveStore("journal", time.Millisecond, errors.New("down"))
	if got := testutil.ToFloat64(m.storeErrs.WithLabelValues("journal")); got != 1 {
		t.Errorf("journal errors = %v, want 1 (not \"other\")", got)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
