package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// shortDuration writes 1h0m0s as 1h, 10m0s as 10m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roughly(-d)
	case d < time.Minute:
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// DomainRow is one of our domains as the Overview shows it.
type DomainRow struct {
	Name       string    `json:"name"`
	Mode       string    `json:"mode"`
	Signing    bool      `json:"signing"`
	SigningKey int       `json:"signing_key"` // -1: none
	Lifetime   int       `json:"lifetime_days"`
	Syntax     string    `json:"syntax"`
	InGrace    bool      `json:"in_grace"`
	GraceEnds  time.Time `json:"grace_ends,omitzero"`
	// Effect says when untagged bounces without evidence meet the mode.
	Effect string `json:"effect"`
}

// Overview is the Overview page's data (and /api/overview's answer).
type Overview struct {
	Generated   time.Time      `json:"generated"`
	Version     string         `json:"version"`
	Domain      string         `json:"domain,omitempty"`
	Domains     []DomainRow    `json:"domains"`
	Store       *StoreStatus   `json:"store,omitempty"`
	StrictFor   string         `json:"strict_for"`
	Flood       []stats.Strict `json:"flood_state"`
	Inbound24h  stats.Series   `json:"inbound_24h"`
	Inbound30d  stats.Series   `json:"inbound_30d"`
	Outbound24h stats.Series   `json:"outbound_24h"`
	Outbound30d stats.Series   `json:"outbound_30d"`
}

func (s *server) domains(now time.Time) []DomainRow {
	out := []DomainRow{}
	if s.o.Engine == nil {
		return out
	}
	for _, st := range s.o.Engine().Status(now) {
		d := DomainRow{Name: st.Name, Mode: st.Mode.String(), Signing: st.Sign, SigningKey: st.SigningKey, Lifetime: st.Lifetime,
			Syntax: st.Syntax.String(), InGrace: st.InGraceNow}
		if st.InGraceNow {
			d.GraceEnds = st.GraceEnds.UTC()
		}
		switch {
		case st.Mode == backscatter.ModeOff:
			d.Effect = "not checked"
		case st.InGraceNow:
			d.Effect = "grace period: accepted until " + st.GraceEnds.UTC().Format("2006-01-02 15:04 UTC") + ", then " + st.Mode.String()
		default:
			d.Effect = st.Mode.String() + " in force"
		}
		out = append(out, d)
	}
	return out
}

func (s *server) overview(r *http.Request) (Overview, error) {
	c, cancel := ctx(r)
	defer cancel()
	now := s.o.Now()
	dom := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("domain")))
	o := Overview{Generated: now.UTC(), Version: s.o.Version, Domain: dom, Domains: s.domains(now), StrictFor: shortDuration(s.o.StrictFor)}
	if s.o.Store != nil {
		st := s.o.Store(c)
		o.Store = &st
	}
	var err error
	rd := s.o.Stats
	if o.Inbound24h, err = rd.Decisions(c, stats.Inbound, cache.StatsFine, 288, dom, false); err != nil {
		return o, err
	}
	if o.Inbound30d, err = rd.Decisions(c, stats.Inbound, cache.StatsDaily, 30, dom, false); err != nil {
		return o, err
	}
	if o.Outbound24h, err = rd.Decisions(c, stats.Outbound, cache.StatsFine, 288, dom, false); err != nil {
		return o, err
	}
	if o.Outbound30d, err = rd.Decisions(c, stats.Outbound, cache.StatsDaily, 30, dom, false); err != nil {
		return o, err
	}
	if o.Flood, err = rd.FloodState(c, s.o.StrictFor); err != nil {
		return o, err
	}
	for i := range o.Flood {
		if o.Flood[i].Kind == "recipient" {
			o.Flood[i].Name = s.mask.addr(o.Flood[i].Name)
		}
	}
	return o, nil
}

type overviewPage struct {
	Overview
	Page, Title          string
	Masked               bool
	Now                  time.Time
	In24, In30, Out24    Chart
	Out30                Chart
	InTotals, OutTotals  []stats.Line
	InDomains            []stats.DomainTotal
	Verdicts             []string
	StoreOK, StatsBehind bool
}

