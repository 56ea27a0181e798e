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
	"github.com/bounce-milter/bounce-milter/internal/milter"
)

// storeHandle is the open store and what the services need of it.
type storeHandle struct {
	store cache.Store
}

func (h storeHandle) Store() cache.Store        { return h.store }
func (h storeHandle) observer() milter.Observer { return nil }
func (h storeHandle) timeout() time.Duration    { return 300 * time.Millisecond }
func (h storeHandle) Close() error {
	if h.store == nil {
		return nil
	}
	return h.store.Close()
}

func openStore(cfg *config.Config, log *slog.Logger) (storeHandle, string, error) {
	return storeHandle{}, "none", nil
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
	var extra []extraService
	if cfg.Listen.Policy.IsSet() {
		p, err := startPolicyService(cfg, e, store, log, svc)
		if err != nil {
			return nil, err
		}
		extra = append(extra, p)
	}
	return extra, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "check [--json] PATH...", "Not built yet.", stderr)
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	return 1
}
