package milter

// Added by bounce-milter (not upstream): tests and fuzz targets for the
// patches listed in README.md.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d--j/go-milter/internal/wire"
)

// memConn is a net.Conn that reads from r and discards what is written.
type memConn struct{ r io.Reader }

func (c memConn) Read(b []byte) (int, error)     { return c.r.Read(b) }
func (memConn) Write(b []byte) (int, error)      { return len(b), nil }
func (memConn) Close() error                     { return nil }
func (memConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "mem", Net: "unix"} }
func (memConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "mem", Net: "unix"} }
func (memConn) SetDeadline(time.Time) error      { return nil }
func (memConn) SetReadDeadline(time.Time) error  { return nil }
func (memConn) SetWriteDeadline(time.Time) error { return nil }
func frame(code byte, data ...string) []byte {
	d := strings.Join(data, "")
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
	return append(append(b, code), d...)
}

// optNegAll is the MTA's negotiation: version 6, every action and protocol
// option offered.
var optNegAll = frame('O', "\x00\x00\x00\x06", "\x00\x00\x01\xff", "\x00\x1f\xff\xff")

// fuzzMilter makes every modification it may at end of message, so that a
// fuzzed session also writes.
type fuzzMilter struct{ NoOpMilter }

func (fuzzMilter) EndOfMessage(m Modifier) (*Response, error) {
	_ = m.ChangeFrom("<a\r\nb@example.com>", "")
	_ = m.AddHeader("X-Test", "a\r\n b")
	_ = m.AddRecipient("c@example.com", "")
	return RespAccept, nil
}

// runSession runs one whole server session over stream, in memory.
func runSession(stream []byte) {
	s := NewServer(WithMilter(func() Milter { return fuzzMilter{} }),
		WithActions(OptAddHeader|OptChangeFrom|OptAddRcpt|OptChangeHeader),
		WithMacroRequest(StageConnect, []MacroName{MacroDaemonName}))
	var session serverSession
	session.init(s, memConn{r: bytes.NewReader(stream)}, s.options.maxVersion, s.options.actions, s.options.protocol)
	session.HandleMilterCommands()
}

var sessionSeeds = [][]byte{
	{0, 0, 0, 0},
	append(bytes.Clone(optNegAll), 0, 0, 0, 0),
	append(bytes.Clone(optNegAll), frame('C', "host.example")...),
	append(bytes.Clone(optNegAll), frame('C', "host.example\x00")...),
	append(bytes.Clone(optNegAll), frame('C', "host\x004")...),
	append(bytes.Clone(optNegAll), frame('M', "<a@example.com>")...),
	append(bytes.Clone(optNegAll), frame('R', "<b@example.com>")...),
	bytes.Join([][]byte{optNegAll,
		frame('D', "C{daemon_name}\x00ORIGINATING\x00"),
		frame('C', "client.example\x00", "4\x9c\x40", "192.0.2.1\x00"),
		frame('H', "helo.example\x00"),
		frame('D', "M{auth_authen}\x00alice\x00"),
		frame('M', "<alice@example.com>\x00", "SIZE=100\x00"),
		frame('R', "<bob@example.org>\x00"),
		frame('T'),
		frame('L', "Subject\x00", "hi\x00"),
		frame('N'),
		frame('B', "hello\r\n"),
		frame('E'),
		frame('A'),
		frame('K'),
		frame('C', "c6\x00", "6\x00\x19", "IPv6:[2001:db8::1]\x00"),
		frame('U', "VRFY x\x00"),
		frame('Q'),
	}, nil),
}

// FuzzSession feeds arbitrary byte streams to a whole server session
// (negotiation, every command, the replies and modifications it writes). It
// must end with an error, never a panic.
func FuzzSession(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add(s)
	}
	old := LogWarning
	LogWarning = func(string, ...any) {}
	defer func() { LogWarning = old }()
	f.Fuzz(func(t *testing.T, stream []byte) {
		runSession(stream)
	})
}

func TestMalformedSessionsEndWithoutPanic(t *testing.T) {
	old := LogWarning
	LogWarning = func(string, ...any) {}
	defer func() { LogWarning = old }()
	for _, s := range sessionSeeds {
		runSession(s)
		// and every prefix of it: packets cut short anywhere
		for i := range s {
			runSession(s[:i])
		}
	}
}

type panicMilter struct {
	NoOpMilter
	cleanups *atomic.Int32
}

