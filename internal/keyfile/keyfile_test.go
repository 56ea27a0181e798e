package keyfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good", "# keys\n1 one\n2 two\n", 0o600)
	ks, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Signing != 2 || !ks.Has(1) {
		t.Fatalf("signing %d, has(1) %v", ks.Signing, ks.Has(1))
	}
	open := write(t, dir, "open", "1 one\n", 0o644)
	if _, err := Load(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 key file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

// A FIFO at the key file's path must be refused at once: opening it for
// reading would block until a writer came, hanging reload and shutdown.
func TestLoadFIFODoesNotBlock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

// A key file owned by another user (not root) is refused: that user could
// rewrite the keys. Needs root to chown.
func TestLoadForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to another user")
	}
	p := write(t, t.TempDir(), "k", "1 one\n", 0o600)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("foreign owner: %v", err)
	}
}

func TestRing(t *testing.T) {
	dir := t.TempDir()
	def := write(t, dir, "def", "1 one\n2 two\n", 0o600)
	other := write(t, dir, "other", "5 five\n", 0o600)
	one := 1
	ring, err := Ring(Spec{File: def, Domains: map[string]DomainSpec{
		"a.example": {File: other},
		"b.example": {Signing: &one},
		"c.example": {},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dom  string
		want int
	}{{"a.example", 5}, {"b.example", 1}, {"c.example", 2}, {"unlisted.example", 2}} {
		if k, _, ok := ring.Signer(c.dom); !ok || k != c.want {
			t.Errorf("%s signs with %d (%v), want %d", c.dom, k, ok, c.want)
		}
	}
	seven := 7
	if _, err := Ring(Spec{File: def, Signing: &seven}); err == nil {
		t.Error("signing key 7 not in the file accepted")
	}
}
