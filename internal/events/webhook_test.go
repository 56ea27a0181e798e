package events

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The receiver gets each event once, signed; a 500 is retried, a 400
// drops the event.
func TestWebhook(t *testing.T) {
	secret := []byte("hook-secret")
	var mu sync.Mutex
	var got []Event
	attempts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := VerifySignature(secret, r.Header.Get("X-Bounce-Milter-Timestamp"), r.Header.Get("X-Bounce-Milter-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[e.ID]++
		switch {
		case e.ID == "flaky" && attempts[e.ID] < 3:
			w.WriteHeader(http.StatusInternalServerError)
		case e.ID == "refused":
			w.WriteHeader(http.StatusBadRequest)
		default:
			got = append(got, e)
		}
	}))
	defer srv.Close()
	w := NewWebhook(WebhookOptions{URL: srv.URL, Secret: secret, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	defer w.Close()
	w.Send(Event{ID: "one", Kind: KindBounce, Recipient: "x@remote.example", Reason: "userunknown", Hard: true})
	w.Send(Event{ID: "flaky", Kind: KindBounce})
	w.Send(Event{ID: "refused", Kind: KindBounce})
	w.Send(Event{ID: "two", Kind: KindDelay})
	waitFor(t, "delivery", func() bool { s := w.Stats(); return s.Sent == 3 && s.Failed == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0].ID != "one" || got[0].Reason != "userunknown" || !got[0].Hard {
		t.Fatalf("received %+v", got)
	}
	if attempts["flaky"] != 3 || attempts["refused"] != 1 || w.Stats().Retried != 2 {
		t.Fatalf("attempts %v stats %+v", attempts, w.Stats())
	}
}

func TestWebhookQueueBoundedAndSignature(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	w := NewWebhook(WebhookOptions{URL: srv.URL, Queue: 2, Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	defer w.Close()
	defer close(block)
	start := time.Now()
	for i := 0; i < 100; i++ {
		w.Send(Event{ID: "e"})
	}
	if time.Since(start) > time.Second {
		t.Fatal("Send blocked")
	}
	if s := w.Stats(); s.Dropped < 97 {
		t.Fatalf("stats %+v: a full queue must drop", s)
	}
	if err := VerifySignature([]byte("k"), "100", Signature([]byte("k"), 100, []byte("b")), []byte("b"), time.Unix(100, 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	if VerifySignature([]byte("k"), "100", Signature([]byte("k"), 100, []byte("b")), []byte("c"), time.Unix(100, 0), time.Minute) == nil {
		t.Fatal("tampered body verified")
	}
	if VerifySignature([]byte("k"), "100", Signature([]byte("k"), 100, []byte("b")), []byte("b"), time.Unix(1000, 0), time.Minute) == nil {
		t.Fatal("stale timestamp verified")
	}
}

// The signature is the documented one (docs/events.md: HMAC-SHA256 of
// "timestamp.body" under the key), not only whatever VerifySignature
// accepts: the value was computed apart, with Python's hmac module.
func TestSignatureKnownAnswer(t *testing.T) {
	const want = "sha256=2655e03f10a8fd7235d79954c38e9505a91bcb47ec23da4621901a18136d9f74"
	if got := Signature([]byte("k"), 100, []byte("b")); got != want {
		t.Errorf("Signature(k, 100, b) = %s, want %s", got, want)
	}
}
