package milter

import (
	"bytes"
	"net"
	"testing"
)

// recordConn records each Write call.
type recordConn struct {
	net.Conn
	writes [][]byte
}

func (r *recordConn) Write(b []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), b...))
	return len(b), nil
}

func TestSingleWriteCoalesces(t *testing.T) {
	rc := &recordConn{}
	c := &singleWriteConn{Conn: rc}
	// A packet with data: header then data, as go-milter writes it.
	hdr := []byte{0, 0, 0, 4, 'h'}
	if n, err := c.Write(hdr); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	if len(rc.writes) != 0 {
		t.Fatal("header written before its data")
	}
	if n, err := c.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	// A packet without data (length 1: the command byte only) goes at once.
	if _, err := c.Write([]byte{0, 0, 0, 1, 'a'}); err != nil {
		t.Fatal(err)
	}
	// Other writes pass through.
	if _, err := c.Write([]byte("xy")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("\x00\x00\x00\x04habc"), {0, 0, 0, 1, 'a'}, []byte("xy")}
	if len(rc.writes) != len(want) {
		t.Fatalf("writes %q", rc.writes)
	}
	for i := range want {
		if !bytes.Equal(rc.writes[i], want[i]) {
			t.Fatalf("write %d = %q, want %q", i, rc.writes[i], want[i])
		}
	}
}
