package milter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink shared by the milter's session goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const loggedSecret = "Zq7-do-not-log-this-secret-4711"

// newLoggedHarness is newHarness with the secret above and the milter's
// log going to the returned buffer, in the given format.
func newLoggedHarness(t *testing.T, format string) (*harness, *syncBuffer) {
	t.Helper()
	_, eng := newEngineFor(t, baseConfig, loggedSecret)
	st := newTestStore()
	buf := &syncBuffer{}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler = slog.NewTextHandler(buf, opts)
	if format == "json" {
		h = slog.NewJSONHandler(buf, opts)
	}
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: st, Logger: slog.New(h)})
	return &harness{t: t, srv: srv, sock: serveUnix(t, srv), store: st, secret: []byte(loggedSecret)}, buf
}

// exercise sends mail down every path that logs: signing, valid, forged
// and expired tags, untagged bounces with and without evidence, and a
// store that fails (dropped records, skipped checks).
func exercise(h *harness) {
	bounce := "Your message could not be delivered.\r\n\r\nMessage-ID: <orig-1@example.com>\r\n"
	h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}, headers: [][2]string{{"Message-ID", " <orig-1@example.com>"}}})
	h.run(txn{auth: "alice", from: "alice@tagmode.example", rcpts: []string{"bob@example.org"}})
	tag := h.sign("alice@example.com", testNow)
	h.run(txn{from: "", rcpts: []string{tag}, body: bounce})
	h.run(txn{from: "", rcpts: []string{strings.Replace(tag, "=alice@", "=mallory@", 1)}, body: bounce})
	h.run(txn{from: "", rcpts: []string{h.sign("alice@example.com", testNow.AddDate(0, 0, -20))}, body: bounce})
	h.run(txn{from: "", rcpts: []string{"alice@example.com"}, body: "no original\r\n"})
	h.run(txn{from: "", rcpts: []string{"alice@example.com", "postmaster@example.com"}, body: bounce})
	h.store.fail(context.DeadlineExceeded)
	h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"carol@example.org"}})
	h.run(txn{from: "", rcpts: []string{tag, "alice@example.com"}, body: bounce})
}

// TestSecretsNeverLogged: whatever path a message takes, no form of the
// key's secret reaches the log, in either format.
func TestSecretsNeverLogged(t *testing.T) {
	forms := []string{
		loggedSecret,
		hex.EncodeToString([]byte(loggedSecret)),
		base64.StdEncoding.EncodeToString([]byte(loggedSecret)),
		base64.RawURLEncoding.EncodeToString([]byte(loggedSecret)),
		"do-not-log", // any part of it
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			h, logs := newLoggedHarness(t, format)
			exercise(h)
			out := logs.String()
			if strings.Count(out, "decision") < 8 || !strings.Contains(out, "sent record dropped") || !strings.Contains(out, "store") {
				t.Fatalf("the log does not show the paths exercised:\n%s", out)
			}
			for _, f := range forms {
				if strings.Contains(strings.ToLower(out), strings.ToLower(f)) {
					t.Errorf("the log contains the key secret (%q):\n%s", f, out)
				}
			}
		})
	}
}

// TestDecisionLogJSON: with the JSON handler every decision is one line
// of valid JSON carrying the fields an operator searches by.
func TestDecisionLogJSON(t *testing.T) {
	h, logs := newLoggedHarness(t, "json")
	exercise(h)
	var inbound, outbound int
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		if rec["msg"] != "decision" {
			continue
		}
		want := []string{"queue_id", "client", "sender", "verdict", "reason"}
		switch rec["direction"] {
		case "inbound":
			inbound++
			want = append(want, "rcpt", "result")
		case "outbound":
			outbound++
			want = append(want, "rcpts")
		default:
			t.Errorf("decision without a direction: %s", sc.Text())
		}
		for _, k := range want {
			if _, ok := rec[k]; !ok {
				t.Errorf("decision line lacks %q: %s", k, sc.Text())
			}
		}
		if rec["client"] != "192.0.2.10" {
			t.Errorf("client = %v, want 192.0.2.10: %s", rec["client"], sc.Text())
		}
	}
	if inbound < 6 || outbound < 2 {
		t.Fatalf("%d inbound and %d outbound decision lines, want at least 6 and 2:\n%s", inbound, outbound, logs.String())
	}
}
