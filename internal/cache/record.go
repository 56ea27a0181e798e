package cache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxTTL is the longest a sent record lives: the longest tag lifetime
// (30 days) plus the 3-day margin the engine adds. Longer TTLs are cut to
// it. Lookups search the expiry days from today to today + MaxTTL, and the
// stores keep their history (gaps) for as long.
const MaxTTL = 33 * 24 * time.Hour

// The compact record (format version 1), the value stored for a signed
// message under the first 8 bytes of its Message-ID digest:
//
//	offset  size  field
//	0       1     version (1)
//	1       8     sender digest: Hasher "sender" of the lower-cased untagged sender
//	9       4     signing time, unix seconds, big-endian
//	13      3     TTL in seconds, big-endian (≤ MaxTTL)
//	16      1-3   recipient count, uvarint
//	...     4×k   k ≤ 4 base digests: Hasher "sender-base" of c + the sender
//	              cut at c, for each distinct candidate delimiter c in its
//	              local part (so that a bounce to user+ext@ can be matched
//	              with the extension removed on both sides)
//
// 17 bytes for "alice@example.com", whatever the number of recipients:
// the replay budget needs the count, and a bounce is checked against the
// sender, not the recipient list. No address, tag or id is stored in
// plain text, and a record cannot be tied to an address without the
// secret (secret_file) that keys the digests.
//
// Records of the first format (JSON, with the plain-text sender and tag)
// start with '{'; DecodeRecord still reads them.
const (
	recordV1      = 1
	recordFixedV1 = 16
	maxBases      = 4
	maxTTLSeconds = 1<<24 - 1
)

// SenderDigestSize is the size of the sender digest in a record.
const SenderDigestSize = 8

// PreparedSent is a SentMessage reduced to what is stored: digests and the
// compact record. Backends share it so they store the same bytes.
type PreparedSent struct {
	ID      Digest // Message-ID
	Tag     Digest // valid when HasTag
	HasTag  bool
	RcptN   int64
	Time    time.Time // signing time, whole seconds
	TTL     time.Duration
	Expires time.Time
	Value   []byte // compact record, format version 1
}

// ExpiryDay is the day (Day) the record expires on: the stores bucket
// records by it, so that a bucket can be dropped whole once its day has
// passed, whatever the TTL of each record.
func (p *PreparedSent) ExpiryDay() int64 { return Day(p.Expires) }

// Day numbers days since 1970-01-01 UTC.
func Day(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// DayStart is the first instant of day d.
func DayStart(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// PrepareSent validates and hashes m. defTTL is used when m.TTL is 0; a
// TTL is cut to MaxTTL.
func PrepareSent(h *Hasher, m SentMessage, defTTL time.Duration) (PreparedSent, error) {
	var p PreparedSent
	id, ok := h.MessageIDDigest(m.MessageID)
	if !ok {
		return p, fmt.Errorf("record_sent: empty Message-ID")
	}
	p.ID = id
	if tag := strings.ToLower(strings.TrimSpace(m.Tag)); tag != "" {
		p.Tag, p.HasTag = h.TagDigest(tag), true
	}
	p.TTL = m.TTL
	if p.TTL <= 0 {
		p.TTL = defTTL
	}
	p.TTL = min(p.TTL, MaxTTL).Truncate(time.Second)
	if p.TTL <= 0 {
		p.TTL = time.Second
	}
	t := m.Time
	if t.IsZero() {
		t = time.Now()
	}
	if t.Unix() < 0 || t.Unix() > 1<<32-1 {
		return p, fmt.Errorf("record_sent: time %v out of range", t)
	}
	p.Time = time.Unix(t.Unix(), 0)
	p.Expires = p.Time.Add(p.TTL)
	p.RcptN = int64(len(m.Recipients))

	sender := strings.ToLower(strings.TrimSpace(m.Sender))
	b := make([]byte, recordFixedV1, recordFixedV1+binary.MaxVarintLen32+4*maxBases)
	b[0] = recordV1
	sd := h.senderDigest(sender)
	copy(b[1:9], sd[:])
	binary.BigEndian.PutUint32(b[9:13], uint32(p.Time.Unix()))
	ttl := uint32(p.TTL / time.Second)
	b[13], b[14], b[15] = byte(ttl>>16), byte(ttl>>8), byte(ttl)
	b = binary.AppendUvarint(b, uint64(len(m.Recipients)))
	for _, c := range delimiterCandidates(sender) {
		bd := h.baseDigest(c, StripExtension(sender, c))
		b = append(b, bd[:]...)
	}
	p.Value = b
	return p, nil
}

// delimiterCandidates returns the distinct bytes of the local part of addr
// that could be a recipient_delimiter (anything but letters and digits),
// first occurrences only, not at the start, at most maxBases of them.
func delimiterCandidates(addr string) []byte {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		at = len(addr)
	}
	var out []byte
	for i := 1; i < at && len(out) < maxBases; i++ {
		c := addr[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 0x80 {
			continue
		}
		if strings.IndexByte(string(out), c) < 0 {
			out = append(out, c)
		}
	}
	return out
}

func (h *Hasher) senderDigest(addr string) (d [SenderDigestSize]byte) {
	full := h.digest("sender", addr)
	copy(d[:], full[:])
	return d
}

func (h *Hasher) baseDigest(delim byte, base string) (d [4]byte) {
	full := h.digest("sender-base", string([]byte{delim})+base)
	copy(d[:], full[:])
	return d
}

// StoredRecord is a decoded record: what the engine sees (SentRecord) and
// what SenderMatch compares against.
type StoredRecord struct {
	SentRecord
	Expires time.Time

	sender [SenderDigestSize]byte
	bases  [maxBases][4]byte
	nbases int

	legacy       bool   // first format (JSON)
	legacySender string // its plain-text sender
}

var errRecord = errors.New("malformed sent record")

// DecodeRecord decodes a stored record, compact or JSON.
func DecodeRecord(b []byte) (StoredRecord, error) {
	var r StoredRecord
	if len(b) > 0 && b[0] == '{' {
		return decodeLegacy(b)
	}
	if len(b) < recordFixedV1+1 || b[0] != recordV1 {
		return r, errRecord
	}
	copy(r.sender[:], b[1:9])
	r.Time = time.Unix(int64(binary.BigEndian.Uint32(b[9:13])), 0)
	ttl := time.Duration(uint32(b[13])<<16|uint32(b[14])<<8|uint32(b[15])) * time.Second
	r.Expires = r.Time.Add(ttl)
	n, k := binary.Uvarint(b[recordFixedV1:])
	if k <= 0 || n > 1<<31 {
		return r, errRecord
	}
	r.RecipientCount = int(n)
	rest := b[recordFixedV1+k:]
	if len(rest)%4 != 0 || len(rest)/4 > maxBases {
		return r, errRecord
	}
	for i := 0; i < len(rest)/4; i++ {
		copy(r.bases[i][:], rest[4*i:])
	}
	r.nbases = len(rest) / 4
	return r, nil
}

// legacyRecord is the first format: JSON with the plain-text sender and tag.
type legacyRecord struct {
	Sender  string   `json:"s"`
	Tag     string   `json:"t,omitempty"`
	N       int      `json:"n"`
	Unix    int64    `json:"u"`
	Expires int64    `json:"e,omitempty"`
	Rcpts   []string `json:"r,omitempty"`
}

func decodeLegacy(b []byte) (StoredRecord, error) {
	var r StoredRecord
	var l legacyRecord
	if err := json.Unmarshal(b, &l); err != nil {
		return r, fmt.Errorf("decoding sent record: %w", err)
	}
	r.legacy, r.legacySender = true, strings.ToLower(strings.TrimSpace(l.Sender))
	r.RecipientCount, r.Time = l.N, time.Unix(l.Unix, 0)
	if l.Expires != 0 {
		r.Expires = time.Unix(l.Expires, 0)
	}
	return r, nil
}

// LegacyTag returns the plain-text tag of a first-format record ("" for
// compact records): the embedded store's upgrade needs it to rebuild the
// tag counters.
func LegacyTag(b []byte) string {
	var l legacyRecord
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &l) != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(l.Tag))
}