func (s *server) overviewPage(w http.ResponseWriter, r *http.Request) {
	o, err := s.overview(r)
	if err != nil {
		s.fail(w, "overview", err, http.StatusServiceUnavailable)
		return
	}
	p := overviewPage{Overview: o, Page: "overview", Title: "Overview", Masked: s.mask.on(), Now: o.Generated,
		In24:     dayChart("in24", "Inbound, last 24 hours (5-minute buckets)", o.Inbound24h),
		In30:     monthChart("in30", "Inbound, last 30 days", o.Inbound30d),
		Out24:    dayChart("out24", "Outbound, last 24 hours (5-minute buckets)", o.Outbound24h),
		Out30:    monthChart("out30", "Outbound, last 30 days", o.Outbound30d),
		InTotals: o.Inbound24h.Lines, OutTotals: o.Outbound24h.Lines, InDomains: o.Inbound24h.Domains,
		Verdicts: stats.InboundVerdicts}
	if o.Store != nil {
		p.StoreOK = o.Store.PingError == "" && o.Store.WriteError == "" && o.Store.Breaker == cache.BreakerClosed
		p.StatsBehind = o.Store.Stats.LastError != ""
	}
	s.render(w, "overview", p)
}

func (s *server) overviewAPI(w http.ResponseWriter, r *http.Request) {
	o, err := s.overview(r)
	if err != nil {
		s.fail(w, "overview", err, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, o)
}

// FloodsData is the Floods page's data (and /api/floods's answer).
type FloodsData struct {
	stats.Floods
	Generated time.Time `json:"generated"`
}

func (s *server) floods(r *http.Request) (FloodsData, stats.Window, error) {
	win, err := stats.ParseWindow(r.URL.Query().Get("window"))
	if err != nil {
		return FloodsData{}, win, errBadRequest{err}
	}
	top := 20
	if t := r.URL.Query().Get("top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return FloodsData{}, win, errBadRequest{fmt.Errorf("top=%q: want a positive number", t)}
		}
		top = min(n, stats.MaxTop)
	}
	c, cancel := ctx(r)
	defer cancel()
	f, err := s.o.Stats.Floods(c, win, top)
	if err != nil {
		return FloodsData{}, win, err
	}
	for _, set := range [][]cache.Member{f.Recipients, f.Replayed} {
		for i := range set {
			set[i].Name = s.mask.addr(set[i].Name)
		}
	}
	for i := range f.Marks {
		f.Marks[i].Recipient = s.mask.addr(f.Marks[i].Recipient)
	}
	if f.Recipients == nil {
		f.Recipients = []cache.Member{}
	}
	if f.Networks == nil {
		f.Networks = []cache.Member{}
	}
	if f.Reporters == nil {
		f.Reporters = []cache.Member{}
	}
	if f.Replayed == nil {
		f.Replayed = []cache.Member{}
	}
	return FloodsData{Floods: f, Generated: s.o.Now().UTC()}, win, nil
}

type errBadRequest struct{ error }

func (e errBadRequest) Unwrap() error { return e.error }

