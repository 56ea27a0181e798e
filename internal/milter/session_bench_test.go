package milter

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
)

// Ordinary inbound mail at the MX (a remote sender to one of our users, no
// bounce): most of an MX's traffic, and no modification at all. Beside
// BenchmarkMilterSign it shows what the protocol itself costs per message.
func BenchmarkMilterInbound(b *testing.B) {
	benchTxn(b, txn{from: "someone@example.org", rcpts: []string{"user@example.com"}, headers: benchHeaders, body: strings.Repeat("x", 500) + "\r\n"})
}

// The same messages from a scripted MTA instead of go-milter's client:
// pre-framed packets, one write each as Postfix writes them, replies read
// where the negotiated protocol has them. The client's cost is small and
// does not depend on go-milter, so a difference is the milter's own.
func BenchmarkMilterSignScripted(b *testing.B) {
	benchScripted(b, "ORIGINATING", "user", "<user@example.com>", "<rcpt@example.org>", 1)
}

func BenchmarkMilterInboundScripted(b *testing.B) {
	benchScripted(b, "", "", "<someone@example.org>", "<user@example.com>", 0)
}

func benchScripted(b *testing.B, daemon, auth, from, rcpt string, wantMods int) {
	h := newHarness(&testing.T{}, baseConfig)
	defer h.srv.Close()
	// per packet, as Postfix writes them: each on its own
	beforeRcpt := [][]byte{
		packet('D', "C{daemon_name}\x00", daemon, "\x00"),
		packet('C', "client.example.net\x00", "4\x9c\x40", "192.0.2.10\x00"),
		packet('D', "M{auth_authen}\x00", auth, "\x00"),
		packet('M', from, "\x00"),
		packet('D', "Ri\x004ABCDEF123\x00"),
		packet('R', rcpt, "\x00"),
	}
	var content [][]byte
	for _, hd := range benchHeaders {
		content = append(content, packet('L', hd[0], "\x00", hd[1], "\x00"))
	}
	content = append(content, packet('N'), packet('B', strings.Repeat("x", 500), "\r\n"),
		packet('D', "Ei\x004ABCDEF123\x00"), packet('E'))
	quit := packet('Q')
	buf := make([]byte, 4096)
	reply := func(c net.Conn) byte {
		if _, err := io.ReadFull(c, buf[:5]); err != nil {
			b.Fatal(err)
		}
		n, code := binary.BigEndian.Uint32(buf[:4]), buf[4]
		if _, err := io.ReadFull(c, buf[:n-1]); err != nil {
			b.Fatal(err)
		}
		return code
	}
	write := func(c net.Conn, packets ...[]byte) {
		for _, p := range packets {
			if _, err := c.Write(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	cpu0 := cpuNanos()
	for b.Loop() {
		c, err := net.Dial("unix", h.sock)
		if err != nil {
			b.Fatal(err)
		}
		write(c, optneg)
		if reply(c) != 'O' {
			b.Fatal("no OPTNEG reply")
		}
		write(c, beforeRcpt...)
		if code := reply(c); code != 'c' {
			b.Fatalf("RCPT: %c", code)
		}
		write(c, content...)
		mods := 0
		for reply(c) != 'a' {
			mods++
		}
		if mods != wantMods {
			b.Fatalf("%d modifications, want %d", mods, wantMods)
		}
		write(c, quit)
		c.Close()
	}
	// Wall time per message is mostly waiting for the other side; the CPU
	// time both sides spent is the cost.
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos is the process's user+system CPU time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
