package connlimit

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Over the cap a connection is closed at once; a closed connection frees
// its slot (once, however often it is closed).
func TestCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ln := New(inner, 2, slog.New(slog.NewTextHandler(logs, nil)), "cap reached").(*Listener)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	held := []net.Conn{<-accepted, <-accepted}
	over := dial()
	_ = over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("over the cap: read %d %v, want EOF", n, err)
	}
	if ln.Open() != 2 || !strings.Contains(logs.String(), "cap reached") || !strings.Contains(logs.String(), "limit=2") {
		t.Fatalf("open %d, log %q", ln.Open(), logs)
	}
	held[0].Close()
	held[0].Close()
	if ln.Open() != 1 {
		t.Fatalf("open %d after one close (twice), want 1", ln.Open())
	}
	dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("a connection under the cap was not accepted")
	}
}

// The log interval: the first refusal logs at once, the next ones within
// the interval are counted into the next line.
func TestLogInterval(t *testing.T) {
	logs := &syncBuffer{}
	l := New(nil, 1, slog.New(slog.NewTextHandler(logs, nil)), "cap reached").(*Listener)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.Now = func() time.Time { return now }
	l.RefusedOne()
	for range 4 {
		now = now.Add(time.Second)
		l.RefusedOne()
	}
	now = now.Add(Interval)
	l.RefusedOne()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "refused=1") || !strings.Contains(lines[1], "refused=5") {
		t.Fatalf("log lines:\n%s", logs)
	}
	if New(nil, 0, nil, "") != nil || New(nil, -1, nil, "") != nil {
		t.Fatal("no cap must leave the listener as it is")
	}
}
