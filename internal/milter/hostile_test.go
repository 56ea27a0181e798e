package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

// Malformed milter packets, written straight to the socket. Each one used
// to end the whole process (a panic in go-milter's session goroutine), and
// Postfix then let all mail through unchecked (milter_default_action) until
// a restart. A bad packet must close its own connection and nothing else.

// packet frames one milter packet: uint32 length (code + data), code, data.
func packet(code byte, data ...string) []byte {
	d := strings.Join(data, "")
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
	return append(append(b, code), d...)
}

// optneg is what Postfix opens a milter connection with: protocol version
// 6, every action and every protocol option offered.
var optneg = packet('O', "\x00\x00\x00\x06", "\x00\x00\x01\xff", "\x00\x1f\xff\xff")

// rawExchange opens a connection to the milter, negotiates first if asked
// to, writes stream, half-closes, and waits for the milter to close its end
// (reading its replies meanwhile). It fails when the milter keeps the
// connection open longer than wait.
func rawExchange(sock string, negotiate bool, stream []byte, wait time.Duration) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if negotiate {
		if _, err := c.Write(optneg); err != nil {
			return err
		}
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		if hdr[4] != 'O' {
			return errors.New("negotiation: no OPTNEG reply")
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:4]))-1); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		done <- err
	}()
	// The milter may close before it has read all of stream: a write
	// error is no failure here, only a connection left open is.
	_, _ = c.Write(stream)
	_ = c.(*net.UnixConn).CloseWrite()
	err = <-done
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("milter kept the connection open")
	}
	return nil
}

// panicLog collects the panics go-milter recovered and logged in a session
// (LogWarning is set once, before any server runs: tests swapping it while
// sessions of earlier tests wind down would race). Other warnings are
// dropped.
var panicLog struct {
	sync.Mutex
	msgs []string
}

func init() {
	gomilter.LogWarning = func(format string, v ...any) {
		if msg := fmt.Sprintf(format, v...); strings.Contains(msg, "panic") {
			panicLog.Lock()
			panicLog.msgs = append(panicLog.msgs, msg)
			panicLog.Unlock()
		}
	}
}

// recoveredPanics returns the panics logged so far.
func recoveredPanics() []string {
	panicLog.Lock()
	defer panicLog.Unlock()
	return append([]string(nil), panicLog.msgs...)
}

// crashers are the byte streams that killed the daemon, and their kin.
var crashers = []struct {
	name      string
	negotiate bool
	stream    []byte
}{
	{"zero-length packet before negotiation", false, []byte{0, 0, 0, 0}},
	{"zero-length packet after negotiation", true, []byte{0, 0, 0, 0}},
	{"CONNECT without NUL", true, packet('C', "host.example")},
	{"CONNECT without family", true, packet('C', "host.example\x00")},
	{"CONNECT inet without port", true, packet('C', "host\x004")},
	{"CONNECT inet6 without address", true, packet('C', "host\x006\x00\x19")},
	{"CONNECT empty", true, packet('C')},
	{"HELO without NUL", true, packet('H', "helo.example")},
	{"MAIL without NUL", true, packet('M', "<a@example.com>")},
	{"MAIL with args without NUL", true, packet('M', "<a@example.com>\x00SIZE=1")},
	{"RCPT without NUL", true, packet('R', "<b@example.com>")},
	{"MAIL and RCPT without NUL", true, append(packet('M', "<a@example.com>\x00"), packet('R', "<b@example.com>")...)},
	{"HEADER without value", true, packet('L', "Subject")},
	{"HEADER empty", true, packet('L')},
	{"MACRO empty", true, packet('D')},
	{"MACRO odd", true, packet('D', "C{daemon_name}")},
	{"MACRO unknown stage", true, packet('D', "Zx\x00y\x00")},
	{"UNKNOWN empty", true, packet('U')},
	{"OPTNEG twice", true, optneg},
	{"OPTNEG short", false, packet('O', "\x00\x00\x00\x06")},
	{"not OPTNEG first", false, packet('C', "host\x00U")},
	{"unknown command", true, packet('z', "x")},
	{"length beyond the data", true, []byte{0, 0, 0, 9, 'M', 'x'}},
	{"4 GiB announced", true, []byte{0xff, 0xff, 0xff, 0xff, 'B'}},
	{"100 MB announced, nothing sent", true, []byte{0x06, 0x00, 0x00, 0x00, 'B'}},
	{"body before MAIL", true, append(packet('B', "x"), packet('E')...)},
	{"EOM without anything", true, packet('E')},
	{"ABORT QUIT_NC QUIT", true, append(append(packet('A'), packet('K')...), packet('Q')...)},
	{"DATA EOH after QUIT_NC", true, append(append(packet('K'), packet('T')...), packet('N')...)},
}

