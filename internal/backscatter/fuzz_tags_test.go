package backscatter

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseTag: the parser never panics, and nothing verifies without a
// valid HMAC: a verified tag must equal the one we would sign.
func FuzzParseTag(f *testing.F) {
	for _, s := range []string{
		"prvs=0123cfcd40=user@example.com", "user+prvs=0123cfcd40@example.com",
		"PRVS=0123CFCD40=user@example.com", "btv1==abc==u@d", "msprvs1=x=u@d", "prvs=234d5777c=u@d",
		"vrp=10030123456789abcdef=mjqxgzjamv4gc3lqnrss4y3pnu=owner@example.com", "SRS0=a=b=c=d@e", "a@b", "@", "",
	} {
		f.Add(s)
	}
	secret := []byte("fuzz")
	keys := func(_ string, k int) ([]byte, bool) { return secret, true }
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		tag, err := ParseTag(s, '+')
		if err != nil {
			return
		}
		if !strings.Contains(tag.Raw, tag.Local) {
			t.Fatalf("untagged local %q not in %q", tag.Local, tag.Raw)
		}
		v, err := VerifyTag(tag, keys, now, 7)
		if err != nil {
			return
		}
		var want string
		switch tag.Scheme {
		case SchemePRVS, SchemePRVSSub:
			h := prvsHash(secret, v.KeyNum, v.Stamp, v.Untagged)
			if v.Folded {
				h = prvsHash(secret, v.KeyNum, v.Stamp, strings.ToLower(v.Untagged))
			}
			if string(h[:]) != string(tag.Hash) {
				t.Fatalf("%q verified without a matching HMAC", s)
			}
			return
		case SchemeVERP:
			want = string(verpHash(secret, v.KeyNum, v.Stamp, v.Recipient, v.Untagged))
		}
		if want != string(tag.Hash) {
			t.Fatalf("%q verified without a matching HMAC", s)
		}
	})
}
