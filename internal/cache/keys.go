package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"
)

// Hasher turns Message-IDs, tags and recipients into the opaque keys the
// backends store, so that a store dump reveals no addresses or ids.
//
// With a secret (Config.Secret, from secret_file) it is HMAC-SHA256: the
// stored hashes cannot be checked against guessed addresses without the
// secret. Without one it is plain SHA-256 with a fixed domain-separation
// prefix: still no plaintext, but guessable addresses can be confirmed by
// whoever reads the store. Every process sharing a Redis must use the same
// secret. Hashes are truncated to 128 bits, plenty for lookups.
type Hasher struct {
	pool sync.Pool
}

// NewHasher returns a Hasher keyed with secret (nil or empty: unkeyed).
func NewHasher(secret []byte) *Hasher {
	key := append([]byte(nil), secret...)
	h := &Hasher{}
	h.pool.New = func() any {
		if len(key) == 0 {
			return sha256.New()
		}
		return hmac.New(sha256.New, key)
	}
	return h
}

func (h *Hasher) sum(kind, s string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte("bounce-milter/"))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(s))
	var buf [sha256.Size]byte
	out := m.Sum(buf[:0])
	h.pool.Put(m)
	return hex.EncodeToString(out[:16])
}

// MessageID hashes a Message-ID after NormalizeMessageID. An id that
// normalises to "" hashes to "".
func (h *Hasher) MessageID(id string) string {
	n := NormalizeMessageID(id)
	if n == "" {
		return ""
	}
	return h.sum("msgid", n)
}

// Tag hashes a tag (a signed envelope sender); it is lower-cased first.
func (h *Hasher) Tag(tag string) string {
	return h.sum("tag", strings.ToLower(strings.TrimSpace(tag)))
}

// Recipient hashes an address, lower-cased.
func (h *Hasher) Recipient(addr string) string {
	return h.sum("rcpt", strings.ToLower(strings.TrimSpace(addr)))
}

// ClientIP hashes a client address.
func (h *Hasher) ClientIP(ip string) string {
	return h.sum("ip", strings.ToLower(strings.TrimSpace(ip)))
}

// NormalizeMessageID returns the canonical form of a Message-ID header value
// as used for lookups: surrounding white space and one pair of angle
// brackets removed, the local part kept as-is (it is case-sensitive), the
// domain part lower-cased. A value with nothing left is "".
func NormalizeMessageID(id string) string {
	s := strings.TrimSpace(id)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[:i+1] + strings.ToLower(s[i+1:])
	}
	return s
}

// CleanMessageIDs normalises, hashes and de-duplicates candidate ids,
// keeping at most max of them in order. It returns the hashes and, for each,
// the id as given.
func (h *Hasher) CleanMessageIDs(ids []string, max int) (hashes, given []string) {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		k := h.MessageID(id)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		hashes = append(hashes, k)
		given = append(given, id)
		if len(hashes) == max {
			break
		}
	}
	return hashes, given
}

// MaxMessageIDs bounds the candidate ids looked up per inbound message
// (References headers can be long; the originals are the first few).
const MaxMessageIDs = 16
