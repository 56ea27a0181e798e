// Package events records what genuine bounces tell our senders: one Event
// per bounced recipient of every bounce bounce-milter delivers (to a valid
// tag, or untagged with evidence that we sent the original), per delayed
// recipient of a delay notice, and per auto-reply. Backscatter never
// becomes an event. Events go to the store (the embedded one, or Redis so
// that every host of a fleet sees the fleet's events), to an optional
// webhook, and to the command line (bounce-milter events, suppressions),
// never on the milter's path: a bounce is decided as fast without them,
// and a store or webhook that cannot take them drops events (counted),
// never mail.
//
// # Privacy
//
// An event holds third-party addresses: the recipient that bounced. They
// are kept for the retention configured ([events] retention, default 30
// days) and no longer; with [events] hash_recipients they are stored only
// as keyed hashes (HMAC-SHA256 with the store's secret), which still lets
// suppressions and statistics count per recipient without keeping the
// address.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Kind is what an event reports.
type Kind string

// Kinds of event.
const (
	KindBounce    Kind = "bounce"    // a recipient failed (Action: failed)
	KindDelay     Kind = "delay"     // a recipient is delayed (Action: delayed): soft
	KindAutoreply Kind = "autoreply" // the recipient answered automatically (away, moved)
)

// Event is one thing a genuine bounce or auto-reply told us.
type Event struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// Sender is our user the bounce is for (untagged); Domain its domain.
	Sender string `json:"sender"`
	Domain string `json:"domain"`
	// MessageID is the original's Message-ID, when the bounce returns it.
	MessageID string `json:"message_id,omitempty"`
	// Recipient is the remote address that bounced (or answered); with
	// hash_recipients, its keyed hash ("h:" + hex).
	Recipient    string `json:"recipient"`
	Action       string `json:"action,omitempty"`
	Status       string `json:"status,omitempty"`
	Diagnostic   string `json:"diagnostic,omitempty"`
	ReportingMTA string `json:"reporting_mta,omitempty"`
	RemoteMTA    string `json:"remote_mta,omitempty"`
	// Reason is sisimai's taxonomy (userunknown, mailboxfull, ...; see
	// package bounce); Hard says the address itself failed for good.
	Reason string `json:"reason"`
	Hard   bool   `json:"hard"`
	// Evidence is what made the bounce genuine: "valid-tag" or the
	// evidence ladder's rung ("store", "dkim", "relay").
	Evidence string `json:"evidence"`
	QueueID  string `json:"queue_id,omitempty"`
	Host     string `json:"host,omitempty"` // the fleet member that saw it
	// RecipientDomain is the remote recipient's domain (with
	// hash_recipients, its keyed hash): the alerts count the distinct
	// domains a sender's mail bounced from.
	RecipientDomain string `json:"recipient_domain,omitempty"`
	// SendingHost is our host that handed the original to the site that
	// refused it (an address when known, else a name; "" when the bounce
	// does not tell): see SendingHost.
	SendingHost string `json:"sending_host,omitempty"`
	// Blocklists are the block lists the diagnostic names (bounce.Blocklists).
	Blocklists []string `json:"blocklists,omitempty"`
}

// NewID returns a unique, time-ordered event id: the time in
// microseconds, then 8 random bytes.
func NewID(t time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b[:])
}
