// Package evidence declares what the store can tell the decision engine
// about an inbound bounce or auto-reply: the query the engine builds
// (InboundQuery), the store's answer (InboundFacts), the record of a
// signed message (SentRecord) and the gaps in the store's history
// (Window).
//
// They are plain values in a package of their own so that the engine
// (internal/backscatter), which must not do I/O, and the store
// (internal/cache and its backends), which does little else, share them
// without either importing the other. Package cache aliases them.
package evidence

import "time"

// MaxMessageIDs bounds the candidate ids looked up per inbound message
// (References headers can be long; the originals are the first few).
const MaxMessageIDs = 16

// SentRecord is a stored SentMessage as read back.
type SentRecord struct {
	RecipientCount int
	Time           time.Time // when it was signed (whole seconds)
}

// Window is a span of time, From ≤ To. As a gap in the store's history it
// says that records of mail signed then may be missing (lost), or, with
// Unsigned, only that mail may have left unsigned then (bounce-milter was
// down): no record was lost, so a tag's count is still whole.
type Window struct {
	From, To time.Time
	Unsigned bool
}

// Contains reports whether t falls in w (bounds included).
func (w Window) Contains(t time.Time) bool { return !t.Before(w.From) && !t.After(w.To) }

// Overlaps reports whether w and o share an instant.
func (w Window) Overlaps(o Window) bool { return !w.To.Before(o.From) && !o.To.Before(w.From) }

// InboundQuery asks about one inbound bounce or auto-reply.
type InboundQuery struct {
	// MessageIDs are the candidate ids of the original (the DSN's returned
	// original, an auto-reply's In-Reply-To and References).
	MessageIDs []string
	// Tag is the valid tag the bounce was addressed to (lower-cased), or "".
	Tag string
	// Recipient is the untagged recipient (our user): the record's sender
	// must match it (SenderMatch), and it keys the flood counter (without
	// its extension when Delimiter is set). ClientIP is the SMTP client.
	Recipient string
	ClientIP  string
	// Delimiter is the domain's recipient_delimiter (0: none): the sender
	// match and the flood counter ignore the sub-address extension.
	Delimiter byte
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
	// SenderMatch is true when the record's sender is the query's Recipient
	// (lower-cased; exactly, or both without their extension when
	// Delimiter is set): only then is the record evidence for this bounce.
	SenderMatch bool
	// TagRecipients is the number of recipients of all messages signed with
	// the tag (0: no record, replay cannot be judged); TagBounces the number
	// of bounces counted against it, this one included. Bounces to a tag
	// without a record are counted too (for a budget of its own).
	TagRecipients int64
	TagBounces    int64
	// Replayed is true when TagBounces exceeds TagRecipients plus the slack
	// (never when TagRecipients is 0).
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
	// Gaps are the windows in which the store may have missed records (see
	// "Gaps" in the package doc): merged, oldest first, only those ending
	// within MaxTTL of Now, at most MaxGaps. Filled by the store's
	// Recorder (cache.Recorder.Inbound); a bare store leaves it nil.
	Gaps []Window
}
