package main

// Operations: the Prometheus endpoint and /healthz.
//
// /healthz answers what a load balancer or systemd watchdog script needs:
// can Postfix reach us right now? So it dials every configured listener
// (a listener whose accept loop died still has its socket open, but a
// dial to a closed socket fails, which is the case that loses mail
// signing) and pings the store, each within a short timeout, and names
// the part that failed. A store that answers but whose writes fail
// (cache.Health.WriteError) is a failed part too.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/connlimit"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
)

// healthTimeout bounds one /healthz check (each dial and the store ping).
const healthTimeout = time.Second

// newMetrics makes the process's metrics, labelled with our domains.
func newMetrics(cfg *config.Config) *metrics.Metrics {
	m := metrics.New(versionString())
	m.SetDomains(cfg.DomainNames())
	return m
}

// healthCheck returns the /healthz check for cfg's listeners and store
// (nil: no store, nothing to ping). The error names every failing part.
func healthCheck(cfg *config.Config, store cache.Store) func(context.Context) error {
	type target struct{ name, network, address string }
	var targets []target
	for _, l := range []struct {
		name string
		ep   config.Endpoint
	}{{"milter", cfg.Listen.Milter}, {"socketmap", cfg.Listen.Socketmap}, {"policy", cfg.Listen.Policy}} {
		if l.ep.IsSet() {
			targets = append(targets, target{l.name, l.ep.Network, l.ep.Address})
		}
	}
	return func(ctx context.Context) error {
		errs := make([]error, len(targets)+1)
		var wg sync.WaitGroup
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dctx, cancel := context.WithTimeout(ctx, healthTimeout)
				defer cancel()
				var d net.Dialer
				c, err := d.DialContext(dctx, t.network, t.address)
				if err != nil {
					errs[i] = fmt.Errorf("%s listener %s: %w", t.name, t.address, err)
					return
				}
				c.Close()
			}()
		}
		if store != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, healthTimeout)
				defer cancel()
				if err := store.Ping(pctx); err != nil {
					errs[len(targets)] = fmt.Errorf("store: %w", err)
				} else if h, ok := store.(cache.Health); ok {
					// A store that answers reads but cannot write (disk
					// full) still loses records: unhealthy.
					if err := h.WriteError(); err != nil {
						errs[len(targets)] = fmt.Errorf("store: writes failing: %w", err)
					}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// healthHandler serves 200 "ok" when health passes, else 503 with one
// line per failing part.
func healthHandler(health func(context.Context) error, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*healthTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := health(ctx); err != nil {
			log.Warn("health check failed", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy\n%s\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// isLoopbackHost reports whether host (from HOST:PORT) only listens on
// loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// startMetrics listens on cfg.Listen.Metrics (HOST:PORT) and serves
// /metrics and /healthz. The metrics show our domains and mail volumes, so
// a non-loopback address is served but warned about: put it behind a
// firewall or a scraping proxy.
func startMetrics(cfg *config.Config, m *metrics.Metrics, health func(context.Context) error, ev events.Reader, al *watch.Watcher, log *slog.Logger) (service, error) {
	addr := cfg.Listen.Metrics
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return service{}, fmt.Errorf("listen.metrics = %q: want HOST:PORT: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		log.Warn("metrics: listening on a non-loopback address; /metrics shows domains and mail volumes, restrict access to it", "address", addr)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /healthz", healthHandler(health, log))
	if ev != nil {
		api := events.API(ev, nil)
		mux.Handle("GET /api/events", api)
		mux.Handle("GET /api/suppressions", api)
	}
	if al != nil {
		// Read only here: clearing needs the web listener's login.
		mux.Handle("GET /api/alerts", al.API(false))
	}
	return httpService(cfg, "metrics", "/metrics", addr, mux, log)
}

// httpService listens on addr (tcp HOST:PORT) and serves handler as the
// daemon's HTTP listeners all are: at most [listen] max_connections open
// connections, bounded headers and timeouts (a slow client cannot hold a
// connection), the server's errors logged as warnings.
func httpService(cfg *config.Config, what, path, addr string, handler http.Handler, log *slog.Logger) (service, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return service{}, fmt.Errorf("%s: cannot listen on %s: %w", what, addr, err)
	}
	ln = connlimit.New(ln, cfg.Listen.MaxConnections, log, what+" connection limit reached: new connections closed at once")
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return service{
		name: what + " http://" + ln.Addr().String() + path,
		run: func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s server: %w", what, err)
			}
			return nil
		},
		shutdown: srv.Shutdown,
	}, nil
}
