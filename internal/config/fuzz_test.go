package config

import (
	"os"
	"testing"
)

// FuzzParse: a configuration file, however broken, is an error or a valid
// configuration; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	if data, err := os.ReadFile("../../packaging/bounce-milter.toml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{"", "mode = 1", "[listen]\nmilter = \"inet:[::1]:x\"", "[domains.\"\"]", "grace = \"-1d\"", "[store.redis]\nurl = \"redis-sentinel://\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		for _, d := range c.DomainNames() {
			if _, ok := c.For(d); !ok {
				t.Fatalf("domain %q listed but not found", d)
			}
		}
	})
}
