package backscatter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Signed VERP
//
// A prvs tag names the sender, not the recipient: a bounce to it proves we
// sent something to someone. Bulk and list mail needs more: which recipient
// bounced. bounce-milter's signed VERP return path binds the tag to one
// recipient:
//
//	vrp=KDDDHHHHHHHHHHHHHHHH=RRRR...=local@domain
//
//	K     key number, one digit, as in prvs
//	DDD   expiry day, (days since 1970-01-01 UTC + lifetime) mod 1000, as in prvs
//	H     16 lower-case hex digits: the first 8 bytes of
//	      HMAC-SHA256(key K, "vrp" K DDD NUL lower(recipient) NUL lower(local@domain))
//	R     the recipient, lower-cased, in RFC 4648 base32, lower-case, no padding
//
// Only digits, lower-case hex and base32 letters appear in the tag: no '+'
// or '/', which some receivers reject (PostSRSd issues 103 and 189), and
// nothing that case folding can damage, since both the hash input and the
// recipient are lower-cased. The 64-bit HMAC is far beyond what can be
// guessed over SMTP. The local part grows with the recipient's length;
// RFC 5321 asks for at most 64 octets, but VERP local parts longer than that
// are common and accepted by the usual MTAs.
const verpPrefix = "vrp="

var verpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func verpHash(secret []byte, keyNum, stamp int, recipient, address string) []byte {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "vrp%d%03d\x00%s\x00%s", keyNum, stamp, strings.ToLower(recipient), strings.ToLower(address))
	return mac.Sum(nil)[:8]
}

// SignVERP returns the signed VERP return path of sender for one recipient.
func SignVERP(sender, recipient string, secret []byte, keyNum int, t time.Time, lifetime int) (string, error) {
	local, domain, err := splitAddress(sender)
	if err != nil {
		return "", fmt.Errorf("sender: %w", err)
	}
	if _, _, err := splitAddress(recipient); err != nil {
		return "", fmt.Errorf("recipient: %w", err)
	}
	if keyNum < 0 || keyNum > 9 {
		return "", fmt.Errorf("key number %d: must be a digit 0-9", keyNum)
	}
	if lifetime < 1 || lifetime > MaxLifetime {
		return "", fmt.Errorf("lifetime %d days: must be 1-%d", lifetime, MaxLifetime)
	}
	stamp := ExpiryStamp(t, lifetime)
	h := verpHash(secret, keyNum, stamp, recipient, local+"@"+domain)
	r := strings.ToLower(verpEncoding.EncodeToString([]byte(strings.ToLower(recipient))))
	return fmt.Sprintf("%s%d%03d%s=%s=%s@%s", verpPrefix, keyNum, stamp, hex.EncodeToString(h), r, local, domain), nil
}

// parseVERPLocal takes apart a local part of the signed VERP form.
func parseVERPLocal(local string) (Tag, bool) {
	rest := local[len(verpPrefix):]
	parts := strings.SplitN(rest, "=", 3)
	if len(parts) != 3 || len(parts[0]) != 20 || parts[2] == "" {
		return Tag{}, false
	}
	v := parts[0]
	if !isDigits(v[:4]) || !isHex(v[4:]) {
		return Tag{}, false
	}
	rcpt, err := verpEncoding.DecodeString(strings.ToUpper(parts[1]))
	if err != nil || len(rcpt) == 0 || strings.IndexByte(string(rcpt), '@') < 0 {
		return Tag{}, false
	}
	h, _ := hex.DecodeString(v[4:])
	return Tag{
		Scheme:    SchemeVERP,
		Local:     parts[2],
		KeyNum:    int(v[0] - '0'),
		Stamp:     atoi3(v[1:4]),
		Hash:      h,
		Recipient: string(rcpt),
	}, true
}

// VerifyVERP checks a tag parsed by ParseTag with Scheme SchemeVERP, with the
// same expiry rule as VerifyPRVS.
func VerifyVERP(tag Tag, keys SecretLookup, now time.Time, lifetime int) (Verified, error) {
	if tag.Scheme != SchemeVERP {
		return Verified{}, &TagError{Reason: ReasonNotTagged, Address: tag.Raw}
	}
	if err := checkExpiry(tag, now, lifetime); err != nil {
		return Verified{}, err
	}
	secret, ok := keys(strings.ToLower(tag.Domain), tag.KeyNum)
	if !ok {
		return Verified{}, &TagError{Reason: ReasonUnknownKey, Address: tag.Raw, Detail: fmt.Sprintf("key %d", tag.KeyNum)}
	}
	addr := tag.Untagged()
	if !hmac.Equal(verpHash(secret, tag.KeyNum, tag.Stamp, tag.Recipient, addr), tag.Hash) {
		return Verified{}, &TagError{Reason: ReasonBadSignature, Address: tag.Raw}
	}
	return Verified{Scheme: SchemeVERP, Untagged: addr, Recipient: tag.Recipient, KeyNum: tag.KeyNum, Stamp: tag.Stamp}, nil
}