// TestMalformedPacketsCloseOnlyTheirConnection sends each crasher on its
// own connection while a real session (go-milter's client, as Postfix
// would drive it) is open on another, then finishes that session and runs
// a new one: both must sign as usual.
func TestMalformedPacketsCloseOnlyTheirConnection(t *testing.T) {
	h := newHarness(t, baseConfig)

	macros := gomilter.NewMacroBag()
	client := gomilter.NewClient("unix", h.sock, gomilter.WithActions(gomilter.AllClientSupportedActionMasks))
	s, err := client.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	macros.Set(gomilter.MacroAuthAuthen, "alice")
	if _, err := s.Conn("client.example.net", gomilter.FamilyInet, 40000, "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Helo("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mail("alice@example.com", ""); err != nil {
		t.Fatal(err)
	}

	for _, tc := range crashers {
		if err := rawExchange(h.sock, tc.negotiate, tc.stream, 5*time.Second); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	// The session that was open all along finishes normally.
	if _, err := s.Rcpt("bob@example.org", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DataStart(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HeaderField("Message-Id", " <survivor@example.com>", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res := (result{mods: mods, final: act}); !strings.HasPrefix(strings.Trim(res.changeFrom(), "<>"), "prvs=2") {
		t.Fatalf("session open during the attacks: final %v mods %v", act, mods)
	}
	// And a new one.
	res := h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}})
	if !strings.HasPrefix(strings.Trim(res.changeFrom(), "<>"), "prvs=2") {
		t.Fatalf("new session after the attacks: %+v", res.mods)
	}
	// go-milter recovers a panic in a session; none must have happened.
	if p := recoveredPanics(); len(p) > 0 {
		t.Fatalf("panics: %q", p)
	}
}

// validStream is a whole session as Postfix sends it for a signed message
// (after negotiation), ending with QUIT.
var validStream = bytes.Join([][]byte{
	packet('D', "C{daemon_name}\x00ORIGINATING\x00"),
	packet('C', "client.example.net\x00", "4\x9c\x40", "192.0.2.10\x00"),
	packet('D', "M{auth_authen}\x00alice\x00"),
	packet('M', "<alice@example.com>\x00", "SIZE=100\x00"),
	packet('D', "Ri\x004ABC123\x00"),
	packet('R', "<bob@example.org>\x00"),
	packet('L', "Message-Id\x00", " <fuzz@example.com>\x00"),
	packet('L', "Subject\x00", " hi\x00"),
	packet('N'),
	packet('B', "hello\r\n"),
	packet('D', "Ei\x004ABC123\x00"),
	packet('E'),
	packet('A'),
	packet('Q'),
}, nil)

// FuzzMilterPackets writes arbitrary byte streams to the milter's socket,
// negotiated first or not, and requires that the milter closes that
// connection, that nothing panicked (go-milter recovers and logs a panic),
// and that a valid session afterwards still gets its sender signed.
func FuzzMilterPackets(f *testing.F) {
	for _, c := range crashers {
		f.Add(c.negotiate, c.stream)
	}
	f.Add(true, validStream)
	f.Add(true, validStream[:len(validStream)/2])
	f.Add(false, append(bytes.Clone(optneg), validStream...))
	f.Add(true, append(packet('K'), validStream...))

	h := fuzzHarness(f)
	f.Fuzz(func(t *testing.T, negotiate bool, stream []byte) {
		if err := rawExchange(h.sock, negotiate, stream, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if p := recoveredPanics(); len(p) > 0 {
			t.Fatalf("panic in a milter session: %q", p)
		}
		hh := *h
		hh.t = t
		res := hh.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}})
		if !strings.HasPrefix(strings.Trim(res.changeFrom(), "<>"), "prvs=2") {
			t.Fatalf("session after the input: %+v", res.mods)
		}
	})
}

// fuzzHarness is newHarness for a fuzz target: one server for all inputs.
func fuzzHarness(f *testing.F) *harness {
	cfg, err := config.Parse([]byte(baseConfig), "test.toml")
	if err != nil {
		f.Fatal(err)
	}
	ks, err := backscatter.ParseKeys(strings.NewReader("2 test-secret\n"), "keys")
	if err != nil {
		f.Fatal(err)
	}
	eng := backscatter.New(cfg.Engine(map[string]time.Time{"example.com": testNow.AddDate(0, -1, 0)}), backscatter.NewKeyRing(ks))
	eng.Now = func() time.Time { return testNow }
	st := newTestStore()
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: st,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	dir := f.TempDir()
	sock := filepath.Join(dir, "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Close() })
	return &harness{srv: srv, sock: sock, store: st, secret: []byte("test-secret")}
}