func (p panicMilter) Connect(host, _ string, _ uint16, _ string, _ Modifier) (*Response, error) {
	if host == "panic.example" {
		panic("boom")
	}
	return RespContinue, nil
}

func (p panicMilter) Cleanup(Modifier) { p.cleanups.Add(1) }

// A panic in one session closes that connection, runs the Milter's Cleanup,
// is logged, and leaves the server serving.
func TestPanicInSessionClosesOnlyItsConnection(t *testing.T) {
	var logged []string
	var mu sync.Mutex
	old := LogWarning
	LogWarning = func(format string, v ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, format)
	}
	defer func() { LogWarning = old }()

	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var cleanups atomic.Int32
	srv := NewServer(WithMilter(func() Milter { return panicMilter{cleanups: &cleanups} }))
	go srv.Serve(ln)
	defer srv.Close()

	client := NewClient("unix", sock, WithReadTimeout(5*time.Second))
	good, err := client.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Conn("good.example", FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}

	bad, err := client.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Conn("panic.example", FamilyInet, 25, "192.0.2.2"); err == nil {
		t.Fatal("the panicking session answered")
	}
	bad.Close()

	if _, err := good.Helo("helo.example"); err != nil {
		t.Fatalf("the other session broke: %v", err)
	}
	if _, err := good.Mail("a@example.com", ""); err != nil {
		t.Fatalf("the other session broke: %v", err)
	}
	third, err := client.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Conn("third.example", FamilyInet, 25, "192.0.2.3"); err != nil {
		t.Fatalf("new session after the panic: %v", err)
	}
	third.Close()

	deadline := time.Now().Add(5 * time.Second)
	for cleanups.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := cleanups.Load(); n < 2 {
		t.Errorf("Cleanup ran %d times, want the panicking session's and the third's", n)
	}
	mu.Lock()
	defer mu.Unlock()
	var found bool
	for _, l := range logged {
		found = found || strings.Contains(l, "panic")
	}
	if !found {
		t.Errorf("panic not logged: %q", logged)
	}
	// Shutdown does not wait for the session that panicked.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	good.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestReadPacketLimits(t *testing.T) {
	read := func(b []byte) (*wire.Message, error) { return wire.ReadPacket(memConn{r: bytes.NewReader(b)}, 0) }
	if _, err := read([]byte{0, 0, 0, 0}); err == nil {
		t.Error("empty packet read")
	}
	over := binary.BigEndian.AppendUint32(nil, 1<<20+1)
	if _, err := read(append(over, 'B')); err == nil {
		t.Error("packet over 1 MiB read")
	}
	// The largest packet the protocol has (a 1 MiB body chunk) is read whole.
	body := bytes.Repeat([]byte("0123456789abcdef"), (1<<20-1)/16+1)[:1<<20-1]
	msg, err := read(append(binary.BigEndian.AppendUint32(nil, 1<<20), append([]byte{'B'}, body...)...))
	if err != nil || msg.Code != 'B' || !bytes.Equal(msg.Data, body) {
		t.Fatalf("1 MiB packet: %v", err)
	}
	// Cut short: an error, not a hang or a short packet.
	if _, err := read(append(binary.BigEndian.AppendUint32(nil, 200000), 'B', 'x')); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated packet: %v", err)
	}
}

// A packet announced long but not sent costs what was sent, not what was
// announced.
func TestReadPacketAllocatesWhatArrives(t *testing.T) {
	stream := append(binary.BigEndian.AppendUint32(nil, 1<<20), bytes.Repeat([]byte{'B'}, 1000)...)
	allocated := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = wire.ReadPacket(memConn{r: bytes.NewReader(stream)}, 0)
		}
	}).AllocedBytesPerOp()
	if allocated > 128<<10 {
		t.Fatalf("%d bytes allocated for a packet cut off after 1000 bytes", allocated)
	}
}

func TestNextDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		cur     time.Time
		timeout time.Duration
		want    time.Time
		set     bool
	}{
		{"none set, no timeout", time.Time{}, 0, time.Time{}, false},
		{"set, no timeout: cleared", now.Add(time.Second), 0, time.Time{}, true},
		{"none set", time.Time{}, time.Minute, now.Add(time.Minute), true},
		{"fresh: kept", now.Add(50 * time.Second), time.Minute, now.Add(50 * time.Second), false},
		{"half left: kept", now.Add(30 * time.Second), time.Minute, now.Add(30 * time.Second), false},
		{"less than half left: moved", now.Add(29 * time.Second), time.Minute, now.Add(time.Minute), true},
		{"expired: moved", now.Add(-time.Second), time.Minute, now.Add(time.Minute), true},
		{"further than the timeout: moved", now.Add(10 * time.Minute), time.Minute, now.Add(time.Minute), true},
	} {
		got, set := nextDeadline(tc.cur, tc.timeout, now)
		if !got.Equal(tc.want) || set != tc.set {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, set, tc.want, tc.set)
		}
	}
}

