// Package cache is bounce-milter's shared state: the records of signed
// outbound mail that let a later bounce be recognised, per-tag bounce
// counters (replay limit) and null-sender rate counters (flood control).
//
// The decision engine (internal/backscatter) imports none of this: it
// builds an evidence.InboundQuery and judges the evidence.InboundFacts the
// adapters bring back (package evidence holds those values, aliased
// here). Package backend opens an implementation, so the adapters never
// import a driver:
//
//	internal/evidence          the query, the facts, SentRecord, Window
//	internal/cache             Store interface, Config, hashing, breaker,
//	                           flood arithmetic, Recorder, MemoryStore
//	internal/cache/boltstore   embedded default: bbolt file <data_dir>/state.db
//	internal/cache/redisstore  Redis standalone, Sentinel or Cluster
//	internal/cache/backend     Open(cfg, dataDir, log) picks one
//	internal/cache/storetest   conformance suite all three pass
//
// # What is stored
//
// For each signed outbound message, a record of 17 bytes (plus 4 per
// punctuation character of the sender's local part, at most 16), kept for
// the message's own TTL (SentMessage.TTL: the tag lifetime plus 3 days, at
// most MaxTTL = 33 days, whatever Config.Retention says): a keyed digest of
// the lower-cased untagged sender (and of its forms without a sub-address
// extension), the signing time, the TTL and the number of recipients
// (record.go has the layout). It is stored under 8 bytes of the digest of
// the normalised Message-ID (NormalizeMessageID). The record does not hold
// the recipients: the replay budget needs their number, and a bounce is
// checked against the sender (InboundFacts.SenderMatch).
//
// For each tag: the number of recipients signed with it (summed over its
// messages) and the number of bounces counted against it, living as long as
// the longest record that fed them (a tag with no record: Retention). For
// flood control: sliding-window null-sender counts per recipient (without
// its extension) and per client IP. For the store's own history (Journal):
// an epoch id, one heartbeat per process, and the gaps.
//
// Message-IDs, tags, addresses and client IPs appear only as digests
// (Hasher: HMAC-SHA256 keyed with secret_file, else SHA-256 with a fixed
// prefix, whose digests of guessable addresses can be confirmed by anyone
// who reads the store); no message content is stored. Records of the first
// format (JSON, with the plain-text sender and tag) are still read until
// they expire; the embedded store converts them when it opens.
//
// Every operation costs the same whatever the number of records (no scan
// on the message path): a lookup reads at most one bucket or hash per
// expiry day in use, and expired data goes whole, a day at a time (bbolt
// drops a day's bucket; Redis expires a day's hashes), so pruning costs no
// more than the writes it follows.
//
// # Replay limit
//
// A tag accepts as many bounces as recipients were signed with it, plus
// replay_slack; beyond that InboundFacts.Replayed is set. One tag covers all
// the mail a user sends in a day, so the budget is the sum over them. A
// bounce to a tag with no record is counted too (TagRecipients 0,
// TagBounces n) so that the engine can give such a tag a small budget.
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
// backends and all fleet members agree. The recipient is counted without
// its sub-address extension (InboundQuery.Delimiter), so "+1", "+2" ... do
// not each get a fresh count. In memory (memory and embedded stores) the
// counters hold at most flood.max_entries keys each (FloodCounter explains
// what is evicted); in Redis every counter key expires.
//
// # Writing records: the Recorder
//
// Signed mail must never wait for the store, and a record the store cannot
// take must not be forgotten. The services record through a Recorder
// (NewRecorder), a Store wrapping the backend: Record queues and returns; a
// writer writes batches (up to 256 records or 100 ms: one bbolt transaction,
// one Redis pipeline), keeps what fails (up to 100,000 records) and retries
// it, spools it to a file at a clean stop (embedded store), and counts and
// logs (once per interval) what it had to give up. Until written, a queued
// record is evidence all the same: Recorder.Inbound looks at the queue.
//
// # What a crash can lose, and gaps
//
// A crash of the daemon loses the records still queued (at most the last
// 100 ms of signed mail, or, while the store was failing, everything kept
// since); the gap from the host's last heartbeat to its restart covers
// them. A Redis without persistence that restarts loses everything; an
// asynchronous replica promoted by a failover may lack the last writes of
// its master. The embedded store loses nothing it committed.
//
// What the store could not have known is a gap (InboundFacts.Gaps, merged
// windows within MaxTTL, kept in the store so that a fleet shares them;
// history.go): records given up; for a shared store, the time records
// waited in a process's outbox; a store that lost its data (noticed by its
// epoch: everything before); the time from a crashed process's last
// heartbeat (every 30 s) to its restart; the downtime between a clean stop
// and the next start (mail may have left unsigned then). A replay count or
// a missing record that falls in a gap says nothing about the bounce: the
// engine must not refuse it permanently on that ground.
//
// # Failure policy
//
// A store call returns within Config.Timeout (250 ms by default) or fails
// with an error matching ErrUnavailable; while the Redis circuit breaker is
// open it fails in microseconds (ErrBreakerOpen). The engine then accepts
// validly tagged bounces and applies its configured action (default
// tempfail) to decisions that need the store. Health.WriteError reports a
// store that answers but cannot write.
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
	"time"

	"github.com/bounce-milter/bounce-milter/internal/evidence"
)

