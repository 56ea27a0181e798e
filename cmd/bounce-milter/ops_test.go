package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

type pingStore struct {
	cache.Store
	mu       sync.Mutex
	err      error
	writeErr error
}

func (p *pingStore) BreakerState() string   { return cache.BreakerClosed }
func (p *pingStore) DroppedRecords() uint64 { return 0 }
func (p *pingStore) WriteError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeErr
}

func (p *pingStore) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pingStore) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthz runs the metrics server against a live tcp milter listener
// and a unix socketmap listener, then takes each part down.
func TestHealthz(t *testing.T) {
	milterLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer milterLn.Close()
	sock := filepath.Join(t.TempDir(), "sm.sock")
	smLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer smLn.Close()
	cfg := config.Default(t.TempDir())
	cfg.Listen.Milter = config.MustEndpoint("inet:" + milterLn.Addr().String())
	cfg.Listen.Socketmap = config.MustEndpoint("unix:" + sock)
	cfg.Listen.Metrics = "127.0.0.1:0"
	cfg.Domains["example.com"] = config.Domain{}
	store := &pingStore{}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	m := newMetrics(cfg)
	x, err := startMetrics(cfg, m, healthCheck(cfg, store), nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- x.run() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := x.shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	}()
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(x.name, "metrics http://"), "/metrics")

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("all up: %d %q, want 200 ok", code, body)
	}

	m.Decision("inbound", "reject", "expired", "example.com")
	if code, body := get(t, base+"/metrics"); code != 200 ||
		!strings.Contains(body, `bounce_milter_decisions_total{direction="inbound",domain="example.com",reason="expired",verdict="reject"} 1`) {
		t.Fatalf("/metrics: %d, decision counter missing:\n%s", code, body)
	}

	store.setErr(errors.New("redis: connection refused"))
	code, body := get(t, base+"/healthz")
	if code != 503 || !strings.Contains(body, "store: redis: connection refused") || strings.Contains(body, "listener") {
		t.Fatalf("store down: %d %q, want 503 naming only the store", code, body)
	}
	store.setErr(nil)

	store.mu.Lock()
	store.writeErr = errors.New("write state.db: no space left on device")
	store.mu.Unlock()
	code, body = get(t, base+"/healthz")
	if code != 503 || !strings.Contains(body, "store: writes failing: write state.db: no space left on device") {
		t.Fatalf("store writes failing: %d %q, want 503 naming them", code, body)
	}
	store.mu.Lock()
	store.writeErr = nil
	store.mu.Unlock()

	smLn.Close()
	code, body = get(t, base+"/healthz")
	if code != 503 || !strings.Contains(body, "socketmap listener "+sock) || strings.Contains(body, "milter") {
		t.Fatalf("socketmap closed: %d %q, want 503 naming only the socketmap", code, body)
	}
	milterLn.Close()
	code, body = get(t, base+"/healthz")
	if code != 503 || !strings.Contains(body, "milter listener "+milterLn.Addr().String()) {
		t.Fatalf("milter closed: %d %q, want 503 naming the milter", code, body)
	}
	if !strings.Contains(logs.String(), "health check failed") {
		t.Errorf("failed health checks not logged:\n%s", logs.String())
	}
}

func TestHealthNoStore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default(t.TempDir())
	cfg.Listen.Milter = config.MustEndpoint("inet:" + ln.Addr().String())
	health := healthCheck(cfg, nil)
	if err := health(context.Background()); err != nil {
		t.Fatalf("listener up, no store: %v", err)
	}
	ln.Close()
	if err := health(context.Background()); err == nil {
		t.Fatal("closed listener reported healthy")
	}
}

func TestMetricsAddress(t *testing.T) {
	cfg := config.Default(t.TempDir())
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Listen.Metrics = "no-port"
	if _, err := startMetrics(cfg, newMetrics(cfg), healthCheck(cfg, nil), nil, nil, log); err == nil || !strings.Contains(err.Error(), "listen.metrics") {
		t.Fatalf("bad address: %v", err)
	}
	for host, loop := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "192.0.2.1": false, "": false} {
		if isLoopbackHost(host) != loop {
			t.Errorf("isLoopbackHost(%q) = %v", host, !loop)
		}
	}
	cfg.Listen.Metrics = "0.0.0.0:0"
	x, err := startMetrics(cfg, newMetrics(cfg), healthCheck(cfg, nil), nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	go x.run()
	_ = x.shutdown(context.Background())
	if !strings.Contains(logs.String(), "non-loopback") {
		t.Errorf("no warning for a non-loopback metrics address:\n%s", logs.String())
	}
}

// TestServicesMetrics: serve starts the metrics server like any other
// service when listen.metrics is set, the milter and policy service report
// to the metrics, and a reload (a new reloadable) changes the domains the
// metrics label.
func TestServicesMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.KeyFile = filepath.Join(dir, "keys")
	if err := os.WriteFile(cfg.KeyFile, []byte("1 s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Domains["example.com"] = config.Domain{}
	cfg.Listen.Milter = config.Endpoint{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, _, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rt, err := buildReloadable(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := startServices(rt, store, log)
	if err != nil || len(svc.list) != 0 {
		t.Fatalf("nothing listens: %d services, %v", len(svc.list), err)
	}
	cfg.Listen.Metrics = "127.0.0.1:0"
	svc, err = startServices(rt, store, log)
	if err != nil || len(svc.list) != 3 || !strings.HasPrefix(svc.list[0].name, "metrics http://127.0.0.1:") || !svc.list[1].background || !svc.list[2].background {
		t.Fatalf("listen.metrics set: %+v, %v", svc, err)
	}
	x := svc.list[0]
	go x.run()
	defer x.shutdown(context.Background())

	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(x.name, "metrics http://"), "/metrics")
	store.metrics.Signed("example.org", 1)
	_, body := get(t, base+"/metrics")
	if !strings.Contains(body, `bounce_milter_signed_total{domain="other",key="1"} 1`) {
		t.Fatalf("before the reload example.org is not ours:\n%s", body)
	}
	next := *cfg
	next.Domains = map[string]config.Domain{"example.org": {}}
	rt2, err := buildReloadable(&next, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc.apply(rt2)
	store.metrics.Signed("example.org", 1)
	_, body = get(t, base+"/metrics")
	if !strings.Contains(body, `bounce_milter_signed_total{domain="example.org",key="1"} 1`) {
		t.Fatalf("after the reload example.org is ours:\n%s", body)
	}
}
