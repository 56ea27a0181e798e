package config

import (
	"strings"
	"testing"
)

// The pages listen on loopback without a login; anywhere else serve
// refuses to start without a token or a user and password.
func TestWebAccess(t *testing.T) {
	for _, tc := range []struct {
		conf, err string
	}{
		{"[listen]\nweb = \"127.0.0.1:9433\"", ""},
		{"[listen]\nweb = \"[::1]:9433\"", ""},
		{"[listen]\nweb = \"localhost:9433\"", ""},
		{"[listen]\nweb = \"0.0.0.0:9433\"", "not a loopback address"},
		{"[listen]\nweb = \":9433\"", "not a loopback address"},
		{"[listen]\nweb = \"192.0.2.1:9433\"", "not a loopback address"},
		{"[listen]\nweb = \"0.0.0.0:9433\"\n[web]\ntoken_file = \"/etc/bounce-milter/web-token\"", ""},
		{"[listen]\nweb = \"0.0.0.0:9433\"\n[web]\nuser = \"admin\"\npassword_file = \"/etc/bounce-milter/web-password\"", ""},
		{"[listen]\nweb = \"0.0.0.0:9433\"\n[web]\nuser = \"admin\"", "go together"},
		{"[listen]\nweb = \"9433\"", "want HOST:PORT"},
		{"[web]\nmask_addresses = \"some\"", "want off, remote or all"},
		{"[web]\nmask_addresses = \"remote\"", ""},
		{"[listen]\nweb = \"off\"", ""},
	} {
		c, err := Parse([]byte(tc.conf), "t.toml")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.conf, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.conf, err, tc.err)
		case err == nil && c.Web.MaskAddresses == "":
			t.Errorf("%q: no default mask", tc.conf)
		}
	}
}
