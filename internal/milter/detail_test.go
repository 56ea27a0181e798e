package milter

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// detailObs records what a DetailObserver is told.
type detailObs struct {
	nopObserver
	mu        sync.Mutex
	decisions []stats.Decision
	floods    []stats.FloodChange
}

func (o *detailObs) Decided(d stats.Decision) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.decisions = append(o.decisions, d)
}

func (o *detailObs) FloodChanged(f stats.FloodChange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.floods = append(o.floods, f)
}

// The statistics get each decision with its recipient (as flood control
// counts it), client and the bounce's reporting MTA; signing is an
// outbound decision.
func TestDetailObserver(t *testing.T) {
	_, eng := newEngineFor(t, baseConfig, "test-secret")
	obs := &detailObs{}
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: newTestStore(), Observer: obs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := &harness{t: t, srv: srv, sock: serveUnix(t, srv), secret: []byte("test-secret")}
	h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}, headers: [][2]string{{"Message-ID", " <d1@example.com>"}}})
	bounce := "Reporting-MTA: dns; mx.remote.example\r\n\r\nThis is the mail system at host mx.remote.example.\r\n\r\n<bob@example.org>: host said: 550 5.1.1 unknown user\r\n\r\n" +
		"--- Original message headers ---\r\nMessage-ID: <never-sent@example.com>\r\nFrom: user@example.com\r\nTo: bob@example.org\r\n"
	h.run(txn{from: "", rcpts: []string{"User+x@example.com"}, headers: [][2]string{{"Subject", " Undelivered Mail Returned to Sender"}}, body: bounce})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.decisions) != 2 {
		t.Fatalf("decisions %+v", obs.decisions)
	}
	out, in := obs.decisions[0], obs.decisions[1]
	if out.Direction != stats.Outbound || out.Verdict != stats.Signed || out.Reason != "signed" || out.Domain != "example.com" {
		t.Errorf("outbound %+v", out)
	}
	if in.Direction != stats.Inbound || in.Verdict != "reject" || in.Reason != "no-evidence" || in.Domain != "example.com" ||
		in.Recipient != "user@example.com" || in.Client != "192.0.2.10" || in.ReportingMTA == "" {
		t.Errorf("inbound %+v", in)
	}
}
