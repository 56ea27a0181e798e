package alerts

import (
	"fmt"
	"time"
)

// Rule is one detector's thresholds.
type Rule struct {
	// Window is the sliding window counted (default 24h; at most 24h,
	// the retention of the 5-minute buckets).
	Window time.Duration
	// Floor is the least count that raises the alert; Factor multiplies
	// the usual (the busiest baseline day).
	Floor  int64
	Factor float64
	// MinDomains is the least number of distinct recipient domains the
	// refusals come from (refused-spam, refused-malware, blocklisted).
	MinDomains int
}

// Config is the [alerts] section, converted (package config).
type Config struct {
	// Enabled lists the detectors that run (default all).
	Enabled map[Kind]bool
	// BaselineDays is how many days the usual is taken over (default 14);
	// MinHistory how old the statistics must be before anything is
	// raised (default 7 days).
	BaselineDays int
	MinHistory   time.Duration
	// ClearAfter is how long a count must stay below its threshold before
	// the alert clears (default 15 minutes).
	ClearAfter time.Duration
	// Snooze is how long an alert an admin cleared is not raised again
	// (default 24 hours).
	Snooze time.Duration

	Forged Rule
	// Compromised is the volume rule; Unknown the unknown-recipients
	// rule, with UnknownDomains and UnknownShare.
	Compromised, Unknown Rule
	UnknownDomains       int
	UnknownShare         float64
	Spam, Malware        Rule
	Blocklisted          Rule
	Keys                 Rule
	// AfterRotation is how long after a key rotation key-trouble watches
	// (default 7 days).
	AfterRotation time.Duration

	// ForgedResponse is "none" or "strict"; CompromisedResponse "none",
	// "no-sign" or "hold" (default "none": alerts only tell).
	ForgedResponse, CompromisedResponse string
}

// Responses.
const (
	ResponseNone   = "none"
	ResponseStrict = "strict"
	ResponseNoSign = "no-sign"
	ResponseHold   = "hold"
)

// MaxWindow is the longest window: the 5-minute buckets are kept 25 hours.
const MaxWindow = 24 * time.Hour

// Default returns the defaults, which hold at an ordinary site (see
// docs/alerts.md and the tests' simulated months of traffic).
func Default() Config {
	day := 24 * time.Hour
	return Config{
		Enabled:      map[Kind]bool{KindForged: true, KindCompromised: true, KindSpam: true, KindMalware: true, KindBlocklisted: true, KindKeys: true},
		BaselineDays: 14, MinHistory: 7 * day, ClearAfter: 15 * time.Minute, Snooze: day,
		Forged:      Rule{Window: day, Floor: 200, Factor: 3},
		Compromised: Rule{Window: day, Floor: 50, Factor: 4},
		Unknown:     Rule{Window: day, Floor: 30, Factor: 4}, UnknownDomains: 10, UnknownShare: 0.5,
		Spam:           Rule{Window: day, Floor: 10, Factor: 3, MinDomains: 3},
		Malware:        Rule{Window: day, Floor: 3, Factor: 3, MinDomains: 2},
		Blocklisted:    Rule{Window: day, Floor: 3, Factor: 3, MinDomains: 2},
		Keys:           Rule{Window: day, Floor: 20, Factor: 3},
		AfterRotation:  7 * day,
		ForgedResponse: ResponseNone, CompromisedResponse: ResponseNone,
	}
}

// Validate checks a configuration.
func (c Config) Validate() error {
	if c.BaselineDays < 1 || c.BaselineDays > 30 {
		return fmt.Errorf("alerts.baseline_days = %d: want 1-30 (daily statistics are kept 31 days)", c.BaselineDays)
	}
	if c.ClearAfter < 0 || c.Snooze < 0 || c.MinHistory < 0 || c.AfterRotation < 0 {
		return fmt.Errorf("alerts: durations must not be negative")
	}
	for name, r := range map[string]Rule{"forged": c.Forged, "compromised": c.Compromised, "compromised.unknown": c.Unknown,
		"refused.spam": c.Spam, "refused.malware": c.Malware, "refused.blocklist": c.Blocklisted, "keys": c.Keys} {
		if r.Window < 10*time.Second || r.Window > MaxWindow {
			return fmt.Errorf("alerts.%s window = %s: want 10s to 24h", name, r.Window)
		}
		if r.Floor < 1 {
			return fmt.Errorf("alerts.%s floor = %d: want at least 1", name, r.Floor)
		}
		if r.Factor < 1 || r.Factor > 1000 {
			return fmt.Errorf("alerts.%s factor = %g: want 1-1000", name, r.Factor)
		}
		if r.MinDomains < 0 {
			return fmt.Errorf("alerts.%s min_domains = %d: want 0 or more", name, r.MinDomains)
		}
	}
	if c.UnknownShare < 0 || c.UnknownShare > 1 {
		return fmt.Errorf("alerts.compromised unknown_share = %g: want 0-1", c.UnknownShare)
	}
	if c.UnknownDomains < 0 {
		return fmt.Errorf("alerts.compromised unknown_domains = %d: want 0 or more", c.UnknownDomains)
	}
	switch c.ForgedResponse {
	case ResponseNone, ResponseStrict:
	default:
		return fmt.Errorf("alerts.forged response = %q: want none or strict", c.ForgedResponse)
	}
	switch c.CompromisedResponse {
	case ResponseNone, ResponseNoSign, ResponseHold:
	default:
		return fmt.Errorf("alerts.compromised response = %q: want none, no-sign or hold", c.CompromisedResponse)
	}
	return nil
}

// windows are the detectors' windows (for the sample tracker).
func (c Config) windows() []time.Duration {
	return []time.Duration{c.Forged.Window, c.Compromised.Window, c.Unknown.Window, c.Spam.Window, c.Malware.Window,
		c.Blocklisted.Window, c.Keys.Window}
}
