package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
)

// Alerts is the [alerts] section: threat signals from bounce patterns
// (package alerts; docs/alerts.md). Keys left out take the defaults of
// alerts.Default.
type Alerts struct {
	// Detectors lists the detectors that run (default all; [] none).
	Detectors []string `toml:"detectors"`
	// Interval between evaluations (default 1m).
	Interval Duration `toml:"interval"`
	// BaselineDays is how many days a subject's usual is taken over
	// (default 14).
	BaselineDays int `toml:"baseline_days"`
	// MinHistory: nothing is raised before statistics are this old
	// (default 7d).
	MinHistory *Duration `toml:"min_history"`
	// ClearAfter: an alert clears once its count stayed below its
	// threshold this long (default 15m).
	ClearAfter *Duration `toml:"clear_after"`
	// Snooze: an alert an admin cleared is not raised again for this long
	// (default 24h).
	Snooze *Duration `toml:"snooze"`
	// Webhook gets one signed JSON POST per alert raised or cleared ("":
	// none), signed with the key in WebhookSecretFile (default: [events]
	// webhook_secret_file).
	Webhook           string `toml:"webhook"`
	WebhookSecretFile string `toml:"webhook_secret_file"`

	Forged      AlertsForged      `toml:"forged"`
	Compromised AlertsCompromised `toml:"compromised"`
	Refused     AlertsRefused     `toml:"refused"`
	Keys        AlertsKeys        `toml:"keys"`
}

// AlertsForged is [alerts.forged]: a domain of ours being forged.
type AlertsForged struct {
	Window Duration `toml:"window"`
	Floor  int64    `toml:"floor"`
	Factor float64  `toml:"factor"`
	// Response: "none", or "strict" (the domain's untagged bounces without
	// evidence are judged as in the flood state while the alert lasts).
	Response string `toml:"response"`
}

// AlertsCompromised is [alerts.compromised]: an account of ours likely
// compromised.
type AlertsCompromised struct {
	Window Duration `toml:"window"`
	Floor  int64    `toml:"floor"`
	Factor float64  `toml:"factor"`
	// The unknown-recipients rule.
	UnknownFloor   int64   `toml:"unknown_floor"`
	UnknownFactor  float64 `toml:"unknown_factor"`
	UnknownDomains int     `toml:"unknown_domains"`
	UnknownShare   float64 `toml:"unknown_share"`
	// Response: "none", "no-sign" (its mail leaves unsigned while the
	// alert lasts) or "hold" (deferred until an admin clears it).
	Response string `toml:"response"`
}

// AlertsRefused is [alerts.refused]: our mail refused as spam or malware,
// or naming a block list, per sending host.
type AlertsRefused struct {
	Window           Duration `toml:"window"`
	Factor           float64  `toml:"factor"`
	SpamFloor        int64    `toml:"spam_floor"`
	SpamDomains      int      `toml:"spam_domains"`
	MalwareFloor     int64    `toml:"malware_floor"`
	MalwareDomains   int      `toml:"malware_domains"`
	BlocklistFloor   int64    `toml:"blocklist_floor"`
	BlocklistDomains int      `toml:"blocklist_domains"`
}

// AlertsKeys is [alerts.keys]: key trouble after a rotation.
type AlertsKeys struct {
	Window        Duration `toml:"window"`
	Floor         int64    `toml:"floor"`
	Factor        float64  `toml:"factor"`
	AfterRotation Duration `toml:"after_rotation"`
}

func (c *Config) applyAlertsDefaults() {
	d := alerts.Default()
	a := &c.Alerts
	if a.Detectors == nil {
		for _, k := range alerts.Kinds {
			a.Detectors = append(a.Detectors, string(k))
		}
	}
	if a.Interval.Duration == 0 {
		a.Interval.Duration = time.Minute
	}
	if a.BaselineDays == 0 {
		a.BaselineDays = d.BaselineDays
	}
	for _, p := range []struct {
		v   **Duration
		def time.Duration
	}{{&a.MinHistory, d.MinHistory}, {&a.ClearAfter, d.ClearAfter}, {&a.Snooze, d.Snooze}} {
		if *p.v == nil {
			*p.v = &Duration{p.def}
		}
	}
	dur := func(v *Duration, def time.Duration) {
		if v.Duration == 0 {
			v.Duration = def
		}
	}
	i64 := func(v *int64, def int64) {
		if *v == 0 {
			*v = def
		}
	}
	f64 := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	in := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	str := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	f := &a.Forged
	dur(&f.Window, d.Forged.Window)
	i64(&f.Floor, d.Forged.Floor)
	f64(&f.Factor, d.Forged.Factor)
	str(&f.Response, d.ForgedResponse)
	m := &a.Compromised
	dur(&m.Window, d.Compromised.Window)
	i64(&m.Floor, d.Compromised.Floor)
	f64(&m.Factor, d.Compromised.Factor)
	i64(&m.UnknownFloor, d.Unknown.Floor)
	f64(&m.UnknownFactor, d.Unknown.Factor)
	in(&m.UnknownDomains, d.UnknownDomains)
	f64(&m.UnknownShare, d.UnknownShare)
	str(&m.Response, d.CompromisedResponse)
	r := &a.Refused
	dur(&r.Window, d.Spam.Window)
	f64(&r.Factor, d.Spam.Factor)
	i64(&r.SpamFloor, d.Spam.Floor)
	in(&r.SpamDomains, d.Spam.MinDomains)
	i64(&r.MalwareFloor, d.Malware.Floor)
	in(&r.MalwareDomains, d.Malware.MinDomains)
	i64(&r.BlocklistFloor, d.Blocklisted.Floor)
	in(&r.BlocklistDomains, d.Blocklisted.MinDomains)
	k := &a.Keys
	dur(&k.Window, d.Keys.Window)
	i64(&k.Floor, d.Keys.Floor)
	f64(&k.Factor, d.Keys.Factor)
	dur(&k.AfterRotation, d.AfterRotation)
}

