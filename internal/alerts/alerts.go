// Package alerts turns bounce patterns into threat signals: a domain of
// ours being forged (backscatter above its usual rate), an account of ours
// likely compromised (its genuine bounces far above its own usual, or
// mostly unknown recipients at many domains: a harvested list), our mail
// refused as spam or malware or our sending host on block lists (grouped
// by the sending host), and key trouble after a key rotation (refusals of
// tags that do not verify rising while a new key is in use, or after a key
// was removed too early).
//
// This package is the pure part: it holds no connection, reads no clock
// and does no I/O (a test keeps it so). Package alerts/watch reads the
// store's figures (the statistics of package stats, fleet-wide with
// Redis) every [alerts] interval, converts them into an Input, asks an
// Evaluator what to raise and clear, keeps the State in the store (one
// host of a fleet evaluates, under a lease), logs and sends the changes,
// and turns the State into the responses the milter applies
// (backscatter.Responses).
//
// # How a detector decides
//
// Each detector counts something per subject (a domain, a sender, a
// sending host) over a sliding window (default 24 hours) and compares it
// with a threshold:
//
//	threshold = max(floor, ceil(factor × usual))
//
// where usual is the subject's busiest day among the baseline days (the
// last baseline_days complete UTC days before the window began, default
// 14), leaving out the days on which the same alert was active (unless an
// admin cleared it as a false alarm), so that a past attack does not raise
// the bar for the next one. The busiest day,
// not the average, because a mailing list or a newsletter bounces in
// bursts: a list that gets 60 bounces every Monday morning has a usual of
// 60, and its Monday is not an alarm. A subject without history has a
// usual of 0 and meets the floor alone, so a quiet new install does not
// alarm on a handful of bounces, and nothing is raised until the
// statistics are min_history old (default 7 days): before, nobody's usual
// is known (a newsletter's first Monday would look like a harvested list).
//
// An alert is raised when the count reaches the threshold, and cleared
// when it has stayed below it for clear_after (default 15 minutes). The
// window slides at the evaluation's pace: the count is what was added to
// the 5-minute buckets since a sample the evaluator took a window ago, so
// a burst leaves the window a window after it happened, not at a bucket
// boundary (a new evaluator, with no sample old enough yet, counts the
// whole buckets the window touches: at most one bucket too many).
//
// Counts of senders and hosts come from sets that keep their top members
// per bucket (cache.StatsTopKeep): for a subject missing from a full set
// on a baseline day, its usual is taken as that day's smallest kept count
// (an upper bound: a site with many bouncing senders errs towards fewer
// alarms).
//
// # The detectors
//
// See docs/alerts.md for what each alert means and what to do:
//
//   - forged-domain (subject: our domain): suspected backscatter for the
//     domain (the reasons package stats counts as such), with the client
//     networks and claimed reporting MTAs it comes from.
//   - compromised-account (subject: our sender): its genuine bounces
//     reach the threshold (rule "volume"), or its hard userunknown and
//     hostunknown bounces reach their own threshold, come from at least
//     unknown_domains distinct recipient domains and are at least
//     unknown_share of its bounces (rule "unknown-recipients": the
//     pattern of a harvested or bought list).
//   - refused-spam, refused-malware, blocklisted (subject: our sending
//     host, as the bounces name it): genuine bounces whose reason is
//     spamdetected, virusdetected, or whose diagnostic names a block list,
//     from at least min_domains distinct recipient domains (one picky site
//     is not an alarm).
//   - key-trouble (subject: our domain): refusals of bad-signature and
//     unknown-key tags reach the threshold while a key rotation is recent:
//     a key number first signed within after_rotation (and not merely
//     first seen when statistics began), or a key that signed within a
//     tag lifetime is no longer in the key files.
//
// # Admins and responses
//
// An admin clears an alert (bounce-milter alerts clear): it ends at once,
// its response is lifted, and the same alert is not raised again for
// snooze (default 24 hours: the backlog of an attack keeps bouncing for a
// while). Cleared as a false alarm (--false-alarm), its days count as
// usual in later baselines instead of being left out. Responses are off by default: a forged domain can be judged as
// in the flood state while its alert lasts ("strict"), a compromised
// sender's mail left unsigned while its alert lasts ("no-sign") or
// deferred until an admin clears it ("hold"), even after the alert clears
// by itself.
package alerts

import (
	"strings"
	"time"
)

// Kind is what an alert reports.
type Kind string

// The kinds of alert.
const (
	KindForged      Kind = "forged-domain"
	KindCompromised Kind = "compromised-account"
	KindSpam        Kind = "refused-spam"
	KindMalware     Kind = "refused-malware"
	KindBlocklisted Kind = "blocklisted"
	KindKeys        Kind = "key-trouble"
)

// Kinds are all of them, in the order the pages list them.
var Kinds = []Kind{KindForged, KindCompromised, KindSpam, KindMalware, KindBlocklisted, KindKeys}

// ParseKind checks a kind's name.
func ParseKind(s string) (Kind, bool) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// Key names an alert: kind and subject.
func Key(k Kind, subject string) string { return string(k) + "|" + subject }

