package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
	"github.com/bounce-milter/bounce-milter/internal/milter"
)

// storeHandle is the open store and what the services need of it.
type storeHandle struct {
	store   cache.Store
	metrics *metrics.Metrics // never nil; also the store's cache.Observer
}

func (h storeHandle) Store() cache.Store        { return h.store }
func (h storeHandle) observer() milter.Observer { return h.metrics }
func (h storeHandle) timeout() time.Duration    { return 300 * time.Millisecond }
func (h storeHandle) Close() error {
	if h.store == nil {
		return nil
	}
	return h.store.Close()
}

func openStore(cfg *config.Config, log *slog.Logger) (storeHandle, string, error) {
	return storeHandle{metrics: newMetrics(cfg)}, "none", nil
}

func applyRedisFlag(cfg *config.Config, url string) error {
	if url != "" {
		return fmt.Errorf("--redis: not available in this build")
	}
	return nil
}

func newAnalyzer(cfg *config.Config) milter.Analyzer { return nil }

type extraService struct {
	name     string
	run      func() error
	shutdown func(context.Context) error
}

func startExtraServices(ctx context.Context, cfg *config.Config, e *backscatter.Engine, store storeHandle, log *slog.Logger, svc *services) ([]extraService, error) {
	var out []extraService
	// A reload changes our domains: the only domain label values.
	svc.extra = append(svc.extra, func(e *backscatter.Engine) { store.metrics.SetDomains(e.Config().DomainNames()) })
	if cfg.Listen.Metrics != "" {
		x, err := startMetrics(cfg, store.metrics, healthCheck(cfg, store.Store()), log)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "check [--json] PATH...", "Not built yet.", stderr)
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	return 1
}
