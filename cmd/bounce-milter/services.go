package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/dkimcheck"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
	"github.com/bounce-milter/bounce-milter/internal/milter"
	"github.com/bounce-milter/bounce-milter/internal/policy"
)

// The metrics follow the flood states the milter and the policy service
// see begin and end.
var (
	_ milter.FloodObserver = (*metrics.Metrics)(nil)
	_ policy.FloodObserver = (*metrics.Metrics)(nil)
)

// service is one thing serve runs: every service is started, reloaded
// and stopped the same way.
type service struct {
	name     string
	run      func() error
	shutdown func(context.Context) error
	// apply takes a new reloadable (reload); nil when the service has
	// nothing that depends on the configuration.
	apply func(*reloadable)
	// background: not a listener (left out of "listening").
	background bool
}

// services is what serve runs, and what else a reload must reach.
type services struct {
	list  []service
	hooks []func(*reloadable)
}

// apply swaps a new reloadable into every service at once.
func (s *services) apply(rt *reloadable) {
	for _, x := range s.list {
		if x.apply != nil {
			x.apply(rt)
		}
	}
	for _, h := range s.hooks {
		h(rt)
	}
}

// startServices listens on every configured endpoint and builds the
// services; nothing runs yet. On error, what was opened is closed.
func startServices(rt *reloadable, store storeHandle, log *slog.Logger) (*services, error) {
	cfg := rt.cfg
	svc := &services{}
	var opened []net.Listener
	// Decisions go to the metrics and to the statistics (web.go).
	agg := newStats(store, rt.engine.DomainNames(), log)
	obs := observer{store.metrics, agg}
	var engine atomic.Pointer[backscatter.Engine]
	engine.Store(rt.engine)
	// The alerts read the statistics; the milter applies their responses.
	watcher, alertHook, err := newWatcher(cfg, store, agg, &engine, log)
	if err != nil {
		_ = agg.Close(context.Background())
		return nil, err
	}
	fail := func(err error) (*services, error) {
		for _, ln := range opened {
			ln.Close()
		}
		_ = watcher.Close(context.Background())
		if alertHook != nil {
			alertHook.Close()
		}
		_ = agg.Close(context.Background())
		return nil, err
	}
	var sink milter.EventSink
	if store.events != nil {
		sink = bouncedSink{store.events, agg}
	}
	lis := func(name string, ep config.Endpoint) (net.Listener, error) {
		ln, err := listen(ep, cfg.Listen.SocketMode, cfg.Listen.SocketGroup)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot listen on %s: %w", name, ep, err)
		}
		opened = append(opened, ln)
		return ln, nil
	}
	if cfg.Listen.Milter.IsSet() {
		ln, err := lis("milter", cfg.Listen.Milter)
		if err != nil {
			return fail(err)
		}
		host, _ := os.Hostname()
		m := milter.New(milter.Options{
			Settings: rt.milter, Store: store.Store(), Logger: log, Observer: obs,
			DKIM:         dkimcheck.Checker{Timeout: 3 * time.Second}.Verify,
			StoreTimeout: store.timeout(), MaxConnections: cfg.Listen.MaxConnections,
			Events: sink, Host: host, HashRecipient: store.hashRecipient, Responses: watcher.Responses,
		})
		svc.list = append(svc.list, service{name: "milter " + cfg.Listen.Milter.String(),
			run: func() error { return m.Serve(ln) }, shutdown: m.Shutdown,
			apply: func(rt *reloadable) { m.SetSettings(rt.milter) }})
	}
	if cfg.Listen.Sign.IsSet() {
		ln, err := lis("sign", cfg.Listen.Sign)
		if err != nil {
			return fail(err)
		}
		m := milter.New(milter.Options{Settings: rt.milter, Store: store.Store(), Logger: log, Observer: obs,
			StoreTimeout: store.timeout(), SignOnly: true, MaxConnections: cfg.Listen.MaxConnections, Responses: watcher.Responses})
		svc.list = append(svc.list, service{name: "sign-only milter " + cfg.Listen.Sign.String(),
			run: func() error { return m.Serve(ln) }, shutdown: m.Shutdown,
			apply: func(rt *reloadable) { m.SetSettings(rt.milter) }})
	}
	if cfg.Listen.Socketmap.IsSet() {
		ln, err := lis("socketmap", cfg.Listen.Socketmap)
		if err != nil {
			return fail(err)
		}
		sm := policy.NewSocketmap(policy.SocketmapOptions{Engine: rt.engine, Logger: log, MaxConnections: cfg.Listen.MaxConnections,
			OnLookup: store.metrics.SocketmapLookup})
		svc.list = append(svc.list, service{name: "socketmap " + cfg.Listen.Socketmap.String(),
			run: func() error { return sm.Serve(ln) }, shutdown: sm.Shutdown,
			apply: func(rt *reloadable) { sm.SetEngine(rt.engine) }})
	}
	if cfg.Listen.Policy.IsSet() {
		ln, err := lis("policy", cfg.Listen.Policy)
		if err != nil {
			return fail(err)
		}
		p := policy.NewService(policy.Options{Settings: rt.policy, Store: store.Store(), Logger: log,
			Observer: obs, StoreTimeout: store.timeout(), WithMilter: cfg.Listen.Milter.IsSet(),
			MaxConnections: cfg.Listen.MaxConnections})
		if cfg.Listen.Milter.IsSet() {
			log.Info("policy service: tags checked at RCPT; counting and untagged bounces left to the milter (serve --milter off for policy only)")
		} else {
			log.Info("policy service without the milter: tags checked at RCPT, counted at END-OF-MESSAGE; untagged bounces are marked, not judged (no body); nothing is signed here")
		}
		svc.list = append(svc.list, service{name: "policy " + cfg.Listen.Policy.String(),
			run: func() error { return p.Serve(ln) }, shutdown: p.Shutdown,
			apply: func(rt *reloadable) { p.SetSettings(rt.policy) }})
	}
	if cfg.Listen.Metrics != "" {
		x, err := startMetrics(cfg, store.metrics, healthCheck(cfg, store.Store()), store.eventsReader, watcher, log)
		if err != nil {
			return fail(err)
		}
		svc.list = append(svc.list, x)
	}
	if cfg.Listen.Web != "" {
		x, err := startWeb(cfg, store, agg, &engine, watcher, log)
		if err != nil {
			return fail(err)
		}
		svc.list = append(svc.list, x)
	}
	// The metrics and statistics label only our domains: a reload changes
	// them, and the pages show the engine in force.
	obs.SetDomains(rt.engine.DomainNames())
	svc.hooks = append(svc.hooks, func(rt *reloadable) {
		obs.SetDomains(rt.engine.DomainNames())
		engine.Store(rt.engine)
	})
	if len(svc.list) > 0 {
		svc.list = append(svc.list, watchService(watcher, alertHook))
		// Last: at a stop it writes what the others counted.
		svc.list = append(svc.list, statsService(agg))
	} else {
		_ = watcher.Close(context.Background())
		if alertHook != nil {
			alertHook.Close()
		}
		_ = agg.Close(context.Background())
	}
	return svc, nil
}

