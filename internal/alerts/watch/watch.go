// Package watch runs the alerts (package alerts) in the daemon: every
// interval (default 1 minute) it takes or renews the evaluation lease in
// the store; the host that holds it reads the statistics (package stats:
// the fleet's, with Redis), converts them into an alerts.Input, applies
// the admins' clear requests, evaluates, stores the new state, and only
// once the store took it logs each alert raised or cleared (one line
// each) and sends it to the webhook, so that a fleet tells each change
// once. Every other host reads the stored state. Every host turns the
// state into its View (the pages, the metrics, the API) and into the
// responses its milter applies (backscatter.Responses).
//
// Nothing here is on the message path: the milter only loads the
// responses' snapshot (an atomic pointer). A store that cannot answer
// leaves the last state in force and is logged once a minute.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// Sender takes what changed for the webhook (events.Webhook).
type Sender interface {
	SendJSON(id, typ string, v any)
}

// Options configure a Watcher.
type Options struct {
	Stats  cache.StatsStore
	Alerts cache.AlertStore
	// Agg, when set, writes this host's latest figures before each
	// evaluation.
	Agg    *stats.Aggregator
	Config alerts.Config
	// Interval between evaluations (default 1 minute).
	Interval time.Duration
	// Holder names this host for the lease (host name and instance).
	Holder string
	// Keys returns our domains' keys as the engine in force has them.
	Keys   func() []alerts.DomainKeys
	Logger *slog.Logger
	// Webhook, when set, gets every alert raised and cleared.
	Webhook Sender
	// Timeout bounds one round's store calls (default 10 s).
	Timeout time.Duration
	Now     func() time.Time
}

// View is what this host knows of the alerts now.
type View struct {
	State alerts.State `json:"state"`
	// Leader says this host evaluates; Evaluated is when it last did, or
	// when it last read the state (Loaded).
	Leader    bool      `json:"evaluating_here"`
	Evaluated time.Time `json:"evaluated,omitzero"`
	Loaded    time.Time `json:"loaded,omitzero"`
	// Err is the last round's error, "" when it went well.
	Err string `json:"error,omitempty"`
	// Responses are the responses in force (nil: none).
	Responses *backscatter.Responses `json:"-"`
	Config    alerts.Config          `json:"-"`
}

