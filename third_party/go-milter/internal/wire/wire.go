// Package wire includes constants and functions for the raw libmilter protocol
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

//go:generate go tool stringer -type=Code,ActionCode,ModifyActCode -output=wire_string.go

type Code byte

// Message represents a command sent from milter client
type Message struct {
	Code Code
	Data []byte
}

// MacroCode returns the Code this CodeMacro message is about.
// If the message is not a CodeMacro message, it returns the Code itself.
func (m *Message) MacroCode() Code {
	if m.Code == CodeMacro && len(m.Data) > 0 {
		return Code(m.Data[0])
	}
	return m.Code
}

type ActionCode byte

const (
	ActAccept    ActionCode = 'a' // SMFIR_ACCEPT
	ActContinue  ActionCode = 'c' // SMFIR_CONTINUE
	ActDiscard   ActionCode = 'd' // SMFIR_DISCARD
	ActReject    ActionCode = 'r' // SMFIR_REJECT
	ActTempFail  ActionCode = 't' // SMFIR_TEMPFAIL
	ActReplyCode ActionCode = 'y' // SMFIR_REPLYCODE
	ActSkip      ActionCode = 's' // SMFIR_SKIP [v6]
	ActProgress  ActionCode = 'p' // SMFIR_PROGRESS [v6]
)

type ModifyActCode byte

const (
	ActAddRcpt      ModifyActCode = '+' // SMFIR_ADDRCPT
	ActDelRcpt      ModifyActCode = '-' // SMFIR_DELRCPT
	ActReplBody     ModifyActCode = 'b' // SMFIR_ACCEPT
	ActAddHeader    ModifyActCode = 'h' // SMFIR_ADDHEADER
	ActChangeHeader ModifyActCode = 'm' // SMFIR_CHGHEADER
	ActInsertHeader ModifyActCode = 'i' // SMFIR_INSHEADER
	ActQuarantine   ModifyActCode = 'q' // SMFIR_QUARANTINE
	ActChangeFrom   ModifyActCode = 'e' // SMFIR_CHGFROM [v6]
	ActAddRcptPar   ModifyActCode = '2' // SMFIR_ADDRCPT_PAR [v6]
)

const (
	CodeOptNeg      Code = 'O' // SMFIC_OPTNEG
	CodeMacro       Code = 'D' // SMFIC_MACRO
	CodeConn        Code = 'C' // SMFIC_CONNECT
	CodeQuit        Code = 'Q' // SMFIC_QUIT
	CodeHelo        Code = 'H' // SMFIC_HELO
	CodeMail        Code = 'M' // SMFIC_MAIL
	CodeRcpt        Code = 'R' // SMFIC_RCPT
	CodeHeader      Code = 'L' // SMFIC_HEADER
	CodeEOH         Code = 'N' // SMFIC_EOH
	CodeBody        Code = 'B' // SMFIC_BODY
	CodeEOB         Code = 'E' // SMFIC_BODYEOB
	CodeAbort       Code = 'A' // SMFIC_ABORT
	CodeData        Code = 'T' // SMFIC_DATA
	CodeQuitNewConn Code = 'K' // SMFIC_QUIT_NC [v6]
	CodeUnknown     Code = 'U' // SMFIC_UNKNOWN [v6]
)

// We reject reading/writing messages larger than 1 MiB outright. No packet the
// protocol defines is larger: body chunks are at most 64 KiB (1 MiB when
// SMFIP_MDS_1M was negotiated), Postfix sends a header in one packet, at most
// header_size_limit (default 100 KiB). (bounce-milter patch: was 512 MB, which
// let anyone who reaches the socket make the milter allocate that much.)
const maxPacketSize = 1 << 20

// MaxPacketSize is the largest packet read or written. (bounce-milter patch)
const MaxPacketSize = maxPacketSize

// readChunk bounds what ReadPacket allocates ahead of the data that has
// arrived: a packet longer than this is read in steps, its buffer growing
// with what was actually received. (bounce-milter patch)
const readChunk = 64 << 10

func ReadPacket(conn net.Conn, timeout time.Duration) (*Message, error) {
	if timeout != 0 {
		_ = conn.SetReadDeadline(time.Now().Add(timeout))
		defer func(conn net.Conn) {
			_ = conn.SetReadDeadline(time.Time{})
		}(conn)
	}
	msg, err := ReadPacketFrom(conn)
	if err != nil {
		return nil, err
	}
	return &msg, nil
}

// ReadPacketFrom reads one packet from r. (bounce-milter patch: split from
// ReadPacket, so that the server reads through a buffer, sets deadlines
// itself, and keeps the Message off the heap)
func ReadPacketFrom(r io.Reader) (Message, error) {
	// read packet length (bounce-milter patch: without binary.Read's type
	// switch and reflection fallback)
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return Message{}, err
	}
	length := binary.BigEndian.Uint32(header[:])

	if length > maxPacketSize {
		return Message{}, fmt.Errorf("milter: reject to read %d bytes in one message (limit %d)", length, maxPacketSize)
	}
	if length == 0 {
		// every packet has at least its command byte
		return Message{}, errors.New("milter: empty packet")
	}

	// read packet data, in steps when it is long
	data := make([]byte, min(length, readChunk))
	if _, err := io.ReadFull(r, data); err != nil {
		return Message{}, err
	}
	for uint32(len(data)) < length {
		have := len(data)
		data = append(data, make([]byte, min(length-uint32(have), uint32(have)))...)
		if _, err := io.ReadFull(r, data[have:]); err != nil {
			return Message{}, err
		}
	}

	// prepare response data
	message := Message{
		Code: Code(data[0]),
		Data: data[1:],
	}

	return message, nil
}

func WritePacket(conn net.Conn, msg *Message, timeout time.Duration) error {
	if msg == nil {
		return errors.New("msg nil pointer")
	}
	if timeout != 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
		defer func(conn net.Conn) {
			_ = conn.SetWriteDeadline(time.Time{})
		}(conn)
	}

	length := len(msg.Data) + 1
	if length > maxPacketSize {
		return fmt.Errorf("milter: cannot write %d bytes in one message", length)
	}

	// one write per packet (bounce-milter patch: was the 5-byte header and
	// the data in two writes, two syscalls and, with TCP_NODELAY, two
	// segments for a reply the MTA waits for)
	_, err := conn.Write(AppendPacket(make([]byte, 0, 5+len(msg.Data)), msg))
	return err
}

// AppendPacket appends msg as it goes on the wire (length, code, data) to
// dst. The caller checks the length. (bounce-milter patch)
func AppendPacket(dst []byte, msg *Message) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg.Data)+1))
	dst = append(dst, byte(msg.Code))
	return append(dst, msg.Data...)
}

// AppendUint16 appends the big endian encoding of val to dest. It returns the new dest like append does.
func AppendUint16(dest []byte, val uint16) []byte {
	return append(dest, byte(val>>8), byte(val))
}
