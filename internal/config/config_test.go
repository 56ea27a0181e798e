package config

import (
	"strings"
	"testing"
	"time"
)

const example = `
data_dir = "/var/lib/bounce-milter"
key_file = "/etc/bounce-milter/keys"
lifetime = 7
mode = "tag"
grace = "5d"

[listen]
milter = "unix:/run/bounce-milter/milter.sock"
socketmap = "inet:127.0.0.1:8892"
policy = "inet:[::1]:8893"

[outbound]
trusted_networks = ["192.0.2.0/24", "2001:db8::1"]
opt_out = ["noreply@example.com"]

[inbound]
exempt = ["dmarc-reports", "tlsrpt@example.com"]
relays = ["mx1.example.com"]
max_message_bytes = "512k"

[domains."Example.COM"]
mode = "reject"
since = 2026-11-01

[domains."example.org"]
syntax = "subaddress"
delimiter = "-"
lifetime = 10
sign = false
`

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(example), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DomainNames(); strings.Join(got, ",") != "example.com,example.org" {
		t.Fatalf("domains %v", got)
	}
	com, ok := c.For("EXAMPLE.com")
	if !ok || com.Mode != ModeReject || com.Lifetime != 7 || com.Syntax != SyntaxPRVS || !com.Sign ||
		!com.Since.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("example.com: %+v", com)
	}
	org, _ := c.For("example.org")
	if org.Mode != ModeTag || org.Delimiter != '-' || org.Lifetime != 10 || org.Sign || org.Syntax != SyntaxSubaddress {
		t.Fatalf("example.org: %+v", org)
	}
	if _, ok := c.For("example.net"); ok {
		t.Fatal("example.net is not ours")
	}
	if c.Grace.Duration != 5*24*time.Hour || c.Inbound.MaxMessageBytes != 512<<10 {
		t.Fatalf("grace %v, max %d", c.Grace, c.Inbound.MaxMessageBytes)
	}
	if len(c.Outbound.TrustedNetworks) != 2 || c.Outbound.TrustedNetworks[1].Bits() != 128 {
		t.Fatalf("networks %v", c.Outbound.TrustedNetworks)
	}
	if c.Inbound.OnStoreError != ActionTempfail || c.Outbound.OnError != ActionAcceptUnsigned || c.Inbound.OnError != ActionAccept {
		t.Fatal("failure defaults wrong")
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"lifetime = 7\nmdoe = \"tag\"\n", []string{"test.toml:2", "mdoe"}},
		{"[listen]\nmilter = \"inet:127.0.0.1\"\n", []string{"test.toml:2", "milter", "inet:HOST:PORT"}},
		{"\n\nmode = \"rejct\"\n", []string{"test.toml:3", "mode", "rejct"}},
		{"[outbound]\ntrusted_networks = [\"10.0.0.0/33\"]\n", []string{"test.toml:2", "trusted_networks"}},
		{"[domains.\"example.com\"]\nmode = \"tag\"\nfoo = 1\n", []string{"test.toml:3", "foo"}},
		{"lifetime = 99\n", []string{"lifetime = 99"}},
		{"[listen]\nmax_connections = -5\n", []string{"listen.max_connections = -5"}},
		{"grace = \"ten days\"\n", []string{"test.toml:1", "grace"}},
		{"[inbound]\non_store_error = \"maybe\"\n", []string{"test.toml:2", "on_store_error"}},
		{"lifetime = \n", []string{"test.toml:1"}},
		{"[listen]\nmilter = \"unix:relative/path\"\n", []string{"absolute"}},
	} {
		_, err := Parse([]byte(tc.in), "test.toml")
		if err == nil {
			t.Errorf("%q: no error", tc.in)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not mention %q", tc.in, err, w)
			}
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default("/tmp/x")
	if c.KeyFile != "/tmp/x/keys" || c.Listen.Milter.Network != "unix" || !strings.HasSuffix(c.Listen.Milter.Address, "/milter.sock") || c.Mode != ModeReject ||
		c.Listen.MaxConnections != DefaultMaxConnections {
		t.Fatalf("%+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"inet:127.0.0.1:8891":  "tcp 127.0.0.1:8891",
		"inet:[::1]:25":        "tcp [::1]:25",
		"unix:/run/x.sock":     "unix /run/x.sock",
		"inet:localhost:99999": "",
		"127.0.0.1:8891":       "",
		"unix:x.sock":          "",
	} {
		n, a, err := ParseEndpoint(in)
		got := n + " " + a
		if err != nil {
			got = ""
		}
		if got != want {
			t.Errorf("ParseEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// "off" turns a listener off in the file, even the milter, which has a
// default.
func TestEndpointOff(t *testing.T) {
	c, err := Parse([]byte("[listen]\nmilter = \"off\"\npolicy = \"unix:/run/p.sock\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.Milter.IsSet() || !c.Listen.Policy.IsSet() {
		t.Fatalf("listen %+v", c.Listen)
	}
	c, err = Parse([]byte("[listen]\n"), "t.toml")
	if err != nil || !c.Listen.Milter.IsSet() {
		t.Fatalf("no milter line: %+v %v", c.Listen, err)
	}
}
