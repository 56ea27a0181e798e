package alerts

import (
	"os/exec"
	"strings"
	"testing"
)

// The detectors decide; they never talk to anything. Package alerts/watch
// reads the store, keeps the time and sends what changed.
func TestAlertsImportNothingThatDoesIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{
		"net/http", "os/exec", "database/sql", "go.etcd.io/bbolt", "github.com/redis/go-redis", "github.com/prometheus",
		"github.com/bounce-milter/bounce-milter/internal/cache", "github.com/bounce-milter/bounce-milter/internal/stats",
		"github.com/bounce-milter/bounce-milter/internal/events", "github.com/bounce-milter/bounce-milter/internal/config",
		"github.com/bounce-milter/bounce-milter/internal/milter", "github.com/bounce-milter/bounce-milter/internal/metrics",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list printed %d packages", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("package alerts imports %s", d)
			}
		}
	}
}