// Watcher is the alerts' service.
type Watcher struct {
	o    Options
	log  *slog.Logger
	ev   *alerts.Evaluator
	view atomic.Pointer[View]
	cfg  atomic.Pointer[alerts.Config]

	mu        sync.Mutex // one round at a time
	leader    bool
	lastLog   time.Time
	rounds    atomic.Uint64
	failures  atomic.Uint64
	raisedN   atomic.Uint64
	clearedN  atomic.Uint64
	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

// New returns a Watcher; Start begins its rounds.
func New(o Options) *Watcher {
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Holder == "" {
		o.Holder = "bounce-milter"
	}
	w := &Watcher{o: o, log: o.Logger, ev: alerts.NewEvaluator(o.Config), stop: make(chan struct{}), done: make(chan struct{})}
	cfg := o.Config
	w.cfg.Store(&cfg)
	w.view.Store(&View{Config: cfg, State: alerts.State{Active: []alerts.Alert{}, Recent: []alerts.Alert{}, Holds: []alerts.Hold{}}})
	return w
}

// SetConfig replaces the configuration (a reload): thresholds, detectors
// and responses apply from the next round; the responses of the state in
// force are recomputed at once.
func (w *Watcher) SetConfig(cfg alerts.Config) {
	w.cfg.Store(&cfg)
	v := *w.view.Load()
	v.Config = cfg
	v.Responses = alerts.Responses(v.State, cfg)
	w.view.Store(&v)
}

// View returns what this host knows of the alerts now.
func (w *Watcher) View() *View { return w.view.Load() }

// Responses returns the responses in force (nil: none); the milter calls
// it per message.
func (w *Watcher) Responses() *backscatter.Responses { return w.view.Load().Responses }

// Start begins a round every interval until Close; the first at once.
func (w *Watcher) Start() {
	w.startOnce.Do(func() {
		go func() {
			defer close(w.done)
			t := time.NewTicker(w.o.Interval)
			defer t.Stop()
			for {
				_ = w.Round(context.Background())
				select {
				case <-w.stop:
					return
				case <-t.C:
				}
			}
		}()
	})
}

// Close stops the rounds (within ctx).
func (w *Watcher) Close(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stop) })
	// Never started: nothing to wait for.
	w.startOnce.Do(func() { close(w.done) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats are the Watcher's counters (metrics).
type Stats struct {
	Rounds, Failures, Raised, Cleared uint64
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	return Stats{Rounds: w.rounds.Load(), Failures: w.failures.Load(), Raised: w.raisedN.Load(), Cleared: w.clearedN.Load()}
}

// RequestClear records an admin's request to clear an alert; the host
// that evaluates applies it at its next round.
func (w *Watcher) RequestClear(ctx context.Context, r alerts.ClearRequest) error {
	if _, _, ok := alerts.SplitKey(r.Key); !ok {
		return fmt.Errorf("alerts: %q names no alert (KIND|SUBJECT)", r.Key)
	}
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	return w.o.Alerts.RequestAlertClear(ctx, r.Encode(), w.o.Now())
}

// Round is one round: evaluate under the lease, or read the state.
func (w *Watcher) Round(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rounds.Add(1)
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	cfg := *w.cfg.Load()
	w.ev.SetConfig(cfg)
	now := w.o.Now()
	ttl := max(3*w.o.Interval, 3*time.Second)
	lead, err := w.o.Alerts.AlertLease(ctx, w.o.Holder, ttl)
	if err == nil {
		if lead != w.leader {
			if lead {
				w.log.Info("alerts: evaluating on this host (lease taken)", "holder", w.o.Holder)
			} else {
				w.log.Info("alerts: another host evaluates (lease lost)")
			}
			// What this host saw before is no guide to the windows now.
			w.ev.Reset()
		}
		w.leader = lead
		if lead {
			err = w.evaluate(ctx, cfg, now)
		} else {
			err = w.load(ctx, cfg, now)
		}
	}
	v := *w.view.Load()
	v.Leader = w.leader && err == nil
	if err != nil {
		w.failures.Add(1)
		v.Err = err.Error()
		if now.Sub(w.lastLog) >= time.Minute {
			w.lastLog = now
			w.log.Warn("alerts: cannot evaluate; the last state stays in force", "err", err)
		}
	} else {
		v.Err = ""
	}
	w.view.Store(&v)
	return err
}

// load reads the state another host keeps.
func (w *Watcher) load(ctx context.Context, cfg alerts.Config, now time.Time) error {
	st, err := w.loadState(ctx)
	if err != nil {
		return err
	}
	w.setState(st, cfg, false)
	v := *w.view.Load()
	v.Loaded = now
	w.view.Store(&v)
	return nil
}

func (w *Watcher) loadState(ctx context.Context) (alerts.State, error) {
	doc, err := w.o.Alerts.LoadAlerts(ctx)
	if err != nil {
		return alerts.State{}, fmt.Errorf("loading the alerts: %w", err)
	}
	var st alerts.State
	if len(doc) > 0 {
		if err := json.Unmarshal(doc, &st); err != nil {
			return alerts.State{}, fmt.Errorf("the stored alerts do not read: %w", err)
		}
	}
	return st, nil
}

func (w *Watcher) setState(st alerts.State, cfg alerts.Config, leader bool) {
	if st.Active == nil {
		st.Active = []alerts.Alert{}
	}
	if st.Recent == nil {
		st.Recent = []alerts.Alert{}
	}
	if st.Holds == nil {
		st.Holds = []alerts.Hold{}
	}
	v := *w.view.Load()
	v.State, v.Config, v.Leader = st, cfg, leader
	v.Responses = alerts.Responses(st, cfg)
	w.view.Store(&v)
}

// evaluate is the leader's round.
func (w *Watcher) evaluate(ctx context.Context, cfg alerts.Config, now time.Time) error {
	st, err := w.loadState(ctx)
	if err != nil {
		return err
	}
	if w.o.Agg != nil {
		_ = w.o.Agg.Flush(ctx)
	}
	in, err := w.input(ctx, cfg, now)
	if err != nil {
		return err
	}
	reqs, err := w.o.Alerts.TakeAlertClears(ctx)
	if err != nil {
		return fmt.Errorf("reading clear requests: %w", err)
	}
	var trans []alerts.Transition
	if len(reqs) > 0 {
		st, trans = alerts.ApplyClears(st, reqs, now, cfg.Snooze)
	}
	st, more := w.ev.Evaluate(in, st)
	trans = append(trans, more...)
	st.Host = w.o.Holder
	doc, err := marshalBounded(&st)
	if err == nil {
		err = w.o.Alerts.SaveAlerts(ctx, w.o.Holder, doc)
	}
	if err != nil {
		// Nothing changed then: the requests wait for the next round.
		for k, at := range reqs {
			_ = w.o.Alerts.RequestAlertClear(ctx, k, at)
		}
		if errors.Is(err, cache.ErrNotLeaseHolder) {
			w.leader = false
			return w.load(ctx, cfg, now)
		}
		return fmt.Errorf("saving the alerts: %w", err)
	}
	for _, t := range trans {
		w.tell(t)
	}
	w.setState(st, cfg, true)
	v := *w.view.Load()
	v.Evaluated = now
	w.view.Store(&v)
	return nil
}

// marshalBounded encodes the state within cache.MaxAlertDoc: the oldest
// cleared alerts go first, then the members listed in the figures.
func marshalBounded(st *alerts.State) ([]byte, error) {
	for {
		doc, err := json.Marshal(st)
		if err != nil || len(doc) <= cache.MaxAlertDoc {
			return doc, err
		}
		switch {
		case len(st.Recent) > 0:
			st.Recent = st.Recent[:len(st.Recent)/2]
		case len(st.Snoozed) > 0:
			st.Snoozed = nil
		default:
			trimmed := false
			for i := range st.Active {
				f := &st.Active[i]
				if len(f.Figures.Top)+len(f.Figures.Reporters)+len(f.Raised.Top)+len(f.Raised.Reporters) > 0 {
					f.Figures.Top, f.Figures.Reporters, f.Raised.Top, f.Raised.Reporters = nil, nil, nil, nil
					trimmed = true
				}
			}
			if !trimmed {
				return doc, nil // SaveAlerts refuses it, and says so
			}
		}
	}
}

// Message is the webhook's body for an alert raised or cleared.
type Message struct {
	Type  string       `json:"type"`  // "alert"
	State string       `json:"state"` // "raised" or "cleared"
	Host  string       `json:"host"`  // the host that evaluated
	Alert alerts.Alert `json:"alert"`
}

// tell logs one change and sends it to the webhook.
func (w *Watcher) tell(t alerts.Transition) {
	a := t.Alert
	f := a.Figures
	if t.Raised {
		w.raisedN.Add(1)
		args := []any{"kind", string(a.Kind), "subject", a.Subject, "rule", f.Rule, "count", f.Count, "threshold", f.Threshold,
			"usual", f.Usual, "window", f.Window, "summary", a.Summary}
		if a.Response != "" {
			args = append(args, "response", a.Response)
		}
		w.log.Warn("alert raised", args...)
	} else {
		w.clearedN.Add(1)
		w.log.Info("alert cleared", "kind", string(a.Kind), "subject", a.Subject, "by", a.ClearedBy,
			"started", a.Started.UTC().Format(time.RFC3339), "lasted", a.Cleared.Sub(a.Started).Round(time.Second).String(), "peak", a.Peak)
	}
	if w.o.Webhook != nil {
		id := strings.ReplaceAll(a.Key(), " ", "_") + "@" + a.Started.UTC().Format("20060102T150405Z") + "/" + t.State()
		w.o.Webhook.SendJSON(id, "alert", Message{Type: "alert", State: t.State(), Host: w.o.Holder, Alert: a})
	}
}

// input reads the figures one evaluation needs from the store.
func (w *Watcher) input(ctx context.Context, cfg alerts.Config, now time.Time) (alerts.Input, error) {
	longest := time.Duration(0)
	for _, r := range []alerts.Rule{cfg.Forged, cfg.Compromised, cfg.Unknown, cfg.Spam, cfg.Malware, cfg.Blocklisted, cfg.Keys} {
		longest = max(longest, r.Window)
	}
	in := alerts.Input{Now: now, FineWidth: cache.StatsFine, FineFrom: now.Add(-longest - 3*cache.StatsFine).Truncate(cache.StatsFine)}
	fine, err := w.o.Stats.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsFine, From: in.FineFrom, To: now.Add(cache.StatsFine),
		Sets: stats.AlertSets})
	if err != nil {
		return in, fmt.Errorf("reading statistics: %w", err)
	}
	days := time.Duration(cfg.BaselineDays+2)*24*time.Hour + longest
	daily, err := w.o.Stats.ReadStats(ctx, cache.StatsQuery{Width: cache.StatsDaily, From: now.Add(-days).Truncate(cache.StatsDaily),
		To: now.Add(cache.StatsDaily), Sets: stats.AlertSets})
	if err != nil {
		return in, fmt.Errorf("reading statistics: %w", err)
	}
	latest, err := w.o.Stats.StatsLatest(ctx)
	if err != nil {
		return in, fmt.Errorf("reading statistics: %w", err)
	}
	for _, b := range fine {
		in.Fine = append(in.Fine, Convert(b))
	}
	for _, b := range daily {
		in.Daily = append(in.Daily, Convert(b))
	}
	in.KeyFirst, in.KeyLast = map[int]time.Time{}, map[int]time.Time{}
	for name, v := range latest {
		t := time.Unix(v, 0).UTC()
		switch {
		case name == "since":
			in.Since = t
		case name == stats.KeyFirstSince:
			in.KeyFirstSince = t
		case strings.HasPrefix(name, stats.KeyFirstPrefix):
			if k, ok := keyNum(name[len(stats.KeyFirstPrefix):]); ok {
				in.KeyFirst[k] = t
			}
		case strings.HasPrefix(name, "key:"):
			if k, ok := keyNum(name[len("key:"):]); ok {
				in.KeyLast[k] = t
			}
		}
	}
	if w.o.Keys != nil {
		in.Keys = w.o.Keys()
	}
	return in, nil
}

