// Package stats counts what the monitoring pages show (package web): the
// decisions over time by direction, verdict, reason and domain; for
// suspected backscatter, the recipients it targets, the client networks
// and claimed reporting MTAs it comes from and the senders of replayed
// tags; when the flood (strict) state was entered and left; and the
// messages signed per key number.
//
// The milter and the policy service report every decision to an
// Aggregator (through their observers: Decided, Signed, FloodChanged),
// which only adds to maps in memory under a mutex: counting never adds a
// store round trip to a message. Every Interval (5 s) the Aggregator
// writes what it holds to the store in one transaction or pipeline
// (cache.StatsStore), in 5-minute buckets (kept 25 hours) and daily
// buckets (kept 31 days), so that with Redis every host shows the fleet's
// figures. While the store cannot take them, the figures are kept and
// retried, bounded (MaxPendingBuckets, MaxMembers, MaxCounters per
// bucket); what the bounds refuse is counted (Status.Dropped), never
// waited for.
//
// # Suspected backscatter
//
// The flood figures (the sets "rcpt", "net", "mta", "replay") count the
// inbound decisions whose reason says the bounce answers nothing we sent,
// or cannot be shown to: no-evidence, flood, grace (no evidence, but
// accepted during the grace period), replayed, bad-signature, expired,
// unknown-key and malformed. A recipient is counted as flood control
// counts it (lower case, without its sub-address extension); a client by
// its network (/24 for IPv4, /48 for IPv6); a reporting MTA as the bounce
// names it (Reporting-MTA or the text), which whoever sent the bounce
// chose, hence "claimed".
//
// # Figures for the alerts
//
// Package alerts watches these figures for threats; besides the counters
// above, the Aggregator keeps for it, from the bounce events of genuine
// bounces (Bounced: failures only, not delays or auto-replies):
//
//	sb    our sender → its genuine bounces
//	su    our sender → its hard userunknown/hostunknown bounces
//	sud   "sender|recipient domain" of those (distinct domains)
//	rf    "kind|sending host" → refusals of our mail: kind spam
//	      (spamdetected), malware (virusdetected), blocklist (the
//	      diagnostic names a block list)
//	rfd   "kind|sending host|recipient domain" of those
//	rfl   "sending host|list" → refusals naming a block list
//
// and, for suspected backscatter, per domain of ours:
//
//	dn    "domain|client network"
//	dm    "domain|claimed reporting MTA"
//
// (sending host "unknown" when the bounce does not tell), and the kept
// value "keyfirst:<n>", the first time key n signed (with
// "keyfirst-since", when that began to be recorded). All of them are sets
// trimmed to their top members like the others: bounded whatever the
// senders and hosts.
//
// # Counter names
//
//	d|<direction>|<verdict>|<reason>|<domain>   decisions (both widths)
//	k|<key number>                              envelope senders signed (daily)
//
// Every label comes from a closed set (verdicts, the engine's reasons,
// our domains), anything else counts as "other", as in package metrics:
// whoever sends mail cannot grow the counters. Kept values: "key:<n>"
// (the last time key n signed, unix seconds) and "since" (when statistics
// began).
package stats

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/labels"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

// Set names.
const (
	SetRecipients = "rcpt"
	SetNetworks   = "net"
	SetReporters  = "mta"
	SetReplayed   = "replay"
)

// Sets are the flood sets, in the order the pages show them.
var Sets = []string{SetRecipients, SetNetworks, SetReporters, SetReplayed}

// The alerts' sets (see the package doc).
const (
	SetSenderBounces        = "sb"
	SetSenderUnknown        = "su"
	SetSenderUnknownDomains = "sud"
	SetRefused              = "rf"
	SetRefusedDomains       = "rfd"
	SetRefusedLists         = "rfl"
	SetDomainNetworks       = "dn"
	SetDomainReporters      = "dm"
)

// AlertSets are the sets the alerts read.
var AlertSets = []string{SetSenderBounces, SetSenderUnknown, SetSenderUnknownDomains, SetRefused, SetRefusedDomains,
	SetRefusedLists, SetDomainNetworks, SetDomainReporters}

// Kinds of refusal of our mail (set rf).
const (
	RefusedSpam      = "spam"
	RefusedMalware   = "malware"
	RefusedBlocklist = "blocklist"
)

