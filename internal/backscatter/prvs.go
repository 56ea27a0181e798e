package backscatter

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultLifetime is how many days a prvs tag stays valid, as in Exim and
// batv-tools.
const DefaultLifetime = 7

// MaxLifetime bounds the lifetime: the day stamp wraps at 1000, and a tag
// that must be told apart from one signed ~1000 days earlier needs a window
// far smaller than that.
const MaxLifetime = 30

// skewDays is the clock skew tolerated on the signer's side: a tag whose
// expiry day lies up to lifetime+1 days ahead is still accepted.
const skewDays = 1

// TagError is a failed verification with its reason.
type TagError struct {
	Reason  Reason
	Address string
	Detail  string
}

func (e *TagError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Reason, e.Address, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Address)
}

// DayNumber is the number of whole days since 1970-01-01 UTC.
func DayNumber(t time.Time) int64 {
	u := t.Unix()
	d := u / 86400
	if u < 0 && u%86400 != 0 {
		d--
	}
	return d
}

// ExpiryStamp is the three-digit DDD of a tag signed at t with the given
// lifetime: (days since epoch + lifetime) mod 1000.
func ExpiryStamp(t time.Time, lifetime int) int {
	return int((DayNumber(t) + int64(lifetime)) % 1000)
}

// prvsHash is the first three bytes of HMAC-SHA1(secret, K DDD address),
// the hash-source of draft-levine-smtp-batv-01 and of Exim's ${prvs}.
func prvsHash(secret []byte, keyNum int, stamp int, address string) [3]byte {
	mac := hmac.New(sha1.New, secret)
	var buf [4]byte
	buf[0] = byte('0' + keyNum)
	buf[1] = byte('0' + stamp/100)
	buf[2] = byte('0' + stamp/10%10)
	buf[3] = byte('0' + stamp%10)
	mac.Write(buf[:])
	io.WriteString(mac, address)
	var sum [sha1.Size]byte
	var out [3]byte
	copy(out[:], mac.Sum(sum[:0]))
	return out
}

// SignPRVS returns the prvs form of address (local@domain) signed with the
// secret of key keyNum at time t: prvs=KDDDHHHHHH=local@domain. It is byte
// for byte what Exim's ${prvs{address}{secret}{K}} gives.
func SignPRVS(address string, secret []byte, keyNum int, t time.Time, lifetime int) (string, error) {
	local, domain, err := splitAddress(address)
	if err != nil {
		return "", err
	}
	bare := local + "@" + domain
	val, err := prvsTagValue(bare, secret, keyNum, t, lifetime)
	if err != nil {
		return "", err
	}
	return "prvs=" + val + "=" + bare, nil
}

// SignPRVSSubaddress returns the sub-address form local+prvs=KDDDHHHHHH@domain
// (delim in place of '+'). The hash is the same as for the standard form, so
// either form verifies with the same key.
func SignPRVSSubaddress(address string, delim byte, secret []byte, keyNum int, t time.Time, lifetime int) (string, error) {
	local, domain, err := splitAddress(address)
	if err != nil {
		return "", err
	}
	val, err := prvsTagValue(local+"@"+domain, secret, keyNum, t, lifetime)
	if err != nil {
		return "", err
	}
	return local + string(delim) + "prvs=" + val + "@" + domain, nil
}

func prvsTagValue(address string, secret []byte, keyNum int, t time.Time, lifetime int) (string, error) {
	if keyNum < 0 || keyNum > 9 {
		return "", fmt.Errorf("key number %d: must be a digit 0-9", keyNum)
	}
	if lifetime < 1 || lifetime > MaxLifetime {
		return "", fmt.Errorf("lifetime %d days: must be 1-%d", lifetime, MaxLifetime)
	}
	stamp := ExpiryStamp(t, lifetime)
	h := prvsHash(secret, keyNum, stamp, address)
	var v [10]byte
	v[0] = byte('0' + keyNum)
	v[1], v[2], v[3] = byte('0'+stamp/100), byte('0'+stamp/10%10), byte('0'+stamp%10)
	hex.Encode(v[4:], h[:])
	return string(v[:]), nil
}

// SecretLookup returns the secret of key keyNum for an address's domain, or
// false when that key is not listed for it.
type SecretLookup func(domain string, keyNum int) ([]byte, bool)

// Verified is a tag that verified.
type Verified struct {
	Scheme    Scheme
	Untagged  string // the address without the tag, as received
	KeyNum    int
	Stamp     int    // DDD
	Folded    bool   // verified only after lower-casing the address
	Recipient string // signed VERP only: the recipient it was made for
}

// checkExpiry accepts an expiry day that lies no more than lifetime+1 days
// ahead and not in the past, reckoned modulo 1000. Exim's own check compares
// the raw stamps and so accepts tags long expired across the 999->000 wrap;
// this one does not.
func checkExpiry(tag Tag, now time.Time, lifetime int) error {
	if lifetime < 1 || lifetime > MaxLifetime {
		lifetime = DefaultLifetime
	}
	ahead := (int64(tag.Stamp) - DayNumber(now)%1000 + 1000) % 1000
	if ahead > int64(lifetime+skewDays) {
		return &TagError{Reason: ReasonExpired, Address: tag.Raw, Detail: fmt.Sprintf("expiry day %03d", tag.Stamp)}
	}
	return nil
}

// VerifyTag verifies a tag of any of our schemes.
func VerifyTag(tag Tag, keys SecretLookup, now time.Time, lifetime int) (Verified, error) {
	switch tag.Scheme {
	case SchemePRVS, SchemePRVSSub:
		return VerifyPRVS(tag, keys, now, lifetime)
	case SchemeVERP:
		return VerifyVERP(tag, keys, now, lifetime)
	case SchemeNone, SchemeSRS:
		return Verified{}, &TagError{Reason: ReasonNotTagged, Address: tag.Raw}
	default:
		return Verified{}, &TagError{Reason: ReasonForeignTag, Address: tag.Raw, Detail: string(tag.Scheme)}
	}
}

// VerifyPRVS checks a tag parsed by ParseTag (Scheme SchemePRVS or
// SchemePRVSSub) at time now.
func VerifyPRVS(tag Tag, keys SecretLookup, now time.Time, lifetime int) (Verified, error) {
	if tag.Scheme != SchemePRVS && tag.Scheme != SchemePRVSSub {
		return Verified{}, &TagError{Reason: ReasonNotTagged, Address: tag.Raw}
	}
	if err := checkExpiry(tag, now, lifetime); err != nil {
		return Verified{}, err
	}
	addr := tag.Local + "@" + tag.Domain
	secret, ok := keys(strings.ToLower(tag.Domain), tag.KeyNum)
	if !ok {
		return Verified{}, &TagError{Reason: ReasonUnknownKey, Address: tag.Raw,
			Detail: fmt.Sprintf("key %d", tag.KeyNum)}
	}
	res := Verified{Scheme: tag.Scheme, Untagged: addr, KeyNum: tag.KeyNum, Stamp: tag.Stamp}
	want := prvsHash(secret, tag.KeyNum, tag.Stamp, addr)
	if hmac.Equal(want[:], tag.Hash) {
		return res, nil
	}
	// Receivers and relays fold case; the signer may have hashed the
	// lower-case form too. Retry once with both parts lower-cased.
	if lower := strings.ToLower(addr); lower != addr {
		want = prvsHash(secret, tag.KeyNum, tag.Stamp, lower)
		if hmac.Equal(want[:], tag.Hash) {
			res.Folded = true
			return res, nil
		}
	}
	return Verified{}, &TagError{Reason: ReasonBadSignature, Address: tag.Raw}
}