// SplitKey is Key's inverse.
func SplitKey(key string) (Kind, string, bool) {
	k, s, ok := strings.Cut(key, "|")
	kind, known := ParseKind(k)
	return kind, s, ok && known && s != ""
}

// Alert is one alert, active or cleared.
type Alert struct {
	Kind    Kind      `json:"kind"`
	Subject string    `json:"subject"`
	Started time.Time `json:"started"`
	// Updated is the last evaluation that saw it over its threshold.
	Updated time.Time `json:"updated"`
	// QuietSince is when the count fell below the threshold (zero while it
	// is over).
	QuietSince time.Time `json:"quiet_since,omitzero"`
	Cleared    time.Time `json:"cleared,omitzero"`
	// ClearedBy says who cleared it (ClearedByDetector, ...).
	ClearedBy string `json:"cleared_by,omitempty"`
	// Figures are the latest that kept it over its threshold; Raised the
	// ones that raised it; Peak the highest count while active.
	Figures Figures `json:"figures"`
	Raised  Figures `json:"raised"`
	Peak    int64   `json:"peak"`
	Summary string  `json:"summary"`
	// Evidence links to the monitoring pages (paths).
	Evidence []Link `json:"evidence"`
	// Response is the response in force for it when it was raised or last
	// seen ("strict", "no-sign", "hold"; "" none).
	Response string `json:"response,omitempty"`
}

// Who cleared an alert.
const (
	ClearedByDetector = "detector"    // the count stayed below the threshold for clear_after
	ClearedByAdmin    = "admin"       // bounce-milter alerts clear
	ClearedFalseAlarm = "false-alarm" // bounce-milter alerts clear --false-alarm
	ClearedByConfig   = "config"      // its detector was switched off
)

// Key is the alert's key.
func (a Alert) Key() string { return Key(a.Kind, a.Subject) }

// Active reports whether the alert has not been cleared.
func (a Alert) Active() bool { return a.Cleared.IsZero() }

// Figures are the numbers behind an alert.
type Figures struct {
	// Rule is the rule that matched (compromised-account: "volume" or
	// "unknown-recipients"; the others: "volume").
	Rule string `json:"rule"`
	// Window is the window's length; Count what it holds.
	Window    string `json:"window"`
	Count     int64  `json:"count"`
	Threshold int64  `json:"threshold"`
	// Usual is the busiest baseline day's count, over BaselineDays days
	// (0: none known).
	Usual        int64   `json:"usual"`
	BaselineDays int     `json:"baseline_days"`
	Floor        int64   `json:"floor"`
	Factor       float64 `json:"factor"`
	// Total is all the sender's bounces in the window (rule
	// unknown-recipients); Domains the distinct recipient domains.
	Total   int64 `json:"total,omitempty"`
	Domains int   `json:"distinct_domains,omitempty"`
	// Top are the top members of the evidence: client networks
	// (forged-domain), recipient domains (compromised-account, refusals),
	// block lists (blocklisted); Reporters the claimed reporting MTAs
	// (forged-domain).
	Top       []Member `json:"top,omitempty"`
	Reporters []Member `json:"reporters,omitempty"`
	// Rotation says which key rotation key-trouble follows.
	Rotation string `json:"rotation,omitempty"`
}

// Member is a name with its count.
type Member struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// Link is a link to the evidence on the monitoring pages.
type Link struct {
	Title string `json:"title"`
	Href  string `json:"href"`
}

// Hold is a sender whose mail is deferred until an admin clears it.
type Hold struct {
	Sender string    `json:"sender"`
	Since  time.Time `json:"since"`
}

// State is everything the alerts keep: the document stored (one per
// store, so one per fleet with Redis).
type State struct {
	Updated time.Time `json:"updated"`
	// Host is the host that evaluated last.
	Host   string  `json:"host,omitempty"`
	Active []Alert `json:"active"`
	// Recent are the cleared alerts (newest first) for RecentKeep: the
	// pages list them and the baselines leave their days out.
	Recent []Alert `json:"recent"`
	Holds  []Hold  `json:"holds"`
	// Snoozed are the alerts an admin cleared, by key, with the time
	// until which they are not raised again.
	Snoozed map[string]time.Time `json:"snoozed,omitempty"`
	// LearningUntil is when the rate detectors begin (zero: they run).
	LearningUntil time.Time `json:"learning_until,omitzero"`
}

// Bounds of the state.
const (
	MaxActive  = 200
	MaxRecent  = 200
	MaxHolds   = 200
	MaxSnoozed = 400
	RecentKeep = 31 * 24 * time.Hour
	// MaxTop bounds the members an alert's figures list.
	MaxTop = 5
)

// Find returns the active alert with key, or nil.
func (s *State) Find(key string) *Alert {
	for i := range s.Active {
		if s.Active[i].Key() == key {
			return &s.Active[i]
		}
	}
	return nil
}

// Transition is an alert raised or cleared by an evaluation.
type Transition struct {
	Alert  Alert `json:"alert"`
	Raised bool  `json:"raised"` // else cleared
}

// State names for the webhook and the log.
func (t Transition) State() string {
	if t.Raised {
		return "raised"
	}
	return "cleared"
}