// listen opens one endpoint. A unix socket goes in a directory of its
// own, and it and the socket belong to group (when given, or "postfix"
// when that group exists and the process may give files to it) with mode
// socketMode, so that Postfix can connect and other local users cannot:
// whoever reaches the milter socket can have any of our addresses signed.
func listen(ep config.Endpoint, socketMode, group string) (net.Listener, error) {
	if ep.Network != "unix" {
		return net.Listen(ep.Network, ep.Address)
	}
	gid := -1
	switch {
	case group != "":
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("listen.socket_group %q: %w", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	case os.Geteuid() == 0:
		if g, err := user.LookupGroup("postfix"); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	dir := filepath.Dir(ep.Address)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// Missing parents are made traversable (Postfix must reach the
		// socket); the socket's own directory is closed to others. The
		// modes are set explicitly: a umask must not change them.
		var missing []string
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
				break
			}
			missing = append(missing, d)
		}
		for i := len(missing) - 1; i >= 0; i-- {
			mode := fs.FileMode(0o755)
			if i == 0 {
				mode = 0o750
			}
			if err := os.Mkdir(missing[i], mode); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
			if err := os.Chmod(missing[i], mode); err != nil {
				return nil, err
			}
		}
		if gid >= 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				return nil, fmt.Errorf("socket directory %s: %w", dir, err)
			}
		}
	}
	// A socket left by a previous run that crashed.
	if fi, err := os.Lstat(ep.Address); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		if c, err := net.Dial("unix", ep.Address); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process is listening there", ep)
		}
		os.Remove(ep.Address)
	}
	ln, err := net.Listen(ep.Network, ep.Address)
	if err != nil {
		return nil, err
	}
	mode, _ := strconv.ParseUint(socketMode, 8, 32)
	if gid >= 0 {
		if err := os.Chown(ep.Address, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: %w", ep.Address, err)
		}
	}
	if err := os.Chmod(ep.Address, fs.FileMode(mode)); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
