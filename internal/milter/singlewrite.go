package milter

import (
	"bufio"
	"encoding/binary"
	"net"
	"sync"
)

// singleWriteListener hands out connections that send each milter packet
// in one write and read ahead. go-milter writes a packet as two writes (the
// 5-byte header, then the data) and reads it with two reads. With
// TCP_NODELAY each write is a segment of its own, and a reply the MTA waits
// for can be split in two: one write per packet means one segment and one
// syscall. And Postfix streams the packets the milter does not answer
// (headers, body chunks) back to back: one read takes in many of them. On
// the sign path these syscalls were most of the milter's CPU time.
type singleWriteListener struct{ net.Listener }

func (l singleWriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// Packets larger than the buffer (body chunks) are read by bufio
	// straight into go-milter's own slice. Not pooled: a server Close
	// may close the connection while its session goroutine still reads.
	return &singleWriteConn{Conn: c, br: bufio.NewReaderSize(c, 4<<10)}, nil
}

// singleWriteConn holds back a packet header that announces data until the
// data is written, then writes both at once. Anything else passes through.
type singleWriteConn struct {
	net.Conn
	br      *bufio.Reader // reads are served from here
	mu      sync.Mutex
	pending []byte
	buf     []byte
}

func (c *singleWriteConn) Read(b []byte) (int, error) { return c.br.Read(b) }

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
