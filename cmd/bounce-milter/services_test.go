package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bounce-milter/bounce-milter/internal/config"
)

// A unix socket's directory is created closed to others (0750: whoever
// reaches the milter socket can have our addresses signed), its missing
// parents traversable (Postfix must reach the socket), the socket 0660.
func TestListenUnixSocketModes(t *testing.T) {
	base := t.TempDir()
	sock := filepath.Join(base, "run", "bounce-milter", "milter.sock")
	ln, err := listen(config.Endpoint{Network: "unix", Address: sock}, "0660", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for path, want := range map[string]os.FileMode{
		filepath.Join(base, "run"):                  0o755 | os.ModeDir,
		filepath.Join(base, "run", "bounce-milter"): 0o750 | os.ModeDir,
		sock: 0o660 | os.ModeSocket,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir | os.ModeSocket); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
}
