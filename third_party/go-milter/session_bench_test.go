package milter

// Added by bounce-milter (not upstream): the per-message cost of the server
// side of the protocol, one milter connection per message as Postfix opens
// them, over a unix socket, driven by this package's Client.

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type benchMilter struct {
	NoOpMilter
	sign bool
}

func (b *benchMilter) RcptTo(string, string, Modifier) (*Response, error) { return RespContinue, nil }
func (b *benchMilter) Header(string, string, Modifier) (*Response, error) { return RespContinue, nil }
func (b *benchMilter) BodyChunk([]byte, Modifier) (*Response, error)      { return RespContinue, nil }
func (b *benchMilter) EndOfMessage(m Modifier) (*Response, error) {
	if b.sign {
		if err := m.ChangeFrom("<prvs=2123abcdef=user@example.com>", ""); err != nil {
			return nil, err
		}
	}
	return RespAccept, nil
}

// benchProtocol is what bounce-milter negotiates: no replies awaited where it
// never decides.
const benchProtocol = OptNoHelo | OptNoData | OptNoUnknown | OptNoConnReply | OptNoMailReply |
	OptNoHeaderReply | OptNoEOHReply | OptNoBodyReply

// benchServer runs a server with benchMilter on a unix socket until the
// benchmark ends.
func benchServer(b *testing.B, sign bool) string {
	dir, err := os.MkdirTemp("", "gm-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(
		WithMilter(func() Milter { return &benchMilter{sign: sign} }),
		WithProtocols(benchProtocol),
		WithActions(OptAddHeader|OptChangeHeader|OptChangeFrom),
		WithoutDefaultMacros(),
		WithMacroRequest(StageConnect, []MacroName{MacroDaemonName}),
		WithMacroRequest(StageMail, []MacroName{MacroAuthAuthen}),
		WithMacroRequest(StageRcpt, []MacroName{MacroQueueId}),
		WithMacroRequest(StageEOM, []MacroName{MacroQueueId}),
		WithReadTimeout(10*time.Minute),
		WithWriteTimeout(10*time.Second),
	)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return sock
}

func benchSessions(b *testing.B, sign bool) {
	sock := benchServer(b, sign)
	client := NewClient("unix", sock, WithActions(AllClientSupportedActionMasks))
	macros := NewMacroBag()
	macros.Set(MacroDaemonName, "ORIGINATING")
	macros.Set(MacroAuthAuthen, "user")
	macros.Set(MacroQueueId, "4ABCDEF123")
	body := strings.Repeat("x", 500) + "\r\n"
	headers := [][2]string{{"Message-Id", " <bench@example.com>"}, {"From", " user@example.com"}, {"To", " rcpt@example.org"}, {"Subject", " benchmark"}}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		s, err := client.Session(macros)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Conn("client.example.net", FamilyInet, 40000, "192.0.2.10"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Helo("client.example.net"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Mail("user@example.com", ""); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Rcpt("rcpt@example.org", ""); err != nil {
			b.Fatal(err)
		}
		if _, err := s.DataStart(); err != nil {
			b.Fatal(err)
		}
		for _, h := range headers {
			if _, err := s.HeaderField(h[0], h[1], nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			b.Fatal(err)
		}
		mods, act, err := s.BodyReadFrom(strings.NewReader(body))
		if err != nil || act.Type != ActionAccept || (len(mods) == 1) != sign {
			b.Fatalf("end of message: %v %v %v", mods, act, err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	// Wall time per message is mostly waiting (client and server hand the
	// turn back and forth); the CPU time both spent is the cost.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkServerSessionChangeFrom(b *testing.B) { benchSessions(b, true) }
func BenchmarkServerSessionNoChange(b *testing.B)   { benchSessions(b, false) }

// The same sessions from a scripted MTA: pre-framed packets written one per
// write as Postfix writes them, replies read where the negotiated protocol
// has them. The client's own cost is small and does not depend on this
// package, so what changes is the server's.
func benchScripted(b *testing.B, sign bool) {
	sock := benchServer(b, sign)
	pk := func(code byte, data ...string) []byte {
		d := strings.Join(data, "")
		p := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
		return append(append(p, code), d...)
	}
	optneg := pk('O', "\x00\x00\x00\x06", "\x00\x00\x01\xff", "\x00\x1f\xff\xff")
	beforeRcpt := [][]byte{
		pk('D', "C{daemon_name}\x00ORIGINATING\x00"),
		pk('C', "client.example.net\x00", "4\x9c\x40", "192.0.2.10\x00"),
		pk('D', "M{auth_authen}\x00user\x00"),
		pk('M', "<user@example.com>\x00"),
		pk('D', "Ri\x004ABCDEF123\x00"),
		pk('R', "<rcpt@example.org>\x00"),
	}
	content := [][]byte{
		pk('L', "Message-Id\x00", " <bench@example.com>\x00"),
		pk('L', "From\x00", " user@example.com\x00"),
		pk('L', "To\x00", " rcpt@example.org\x00"),
		pk('L', "Subject\x00", " benchmark\x00"),
		pk('N'),
		pk('B', strings.Repeat("x", 500), "\r\n"),
		pk('D', "Ei\x004ABCDEF123\x00"),
		pk('E'),
	}
	quit := pk('Q')
	buf := make([]byte, 4096)
	// reply reads one reply packet and returns its code.
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
	cpu0 := cpuTime()
	for b.Loop() {
		c, err := net.Dial("unix", sock)
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
		for {
			code := reply(c)
			if code == 'a' {
				break
			}
			mods++
		}
		if (mods == 1) != sign {
			b.Fatalf("%d modifications", mods)
		}
		write(c, quit)
		c.Close()
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkServerScriptedChangeFrom(b *testing.B) { benchScripted(b, true) }
func BenchmarkServerScriptedNoChange(b *testing.B)   { benchScripted(b, false) }