// AlertsConfig converts [alerts] for package alerts (defaults applied).
func (c *Config) AlertsConfig() alerts.Config {
	a := c.Alerts
	out := alerts.Config{Enabled: map[alerts.Kind]bool{}, BaselineDays: a.BaselineDays,
		ForgedResponse: a.Forged.Response, CompromisedResponse: a.Compromised.Response,
		Forged:         alerts.Rule{Window: a.Forged.Window.Duration, Floor: a.Forged.Floor, Factor: a.Forged.Factor},
		Compromised:    alerts.Rule{Window: a.Compromised.Window.Duration, Floor: a.Compromised.Floor, Factor: a.Compromised.Factor},
		Unknown:        alerts.Rule{Window: a.Compromised.Window.Duration, Floor: a.Compromised.UnknownFloor, Factor: a.Compromised.UnknownFactor},
		UnknownDomains: a.Compromised.UnknownDomains, UnknownShare: a.Compromised.UnknownShare,
		Spam:          alerts.Rule{Window: a.Refused.Window.Duration, Floor: a.Refused.SpamFloor, Factor: a.Refused.Factor, MinDomains: a.Refused.SpamDomains},
		Malware:       alerts.Rule{Window: a.Refused.Window.Duration, Floor: a.Refused.MalwareFloor, Factor: a.Refused.Factor, MinDomains: a.Refused.MalwareDomains},
		Blocklisted:   alerts.Rule{Window: a.Refused.Window.Duration, Floor: a.Refused.BlocklistFloor, Factor: a.Refused.Factor, MinDomains: a.Refused.BlocklistDomains},
		Keys:          alerts.Rule{Window: a.Keys.Window.Duration, Floor: a.Keys.Floor, Factor: a.Keys.Factor},
		AfterRotation: a.Keys.AfterRotation.Duration,
	}
	if a.MinHistory != nil {
		out.MinHistory = a.MinHistory.Duration
	}
	if a.ClearAfter != nil {
		out.ClearAfter = a.ClearAfter.Duration
	}
	if a.Snooze != nil {
		out.Snooze = a.Snooze.Duration
	}
	for _, d := range a.Detectors {
		if k, ok := alerts.ParseKind(d); ok {
			out.Enabled[k] = true
		}
	}
	return out
}

// AlertsWebhookSecretFile is the alerts webhook's key file.
func (c *Config) AlertsWebhookSecretFile() string {
	if c.Alerts.WebhookSecretFile != "" {
		return c.Alerts.WebhookSecretFile
	}
	return c.Events.WebhookSecretFile
}

func (c *Config) validateAlerts() error {
	a := c.Alerts
	for _, d := range a.Detectors {
		if _, ok := alerts.ParseKind(d); !ok {
			return fmt.Errorf("alerts.detectors: %q is no detector; want some of forged-domain, compromised-account, refused-spam, refused-malware, blocklisted, key-trouble", d)
		}
	}
	if a.Interval.Duration < time.Second || a.Interval.Duration > time.Hour {
		return fmt.Errorf("alerts.interval = %s: want 1s to 1h", a.Interval.Duration)
	}
	if a.Webhook != "" {
		u, err := url.Parse(a.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("alerts.webhook = %q: want an http(s) URL", a.Webhook)
		}
		if c.AlertsWebhookSecretFile() == "" {
			return fmt.Errorf("alerts.webhook needs alerts.webhook_secret_file (or events.webhook_secret_file): the key of its HMAC signature")
		}
	}
	return c.AlertsConfig().Validate()
}
