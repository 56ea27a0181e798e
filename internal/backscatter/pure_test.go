package backscatter

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine decides; it never talks to anything. Nothing it imports,
// directly or not, may open files by configuration, resolve names, talk
// to a store or speak a protocol: those belong to the adapters (milter,
// policy), to cmd, and to small packages of their own (keyfile,
// dkimcheck, the store backends). (The standard library's net and os
// arrive through mime/multipart and fmt; the engine calls neither.)
func TestEngineImportsNothingThatDoesIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{
		"net/http", "os/exec", "net/smtp", "database/sql",
		"go.etcd.io/bbolt", "github.com/redis/go-redis", "github.com/emersion/go-msgauth",
		"github.com/d--j/go-milter", "github.com/prometheus", "github.com/pelletier/go-toml",
		"github.com/bounce-milter/bounce-milter/internal/config",
		"github.com/bounce-milter/bounce-milter/internal/keyfile",
		"github.com/bounce-milter/bounce-milter/internal/dkimcheck",
		"github.com/bounce-milter/bounce-milter/internal/cache",
		"github.com/bounce-milter/bounce-milter/internal/milter",
		"github.com/bounce-milter/bounce-milter/internal/policy",
		"github.com/bounce-milter/bounce-milter/internal/metrics",
		"github.com/bounce-milter/bounce-milter/internal/safeio",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list printed %d packages", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(d[len(f):], "/")) {
				t.Errorf("the engine imports %s (through %s)", d, f)
			}
		}
	}
}
