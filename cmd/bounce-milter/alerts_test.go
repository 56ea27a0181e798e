package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// bounce-milter alerts lists what the daemon's API answers (exit 1 while
// an alert is active) and clears an alert through it, with the token.
func TestAlertsCommand(t *testing.T) {
	now := time.Now().UTC()
	st := cache.NewMemoryStats()
	var hist []cache.StatsBucket
	for d := 1; d <= 8; d++ {
		hist = append(hist, cache.StatsBucket{Width: cache.StatsDaily, Start: now.Truncate(24 * time.Hour).Add(-time.Duration(d) * 24 * time.Hour),
			Sets: map[string]map[string]int64{stats.SetSenderBounces: {"mallory@example.com": 1}}})
	}
	if err := st.AddStats(context.Background(), cache.StatsWrite{Buckets: hist, Min: map[string]int64{"since": now.Add(-9 * 24 * time.Hour).Unix()}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddStats(context.Background(), cache.StatsWrite{Buckets: []cache.StatsBucket{{Width: cache.StatsFine, Start: now.Truncate(cache.StatsFine),
		Sets: map[string]map[string]int64{stats.SetSenderBounces: {"mallory@example.com": 80}}}}}); err != nil {
		t.Fatal(err)
	}
	cfg := alerts.Default()
	cfg.CompromisedResponse = alerts.ResponseHold
	w := watch.New(watch.Options{Stats: st, Alerts: cache.NewMemoryAlerts(), Config: cfg, Interval: time.Second})
	if err := w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.API(true))
	defer srv.Close()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("a-token-of-some-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"alerts", "--url", srv.URL, "--token-file", tok}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := cli()
	if code != 1 || !strings.Contains(out, "ACTIVE compromised-account mallory@example.com") || !strings.Contains(out, "HELD mallory@example.com") {
		t.Fatalf("list: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli("--json"); code != 1 || !strings.Contains(out, `"kind": "compromised-account"`) {
		t.Fatalf("json: %d %s", code, out)
	}
	if code, _, errs := cli("clear", "nonsense", "x"); code != 2 || !strings.Contains(errs, "no kind") {
		t.Fatalf("bad kind: %d %s", code, errs)
	}
	if code, _, _ := cli("clear", "compromised-account"); code != 2 {
		t.Fatal("clear without a subject")
	}
	code, out, errs = cli("clear", "compromised-account", "Mallory@example.com")
	if code != 0 || !strings.Contains(out, "compromised-account mallory@example.com: cleared") {
		t.Fatalf("clear: %d %q %q", code, out, errs)
	}
	if err := w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli("--recent")
	if code != 0 || !strings.Contains(out, "no alert active") || strings.Contains(out, "HELD") || !strings.Contains(out, "by admin") {
		t.Fatalf("after the clear: %d %q", code, out)
	}
}
