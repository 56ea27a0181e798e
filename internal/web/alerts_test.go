package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// A watcher whose state holds two alerts, as the pages get it.
func alertsWatcher(t *testing.T) *watch.Watcher {
	t.Helper()
	now := time.Now().UTC()
	st := cache.NewMemoryStats()
	day := now.Truncate(24 * time.Hour)
	var hist []cache.StatsBucket
	for d := 1; d <= 8; d++ {
		hist = append(hist, cache.StatsBucket{Width: cache.StatsDaily, Start: day.Add(-time.Duration(d) * 24 * time.Hour),
			Counts: map[string]int64{"d|inbound|reject|no-evidence|example.com": 1}})
	}
	if err := st.AddStats(context.Background(), cache.StatsWrite{Buckets: hist, Min: map[string]int64{"since": now.Add(-9 * 24 * time.Hour).Unix()}}); err != nil {
		t.Fatal(err)
	}
	agg := stats.New(stats.Options{Store: st})
	agg.SetDomains([]string{"example.com"})
	for i := 0; i < 5; i++ {
		agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
			Recipient: "alice@example.com", Client: "192.0.2.8", ReportingMTA: "mx.remote.example"})
	}
	cfg := alerts.Default()
	cfg.Forged = alerts.Rule{Window: time.Minute, Floor: 3, Factor: 2}
	cfg.CompromisedResponse = alerts.ResponseHold
	w := watch.New(watch.Options{Stats: st, Alerts: cache.NewMemoryAlerts(), Agg: agg, Config: cfg, Interval: time.Second, Holder: "mx1"})
	if err := w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.View().State.Active) != 1 {
		t.Fatalf("state %+v", w.View().State)
	}
	return w
}

func TestAlertsPages(t *testing.T) {
	w := alertsWatcher(t)
	f := newFixture(t, func(o *Options) { o.Alerts = w })
	code, body, _ := f.get(t, "/alerts")
	if code != 200 || !strings.Contains(body, `data-kind="forged-domain" data-subject="example.com"`) ||
		!strings.Contains(body, `href="/floods?window=1h"`) || !strings.Contains(body, "bounce-milter alerts clear forged-domain example.com") ||
		!strings.Contains(body, "192.0.2.0/24") || !strings.Contains(body, `id="alert-count">1<`) {
		t.Fatalf("alerts page %d:\n%s", code, body)
	}
	if !strings.Contains(body, "<td>forged-domain</td><td>true</td>") {
		t.Fatalf("thresholds table:\n%s", body)
	}
	code, body, _ = f.get(t, "/")
	if code != 200 || !strings.Contains(body, `id="alerts-banner" class="banner" data-count="1"`) || !strings.Contains(body, "forged-domain: example.com") {
		t.Fatalf("overview banner %d:\n%s", code, body)
	}
	code, body, _ = f.get(t, "/api/alerts")
	var a watch.Answer
	if code != 200 || json.Unmarshal([]byte(body), &a) != nil || len(a.Active) != 1 || a.Active[0].Figures.Count != 5 || !a.Here {
		t.Fatalf("api %d %s", code, body)
	}
	// The clear: JSON only, through the guard.
	req := httptest.NewRequest("POST", "http://localhost:9433/api/alerts/clear", strings.NewReader(`{"kind":"forged-domain","subject":"example.com"}`))
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("clear without JSON: %d", rec.Code)
	}
	req = httptest.NewRequest("POST", "http://localhost:9433/api/alerts/clear", strings.NewReader(`{"kind":"forged-domain","subject":"example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("clear: %d %s", rec.Code, rec.Body)
	}
	if err := w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body, _ = f.get(t, "/alerts")
	if code != 200 || !strings.Contains(body, "no alert active") || !strings.Contains(body, `<td>admin</td>`) || strings.Contains(body, "alert-count") {
		t.Fatalf("after the clear:\n%s", body)
	}
	if _, body, _ = f.get(t, "/"); strings.Contains(body, "alerts-banner") {
		t.Fatal("banner without alerts")
	}
	// Without alerts running.
	g := newFixture(t, nil)
	if code, body, _ := g.get(t, "/alerts"); code != 200 || !strings.Contains(body, "do not run") {
		t.Fatalf("%d %s", code, body)
	}
	if code, _, _ := g.get(t, "/api/alerts"); code != 404 {
		t.Fatalf("api without alerts: %d", code)
	}
}

func TestAlertsMasked(t *testing.T) {
	w := alertsWatcher(t)
	v := w.View()
	v.State.Active = append(v.State.Active, alerts.Alert{Kind: alerts.KindCompromised, Subject: "mallory@example.com", Summary: "mallory@example.com: 99 genuine bounces",
		Evidence: []alerts.Link{{Title: "x", Href: "/bounces?sender=mallory%40example.com"}}})
	v.State.Holds = []alerts.Hold{{Sender: "mallory@example.com"}}
	f := newFixture(t, func(o *Options) { o.Alerts = fixedView{v}; o.Mask = config.MaskAll })
	code, body, _ := f.get(t, "/api/alerts")
	if code != 200 || strings.Contains(body, "mallory@") || !strings.Contains(body, "m***@example.com") {
		t.Fatalf("not masked: %d %s", code, body)
	}
	if code, body, _ = f.get(t, "/alerts"); code != 200 || strings.Contains(body, "mallory@") || !strings.Contains(body, "m***@example.com") {
		t.Fatalf("page not masked: %d %s", code, body)
	}
}

type fixedView struct{ v *watch.View }

func (f fixedView) View() *watch.View { return f.v }
func (f fixedView) API(bool) http.Handler {
	return http.NotFoundHandler()
}
