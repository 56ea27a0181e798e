package milter

import (
	"strings"
	"testing"
)

// Ordinary inbound mail at the MX (a remote sender to one of our users, no
// bounce): most of an MX's traffic, and no modification at all. Beside
// BenchmarkMilterSign it shows what the protocol itself costs per message.
func BenchmarkMilterInbound(b *testing.B) {
	benchTxn(b, txn{from: "someone@example.org", rcpts: []string{"user@example.com"}, headers: benchHeaders, body: strings.Repeat("x", 500) + "\r\n"})
}