// EncodeLegacyRecord writes a record in the first (JSON) format, exactly as
// the releases before the compact format did. Only for upgrade tests.
func EncodeLegacyRecord(h *Hasher, m SentMessage, expires time.Time) []byte {
	r := legacyRecord{Sender: m.Sender, Tag: strings.ToLower(strings.TrimSpace(m.Tag)), N: len(m.Recipients), Unix: m.Time.Unix(), Expires: expires.Unix()}
	for i, rc := range m.Recipients {
		if i == 64 {
			break
		}
		r.Rcpts = append(r.Rcpts, h.Recipient(rc))
	}
	b, _ := json.Marshal(r)
	return b
}

// Upgrade re-encodes a first-format record in the compact format (the
// plain-text sender becomes its digest). Compact records are returned as
// they are.
func (r *StoredRecord) Upgrade(h *Hasher) []byte {
	if !r.legacy {
		return nil
	}
	ttl := r.Expires.Sub(r.Time)
	if r.Expires.IsZero() || ttl <= 0 {
		ttl = time.Second
	}
	p, err := PrepareSent(h, SentMessage{MessageID: "x", Sender: r.legacySender, Recipients: make([]string, r.RecipientCount), Time: r.Time, TTL: ttl}, ttl)
	if err != nil {
		return nil
	}
	return p.Value
}

// Legacy reports whether the record was in the first (JSON) format.
func (r *StoredRecord) Legacy() bool { return r.legacy }

// SenderMatch reports whether the record's sender is rcpt (the untagged
// bounced address): compared lower-cased, exactly, or, when delim is set,
// with the sub-address extension removed on both sides.
func (r *StoredRecord) SenderMatch(h *Hasher, rcpt string, delim byte) bool {
	rcpt = strings.ToLower(strings.TrimSpace(rcpt))
	if rcpt == "" {
		return false
	}
	if r.legacy {
		return r.legacySender == rcpt || delim != 0 && StripExtension(r.legacySender, delim) == StripExtension(rcpt, delim)
	}
	if h.senderDigest(rcpt) == r.sender {
		return true
	}
	if delim == 0 {
		return false
	}
	base := StripExtension(rcpt, delim)
	if base != rcpt && h.senderDigest(base) == r.sender {
		return true // the sender had no extension
	}
	bd := h.baseDigest(delim, base)
	for i := 0; i < r.nbases; i++ {
		if r.bases[i] == bd {
			return true
		}
	}
	return false
}

// Fill sets f's record fields from r, found under the query's id given.
func (r *StoredRecord) Fill(h *Hasher, q InboundQuery, given string, f *InboundFacts) {
	rec := r.SentRecord
	f.Sent, f.MatchedMessageID = &rec, given
	f.SenderMatch = r.SenderMatch(h, q.Recipient, q.Delimiter)
}

// Live reports whether the record has not expired at now (a record
// without an expiry, only possible in the first format, is live).
func (r *StoredRecord) Live(now time.Time) bool {
	return r.Expires.IsZero() || now.Before(r.Expires)
}
