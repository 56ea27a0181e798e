package cache

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxStoredRecipients bounds the recipient hashes kept per record; the
// count is always exact.
const MaxStoredRecipients = 64

// PreparedSent is a SentMessage reduced to what is stored: hashes and a
// compact encoded record. Backends share it so they store the same bytes.
type PreparedSent struct {
	MsgKey  string // Hasher.MessageID
	TagKey  string // Hasher.Tag, "" when the message has no tag
	RcptN   int64
	TTL     time.Duration
	Expires time.Time
	Value   []byte // encoded record
}

type storedRecord struct {
	Sender  string   `json:"s"`
	Tag     string   `json:"t,omitempty"`
	N       int      `json:"n"`
	Unix    int64    `json:"u"`
	Expires int64    `json:"e,omitempty"`
	Rcpts   []string `json:"r,omitempty"`
}

// PrepareSent validates and hashes m. defTTL is used when m.TTL is 0.
func PrepareSent(h *Hasher, m SentMessage, defTTL time.Duration) (PreparedSent, error) {
	var p PreparedSent
	p.MsgKey = h.MessageID(m.MessageID)
	if p.MsgKey == "" {
		return p, fmt.Errorf("record_sent: empty Message-ID")
	}
	tag := strings.ToLower(strings.TrimSpace(m.Tag))
	if tag != "" {
		p.TagKey = h.Tag(tag)
	}
	p.TTL = m.TTL
	if p.TTL <= 0 {
		p.TTL = defTTL
	}
	t := m.Time
	if t.IsZero() {
		t = time.Now()
	}
	p.Expires = t.Add(p.TTL)
	p.RcptN = int64(len(m.Recipients))
	r := storedRecord{Sender: m.Sender, Tag: tag, N: len(m.Recipients), Unix: t.Unix(), Expires: p.Expires.Unix()}
	for i, rc := range m.Recipients {
		if i == MaxStoredRecipients {
			break
		}
		r.Rcpts = append(r.Rcpts, h.Recipient(rc))
	}
	b, err := json.Marshal(r)
	if err != nil {
		return p, fmt.Errorf("record_sent: encoding: %w", err)
	}
	p.Value = b
	return p, nil
}

// DecodeRecord decodes a stored record; expires is its expiry time.
func DecodeRecord(b []byte) (rec *SentRecord, expires time.Time, err error) {
	var r storedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, time.Time{}, fmt.Errorf("decoding sent record: %w", err)
	}
	rec = &SentRecord{Sender: r.Sender, Tag: r.Tag, RecipientCount: r.N, Time: time.Unix(r.Unix, 0), RecipientHashes: r.Rcpts}
	if r.Expires != 0 {
		expires = time.Unix(r.Expires, 0)
	}
	return rec, expires, nil
}
