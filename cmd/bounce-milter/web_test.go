package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/config"
)

func webConfig(t *testing.T, web string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.KeyFile = filepath.Join(dir, "keys")
	if err := os.WriteFile(cfg.KeyFile, []byte("1 s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Domains["example.com"] = config.Domain{}
	cfg.Listen.Milter = config.Endpoint{}
	cfg.Listen.Web = web
	return cfg
}

func startWebFor(t *testing.T, cfg *config.Config) (string, *services, error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, _, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := buildReloadable(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := startServices(rt, store, log)
	if err != nil {
		store.Close()
		return "", nil, err
	}
	for _, x := range svc.list {
		go x.run()
	}
	t.Cleanup(func() {
		for _, x := range svc.list {
			_ = x.shutdown(context.Background())
		}
		store.Close()
	})
	for _, x := range svc.list {
		if u, ok := strings.CutPrefix(x.name, "web "); ok {
			return strings.TrimSuffix(u, "/"), svc, nil
		}
	}
	t.Fatalf("no web service in %+v", svc.list)
	return "", nil, nil
}

// Listening on anything but loopback needs a login: without one the
// configuration is refused; with a token, a request without it is.
func TestWebNonLoopbackNeedsToken(t *testing.T) {
	cfg := webConfig(t, "0.0.0.0:0")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("validate: %v", err)
	}
	if _, _, err := startWebFor(t, cfg); err == nil {
		t.Fatal("the pages started on 0.0.0.0 without a login")
	}
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("a-long-web-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Web.TokenFile = tok
	if _, _, err := startWebFor(t, cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file others can read: %v", err)
	}
	if err := os.Chmod(tok, 0o600); err != nil {
		t.Fatal(err)
	}
	base, _, err := startWebFor(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	base = strings.Replace(base, "0.0.0.0", "127.0.0.1", 1)
	for _, p := range []string{"/", "/floods", "/bounces", "/keys", "/api/overview", "/api/keys", "/api/events"} {
		if code, _ := get(t, base+p); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d", p, code)
		}
		req, _ := http.NewRequest("GET", base+p, nil)
		req.Header.Set("Authorization", "Bearer a-long-web-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s with the token: %d", p, resp.StatusCode)
		}
	}
}

// On loopback the pages need no login and show what the services count;
// a reload changes the domains they show.
func TestWebLoopback(t *testing.T) {
	cfg := webConfig(t, "127.0.0.1:0")
	base, svc, err := startWebFor(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "example.com") {
		t.Fatalf("overview: %d %s", code, body)
	}
	code, body := get(t, base+"/api/overview")
	if code != 200 || !strings.Contains(body, `"name": "example.com"`) || !strings.Contains(body, `"backend": "embedded"`) {
		t.Fatalf("%d %s", code, body)
	}
	next := *cfg
	next.Domains = map[string]config.Domain{"example.org": {}}
	rt2, err := buildReloadable(&next, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc.apply(rt2)
	_, body = get(t, base+"/api/overview")
	if !strings.Contains(body, `"name": "example.org"`) || strings.Contains(body, `"name": "example.com"`) {
		t.Fatalf("after a reload: %s", body)
	}
}
