package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The webhook POSTs one JSON object per event to a URL the site chooses,
// from a bounded queue, never on the milter's path. Each request carries
//
//	X-Bounce-Milter-Timestamp: <unix seconds>
//	X-Bounce-Milter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
//
// so that the receiver can check it came from us and is fresh (the
// timestamp is inside the MAC: a captured request cannot be replayed later
// with a new time). A 2xx answer delivers the event; a 5xx, a 429, a
// timeout or a connection error is retried with exponential backoff
// (1 s doubling, at most 5 minutes between tries) until MaxAge; any other
// 4xx drops it (the receiver refuses it and will refuse it again). A full
// queue drops the newest event. Every drop is counted. X-Bounce-Milter-Type
// says what the body is: "event" (a bounce event) or "alert" (an alert
// raised or cleared, package alerts/watch).

// Signature is the value of X-Bounce-Milter-Signature for body sent at ts.
func Signature(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a request's signature and freshness (receivers
// can use it; the tests do).
func VerifySignature(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, skew time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: bad timestamp %q", tsHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > skew || d < -skew {
		return fmt.Errorf("webhook: timestamp %d is %s away", ts, d)
	}
	if !hmac.Equal([]byte(Signature(secret, ts, body)), []byte(sigHeader)) {
		return fmt.Errorf("webhook: bad signature")
	}
	return nil
}

// WebhookOptions configure a Webhook.
type WebhookOptions struct {
	URL    string
	Secret []byte
	// Queue is how many events wait at most (default 10000).
	Queue int
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// MaxAge is how long an event is retried (default 24 h).
	MaxAge time.Duration
	// MaxBackoff caps the time between tries (default 5 min); MinBackoff
	// is the first wait (default 1 s).
	MinBackoff, MaxBackoff time.Duration
	Client                 *http.Client
	Logger                 *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// WebhookStats are the webhook's counters.
type WebhookStats struct {
	Sent, Retried, Dropped, Failed uint64
}

// Webhook delivers events (and alerts: package alerts) to a URL.
type Webhook struct {
	o                              WebhookOptions
	queue                          chan payload
	stop                           chan struct{}
	done                           chan struct{}
	once                           sync.Once
	sent, retried, dropped, failed atomic.Uint64
}

// NewWebhook starts the delivery goroutine.
func NewWebhook(o WebhookOptions) *Webhook {
	if o.Queue <= 0 {
		o.Queue = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	w := &Webhook{o: o, queue: make(chan payload, o.Queue), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// payload is one POST waiting: its id (for the log), its type (the
// X-Bounce-Milter-Type header: "event" or "alert") and its JSON value.
type payload struct {
	id, typ string
	v       any
}

// Send queues an event; it never blocks.
func (w *Webhook) Send(e Event) { w.enqueue(payload{e.ID, "event", e}) }

// SendJSON queues any JSON value (an alert) of type typ, named id in the
// log; it never blocks.
func (w *Webhook) SendJSON(id, typ string, v any) { w.enqueue(payload{id, typ, v}) }

func (w *Webhook) enqueue(p payload) {
	select {
	case w.queue <- p:
	default:
		if n := w.dropped.Add(1); n == 1 || n%1000 == 0 {
			w.o.Logger.Warn("webhook: queue full; events dropped", "dropped_total", n)
		}
	}
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Sent: w.sent.Load(), Retried: w.retried.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load()}
}

// Close stops delivery (events still queued are dropped and counted).
func (w *Webhook) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *Webhook) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			for {
				select {
				case <-w.queue:
					w.dropped.Add(1)
				default:
					return
				}
			}
		case e := <-w.queue:
			w.deliver(e)
		}
	}
}

// deliver tries one payload until it is delivered, refused for good, too
// old, or the webhook stops.
func (w *Webhook) deliver(e payload) {
	body, err := json.Marshal(e.v)
	if err != nil {
		w.failed.Add(1)
		return
	}
	wait := w.o.MinBackoff
	first := w.o.Now()
	for try := 0; ; try++ {
		retry, err := w.post(body, e.typ)
		if err == nil {
			w.sent.Add(1)
			return
		}
		if !retry {
			w.failed.Add(1)
			w.o.Logger.Warn("webhook: "+e.typ+" refused; dropped", "id", e.id, "err", err)
			return
		}
		if w.o.Now().Add(wait).Sub(first) > w.o.MaxAge {
			w.failed.Add(1)
			w.o.Logger.Warn("webhook: "+e.typ+" undeliverable; dropped", "id", e.id, "tries", try+1, "err", err)
			return
		}
		w.retried.Add(1)
		if try == 0 {
			w.o.Logger.Warn("webhook: delivery failed; retrying", "id", e.id, "in", wait.String(), "err", err)
		}
		select {
		case <-w.stop:
			w.dropped.Add(1)
			return
		case <-time.After(wait):
		}
		wait *= 2
		if wait > w.o.MaxBackoff {
			wait = w.o.MaxBackoff
		}
	}
}

// post sends one request; retry says whether a failure is worth retrying.
func (w *Webhook) post(body []byte, typ string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	ts := w.o.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bounce-milter")
	req.Header.Set("X-Bounce-Milter-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Bounce-Milter-Signature", Signature(w.o.Secret, ts, body))
	req.Header.Set("X-Bounce-Milter-Type", typ)
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return true, fmt.Errorf("webhook: %s", resp.Status)
	}
	return false, fmt.Errorf("webhook: %s", resp.Status)
}
