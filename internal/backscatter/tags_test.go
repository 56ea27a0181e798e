package backscatter

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTagForms(t *testing.T) {
	for _, tc := range []struct {
		in       string
		scheme   Scheme
		untagged string
	}{
		{"user@example.com", SchemeNone, "user@example.com"},
		{"<user@example.com>", SchemeNone, "user@example.com"},
		{"prvs=0123cfcd40=user@example.com", SchemePRVS, "user@example.com"},
		{"PRVS=0123CFCD40=User@Example.com", SchemePRVS, "User@Example.com"},
		{"user+prvs=0123cfcd40@example.com", SchemePRVSSub, "user@example.com"},
		{"prvs=234d5777c=user@wdc.com", SchemeForeignPRVS, "user@wdc.com"},
		{"btv1==0123abcdef==user@example.net", SchemeBarracuda, "user@example.net"},
		{"msprvs1=17438eyHzlm2p=bounces-12345@sparkpostmail.com", SchemeSparkPost, "bounces-12345@sparkpostmail.com"},
		{"prvs=user=0123cfcd40@example.com", SchemeReversedPRVS, "user@example.com"},
		{"SRS0=HHH=TT=example.org=alice@forwarder.example", SchemeSRS, "SRS0=HHH=TT=example.org=alice@forwarder.example"},
		{"prvs=nothing@example.com", SchemeNone, "prvs=nothing@example.com"},
		{"prvs=@example.com", SchemeNone, "prvs=@example.com"},
		{"a+b@example.com", SchemeNone, "a+b@example.com"},
		{"user+prvs=0123cfcd4@example.com", SchemeNone, "user+prvs=0123cfcd4@example.com"},
	} {
		tag, err := ParseTag(tc.in, '+')
		if err != nil {
			t.Errorf("ParseTag(%q): %v", tc.in, err)
			continue
		}
		if tag.Scheme != tc.scheme || tag.Untagged() != tc.untagged {
			t.Errorf("ParseTag(%q) = %s %q, want %s %q", tc.in, tag.Scheme, tag.Untagged(), tc.scheme, tc.untagged)
		}
		if tag.Tagged() != (tc.scheme != SchemeNone) {
			t.Errorf("ParseTag(%q).Tagged() = %v", tc.in, tag.Tagged())
		}
		stripped, _ := Strip(tc.in, '+')
		if stripped != tc.untagged {
			t.Errorf("Strip(%q) = %q, want %q", tc.in, stripped, tc.untagged)
		}
	}
}

func TestParseTagBadAddresses(t *testing.T) {
	for _, in := range []string{"", "user", "@example.com", "user@", "us er@example.com", "a\x00b@example.com", strings.Repeat("a", 2000) + "@x"} {
		if _, err := ParseTag(in, 0); err == nil {
			t.Errorf("ParseTag(%q): no error", in)
		}
	}
}

func TestVERPRoundTrip(t *testing.T) {
	secret := []byte("verp-secret")
	keys := func(_ string, k int) ([]byte, bool) { return secret, k == 5 }
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	addr, err := SignVERP("list-bounces@lists.example.com", "Bob.Smith+x@Example.ORG", secret, 5, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	local := addr[:strings.LastIndexByte(addr, '@')]
	for _, c := range local[len(verpPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '=' || c == '-' || c == '.') {
			t.Fatalf("tag %q holds %q: only digits, lower-case letters and '=' allowed before the local part", addr, c)
		}
		if c == '=' {
			break
		}
	}
	for _, variant := range []string{addr, strings.ToUpper(addr)} {
		tag, err := ParseTag(variant, 0)
		if err != nil || tag.Scheme != SchemeVERP {
			t.Fatalf("ParseTag(%q) = %+v, %v", variant, tag, err)
		}
		v, err := VerifyTag(tag, keys, now.AddDate(0, 0, 10), 10)
		if err != nil {
			t.Fatalf("%s: %v", variant, err)
		}
		if v.Recipient != "bob.smith+x@example.org" || !strings.EqualFold(v.Untagged, "list-bounces@lists.example.com") {
			t.Fatalf("verified %+v", v)
		}
	}
	// Another recipient's name spliced in must not verify.
	other, _ := SignVERP("list-bounces@lists.example.com", "eve@example.org", secret, 5, now, 10)
	ot, _ := ParseTag(other, 0)
	at, _ := ParseTag(addr, 0)
	at.Recipient = ot.Recipient
	if _, err := VerifyTag(at, keys, now, 10); err == nil {
		t.Fatal("spliced recipient verified")
	}
	tag, _ := ParseTag(addr, 0)
	if _, err := VerifyTag(tag, keys, now.AddDate(0, 0, 12), 10); err == nil {
		t.Fatal("expired VERP verified")
	}
}

func TestParseKeys(t *testing.T) {
	content := "# keys\n0 old secret\n\n3 new secret with  spaces \n"
	ks, err := ParseKeys(strings.NewReader(content), "keys")
	if err != nil {
		t.Fatal(err)
	}
	if ks.Signing != 3 || !ks.Has(0) || ks.Has(1) {
		t.Fatalf("keys %v signing %d", ks.Numbers(), ks.Signing)
	}
	if s, _ := ks.Secret(3); string(s) != "new secret with  spaces " {
		t.Fatalf("secret %q: must be the rest of the line unchanged", s)
	}
	for _, bad := range []string{"", "# only comments\n", "x secret\n", "1secret\n", "1 \n", "1 a\n1 b\n", "2 " + strings.Repeat("x", 65) + "\n"} {
		if _, err := ParseKeys(strings.NewReader(bad), "k"); err == nil {
			t.Errorf("ParseKeys(%q): no error", bad)
		}
	}
}

func TestKeyRing(t *testing.T) {
	def, _ := ParseKeys(strings.NewReader("0 default\n"), "def")
	own, _ := ParseKeys(strings.NewReader("1 one\n2 two\n"), "own")
	r := NewKeyRing(def)
	r.SetDomain("Example.COM", own)
	if k, s, ok := r.Signer("example.com"); !ok || k != 2 || string(s) != "two" {
		t.Fatalf("signer %d %q %v", k, s, ok)
	}
	if _, ok := r.Lookup("EXAMPLE.com", 1); !ok {
		t.Fatal("domain lookup must ignore case")
	}
	if _, ok := r.Lookup("example.com", 0); ok {
		t.Fatal("a domain with its own keys must not fall back to the default's")
	}
	if k, _, ok := r.Signer("other.example"); !ok || k != 0 {
		t.Fatal("default keys not used")
	}
	var te *TagError
	tag, _ := ParseTag("prvs=9123cfcd40=user@example.com", 0)
	if _, err := VerifyTag(tag, r.Lookup, time.Now(), 7); !errors.As(err, &te) {
		t.Fatal(err)
	}
}
