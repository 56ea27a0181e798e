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

// check shows, for a refusal of our mail, our sending host and the lists
// named: what the alerts count.
func TestCheckShowsRefusals(t *testing.T) {
	dir := t.TempDir()
	msg := "From: MAILER-DAEMON@mx-out.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx-out.example.com\r\n\r\nFinal-Recipient: rfc822; a@b1.example\r\nAction: failed\r\nStatus: 5.7.1\r\n" +
		"Diagnostic-Code: smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.26] blocked using zen.spamhaus.org\r\n\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nMessage-ID: <x-1@example.com>\r\n\r\n--B--\r\n"
	p := filepath.Join(dir, "bl.eml")
	if err := os.WriteFile(p, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--json", p}, &out, &errb); code != 0 {
		t.Fatalf("%d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"refusals":[{"recipient":"a@b1.example","sending_host":"192.0.2.26","blocklists":["zen.spamhaus.org"]}]`) {
		t.Fatalf("%s", out.String())
	}
}
