package milter

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// closedAtOnce reports whether the server closed c without a word.
func closedAtOnce(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err == io.EOF
}

// The connection cap through the real milter server: over the cap a new
// connection is closed at once and logged (one line per interval, with a
// count); when a held connection closes, its slot is free again and a full
// session signs as usual.
func TestConnectionLimit(t *testing.T) {
	logs := &syncBuffer{}
	h := newHarness(t, baseConfig)
	h.srv.Close()
	srv := New(Options{Settings: h.srv.opts.Settings, Store: h.store,
		MaxConnections: 2, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var held []net.Conn
	for range 2 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// negotiated, then idle: a connection the milter keeps
		if err := writeAndReadOptneg(c); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for i := range 3 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		if !closedAtOnce(t, c) {
			t.Fatalf("connection %d over the cap was not closed", i+1)
		}
		c.Close()
	}
	if got := strings.Count(logs.String(), "milter connection limit reached"); got != 1 {
		t.Fatalf("%d log lines for 3 refused connections within the interval, want 1:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "limit=2") {
		t.Fatalf("log line without the limit: %s", logs)
	}

	held[0].Close()
	// The slot comes back when the milter notices the close: retry a while.
	// A whole session signs as usual.
	deadline := time.Now().Add(5 * time.Second)
	for {
		from, err := signOnce(sock)
		if err == nil {
			if !strings.HasPrefix(strings.Trim(from, "<>"), "prvs=2") {
				t.Fatalf("session under the cap: sender %q", from)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a held connection closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signOnce runs one signing session with go-milter's client and returns
// the new sender, or the first error.
func signOnce(sock string) (string, error) {
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroAuthAuthen, "alice")
	client := gomilter.NewClient("unix", sock, gomilter.WithActions(gomilter.AllClientSupportedActionMasks))
	s, err := client.Session(macros)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := s.Conn("client.example.net", gomilter.FamilyInet, 40000, "192.0.2.10"); err != nil {
		return "", err
	}
	if _, err := s.Helo("client.example.net"); err != nil {
		return "", err
	}
	if _, err := s.Mail("alice@example.com", ""); err != nil {
		return "", err
	}
	if _, err := s.Rcpt("bob@example.org", ""); err != nil {
		return "", err
	}
	if _, err := s.DataStart(); err != nil {
		return "", err
	}
	if _, err := s.HeaderField("Message-Id", " <limit@example.com>", nil); err != nil {
		return "", err
	}
	if _, err := s.HeaderEnd(); err != nil {
		return "", err
	}
	mods, _, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
	if err != nil {
		return "", err
	}
	return result{mods: mods}.changeFrom(), nil
}

func writeAndReadOptneg(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(optneg); err != nil {
		return err
	}
	var hdr [5]byte
	_, err := io.ReadFull(c, hdr[:])
	return err
}

func TestLimitListenerNoCap(t *testing.T) {
	if newLimitListener(nil, -1, nil) != nil {
		t.Fatal("a negative limit must leave the listener as it is")
	}
}
