package main

// The statistics (package stats) and the monitoring pages (package web,
// [listen] web).
//
// The statistics are always counted and written to the store, whether
// this host serves the pages or not: with Redis, another host's pages show
// this host's decisions too. The observer below fans the milter's and the
// policy service's calls out to the Prometheus metrics and the statistics.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
	"github.com/bounce-milter/bounce-milter/internal/milter"
	"github.com/bounce-milter/bounce-milter/internal/policy"
	"github.com/bounce-milter/bounce-milter/internal/stats"
	"github.com/bounce-milter/bounce-milter/internal/web"
	"github.com/prometheus/client_golang/prometheus"
)

// observer is what the milter and the policy service report to: the
// metrics (milter.Observer) and the statistics (DetailObserver).
type observer struct {
	*metrics.Metrics
	agg *stats.Aggregator
}

func (o observer) Decided(d stats.Decision) { o.agg.Decided(d) }

func (o observer) Signed(domain string, keyNum int) {
	o.Metrics.Signed(domain, keyNum)
	o.agg.Signed(domain, keyNum)
}

// FloodChanged feeds the statistics only: the milter tells the metrics
// itself (FloodEntered and FloodLeft, as the policy service does), so
// counting here too counted every entry twice.
func (o observer) FloodChanged(f stats.FloodChange) { o.agg.FloodChanged(f) }

func (o observer) SetDomains(names []string) {
	o.Metrics.SetDomains(names)
	o.agg.SetDomains(names)
}

var (
	_ milter.Observer       = observer{}
	_ milter.DetailObserver = observer{}
	_ policy.DetailObserver = observer{}
)

// backend is the store under the Recorder.
func (h storeHandle) backend() cache.Store {
	if r, ok := h.store.(*cache.Recorder); ok {
		return r.Store()
	}
	return h.store
}

// statsStore is where the statistics go: the store's, or memory for a
// store that keeps none (the memory backend).
func (h storeHandle) statsStore() cache.StatsStore {
	if s, ok := h.backend().(cache.StatsStore); ok {
		return s
	}
	return cache.NewMemoryStats()
}

// newStats starts the statistics' writer and registers its counters with
// the metrics.
func newStats(h storeHandle, domains []string, log *slog.Logger) *stats.Aggregator {
	agg := stats.New(stats.Options{Store: h.statsStore(), Logger: log})
	agg.SetDomains(domains)
	// Registered once per process (tests start services more than once).
	_ = h.metrics.Registry().Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bounce_milter_stats_dropped_total",
		Help: "Figures of the monitoring statistics dropped by their bounds while the store could not take them.",
	}, func() float64 { return float64(agg.Status().Dropped) }))
	agg.Start()
	return agg
}

// statsService keeps the statistics' writer among the services, last, so
// that at a stop it writes what the other services counted.
func statsService(agg *stats.Aggregator) service {
	stop := make(chan struct{})
	return service{
		name: "statistics", background: true,
		run: func() error { <-stop; return nil },
		shutdown: func(ctx context.Context) error {
			close(stop)
			if err := agg.Close(ctx); err != nil {
				return fmt.Errorf("statistics: last write: %w", err)
			}
			return nil
		},
	}
}

// readSecret reads the first line of a secret file, refusing one that
// others can read or write (as key files are).
func readSecret(key, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("web.%s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("web.%s: %s is not a regular file", key, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("web.%s: %s can be read or written by others (mode %#o); chmod 600 it", key, path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("web.%s: %w", key, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if len(line) < 8 {
		return "", fmt.Errorf("web.%s: %s: want a secret of at least 8 characters on its first line", key, path)
	}
	return line, nil
}

// startWeb listens on [listen] web and serves the pages.
func startWeb(cfg *config.Config, h storeHandle, agg *stats.Aggregator, engine *atomic.Pointer[backscatter.Engine], al *watch.Watcher, log *slog.Logger) (service, error) {
	addr := cfg.Listen.Web
	loop, err := config.WebLoopback(addr)
	if err != nil {
		return service{}, err
	}
	o := web.Options{
		Stats:     &stats.Reader{Store: h.statsStore(), Agg: agg},
		Events:    h.eventsReader,
		Engine:    engine.Load,
		StrictFor: h.cfg.Flood.StrictFor,
		Mask:      cfg.Web.MaskAddresses,
		Version:   versionString(),
		Logger:    log,
		Store:     storeStatus(h, agg),
	}
	if al != nil {
		o.Alerts = al
	}
	if cfg.Web.TokenFile != "" {
		if o.Token, err = readSecret("token_file", cfg.Web.TokenFile); err != nil {
			return service{}, err
		}
	}
	if cfg.Web.User != "" {
		o.User = cfg.Web.User
		if o.Password, err = readSecret("password_file", cfg.Web.PasswordFile); err != nil {
			return service{}, err
		}
	}
	if !loop && o.Token == "" && o.User == "" {
		// config.Validate refuses this already; never serve it.
		return service{}, fmt.Errorf("listen.web = %q is not a loopback address and no login is configured", addr)
	}
	handler, err := web.New(o)
	if err != nil {
		return service{}, err
	}
	access := "loopback only, no login"
	if o.Token != "" || o.User != "" {
		access = "login required"
	}
	svc, err := httpService(cfg, "web", "/", addr, handler, log)
	if err != nil {
		return service{}, err
	}
	log.Info("web: monitoring pages", "url", strings.TrimPrefix(svc.name, "web "), "access", access, "mask_addresses", cfg.Web.MaskAddresses)
	return svc, nil
}

// storeStatus reports the store's health for the Overview.
func storeStatus(h storeHandle, agg *stats.Aggregator) func(context.Context) web.StoreStatus {
	desc := h.cfg.Backend
	if desc == cache.BackendRedis {
		desc += " " + h.cfg.Redis.Mode()
	}
	return func(ctx context.Context) web.StoreStatus {
		st := web.StoreStatus{Backend: desc, Breaker: cache.BreakerClosed, Stats: agg.Status()}
		if h.store == nil {
			return st
		}
		if hl, ok := h.store.(cache.Health); ok {
			st.Breaker = hl.BreakerState()
			if err := hl.WriteError(); err != nil {
				st.WriteError = err.Error()
			}
		}
		if r, ok := h.store.(*cache.Recorder); ok {
			rs := r.Stats()
			st.Pending, st.GivenUp = rs.Pending, rs.GivenUp
		}
		pctx, cancel := context.WithTimeout(ctx, healthTimeout)
		defer cancel()
		start := time.Now()
		err := h.store.Ping(pctx)
		st.PingMillis = float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			st.PingError = err.Error()
		}
		return st
	}
}