func code(err error) int {
	var br errBadRequest
	if errors.As(err, &br) {
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

type floodsPage struct {
	FloodsData
	Page, Title string
	Masked      bool
	Now         time.Time
	Windows     []stats.Window
	Chart       Chart
}

func (s *server) floodsPage(w http.ResponseWriter, r *http.Request) {
	f, win, err := s.floods(r)
	if err != nil {
		s.fail(w, "floods", err, code(err))
		return
	}
	s.render(w, "floods", floodsPage{FloodsData: f, Page: "floods", Title: "Floods", Masked: s.mask.on(), Now: f.Generated,
		Windows: stats.Windows, Chart: chartFor("floodchart", "Suspected backscatter, last "+win.Name, f.Series, win.Width)})
}

func (s *server) floodsAPI(w http.ResponseWriter, r *http.Request) {
	f, _, err := s.floods(r)
	if err != nil {
		s.fail(w, "floods", err, code(err))
		return
	}
	writeJSON(w, f)
}

type bouncesPage struct {
	Page, Title   string
	Masked        bool
	Now           time.Time
	Recorded      bool
	Query         url.Values
	Sender        string
	Recipient     string
	Reason        string
	Kind          string
	SendingHost   string
	Hard          string
	Since         string
	SinceOptions  []string
	MinHard       int
	Events        []events.Event
	More          bool
	Suppressions  []events.Suppression
	Err           string
	Reasons       []string
	APIEvents     string
	APISuppressed string
}

func (s *server) bouncesPage(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	now := s.o.Now()
	p := bouncesPage{Page: "bounces", Title: "Bounces", Masked: s.mask.on(), Now: now.UTC(), Recorded: s.ev != nil, Query: qv,
		Sender: qv.Get("sender"), Recipient: qv.Get("recipient"), Reason: qv.Get("reason"), Kind: qv.Get("kind"), SendingHost: qv.Get("sending_host"),
		Hard: qv.Get("hard"), Since: qv.Get("since"), MinHard: 2, Reasons: reasonWords}
	if p.Since == "" {
		p.Since = "7d"
		qv.Set("since", p.Since)
	}
	p.SinceOptions = []string{"24h", "7d", "30d"}
	if !slices.Contains(p.SinceOptions, p.Since) {
		p.SinceOptions = append([]string{p.Since}, p.SinceOptions...)
	}
	if m := qv.Get("min_hard"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 {
			s.fail(w, "bounces", fmt.Errorf("min_hard=%q: want a positive number", m), http.StatusBadRequest)
			return
		}
		p.MinHard = n
	}
	eq := url.Values{}
	for _, k := range []string{"since", "sender", "recipient", "reason", "kind", "hard", "sending_host"} {
		if v := qv.Get(k); v != "" {
			eq.Set(k, v)
		}
	}
	sq := url.Values{"since": {p.Since}, "min_hard": {strconv.Itoa(p.MinHard)}}
	p.APIEvents, p.APISuppressed = "/api/events?"+eq.Encode(), "/api/suppressions?"+sq.Encode()
	if s.ev == nil {
		s.render(w, "bounces", p)
		return
	}
	q, err := events.ParseQuery(qv.Get, now)
	if err != nil {
		s.fail(w, "bounces", err, http.StatusBadRequest)
		return
	}
	q.Limit = PageEvents + 1
	c, cancel := ctx(r)
	defer cancel()
	es, err := s.ev.Events(c, q)
	if err != nil {
		p.Err = err.Error()
	}
	if len(es) > PageEvents {
		es, p.More = es[:PageEvents], true
	}
	p.Events = es
	ss, err := s.ev.Suppressions(c, events.SuppressionQuery{Since: q.Since, MinHard: p.MinHard, Limit: PageSuppressions})
	if err != nil && p.Err == "" {
		p.Err = err.Error()
	}
	p.Suppressions = ss
	s.render(w, "bounces", p)
}

// reasonWords are the bounce reasons offered in the filter (sisimai's
// taxonomy, as package bounce uses it).
var reasonWords = []string{"userunknown", "hostunknown", "mailboxfull", "filtered", "rejected", "blocked", "spamdetected",
	"virusdetected", "policyviolation", "expired", "suspend", "toomanyconn", "mesgtoolarge", "norelaying", "securityerror",
	"systemerror", "networkerror", "contenterror", "exceedlimit", "notaccept", "mailererror", "hasmoved", "vacation", "delivered", "undefined"}

// KeyRow is one key number on the Keys page (and in /api/keys).
type KeyRow struct {
	Number     int            `json:"key"`
	Domains    []string       `json:"domains"`     // domains whose key files list it
	SigningFor []string       `json:"signing_for"` // domains it signs for now
	Lifetime   int            `json:"lifetime_days"`
	Days       []stats.DayUse `json:"days"`
	Total      int64          `json:"total_30d"`
	Last       time.Time      `json:"last_use,omitzero"`
	// Retire is "yes", "no" or "unknown"; Why says why.
	Retire string `json:"retire"`
	Why    string `json:"why"`
}

// KeysData is the Keys page's data.
type KeysData struct {
	Generated time.Time `json:"generated"`
	Since     time.Time `json:"statistics_since,omitzero"`
	Keys      []KeyRow  `json:"keys"`
}

func (s *server) keys(r *http.Request) (KeysData, error) {
	c, cancel := ctx(r)
	defer cancel()
	now := s.o.Now()
	uses, since, err := s.o.Stats.Keys(c)
	if err != nil {
		return KeysData{}, err
	}
	rows := map[int]*KeyRow{}
	get := func(k int) *KeyRow {
		if rows[k] == nil {
			rows[k] = &KeyRow{Number: k, Domains: []string{}, SigningFor: []string{}}
		}
		return rows[k]
	}
	maxLife := 0
	if s.o.Engine != nil {
		e := s.o.Engine()
		for _, st := range e.Status(now) {
			maxLife = max(maxLife, st.Lifetime)
			if ks := e.Keys().For(st.Name); ks != nil {
				for _, k := range ks.Numbers() {
					row := get(k)
					row.Domains = append(row.Domains, st.Name)
					row.Lifetime = max(row.Lifetime, st.Lifetime)
				}
			}
			if st.Sign && st.SigningKey >= 0 {
				row := get(st.SigningKey)
				row.SigningFor = append(row.SigningFor, st.Name)
			}
		}
	}
	for _, u := range uses {
		row := get(u.Number)
		row.Days, row.Total, row.Last = u.Days, u.Total, u.Last
	}
	out := KeysData{Generated: now.UTC(), Since: since, Keys: []KeyRow{}}
	for _, row := range rows {
		if row.Lifetime == 0 {
			row.Lifetime = max(maxLife, 1)
		}
		if row.Days == nil {
			row.Days = []stats.DayUse{}
		}
		life := time.Duration(row.Lifetime) * 24 * time.Hour
		switch {
		case len(row.SigningFor) > 0:
			row.Retire, row.Why = "no", "signs for "+strings.Join(row.SigningFor, ", ")
		case len(row.Domains) == 0:
			row.Retire, row.Why = "removed", "no key file lists it: its tags no longer verify"
		case !row.Last.IsZero() && now.Before(row.Last.Add(life)):
			row.Retire, row.Why = "no", "tags it signed are valid until "+row.Last.Add(life).UTC().Format("2006-01-02 15:04 UTC")
		case !row.Last.IsZero():
			row.Retire, row.Why = "yes", fmt.Sprintf("signed nothing for %s, longer than its tags live (%d days)", roughly(now.Sub(row.Last)), row.Lifetime)
		case since.IsZero() || now.Before(since.Add(life)):
			row.Retire, row.Why = "unknown", fmt.Sprintf("no use recorded, but statistics are kept for less than a tag lifetime (%d days)", row.Lifetime)
		default:
			row.Retire, row.Why = "yes", "signed nothing since statistics began, "+since.Format("2006-01-02")
		}
		out.Keys = append(out.Keys, *row)
	}
	sort.Slice(out.Keys, func(i, j int) bool { return out.Keys[i].Number < out.Keys[j].Number })
	return out, nil
}

type keysPage struct {
	KeysData
	Page, Title string
	Masked      bool
	Now         time.Time
	Charts      map[int]Chart
}

func (s *server) keysPage(w http.ResponseWriter, r *http.Request) {
	k, err := s.keys(r)
	if err != nil {
		s.fail(w, "keys", err, http.StatusServiceUnavailable)
		return
	}
	p := keysPage{KeysData: k, Page: "keys", Title: "Keys", Masked: s.mask.on(), Now: k.Generated, Charts: map[int]Chart{}}
	for _, row := range k.Keys {
		ser := stats.Series{Direction: stats.Outbound, Width: "1d"}
		line := stats.Line{Verdict: stats.Signed, Reason: "key " + strconv.Itoa(row.Number)}
		for _, d := range row.Days {
			ser.Starts = append(ser.Starts, d.Day)
			line.Counts = append(line.Counts, d.Signed)
			line.Total += d.Signed
		}
		ser.Total = line.Total
		ser.Lines = []stats.Line{line}
		p.Charts[row.Number] = monthChart("key"+strconv.Itoa(row.Number), "Key "+strconv.Itoa(row.Number)+": signed per day", ser)
	}
	s.render(w, "keys", p)
}

func (s *server) keysAPI(w http.ResponseWriter, r *http.Request) {
	k, err := s.keys(r)
	if err != nil {
		s.fail(w, "keys", err, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, k)
}
