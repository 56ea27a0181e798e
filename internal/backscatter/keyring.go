package backscatter

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxSecretLength is the longest secret Exim's ${prvs} accepts (it errors
// on a longer one rather than hashing it), so a longer one could never
// interoperate.
const maxSecretLength = 64

// KeySet is the keys of one key file: up to ten secrets indexed by the key
// number K. One of them signs; all of them verify, so that a new key can be
// rolled out and an old one kept until its last tags have expired.
type KeySet struct {
	Source  string
	secrets [10][]byte
	listed  [10]bool
	// Signing is the key number new tags are signed with: by default the
	// last key listed in the file, so that appending a key rotates to it.
	Signing int
}

// Has reports whether key k is listed.
func (s *KeySet) Has(k int) bool { return k >= 0 && k <= 9 && s.listed[k] }

// Secret returns key k's secret.
func (s *KeySet) Secret(k int) ([]byte, bool) {
	if !s.Has(k) {
		return nil, false
	}
	return s.secrets[k], true
}

// Numbers lists the key numbers present, in ascending order.
func (s *KeySet) Numbers() []int {
	var out []int
	for k := range s.listed {
		if s.listed[k] {
			out = append(out, k)
		}
	}
	return out
}

// SetSigning makes key k the signing key.
func (s *KeySet) SetSigning(k int) error {
	if !s.Has(k) {
		return fmt.Errorf("%s: signing key %d is not listed", s.Source, k)
	}
	s.Signing = k
	return nil
}

// ParseKeys reads a key file: one key a line, "K SECRET" where K is a digit,
// then exactly one space, then the secret to the end of the line, taken as
// the HMAC key bytes unchanged (as Exim takes its secret). Blank lines and
// lines starting with '#' are ignored. name is used in error messages.
func ParseKeys(r io.Reader, name string) (*KeySet, error) {
	s := &KeySet{Source: name, Signing: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimLeft(text, " \t"), "#") {
			continue
		}
		if len(text) < 3 || text[0] < '0' || text[0] > '9' || text[1] != ' ' {
			return nil, fmt.Errorf("%s:%d: want \"K SECRET\" (K a digit 0-9, one space, the secret)", name, line)
		}
		k := int(text[0] - '0')
		secret := text[2:]
		if len(secret) > maxSecretLength {
			return nil, fmt.Errorf("%s:%d: key %d: secret is %d bytes, longer than the %d that Exim's prvs accepts", name, line, k, len(secret), maxSecretLength)
		}
		if s.listed[k] {
			return nil, fmt.Errorf("%s:%d: key %d listed twice", name, line, k)
		}
		s.secrets[k] = []byte(secret)
		s.listed[k] = true
		s.Signing = k
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: reading keys: %w", name, err)
	}
	if s.Signing < 0 {
		return nil, fmt.Errorf("%s: no keys in file", name)
	}
	return s, nil
}

// KeyRing maps our domains to their key sets, with a default for domains
// that have none of their own. Domain names are matched case-insensitively.
type KeyRing struct {
	Default *KeySet
	domains map[string]*KeySet
}

// NewKeyRing returns a key ring with the default set def (which may be nil).
func NewKeyRing(def *KeySet) *KeyRing {
	return &KeyRing{Default: def, domains: map[string]*KeySet{}}
}

// SetDomain gives domain a key set of its own.
func (r *KeyRing) SetDomain(domain string, s *KeySet) {
	r.domains[strings.ToLower(strings.TrimSuffix(domain, "."))] = s
}

// For returns the key set for domain, or nil.
func (r *KeyRing) For(domain string) *KeySet {
	if s, ok := r.domains[strings.ToLower(strings.TrimSuffix(domain, "."))]; ok {
		return s
	}
	return r.Default
}

// Lookup is a SecretLookup over the ring.
func (r *KeyRing) Lookup(domain string, k int) ([]byte, bool) {
	s := r.For(domain)
	if s == nil {
		return nil, false
	}
	return s.Secret(k)
}

// Signer returns the signing key of domain.
func (r *KeyRing) Signer(domain string) (int, []byte, bool) {
	s := r.For(domain)
	if s == nil {
		return 0, nil, false
	}
	secret, ok := s.Secret(s.Signing)
	return s.Signing, secret, ok
}
