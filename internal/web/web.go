// Package web serves the monitoring pages: Overview (decisions over time,
// each domain's mode, the store's health, the flood state, a banner when
// alerts are active), Floods (the suspected backscatter of a window: whom
// it targets, where it comes from), Bounces (the genuine bounce events and
// the suppression candidates, from package events), Keys (messages signed
// per key number and whether a key can be retired) and Alerts (package
// alerts: what is active, with its figures and links to the evidence,
// the senders held, what cleared), with a JSON API behind each
// (/api/overview, /api/floods, /api/keys, /api/events, /api/suppressions,
// /api/alerts) that answers the same data.
//
// Pages are rendered on the server (html/template, files embedded in the
// binary); charts are SVG drawn on the server; there is no script at all,
// so the pages work without internet access and under a Content Security
// Policy that allows nothing but the page's own stylesheet. Every answer
// is bounded (the statistics and events readers bound their answers, and
// MaxAnswer bounds the bytes written).
//
// Access: the pages are read-only; the one request that changes
// anything is POST /api/alerts/clear (JSON, which a page elsewhere cannot
// send without the browser asking first), from bounce-milter alerts
// clear. On a loopback listener they need no
// login, but the Host header must name a loopback host (so that a web
// page elsewhere cannot read them through DNS rebinding); with a token or
// a user and password (required by config on any other listener) every
// request must carry one.
package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

//go:embed templates/*.html static/*
var files embed.FS

// MaxAnswer bounds the bytes of one answer. The readers already bound
// what they return (a day of 5-minute buckets, at most stats.MaxTop
// members, events.MaxLimit events); this is the last guard.
const MaxAnswer = 8 << 20

// PageEvents is how many events the Bounces page shows at most, and
// PageSuppressions how many suppression candidates.
const (
	PageEvents       = 200
	PageSuppressions = 100
)

// StoreStatus is the store's health, as the daemon sees it.
type StoreStatus struct {
	Backend    string  `json:"backend"`
	Breaker    string  `json:"breaker"`
	PingMillis float64 `json:"ping_ms"`
	PingError  string  `json:"ping_error,omitempty"`
	WriteError string  `json:"write_error,omitempty"`
	// The Recorder's outbox: records of signed mail not written yet, and
	// those given up.
	Pending int    `json:"recorder_pending"`
	GivenUp uint64 `json:"recorder_given_up"`
	// The statistics' writer.
	Stats stats.Status `json:"statistics"`
}

// Options configure the pages.
type Options struct {
	Stats *stats.Reader
	// Events reads the bounce events (nil: the Bounces page says none are
	// recorded).
	Events events.Reader
	// Engine returns the engine in force (it changes at a reload).
	Engine func() *backscatter.Engine
	// Store reports the store's health (nil: unknown).
	Store func(ctx context.Context) StoreStatus
	// StrictFor is [store.flood] strict_for (the flood state's length).
	StrictFor time.Duration
	// Mask is [web] mask_addresses.
	Mask string
	// Token, and User with Password, are the logins; none: no login, and
	// the Host header must be a loopback name (a loopback listener).
	Token          string
	User, Password string
	Version        string
	Logger         *slog.Logger
	Now            func() time.Time
	// Alerts are the alerts (nil: the Alerts page says they do not run).
	Alerts AlertsSource
}

type server struct {
	o     Options
	log   *slog.Logger
	pages map[string]*template.Template
	mask  masker
	ev    events.Reader
}

var funcs = template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"day":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"ago":   ago,
	"short": func(s string, n int) string { return clipText(s, n) },
	"list":  func(v ...string) []string { return v },
}

// New returns the handler of the pages and the API.
func New(o Options) (http.Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StrictFor <= 0 {
		o.StrictFor = time.Hour
	}
	s := &server{o: o, log: o.Logger, pages: map[string]*template.Template{}}
	s.mask = masker{mode: o.Mask, ours: func(d string) bool {
		if o.Engine == nil {
			return false
		}
		_, ok := o.Engine().Domain(d)
		return ok
	}}
	if o.Events != nil {
		s.ev = maskedReader{o.Events, s.mask}
	}
	fm := template.FuncMap{"activeAlerts": s.activeAlerts}
	for k, v := range funcs {
		fm[k] = v
	}
	for _, p := range []string{"overview", "floods", "bounces", "keys", "alerts"} {
		t, err := template.New("layout.html").Funcs(fm).ParseFS(files, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		s.pages[p] = t
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.overviewPage)
	mux.HandleFunc("GET /floods", s.floodsPage)
	mux.HandleFunc("GET /bounces", s.bouncesPage)
	mux.HandleFunc("GET /keys", s.keysPage)
	mux.HandleFunc("GET /alerts", s.alertsPage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "favicon.svg")
	})
	mux.HandleFunc("GET /api/overview", s.overviewAPI)
	mux.HandleFunc("GET /api/floods", s.floodsAPI)
	mux.HandleFunc("GET /api/keys", s.keysAPI)
	if o.Alerts != nil {
		mux.HandleFunc("GET /api/alerts", s.alertsAPI)
		// The one request that changes something: an admin clears an
		// alert (JSON only; see watch.Watcher.API).
		mux.Handle("POST /api/alerts/clear", o.Alerts.API(true))
	} else {
		mux.HandleFunc("GET /api/alerts", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "alerts do not run in this daemon", http.StatusNotFound)
		})
	}
	if s.ev != nil {
		api := events.API(s.ev, o.Now)
		mux.Handle("GET /api/events", api)
		mux.Handle("GET /api/suppressions", api)
	} else {
		none := func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bounce events are not recorded by this daemon", http.StatusNotFound)
		}
		mux.HandleFunc("GET /api/events", none)
		mux.HandleFunc("GET /api/suppressions", none)
	}
	return s.guard(mux), nil
}

// guard checks the login (or, without one, the Host header), sets the
// security headers and bounds the answer.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !s.allowed(r) {
			if s.o.Token == "" && s.o.User == "" {
				http.Error(w, "forbidden: this listener answers only to a loopback host name (localhost, 127.0.0.1, [::1])", http.StatusForbidden)
				return
			}
			h.Set("WWW-Authenticate", `Basic realm="bounce-milter", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(&capped{ResponseWriter: w, left: MaxAnswer}, r)
	})
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *server) allowed(r *http.Request) bool {
	if s.o.Token == "" && s.o.User == "" {
		return loopbackHost(r.Host)
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.o.Token != "" {
		return eq(strings.TrimSpace(tok), s.o.Token)
	}
	if u, p, ok := r.BasicAuth(); ok {
		if s.o.User != "" && eq(u, s.o.User) && eq(p, s.o.Password) {
			return true
		}
		if s.o.Token != "" && eq(p, s.o.Token) {
			return true
		}
	}
	return false
}

// loopbackHost reports whether a Host header names a loopback host.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// capped stops writing after left bytes.
type capped struct {
	http.ResponseWriter
	left int
}

func (c *capped) Write(p []byte) (int, error) {
	if len(p) > c.left {
		p = p[:c.left]
	}
	c.left -= len(p)
	if len(p) == 0 {
		return 0, http.ErrHandlerTimeout
	}
	return c.ResponseWriter.Write(p)
}

func (s *server) render(w http.ResponseWriter, page string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, data); err != nil {
		s.log.Warn("web: rendering a page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}

func (s *server) fail(w http.ResponseWriter, what string, err error, code int) {
	if code >= 500 {
		s.log.Warn("web: "+what, "err", err)
	}
	http.Error(w, what+": "+err.Error(), code)
}

// ctx bounds the store reads of one request.
func ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
