package milter

import (
	"encoding/binary"
	"net"
	"sync"
)

// singleWriteListener hands out connections that send each milter packet
// in one write. go-milter writes a packet as two: the 5-byte header
// (length and command) and then the data. With TCP_NODELAY on, each write
// is a segment of its own, and a reply the MTA waits for can be split in
// two; one write per packet means one segment and one syscall.
type singleWriteListener struct{ net.Listener }

func (l singleWriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &singleWriteConn{Conn: c}, nil
}

// singleWriteConn holds back a packet header that announces data until the
// data is written, then writes both at once. Anything else passes through.
type singleWriteConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
	buf     []byte
}

const milterHeaderLen = 5 // uint32 length (command byte + data), command byte

func (c *singleWriteConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		if len(b) == milterHeaderLen && binary.BigEndian.Uint32(b[:4]) > 1 {
			c.pending = append(c.buf[:0], b...)
			return len(b), nil
		}
		return c.Conn.Write(b)
	}
	out := append(c.pending, b...)
	c.pending = nil
	n, err := c.Conn.Write(out)
	c.buf = out[:0]
	n -= milterHeaderLen
	if n < 0 {
		n = 0
	}
	return n, err
}
