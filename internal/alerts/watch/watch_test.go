package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type hook struct {
	mu   sync.Mutex
	msgs []Message
}

func (h *hook) SendJSON(id, typ string, v any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if typ == "alert" {
		h.msgs = append(h.msgs, v.(Message))
	}
}

// logs collects log lines.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// Two hosts on one store (a fleet on Redis, in memory here): one
// evaluates, both show the alert, the change is logged and sent once; a
// clear requested through the other host is applied; when the evaluating
// host stops, the other takes over without raising the alert again.
func TestFleet(t *testing.T) {
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st := cache.NewMemoryStats()
	al := cache.NewMemoryAlerts()
	al.SetClock(c.now)
	// Ten days of history: example.com's usual is 2 suspected bounces a
	// day, alice's 1 genuine bounce.
	var hist []cache.StatsBucket
	for d := 1; d <= 10; d++ {
		day := c.now().Add(-time.Duration(d) * 24 * time.Hour).Truncate(24 * time.Hour)
		hist = append(hist, cache.StatsBucket{Width: cache.StatsDaily, Start: day,
			Counts: map[string]int64{"d|inbound|reject|no-evidence|example.com": 2},
			Sets:   map[string]map[string]int64{stats.SetSenderBounces: {"alice@example.com": 1}}})
	}
	if err := st.AddStats(context.Background(), cache.StatsWrite{Buckets: hist, Min: map[string]int64{"since": c.now().Add(-10 * 24 * time.Hour).Unix()}}); err != nil {
		t.Fatal(err)
	}
	agg := stats.New(stats.Options{Store: st, Now: c.now})
	agg.SetDomains([]string{"example.com"})
	cfg := alerts.Default()
	cfg.Forged = alerts.Rule{Window: time.Minute, Floor: 8, Factor: 3}
	cfg.Compromised = alerts.Rule{Window: time.Minute, Floor: 5, Factor: 3}
	cfg.ClearAfter = 5 * time.Second
	cfg.CompromisedResponse = alerts.ResponseHold
	var lg logs
	h := &hook{}
	mk := func(name string) *Watcher {
		return New(Options{Stats: st, Alerts: al, Agg: agg, Config: cfg, Interval: time.Second, Holder: name, Webhook: h,
			Logger: slog.New(slog.NewTextHandler(&lg, nil)).With("host", name), Now: c.now})
	}
	a, b := mk("a"), mk("b")
	ctx := context.Background()
	round := func() {
		t.Helper()
		for _, w := range []*Watcher{a, b} {
			if err := w.Round(ctx); err != nil {
				t.Fatal(err)
			}
		}
		c.add(time.Second)
	}
	round()
	if !a.View().Leader || b.View().Leader {
		t.Fatal("a should evaluate")
	}
	// Backscatter and a burst of alice's bounces.
	for i := 0; i < 12; i++ {
		agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
			Recipient: fmt.Sprintf("u%d@example.com", i), Client: "192.0.2.7", ReportingMTA: "mx.spam.example"})
		agg.Bounced(events.Event{Kind: events.KindBounce, Sender: "alice@example.com", RecipientDomain: "r.example", Reason: "mailboxfull"})
	}
	round()
	round()
	if n := lg.count(`msg="alert raised"`); n != 2 {
		t.Fatalf("%d raised lines:\n%s", n, lg.buf.String())
	}
	if len(h.msgs) != 2 || h.msgs[0].State != "raised" || h.msgs[0].Host != "a" {
		t.Fatalf("webhook %+v", h.msgs)
	}
	for _, w := range []*Watcher{a, b} {
		v := w.View()
		if len(v.State.Active) != 2 || v.State.Find(alerts.Key(alerts.KindForged, "example.com")) == nil {
			t.Fatalf("view %+v", v.State)
		}
		if r := w.Responses(); r == nil || !r.Hold["alice@example.com"] {
			t.Fatalf("responses %+v", r)
		}
	}
	f := a.View().State.Find(alerts.Key(alerts.KindForged, "example.com")).Figures
	if f.Count != 12 || f.Usual != 2 || f.Threshold != 8 || f.Top[0].Name != "192.0.2.0/24" || f.Reporters[0].Name != "mx.spam.example" {
		t.Fatalf("figures %+v", f)
	}
	// The metric, on the host that does not evaluate too.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	if n, err := testutil.GatherAndCount(reg, "bounce_milter_alert"); err != nil || n != 2 {
		t.Fatalf("gauge: %d %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP bounce_milter_alerts_evaluating 1 while this host evaluates the alerts (holds the lease).
# TYPE bounce_milter_alerts_evaluating gauge
bounce_milter_alerts_evaluating 0
`), "bounce_milter_alerts_evaluating"); err != nil {
		t.Fatal(err)
	}

	// A clear through b's API: applied by a at its next round.
	srv := httptest.NewServer(b.API(true))
	defer srv.Close()
	post := func(ct, body string) int {
		resp, err := http.Post(srv.URL+"/api/alerts/clear", ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("text/plain", `{"kind":"compromised-account","subject":"alice@example.com"}`); code != http.StatusUnsupportedMediaType {
		t.Fatalf("a form post: %d", code)
	}
	if code := post("application/json", `{"kind":"nonsense","subject":"x"}`); code != http.StatusBadRequest {
		t.Fatalf("a bad kind: %d", code)
	}
	if code := post("application/json", `{"kind":"compromised-account","subject":"Alice@Example.com"}`); code != http.StatusAccepted {
		t.Fatalf("clear: %d", code)
	}
	round()
	if v := b.View(); len(v.State.Active) != 1 || v.Responses != nil || v.State.Recent[0].ClearedBy != alerts.ClearedByAdmin {
		t.Fatalf("after the clear: %+v", v.State)
	}
	var ans Answer
	resp, err := http.Get(srv.URL + "/api/alerts")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || len(ans.Active) != 1 || ans.EvaluatedBy != "a" || ans.Here {
		t.Fatalf("api: %+v %v", ans, err)
	}
	resp.Body.Close()

	// a stops: after its lease runs out b evaluates, with the state as
	// stored: nothing is raised twice; the alert clears once the window
	// has passed.
	c.add(4 * time.Second)
	for i := 0; i < 80; i++ {
		if err := b.Round(ctx); err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
	}
	if !b.View().Leader {
		t.Fatal("b did not take over")
	}
	if n := lg.count(`msg="alert raised"`); n != 2 {
		t.Fatalf("raised again after the takeover:\n%s", lg.buf.String())
	}
	if n := lg.count(`msg="alert cleared"`); n != 2 || len(b.View().State.Active) != 0 {
		t.Fatalf("cleared lines %d, active %+v\n%s", n, b.View().State.Active, lg.buf.String())
	}
	if len(h.msgs) != 4 || h.msgs[3].State != "cleared" || h.msgs[3].Host != "b" {
		t.Fatalf("webhook %+v", h.msgs)
	}
}

// A store that cannot answer: the round fails, the state in force stays.
func TestStoreDown(t *testing.T) {
	w := New(Options{Stats: cache.NewMemoryStats(), Alerts: failing{}, Config: alerts.Default()})
	if err := w.Round(context.Background()); err == nil || w.View().Err == "" {
		t.Fatal("no error")
	}
	if w.Responses() != nil || w.Stats().Failures != 1 {
		t.Fatal("state")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type failing struct{ cache.AlertStore }

func (failing) AlertLease(context.Context, string, time.Duration) (bool, error) {
	return false, cache.ErrUnavailable
}

// The stored state stays within the store's bound: the oldest cleared
// alerts go first.
func TestStateBounded(t *testing.T) {
	big := strings.Repeat("x", 4000)
	st := alerts.State{}
	for i := 0; i < alerts.MaxRecent; i++ {
		st.Recent = append(st.Recent, alerts.Alert{Kind: alerts.KindForged, Subject: fmt.Sprint(i), Summary: big})
	}
	for i := 0; i < 50; i++ {
		st.Active = append(st.Active, alerts.Alert{Kind: alerts.KindSpam, Subject: fmt.Sprint(i), Summary: "s",
			Figures: alerts.Figures{Top: []alerts.Member{{Name: big}}}})
	}
	doc, err := marshalBounded(&st)
	if err != nil || len(doc) > cache.MaxAlertDoc || len(st.Active) != 50 || len(st.Recent) == 0 || len(st.Recent) == alerts.MaxRecent {
		t.Fatalf("%d bytes, %d active, %d recent, %v", len(doc), len(st.Active), len(st.Recent), err)
	}
}
