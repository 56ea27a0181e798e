package milter

import (
	"strings"
	"testing"
)

// Per-message cost of the milter alone over a unix socket, driven by
// go-milter's client the way Postfix drives it (no MTA), one milter
// connection per message. The analysis here is the test stub; the real
// one has its own benchmarks in internal/backscatter.

func benchTxn(b *testing.B, tx txn) {
	h := newHarness(&testing.T{}, baseConfig)
	h.t = &testing.T{}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := h.run(tx)
		if res.final == nil {
			b.Fatal("no final action")
		}
	}
	b.StopTimer()
	h.srv.Close()
}

var benchHeaders = [][2]string{{"Message-Id", " <bench@example.com>"}, {"From", " user@example.com"}, {"To", " rcpt@example.org"}, {"Subject", " benchmark"}}

func BenchmarkMilterSign(b *testing.B) {
	benchTxn(b, txn{auth: "user", from: "user@example.com", rcpts: []string{"rcpt@example.org"}, headers: benchHeaders, body: strings.Repeat("x", 500) + "\r\n"})
}

func BenchmarkMilterValidTagBounce(b *testing.B) {
	h := &harness{secret: []byte("test-secret"), t: &testing.T{}}
	tag := h.sign("user@example.com", testNow)
	benchTxn(b, txn{from: "", rcpts: []string{tag}, headers: benchHeaders, body: strings.Repeat("x", 500) + "\r\n"})
}

func BenchmarkMilterBackscatter(b *testing.B) {
	body := "This is the mail system at host mx.example.org.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n<bob@example.org>: unknown user\r\n\r\nMessage-Id: <nope@example.com>\r\nFrom: user@example.com\r\nSubject: hi\r\n"
	benchTxn(b, txn{from: "", rcpts: []string{"user@example.com"}, headers: benchHeaders, body: body})
}
