package backscatter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounce-milter/bounce-milter/internal/config"
)

func TestLoadKeyRing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := write("keys", "0 zero\n1 one\n")
	own := write("keys-org", "2 two\n3 three\n4 four\n")
	cfgText := `key_file = "` + def + `"
signing_key = 0
[domains."example.com"]
[domains."example.org"]
key_file = "` + own + `"
signing_key = 3
[domains."example.net"]
key_file = "` + own + `"
`
	cfg, err := config.Parse([]byte(cfgText), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyRing(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]int{"example.com": 0, "example.org": 3, "example.net": 4, "other.example": 0} {
		if k, _, ok := ring.Signer(domain); !ok || k != want {
			t.Errorf("%s signs with key %d (%v), want %d", domain, k, ok, want)
		}
	}
	// The signing key chosen by the ring is the one the engine signs with.
	e := NewEngine(cfg, ring, nil)
	if s := e.Sign("a@example.org", nil); s.KeyNum != 3 || !strings.HasPrefix(s.Sender, "prvs=3") {
		t.Fatalf("engine signed %+v", s)
	}
	bad, _ := config.Parse([]byte(strings.Replace(cfgText, "signing_key = 3", "signing_key = 7", 1)), "t.toml")
	if _, err := LoadKeyRing(bad); err == nil || !strings.Contains(err.Error(), "signing key 7 is not listed") {
		t.Fatalf("unlisted signing key: %v", err)
	}
}