// The read timeout still ends an idle connection, after between half the
// timeout and the whole.
func TestReadTimeoutClosesIdleConnection(t *testing.T) {
	old := LogWarning
	LogWarning = func(string, ...any) {}
	defer func() { LogWarning = old }()
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 400 * time.Millisecond
	srv := NewServer(WithMilter(func() Milter { return NoOpMilter{} }), WithReadTimeout(timeout))
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(optNegAll); err != nil {
		t.Fatal(err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(5 * time.Second))
	_, err = io.Copy(io.Discard, c)
	if took := time.Since(start); err != nil || took < timeout/2-50*time.Millisecond || took > timeout+time.Second {
		t.Fatalf("idle connection closed after %v (err %v), want about %v", took, err, timeout)
	}
}

type countingConn struct {
	memConn
	writes int
}

func (c *countingConn) Write(b []byte) (int, error) { c.writes++; return len(b), nil }

// One write per packet, header and data together.
func TestWritePacketWritesOnce(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("y"), 70000)} {
		c := &countingConn{}
		if err := wire.WritePacket(c, &wire.Message{Code: 'b', Data: data}, 0); err != nil {
			t.Fatal(err)
		}
		if c.writes != 1 {
			t.Errorf("%d bytes of data: %d writes", len(data), c.writes)
		}
	}
}

// withState hands out one copy per state, with the state it was asked for
// and what the session set on the modifier before.
func TestWithStateCopies(t *testing.T) {
	base := &modifier{state: modifierStateReadOnly, actions: OptAddHeader, version: 6,
		writePacket: func(*wire.Message) error { return nil }}
	base.milterId = 7
	rw := base.withState(modifierStateReadWrite)
	if rw != base.withState(modifierStateReadWrite) || base.withState(modifierStateReadOnly) != base {
		t.Fatal("copies not kept")
	}
	if rw.state != modifierStateReadWrite || rw.MilterId() != 7 || base.state != modifierStateReadOnly {
		t.Fatalf("states: base %d rw %d id %d", base.state, rw.state, rw.MilterId())
	}
	if err := rw.AddHeader("X-A", "b"); err != nil {
		t.Fatalf("read-write modifier: %v", err)
	}
	if err := base.withState(modifierStateProgressOnly).AddHeader("X-A", "b"); err == nil {
		t.Fatal("progress-only modifier added a header")
	}
	if err := base.AddHeader("X-A", "b"); err == nil {
		t.Fatal("read-only modifier added a header")
	}
}

// recordingConn reads from r and keeps each write.
type recordingConn struct {
	memConn
	writes [][]byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

// The modifications made at end of message go out with its response, in
// one write, in order.
func TestModificationsShareTheResponsesWrite(t *testing.T) {
	s := NewServer(WithMilter(func() Milter { return fuzzMilter{} }),
		WithActions(OptAddHeader|OptChangeFrom|OptAddRcpt|OptChangeHeader))
	stream := bytes.Join([][]byte{optNegAll,
		frame('M', "<alice@example.com>\x00"),
		frame('R', "<bob@example.org>\x00"),
		frame('N'),
		frame('E'),
		frame('Q'),
	}, nil)
	c := &recordingConn{memConn: memConn{r: bytes.NewReader(stream)}}
	var session serverSession
	session.init(s, c, s.options.maxVersion, s.options.actions, s.options.protocol)
	session.HandleMilterCommands()
	// negotiation, continue to MAIL, RCPT and EOH, then the end of message
	if len(c.writes) != 5 {
		t.Fatalf("%d writes, want 5 (the last with every modification and the response)", len(c.writes))
	}
	var codes []byte
	last := c.writes[4]
	for len(last) >= 5 {
		n := binary.BigEndian.Uint32(last)
		codes = append(codes, last[4])
		last = last[4+n:]
	}
	// fuzzMilter changes the sender (e), adds a header (h) and a
	// recipient (+), then accepts (a)
	if string(codes) != "eh+a" {
		t.Fatalf("the last write carries packets %q, want \"eh+a\"", codes)
	}
}
