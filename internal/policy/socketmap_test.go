package policy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

func testEngine(t *testing.T) *backscatter.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte("[domains.\"example.com\"]\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := backscatter.ParseKeys(strings.NewReader("1 sm-secret\n"), "k")
	return backscatter.New(cfg.Engine(nil), backscatter.NewKeyRing(ks))
}

func startSocketmap(t *testing.T) (*Socketmap, string) {
	t.Helper()
	sm := NewSocketmap(SocketmapOptions{Engine: testEngine(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sm.Serve(ln)
	t.Cleanup(func() { sm.Shutdown(context.Background()) })
	return sm, ln.Addr().String()
}

func TestSocketmapOverSocket(t *testing.T) {
	_, addr := startSocketmap(t)
	valid, _ := backscatter.SignPRVS("user@example.com", []byte("sm-secret"), 1, time.Now(), 7)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// Pipelined requests on one connection are answered in order.
	reqs := []struct{ req, want string }{
		{"unbatv " + valid, "OK user@example.com"},
		{"unbatv " + strings.ToUpper(valid[:5]) + valid[5:], "OK user@example.com"},
		{"unbatv " + strings.Replace(valid, "=user@", "=root@", 1), "NOTFOUND "},
		{"unbatv user@example.com", "NOTFOUND "},
		{"unbatv " + strings.Replace(valid, "example.com", "example.org", 1), "NOTFOUND "},
		{"unbatv @example.com", "NOTFOUND "},
		{"nokey", "PERM request must be \"name key\""},
	}
	var sb strings.Builder
	for _, r := range reqs {
		sb.WriteString(netstring(r.req))
	}
	if _, err := io.WriteString(c, sb.String()); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		got, err := readNetstring(br, maxNetstring)
		if err != nil {
			t.Fatal(err)
		}
		if got != r.want {
			t.Errorf("%q: got %q, want %q", r.req, got, r.want)
		}
	}
	// A malformed request closes that connection, and only that one; the
	// answer to a good request pipelined before it still goes out.
	io.WriteString(c, netstring("unbatv "+valid)+"1x:abc,")
	if got, err := readNetstring(br, maxNetstring); got != "OK user@example.com" {
		t.Fatalf("good request before a bad one: %q %v", got, err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatal("connection not closed after a malformed netstring")
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, netstring("x "+valid))
	if got, _ := readNetstring(bufio.NewReader(c2), maxNetstring); got != "OK user@example.com" {
		t.Fatalf("after a bad client: %q", got)
	}
}

func TestReadNetstringBad(t *testing.T) {
	for _, in := range []string{"", ":", "3:ab", "3:abc;", "x:abc,", "99999999:", "-1:,", "00:,", "01:a,"} {
		if _, err := readNetstring(bufio.NewReader(strings.NewReader(in)), maxNetstring); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func netstring(s string) string {
	var b strings.Builder
	w := bufio.NewWriter(&b)
	writeNetstring(w, s)
	w.Flush()
	return b.String()
}

func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"5:hello,", "0:,", "3:abc", "12:unbatv a@b.c,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := readNetstring(bufio.NewReader(strings.NewReader(in)), 1000)
		if err != nil {
			return
		}
		if netstring(got) != in[:len(netstring(got))] {
			t.Fatalf("%q parsed as %q", in, got)
		}
	})
}

// The connection cap: over it a new connection is closed at once, and a
// connection closed frees its slot.
func TestSocketmapConnectionCap(t *testing.T) {
	sm := NewSocketmap(SocketmapOptions{Engine: testEngine(t), MaxConnections: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sm.Serve(ln)
	t.Cleanup(func() { sm.Shutdown(context.Background()) })
	lookup := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "10:unbatv x@y,"); err != nil {
			return err
		}
		_, err := bufio.NewReader(c).ReadString(',')
		return err
	}
	first, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := lookup(first); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := lookup(second); err == nil {
		t.Fatal("a connection over the cap was served")
	}
	first.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		err = lookup(c)
		c.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after the first connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSocketmapPipeliningWithoutReadingIsCutOff(t *testing.T) {
	_, addr := startSocketmap(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Repeat(netstring("unbatv user@example.com"), 10*MaxPipelined)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	answers := 0
	for {
		got, err := readNetstring(br, maxNetstring)
		if err != nil {
			if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %d answers: %v, want the connection closed", answers, err)
			}
			break
		}
		if got != "NOTFOUND " {
			t.Fatalf("answer %q", got)
		}
		answers++
	}
	if answers > MaxPipelined+1 || answers < MaxPipelined {
		t.Errorf("%d answers before the connection was closed, want %d", answers, MaxPipelined)
	}
}
