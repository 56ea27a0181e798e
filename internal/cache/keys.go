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

// Digest is a keyed hash truncated to 128 bits. The stores use its bytes
// directly (binary keys); its hex form was the key of the first format.
type Digest [16]byte

// Hex is the digest in hex (the key form of the JSON-era records).
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

func (h *Hasher) digest(kind, s string) Digest {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte("bounce-milter/"))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(s))
	var buf [sha256.Size]byte
	out := m.Sum(buf[:0])
	h.pool.Put(m)
	var d Digest
	copy(d[:], out)
	return d
}

func (h *Hasher) sum(kind, s string) string {
	d := h.digest(kind, s)
	return d.Hex()
}

// MessageIDDigest is MessageID as a Digest; ok is false for an id that
// normalises to "".
func (h *Hasher) MessageIDDigest(id string) (d Digest, ok bool) {
	n := NormalizeMessageID(id)
	if n == "" {
		return d, false
	}
	return h.digest("msgid", n), true
}

// TagDigest is Tag as a Digest.
func (h *Hasher) TagDigest(tag string) Digest {
	return h.digest("tag", strings.ToLower(strings.TrimSpace(tag)))
}

// FloodRecipient is the key of the per-recipient flood counter: the
// address lower-cased and, when delim is set, without its sub-address
// extension, so that "user+1@", "user+2@"... count as one recipient.
func (h *Hasher) FloodRecipient(addr string, delim byte) string {
	return h.sum("rcpt", StripExtension(strings.ToLower(strings.TrimSpace(addr)), delim))
}

// StripExtension removes the sub-address extension from addr: the local
// part is cut at the first delim (as Postfix's recipient_delimiter does).
// A delim of 0, a local part without it, or one that starts with it leaves
// addr unchanged.
func StripExtension(addr string, delim byte) string {
	if delim == 0 {
		return addr
	}
	at := strings.LastIndexByte(addr, '@')
	local := addr
	if at >= 0 {
		local = addr[:at]
	}
	i := strings.IndexByte(local, delim)
	if i <= 0 {
		return addr
	}
	if at < 0 {
		return addr[:i]
	}
	return addr[:i] + addr[at:]
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

// CleanMessageIDDigests is CleanMessageIDs returning digests.
func (h *Hasher) CleanMessageIDDigests(ids []string, max int) (ds []Digest, given []string) {
	for _, id := range ids {
		d, ok := h.MessageIDDigest(id)
		if !ok || containsDigest(ds, d) {
			continue
		}
		ds = append(ds, d)
		given = append(given, id)
		if len(ds) == max {
			break
		}
	}
	return ds, given
}

func containsDigest(ds []Digest, d Digest) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// MaxMessageIDs bounds the candidate ids looked up per inbound message
// (References headers can be long; the originals are the first few).
const MaxMessageIDs = 16
