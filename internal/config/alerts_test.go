package config

import (
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
)

func TestAlertsSection(t *testing.T) {
	c, err := Parse([]byte(`
[alerts]
detectors = ["forged-domain", "compromised-account"]
interval = "2s"
min_history = "0s"
clear_after = "3s"
[alerts.forged]
window = "20s"
floor = 8
factor = 3
response = "strict"
[alerts.compromised]
unknown_share = 0.6
response = "hold"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	a := c.AlertsConfig()
	if !a.Enabled[alerts.KindForged] || a.Enabled[alerts.KindSpam] || a.Forged.Window != 20*time.Second || a.Forged.Factor != 3 ||
		a.MinHistory != 0 || a.ClearAfter != 3*time.Second || a.ForgedResponse != "strict" || a.CompromisedResponse != "hold" ||
		a.UnknownShare != 0.6 || a.Compromised.Floor != 50 || c.Alerts.Interval.Duration != 2*time.Second {
		t.Fatalf("%+v", a)
	}
	d := Default("/x").AlertsConfig()
	if d.Forged != alerts.Default().Forged || d.Snooze != alerts.Default().Snooze || len(d.Enabled) != len(alerts.Kinds) {
		t.Fatalf("defaults %+v", d)
	}
	for _, bad := range []string{
		"[alerts]\ndetectors = [\"nonsense\"]",
		"[alerts]\ninterval = \"10ms\"",
		"[alerts.forged]\nresponse = \"hold\"",
		"[alerts.compromised]\nresponse = \"strict\"",
		"[alerts.keys]\nwindow = \"48h\"",
		"[alerts]\nwebhook = \"ftp://x\"",
		"[alerts]\nwebhook = \"https://hooks.example/x\"",
		"[alerts.refused]\nnonsense = 1",
	} {
		if _, err := Parse([]byte(bad), "bad.toml"); err == nil {
			t.Errorf("accepted %q", bad)
		} else if !strings.Contains(err.Error(), "alerts") && !strings.Contains(err.Error(), "nonsense") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	c, err = Parse([]byte("[events]\nwebhook_secret_file = \"/k\"\n[alerts]\nwebhook = \"https://hooks.example/x\"\n"), "ok.toml")
	if err != nil || c.AlertsWebhookSecretFile() != "/k" {
		t.Fatalf("the events' key: %v", err)
	}
}