// UnknownHost is the sending host of a refusal that does not tell.
const UnknownHost = "unknown"

// Sep separates the parts of a member ("sender|domain").
const Sep = "|"

// Kept values of the key numbers' first use.
const (
	KeyFirstPrefix = "keyfirst:"
	KeyFirstSince  = "keyfirst-since"
)

// Other is the label of anything outside a label's closed set.
const Other = labels.Other

// Directions and verdicts.
const (
	Inbound   = "inbound"
	Outbound  = "outbound"
	Signed    = "signed"
	NotSigned = "not-signed"
)

// InboundVerdicts and OutboundVerdicts are the verdicts counted.
var (
	InboundVerdicts  = []string{"accept", "quarantine", "tempfail", "reject"}
	OutboundVerdicts = []string{Signed, NotSigned}
)

var (
	directionSet = labels.Set(Inbound, Outbound)
	verdictSet   = labels.Set(append(append([]string{}, InboundVerdicts...), OutboundVerdicts...)...)
	reasonSet    = func() map[string]bool {
		m := map[string]bool{}
		for _, r := range backscatter.Reasons {
			m[string(r)] = true
		}
		return m
	}()
	suspect = labels.Set(string(backscatter.ReasonBackscatter), string(backscatter.ReasonFlood), string(backscatter.ReasonGrace),
		string(backscatter.ReasonReplayed), string(backscatter.ReasonBadSignature), string(backscatter.ReasonExpired),
		string(backscatter.ReasonUnknownKey), string(backscatter.ReasonMalformed))
)

// Suspect reports whether an inbound decision's reason counts as
// suspected backscatter (see the package doc).
func Suspect(reason string) bool { return suspect[reason] }

// Decision is what the milter and the policy service tell of one
// decision.
type Decision struct {
	Time      time.Time // zero: now
	Direction string    // Inbound or Outbound
	// Verdict: accept, quarantine, tempfail, reject (inbound); signed,
	// not-signed (outbound). Reason: the engine's (backscatter.Reason).
	Verdict, Reason string
	Domain          string // the recipient's (inbound) or sender's (outbound) domain
	// Inbound: the recipient as flood control counts it (our user), the
	// SMTP client's IP, and the bounce's claimed reporting MTA ("" when
	// the body was not read).
	Recipient, Client, ReportingMTA string
}

// FloodChange is a recipient or client entering or leaving the flood
// (strict) state, as the store reported it to one message.
type FloodChange struct {
	Time    time.Time // zero: now
	Entered bool      // entered, else left
	// The message's recipient (flood key) and client; which of them is
	// (or was) strict.
	Recipient, Client             string
	RecipientStrict, ClientStrict bool
}

// Mark is a stored FloodChange (the marks' text is its JSON).
type Mark struct {
	Time            time.Time `json:"time"`
	Entered         bool      `json:"entered"`
	Recipient       string    `json:"recipient,omitempty"`
	Client          string    `json:"client,omitempty"`
	RecipientStrict bool      `json:"recipient_strict,omitempty"`
	ClientStrict    bool      `json:"client_strict,omitempty"`
}

// Bounds of what is kept in memory between writes (and while the store
// cannot take them).
const (
	// MaxPendingBuckets bounds the time buckets held: about 24 hours of
	// 5-minute buckets, and the days they fall in. Beyond it the oldest
	// go (counted in Status.Dropped).
	MaxPendingBuckets = 300
	// MaxMembers bounds the new members of one set of one bucket.
	MaxMembers = 1000
	// MaxCounters bounds the counters of one bucket.
	MaxCounters = 4096
	// maxLabel bounds an address or host name kept.
	maxLabel = 255
)

// Options configure an Aggregator.
type Options struct {
	Store cache.StatsStore
	// Interval between writes (default 5 s); Timeout bounds one write
	// (default 5 s).
	Interval, Timeout time.Duration
	Logger            *slog.Logger
	// LogEvery is the interval of the line logged while writes fail
	// (default 1 minute).
	LogEvery time.Duration
	Now      func() time.Time
}

