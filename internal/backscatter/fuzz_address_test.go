package backscatter

import (
	"strings"
	"testing"
	"time"
)

// FuzzCheckRecipient: reading an address never panics or loops, an address
// decided as ours names one of our domains, and routing an address of ours
// through a local domain the way Postfix reads it (source route, percent
// hack, bang path, quoted local part) never turns it into "not ours".
func FuzzCheckRecipient(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "prvs=1234abcdef=alice@example.com", "@x.test:alice@example.com",
		"alice%example.com@localhost", "example.com!alice@localhost", `"alice@example.com"@localhost`,
		`"alice x"@example.com`, "alice", "postmaster", "a!b!c", "a%b%c@d", `"a\"b"@example.com`,
		"alice@[192.0.2.1]", "alice@example.com.", "@", "", "<>",
	} {
		f.Add(s)
	}
	ks, err := ParseKeys(strings.NewReader("1 fuzz-secret\n"), "k")
	if err != nil {
		f.Fatal(err)
	}
	e := New(testSettings(), NewKeyRing(ks))
	e.Now = func() time.Time { return testNow }
	f.Fuzz(func(t *testing.T, s string) {
		r := e.CheckRecipient(s)
		if r.Ours && !r.Unparsable && !e.ours(r.Domain) {
			t.Fatalf("%q: decided as ours with domain %q", s, r.Domain)
		}
		// The reader trims white space first: " @x" is a source route
		// (without its ':', unreadable), not the local part " " at x.
		s = strings.TrimSpace(s)
		if !r.Ours || strings.HasPrefix(s, "@") || strings.HasPrefix(s, "<") {
			return
		}
		at := topIndex(s, '@', true)
		// Routing a plain local@domain: a local part with one top-level
		// '@' or a domain with routing characters is another address.
		if at <= 0 || strings.ContainsAny(s, "\r\n") || topIndex(s[:at], '@', false) >= 0 || strings.ContainsAny(s[at+1:], "@%!\"[]\\") {
			return
		}
		for _, v := range []string{
			"@relay.test:" + s,
			s[:at] + "%" + s[at+1:] + "@localhost",
			s[at+1:] + "!" + s[:at] + "@localhost",
			s + "@localhost",
		} {
			if !e.CheckRecipient(v).Ours {
				t.Errorf("%q is ours, %q is not", s, v)
			}
		}
	})
}