// Store is the state the decision engine needs. Implementations must be safe
// for concurrent use and must return promptly (within the context's deadline)
// when their backend is down, so that the engine can apply its failure policy.
type Store interface {
	// RecordSent records a signed outbound message. One round trip.
	RecordSent(ctx context.Context, m SentMessage) error
	// RecordSentBatch records several messages in one transaction (embedded
	// store) or one pipeline (Redis): what the Recorder writes. Either all
	// are written or the error says the batch failed (a Redis pipeline that
	// failed part-way may have written some; writing a record twice is
	// harmless except for its tag count, so the Recorder retries only
	// batches that failed as a whole).
	RecordSentBatch(ctx context.Context, ms []SentMessage) error
	// Inbound answers everything the engine needs to decide about one
	// inbound bounce or auto-reply, and (when q.Count is set) counts it
	// against the tag and the flood counters. One round trip.
	Inbound(ctx context.Context, q InboundQuery) (InboundFacts, error)
	// Ping reports whether the backend answers (for health checks).
	Ping(ctx context.Context) error
	Close() error
}

// Health is implemented by the stores of this module and by Recorder, for
// metrics and health endpoints (assert it: st.(cache.Health)).
type Health interface {
	// BreakerState is "closed", "open" or "half-open" (always "closed" for
	// stores without a breaker).
	BreakerState() string
	// DroppedRecords counts records that were given up: for a store, writes
	// that failed; for a Recorder, records it could not keep (outbox full,
	// shutdown that could not spool them).
	DroppedRecords() uint64
	// WriteError is the last write failure when no write has succeeded
	// since and it is recent (within WriteErrorWindow): a store that
	// answers reads but cannot write (disk full, Redis read-only replica,
	// OOM) reports it here while Ping still succeeds. nil when writes work.
	WriteError() error
}

// WriteErrorWindow is how long a write failure is reported by
// Health.WriteError when no write was attempted since.
const WriteErrorWindow = 5 * time.Minute

// BatchTimeout bounds one RecordSentBatch. Batches are written in the
// background (Recorder), so they get more than a message's store budget:
// a slow disk or a busy Redis delays records, it does not lose them.
const BatchTimeout = 5 * time.Second

// SentMessage is what is recorded for a signed outbound message.
type SentMessage struct {
	MessageID  string    // as found in the header, with or without <>; hashed before storing
	Tag        string    // the signed envelope sender (e.g. prvs=0123abcdef=user@example.com), lower-cased; hashed
	Sender     string    // untagged envelope sender; only its digest is stored (SenderMatch)
	Recipients []string  // envelope recipients; only their number is stored
	Time       time.Time // when it was signed
	// TTL is how long the record is kept: the tag lifetime plus a margin.
	// 0 takes Config.Retention; at most MaxTTL.
	TTL time.Duration
}

// The values the engine exchanges with the store live in package evidence,
// which does no I/O, so that the engine need not import this package (it
// reads files: the spool, the instance id, the secret). They are aliased
// here for the store's implementations and callers.
type (
	SentRecord   = evidence.SentRecord
	Window       = evidence.Window
	InboundQuery = evidence.InboundQuery
	InboundFacts = evidence.InboundFacts
)
