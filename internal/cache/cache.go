// Package cache is bounce-milter's shared state: the records of signed
// outbound mail that let a later bounce be recognised, per-tag bounce
// counters (replay limit) and null-sender rate counters (flood control).
//
// The decision engine sees only the Store interface and the types here;
// package backend opens an implementation, so the engine never imports a
// driver:
//
//	internal/cache             interface, types, Config, hashing, breaker,
//	                           flood arithmetic, MemoryStore (tests)
//	internal/cache/boltstore   embedded default: bbolt file <data_dir>/state.db
//	internal/cache/redisstore  Redis standalone, Sentinel or Cluster
//	internal/cache/backend     Open(cfg, dataDir, log) picks one
//	internal/cache/storetest   conformance suite all three pass
//
// # What is stored
//
// For each signed outbound message: a record under a hash of its
// normalised Message-ID (NormalizeMessageID) with the sender, the tag, the
// time, the recipient count and hashes of the recipients, kept for the
// message's TTL (the tag lifetime plus a margin, chosen by the engine); and
// the tag's recipient count, summed over all messages signed with it. For
// each inbound bounce counted: the tag's bounce count, and sliding-window
// null-sender counts per recipient and per client IP. Message-IDs, tags,
// recipients and client IPs appear only as hashes (Hasher: HMAC-SHA256 with
// secret_file, else SHA-256); no message content is stored.
//
// # Replay limit
//
// A tag accepts as many bounces as recipients were signed with it, plus
// replay_slack; beyond that InboundFacts.Replayed is set. One tag covers all
// the mail a user sends in a day, so the budget is the sum over them.
//
// # Flood control
//
// More than flood.recipient_limit counted null-sender messages to one
// recipient within flood.window (sliding), or flood.client_limit from one
// client IP, puts that recipient (or client) in a strict state for
// flood.strict_for: the engine then rejects untagged bounces to it even in
// tag mode. FloodEntered / FloodLeft mark the transitions so that each is
// logged once. Defaults: 30 per recipient and 100 per client IP per 10
// minutes, strict for 1 hour. Windows use the query's clock (q.Now), so all
// backends and all fleet members agree.
//
// # Failure policy
//
// A store call returns within Config.Timeout (250 ms by default) or fails
// with an error matching ErrUnavailable; while the Redis circuit breaker is
// open it fails in microseconds (ErrBreakerOpen). The engine then accepts
// validly tagged bounces and applies its configured action (default
// tempfail) to decisions that need the store. A failed RecordSent is logged
// and counted by the store and must be ignored by the caller: outbound mail
// is never delayed by a store outage.
//
// # Redis URLs (serve --redis URL, [store.redis] url)
//
//	redis://[user:pass@]host[:port][/db]
//	rediss://[user:pass@]host[:port][/db]                        (TLS)
//	redis-sentinel://[user:pass@]host[:port][,host[:port]...]/master[?db=N]
//	rediss-sentinel://...                                        (TLS)
//	redis-cluster://[user:pass@]host[:port][,host[:port]...]
//	rediss-cluster://...                                         (TLS)
//
// Default ports 6379 (26379 for sentinels). For Sentinel the user and
// password are the data nodes'; the sentinels' own are the query
// parameters sentinel_username and sentinel_password. See ParseRedisURL.
package cache

import (
	"context"
	"strings"
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

// Health is implemented by the stores of this module, for metrics and
// health endpoints (assert it: st.(cache.Health)).
type Health interface {
	// BreakerState is "closed", "open" or "half-open" (always "closed" for
	// stores without a breaker).
	BreakerState() string
	// DroppedRecords counts RecordSent writes that failed and were dropped.
	DroppedRecords() uint64
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
	// FloodRecipient, when set, is the key the recipient's flood counter
	// counts under (the address without its sub-address extension, so
	// that user+1@, user+2@... are one recipient); else Recipient.
	FloodRecipient string
	// Delimiter is the recipient's sub-address delimiter (0: none), for
	// SenderMatch.
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
	// SenderMatch is set when Sent's sender is the query's Recipient
	// (without case; or both without a sub-address extension): the
	// record then proves the bounce answers mail its recipient sent.
	SenderMatch bool
	// Gaps are the windows, within the longest record TTL, during which
	// the store may have missed records (an outage whose records were
	// given up, a store that lost its data, the daemon down or killed).
	Gaps []Window
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

// Window is a span of time.
type Window struct{ From, To time.Time }

// FloodKey is the key q's recipient counts under in flood control.
func (q InboundQuery) FloodKey() string {
	if q.FloodRecipient != "" {
		return q.FloodRecipient
	}
	return q.Recipient
}

// SenderMatches reports whether a record's (plain-text, lower-case or not)
// sender is the query's recipient, as SenderMatch defines it.
func (q InboundQuery) SenderMatches(sender string) bool {
	s, r := strings.ToLower(strings.TrimSpace(sender)), strings.ToLower(strings.TrimSpace(q.Recipient))
	if s == "" || r == "" {
		return false
	}
	if s == r {
		return true
	}
	return q.Delimiter != 0 && stripExt(s, q.Delimiter) == stripExt(r, q.Delimiter)
}

func stripExt(addr string, delim byte) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	if i := strings.IndexByte(addr[:at], delim); i > 0 {
		return addr[:i] + addr[at:]
	}
	return addr
}