func keyNum(s string) (int, bool) {
	if len(s) != 1 || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	return int(s[0] - '0'), true
}

// Convert turns a bucket of the store's statistics into the figures the
// detectors read (see package stats for the names).
func Convert(b cache.StatsBucket) alerts.Bucket {
	out := alerts.Bucket{Start: b.Start, Counts: map[alerts.Series]map[string]int64{}, Members: map[alerts.MemberSet]map[string]map[string]int64{},
		Trimmed: map[alerts.Series]bool{}}
	count := func(ser alerts.Series, subj string, n int64) {
		if subj == "" || n <= 0 {
			return
		}
		if out.Counts[ser] == nil {
			out.Counts[ser] = map[string]int64{}
		}
		out.Counts[ser][subj] += n
	}
	member := func(set alerts.MemberSet, subj, m string, n int64) {
		if subj == "" || m == "" || n <= 0 {
			return
		}
		if out.Members[set] == nil {
			out.Members[set] = map[string]map[string]int64{}
		}
		if out.Members[set][subj] == nil {
			out.Members[set][subj] = map[string]int64{}
		}
		out.Members[set][subj][m] += n
	}
	for name, n := range b.Counts {
		parts := strings.Split(name, "|")
		if len(parts) != 5 || parts[0] != "d" || parts[1] != stats.Inbound || parts[4] == stats.Other {
			continue
		}
		reason, dom := parts[3], parts[4]
		if stats.Suspect(reason) {
			count(alerts.SeriesBackscatter, dom, n)
		}
		if reason == string(backscatter.ReasonBadSignature) || reason == string(backscatter.ReasonUnknownKey) {
			count(alerts.SeriesBadTags, dom, n)
		}
	}
	full := func(set string) bool { return len(b.Sets[set]) >= cache.StatsTopKeep }
	for m, n := range b.Sets[stats.SetSenderBounces] {
		count(alerts.SeriesBounces, m, n)
	}
	out.Trimmed[alerts.SeriesBounces] = full(stats.SetSenderBounces)
	for m, n := range b.Sets[stats.SetSenderUnknown] {
		count(alerts.SeriesUnknown, m, n)
	}
	out.Trimmed[alerts.SeriesUnknown] = full(stats.SetSenderUnknown)
	for m, n := range b.Sets[stats.SetSenderUnknownDomains] {
		if i := strings.LastIndex(m, stats.Sep); i > 0 {
			member(alerts.MembersUnknownDomains, m[:i], m[i+1:], n)
		}
	}
	refused := map[string]alerts.Series{stats.RefusedSpam: alerts.SeriesSpam, stats.RefusedMalware: alerts.SeriesMalware, stats.RefusedBlocklist: alerts.SeriesBlocklist}
	refusedDoms := map[string]alerts.MemberSet{stats.RefusedSpam: alerts.MembersSpamDomains, stats.RefusedMalware: alerts.MembersMalwareDomains,
		stats.RefusedBlocklist: alerts.MembersBlocklistDomains}
	for m, n := range b.Sets[stats.SetRefused] {
		if k, host, ok := strings.Cut(m, stats.Sep); ok {
			if ser, known := refused[k]; known {
				count(ser, host, n)
			}
		}
	}
	for _, ser := range refused {
		out.Trimmed[ser] = full(stats.SetRefused)
	}
	for m, n := range b.Sets[stats.SetRefusedDomains] {
		k, rest, ok := strings.Cut(m, stats.Sep)
		if !ok {
			continue
		}
		if i := strings.LastIndex(rest, stats.Sep); i > 0 {
			if set, known := refusedDoms[k]; known {
				member(set, rest[:i], rest[i+1:], n)
			}
		}
	}
	for m, n := range b.Sets[stats.SetRefusedLists] {
		if host, list, ok := strings.Cut(m, stats.Sep); ok {
			member(alerts.MembersLists, host, list, n)
		}
	}
	for m, n := range b.Sets[stats.SetDomainNetworks] {
		if dom, net, ok := strings.Cut(m, stats.Sep); ok {
			member(alerts.MembersNetworks, dom, net, n)
		}
	}
	for m, n := range b.Sets[stats.SetDomainReporters] {
		if dom, mta, ok := strings.Cut(m, stats.Sep); ok {
			member(alerts.MembersReporters, dom, mta, n)
		}
	}
	return out
}
