package milter

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
)

// The alerts' responses reach our users' mail: a held sender's mail is
// deferred (local submission leaves unsigned instead), a sender not to sign
// leaves unsigned; everyone else is signed; the snapshot is read per
// message, so a response lifted applies at once.
func TestAlertResponsesOutbound(t *testing.T) {
	_, eng := newEngineFor(t, baseConfig, "test-secret")
	var resp atomic.Pointer[backscatter.Responses]
	resp.Store(&backscatter.Responses{Hold: map[string]bool{"mallory@example.com": true}, NoSign: map[string]bool{"eve@example.com": true}})
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: newTestStore(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Responses: resp.Load})
	h := &harness{t: t, srv: srv, sock: serveUnix(t, srv), secret: []byte("test-secret")}
	send := func(from string, port uint16) result {
		return h.run(txn{auth: "user", port: port, from: from, rcpts: []string{"bob@remote.example"}, headers: [][2]string{{"Message-Id", "<r@example.com>"}}})
	}
	if res := send("mallory@example.com", 0); res.final == nil || res.final.SMTPCode != 451 || res.changeFrom() != "" {
		t.Fatalf("held sender: %+v", res.final)
	}
	if res := send("mallory@example.com", 1); res.final == nil || res.final.Type != gomilter.ActionAccept || res.changeFrom() != "" {
		t.Fatalf("held sender, local submission: %+v %q", res.final, res.changeFrom())
	}
	if res := send("eve@example.com", 0); res.final == nil || res.final.Type != gomilter.ActionAccept || res.changeFrom() != "" {
		t.Fatalf("sender not to sign: %+v %q", res.final, res.changeFrom())
	}
	if res := send("alice@example.com", 0); res.changeFrom() == "" {
		t.Fatal("others are signed")
	}
	resp.Store(nil)
	if res := send("mallory@example.com", 0); res.final == nil || res.final.Type != gomilter.ActionAccept || res.changeFrom() == "" {
		t.Fatalf("hold lifted: %+v %q", res.final, res.changeFrom())
	}
}
