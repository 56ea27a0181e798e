// Package cache is bounce-milter's shared state: the records of signed
// outbound mail that let a later bounce be recognised, per-tag bounce
// counters (replay limit) and null-sender rate counters (flood control).
//
// The decision engine sees only the Store interface; the embedded (bbolt)
// and Redis implementations live beside it. Every method does at most one
// round trip to its backend, so a message stage costs one store call.
// No message content is stored: Message-IDs and recipients are kept as keyed
// hashes.
package cache

import (
	"context"
	"time"
)

// Store is the state the decision engine needs. Implementations must be safe
// for concurrent use and must return promptly (within the context's deadline)
// when their backend is down, so that the engine can apply its failure policy.
type Store interface {
	// RecordSent records a signed outbound message. One round trip.
	RecordSent(ctx context.Context, m SentMessage) error
	// Inbound answers everything the engine needs to decide about one
	// inbound bounce or auto-reply, and (when q.Count is set) counts it
	// against the tag and the flood counters. One round trip.
	Inbound(ctx context.Context, q InboundQuery) (InboundFacts, error)
	// Ping reports whether the backend answers (for health checks).
	Ping(ctx context.Context) error
	Close() error
}

// SentMessage is what is recorded for a signed outbound message.
type SentMessage struct {
	MessageID  string    // as found in the header, with or without <>; hashed before storing
	Tag        string    // the signed envelope sender (e.g. prvs=0123abcdef=user@example.com), lower-cased
	Sender     string    // untagged envelope sender
	Recipients []string  // envelope recipients; stored as hashes
	Time       time.Time // when it was signed
	TTL        time.Duration
}

// SentRecord is a stored SentMessage as read back.
type SentRecord struct {
	Sender         string
	Tag            string
	RecipientCount int
	Time           time.Time
	// RecipientHashes are Hasher.Recipient of the first MaxStoredRecipients
	// recipients (compare with a Hasher built from the same secret).
	RecipientHashes []string
}

// InboundQuery asks about one inbound bounce or auto-reply.
type InboundQuery struct {
	// MessageIDs are the candidate ids of the original (the DSN's returned
	// original, an auto-reply's In-Reply-To and References).
	MessageIDs []string
	// Tag is the valid tag the bounce was addressed to (lower-cased), or "".
	Tag string
	// Recipient is the untagged recipient (our user); ClientIP the SMTP client.
	Recipient string
	ClientIP  string
	// Count counts this message against the tag's replay budget and the
	// flood counters. The engine sets it once per message and recipient.
	Count bool
	Now   time.Time
}

// InboundFacts is the store's answer to an InboundQuery.
type InboundFacts struct {
	// Sent is the record of the first MessageID found, or nil.
	Sent *SentRecord
	// MatchedMessageID is the id (as given in the query) that matched.
	MatchedMessageID string
	// TagRecipients is the number of recipients of all messages signed with
	// the tag (0: no record, replay cannot be judged); TagBounces the number
	// of bounces counted against it, this one included.
	TagRecipients int64
	TagBounces    int64
	// Replayed is true when TagBounces exceeds TagRecipients plus the slack.
	Replayed bool
	// RecipientStrict and ClientStrict report a flood state: too many
	// null-sender messages to this recipient, or from this client, recently.
	RecipientStrict bool
	ClientStrict    bool
	// FloodEntered is set on the message that tipped a counter over its
	// threshold, so that entering the strict state is logged once.
	FloodEntered bool
	// FloodLeft is set on the first query that finds a strict state over
	// (expired), so that leaving it is logged once. It is reported lazily:
	// only when mail for that recipient or client arrives again.
	FloodLeft bool
}