// Status is the Aggregator's state, for the pages and metrics.
type Status struct {
	PendingBuckets int       `json:"pending_buckets"`
	Dropped        uint64    `json:"dropped"`
	Writes         uint64    `json:"writes"`
	FailedWrites   uint64    `json:"failed_writes"`
	LastWrite      time.Time `json:"last_write"`
	LastError      string    `json:"last_error,omitempty"`
}

type bkey struct {
	w     time.Duration
	start int64
}

type delta struct {
	counts map[string]int64
	sets   map[string]map[string]int64
	marks  []cache.StatsMark
}

func newDelta() *delta {
	return &delta{counts: map[string]int64{}, sets: map[string]map[string]int64{}}
}

// Aggregator counts decisions in memory and writes them to the store in
// batches. Safe for concurrent use; the observer methods never block on
// the store.
type Aggregator struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	pending  map[bkey]*delta
	max, min map[string]int64
	failing  bool
	lastLog  time.Time

	domains labels.Domains
	dropped atomic.Uint64

	writeMu   sync.Mutex // one write at a time
	writes    atomic.Uint64
	failed    atomic.Uint64
	lastWrite atomic.Int64
	lastErr   atomic.Pointer[string]

	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// New returns an Aggregator; Start begins its writes.
func New(o Options) *Aggregator {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.LogEvery <= 0 {
		o.LogEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Aggregator{o: o, log: o.Logger, pending: map[bkey]*delta{}, max: map[string]int64{}, min: map[string]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	a.SetDomains(nil)
	return a
}

// SetDomains sets our domains: the only values the domain label takes
// besides "other" (at start and every reload).
func (a *Aggregator) SetDomains(names []string) {
	a.domains.Replace(names)
}

func (a *Aggregator) domain(d string) string {
	return a.domains.Label(d)
}

func clip(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > maxLabel {
		s = s[:maxLabel]
	}
	return s
}

// Network is the network a client IP is counted under: its /24 (IPv4)
// or /48 (IPv6); "" when ip is not an address.
func Network(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// bucketsLocked returns the fine and daily deltas of time t.
func (a *Aggregator) bucketsLocked(t time.Time) (fine, daily *delta) {
	get := func(w time.Duration) *delta {
		k := bkey{w, t.Truncate(w).Unix()}
		d := a.pending[k]
		if d == nil {
			d = newDelta()
			a.pending[k] = d
			a.boundLocked()
		}
		return d
	}
	return get(cache.StatsFine), get(cache.StatsDaily)
}

// boundLocked drops the oldest buckets beyond MaxPendingBuckets.
func (a *Aggregator) boundLocked() {
	for len(a.pending) > MaxPendingBuckets {
		var oldest bkey
		first := true
		for k := range a.pending {
			if first || k.start < oldest.start || (k.start == oldest.start && k.w < oldest.w) {
				oldest, first = k, false
			}
		}
		var n int64
		for _, c := range a.pending[oldest].counts {
			n += c
		}
		a.dropped.Add(uint64(max(n, 1)))
		delete(a.pending, oldest)
	}
}

func (a *Aggregator) count(d *delta, name string, n int64) {
	if _, ok := d.counts[name]; !ok && len(d.counts) >= MaxCounters {
		a.dropped.Add(1)
		return
	}
	d.counts[name] += n
}

func (a *Aggregator) member(d *delta, set, m string, n int64) {
	if m == "" {
		return
	}
	s := d.sets[set]
	if s == nil {
		s = map[string]int64{}
		d.sets[set] = s
	}
	if _, ok := s[m]; !ok && len(s) >= MaxMembers {
		a.dropped.Add(1)
		return
	}
	s[m] += n
}

func (a *Aggregator) now(t time.Time) time.Time {
	if t.IsZero() {
		return a.o.Now()
	}
	return t
}

// Decided counts one decision (milter and policy observers).
func (a *Aggregator) Decided(d Decision) {
	t := a.now(d.Time)
	dir := labels.Bounded(directionSet, d.Direction)
	verdict := labels.Bounded(verdictSet, d.Verdict)
	reason := labels.Bounded(reasonSet, d.Reason)
	name := "d|" + dir + "|" + verdict + "|" + reason + "|" + a.domain(d.Domain)

	var rcpt, net, mta, replay string
	dom := a.domain(d.Domain)
	if dir == Inbound && suspect[reason] {
		rcpt, net, mta = clip(d.Recipient), Network(d.Client), clip(d.ReportingMTA)
		if reason == string(backscatter.ReasonReplayed) {
			replay = rcpt
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fine, daily := a.bucketsLocked(t)
	for _, b := range []*delta{fine, daily} {
		a.count(b, name, 1)
		if rcpt != "" || net != "" || mta != "" {
			a.member(b, SetRecipients, rcpt, 1)
			a.member(b, SetNetworks, net, 1)
			a.member(b, SetReporters, mta, 1)
			a.member(b, SetReplayed, replay, 1)
			if dom != Other {
				if net != "" {
					a.member(b, SetDomainNetworks, dom+Sep+net, 1)
				}
				if mta != "" {
					a.member(b, SetDomainReporters, dom+Sep+mta, 1)
				}
			}
		}
	}
	a.firstLocked(t)
}

func (a *Aggregator) firstLocked(t time.Time) {
	if v, ok := a.min["since"]; !ok || t.Unix() < v {
		a.min["since"] = t.Unix()
	}
}

// Signed counts one envelope sender signed with key keyNum (milter
// observer); its decision is counted by Decided.
func (a *Aggregator) Signed(domain string, keyNum int) {
	if keyNum < 0 || keyNum > 9 {
		return
	}
	t := a.o.Now()
	k := strconv.Itoa(keyNum)
	a.mu.Lock()
	defer a.mu.Unlock()
	_, daily := a.bucketsLocked(t)
	a.count(daily, "k|"+k, 1)
	if v := a.max["key:"+k]; t.Unix() > v {
		a.max["key:"+k] = t.Unix()
	}
	for _, n := range []string{KeyFirstPrefix + k, KeyFirstSince} {
		if v, ok := a.min[n]; !ok || t.Unix() < v {
			a.min[n] = t.Unix()
		}
	}
	a.firstLocked(t)
}

// Bounced counts a bounce event of a genuine bounce for the alerts (see
// the package doc): failures only.
func (a *Aggregator) Bounced(e events.Event) {
	if e.Kind != events.KindBounce || e.Sender == "" {
		return
	}
	t := a.now(e.Time)
	sender := clip(e.Sender)
	rdom := clip(e.RecipientDomain)
	if rdom == "" {
		rdom = "?"
	}
	unknown := e.Hard && (e.Reason == string(bounce.ReasonUserUnknown) || e.Reason == string(bounce.ReasonHostUnknown))
	host := clip(e.SendingHost)
	if host == "" {
		host = UnknownHost
	}
	var kinds []string
	switch e.Reason {
	case string(bounce.ReasonSpamDetected):
		kinds = append(kinds, RefusedSpam)
	case string(bounce.ReasonVirusDetected):
		kinds = append(kinds, RefusedMalware)
	}
	if len(e.Blocklists) > 0 {
		kinds = append(kinds, RefusedBlocklist)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fine, daily := a.bucketsLocked(t)
	for _, b := range []*delta{fine, daily} {
		a.member(b, SetSenderBounces, sender, 1)
		if unknown {
			a.member(b, SetSenderUnknown, sender, 1)
			a.member(b, SetSenderUnknownDomains, sender+Sep+rdom, 1)
		}
		for _, k := range kinds {
			a.member(b, SetRefused, k+Sep+host, 1)
			a.member(b, SetRefusedDomains, k+Sep+host+Sep+rdom, 1)
		}
		for i, l := range e.Blocklists {
			if i == 4 {
				break
			}
			a.member(b, SetRefusedLists, host+Sep+clip(l), 1)
		}
	}
	a.firstLocked(t)
}

// FloodChanged records a recipient or client entering or leaving the
// flood (strict) state.
func (a *Aggregator) FloodChanged(f FloodChange) {
	t := a.now(f.Time)
	m := Mark{Time: t.UTC(), Entered: f.Entered, Recipient: clip(f.Recipient), Client: clip(f.Client),
		RecipientStrict: f.RecipientStrict, ClientStrict: f.ClientStrict}
	if len(m.Recipient) > 200 {
		m.Recipient = m.Recipient[:200]
	}
	text, _ := json.Marshal(m)
	mk := cache.StatsMark{Time: t, Text: string(text)}
	a.mu.Lock()
	defer a.mu.Unlock()
	fine, daily := a.bucketsLocked(t)
	for _, b := range []*delta{fine, daily} {
		b.marks = append(b.marks, mk)
		if over := len(b.marks) - cache.StatsMaxMarks; over > 0 {
			a.dropped.Add(uint64(over))
			b.marks = append([]cache.StatsMark(nil), b.marks[over:]...)
		}
	}
}

// take removes and returns everything pending.
func (a *Aggregator) take() (cache.StatsWrite, map[bkey]*delta, map[string]int64, map[string]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, mx, mn := a.pending, a.max, a.min
	a.pending, a.max, a.min = map[bkey]*delta{}, map[string]int64{}, map[string]int64{}
	w := cache.StatsWrite{Max: mx, Min: mn}
	for k, d := range p {
		w.Buckets = append(w.Buckets, cache.StatsBucket{Width: k.w, Start: time.Unix(k.start, 0).UTC(), Counts: d.counts, Sets: d.sets, Marks: d.marks})
	}
	return w, p, mx, mn
}

// putBack merges a write that failed into what came since.
func (a *Aggregator) putBack(p map[bkey]*delta, mx, mn map[string]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, d := range p {
		cur := a.pending[k]
		if cur == nil {
			a.pending[k] = d
			continue
		}
		for n, c := range d.counts {
			a.count(cur, n, c)
		}
		for s, ms := range d.sets {
			for m, c := range ms {
				a.member(cur, s, m, c)
			}
		}
		cur.marks = append(d.marks, cur.marks...)
		if over := len(cur.marks) - cache.StatsMaxMarks; over > 0 {
			a.dropped.Add(uint64(over))
			cur.marks = cur.marks[over:]
		}
	}
	a.boundLocked()
	for k, v := range mx {
		if v > a.max[k] {
			a.max[k] = v
		}
	}
	for k, v := range mn {
		if c, ok := a.min[k]; !ok || v < c {
			a.min[k] = v
		}
	}
}

// Flush writes what is pending now, in one store call; on failure it
// keeps it for the next write.
func (a *Aggregator) Flush(ctx context.Context) error {
	if a.o.Store == nil {
		return nil
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	w, p, mx, mn := a.take()
	if len(w.Buckets) == 0 && len(mx) == 0 && len(mn) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	err := a.o.Store.AddStats(ctx, w)
	now := a.o.Now()
	if err != nil {
		a.failed.Add(1)
		msg := err.Error()
		a.lastErr.Store(&msg)
		a.putBack(p, mx, mn)
		a.mu.Lock()
		logIt := !a.failing || now.Sub(a.lastLog) >= a.o.LogEvery
		if logIt {
			a.failing, a.lastLog = true, now
		}
		n := len(a.pending)
		a.mu.Unlock()
		if logIt {
			a.log.Warn("statistics: the store cannot take them; kept in memory and retried", "buckets", n, "dropped", a.dropped.Load(), "err", err)
		}
		return err
	}
	a.writes.Add(1)
	a.lastWrite.Store(now.UnixNano())
	a.lastErr.Store(nil)
	a.mu.Lock()
	recovered := a.failing
	a.failing = false
	a.mu.Unlock()
	if recovered {
		a.log.Info("statistics: written to the store again", "dropped", a.dropped.Load())
	}
	return nil
}

// Start begins writing every Interval until Close.
func (a *Aggregator) Start() {
	if !a.started.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer close(a.done)
		t := time.NewTicker(a.o.Interval)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				_ = a.Flush(context.Background())
			}
		}
	}()
}

// Close stops the writes and writes what is pending (within ctx).
func (a *Aggregator) Close(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		close(a.stop)
		if a.started.Load() {
			select {
			case <-a.done:
			case <-ctx.Done():
			}
		}
		err = a.Flush(ctx)
	})
	return err
}

// Status returns the Aggregator's state.
func (a *Aggregator) Status() Status {
	a.mu.Lock()
	n := len(a.pending)
	a.mu.Unlock()
	s := Status{PendingBuckets: n, Dropped: a.dropped.Load(), Writes: a.writes.Load(), FailedWrites: a.failed.Load()}
	if t := a.lastWrite.Load(); t != 0 {
		s.LastWrite = time.Unix(0, t).UTC()
	}
	if e := a.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}
