package milter

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recordListener records every Write on the connections it hands out.
type recordListener struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *recordListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordWrites{Conn: c, l: l}, nil
}

type recordWrites struct {
	net.Conn
	l *recordListener
}

func (c *recordWrites) Write(b []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, append([]byte(nil), b...))
	c.l.mu.Unlock()
	return c.Conn.Write(b)
}

// Each reply goes out in one write, header and data together, and the
// modifications made at end of message go out with its response (the
// patched go-milter; upstream wrote a packet's header and data apart, and
// every modification on its own): with TCP_NODELAY a reply the MTA waits
// for is one segment, and one syscall. Each write is whole packets.
func TestOneWritePerPacket(t *testing.T) {
	h := newHarness(t, baseConfig)
	h.srv.Close()
	srv := New(h.srv.opts)
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordListener{Listener: ln}
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })
	h.srv, h.sock = srv, sock

	res := h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"},
		headers: [][2]string{{"Message-ID", " <one-write@example.com>"}}})
	if !strings.HasPrefix(strings.Trim(res.changeFrom(), "<>"), "prvs=2") {
		t.Fatalf("not signed: %+v", res.mods)
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	// OPTNEG, RCPT, EOH, then the modifications and the accept.
	if len(rl.writes) != 4 {
		t.Fatalf("%d writes, want 4", len(rl.writes))
	}
	for i, w := range rl.writes {
		var codes []byte
		for len(w) >= 5 && int(binary.BigEndian.Uint32(w))+4 <= len(w) {
			codes = append(codes, w[4])
			w = w[4+binary.BigEndian.Uint32(w):]
		}
		if len(w) != 0 || len(codes) == 0 {
			t.Errorf("write %d is not whole packets: %q left", i, w)
		}
		if i == 3 && (len(codes) < 2 || codes[len(codes)-1] != 'a' || !strings.Contains(string(codes), "e")) {
			t.Errorf("the last write carries packets %q, want the new sender (e) ... and accept (a)", codes)
		}
	}
}
