package milter

// Added by bounce-milter (not upstream): the per-message cost of the server
// side of the protocol, one milter connection per message as Postfix opens
// them, over a unix socket, driven by this package's Client.

import (
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

func benchSessions(b *testing.B, sign bool) {
	dir, err := os.MkdirTemp("", "gm-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
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
	defer srv.Close()

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
