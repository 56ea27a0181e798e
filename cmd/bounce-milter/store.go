package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/backend"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
	"github.com/redis/go-redis/v9"
)

// storeHandle is the open store and what the services need of it.
type storeHandle struct {
	store   cache.Store
	cfg     cache.Config
	metrics *metrics.Metrics // never nil; also the store's cache.Observer
}

func (h storeHandle) Store() cache.Store     { return h.store }
func (h storeHandle) timeout() time.Duration { return h.cfg.Timeout }
func (h storeHandle) Close() error {
	if h.store == nil {
		return nil
	}
	return h.store.Close()
}

// redisLogger routes go-redis's own messages (failed dials, mostly) into
// slog at debug level: the store reports outages itself, once, and a dead
// Redis must not flood the journal.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis: " + fmt.Sprintf(format, v...))
}

// openStore opens the configured store: the embedded one in the data
// directory by default, Redis when configured.
func openStore(cfg *config.Config, log *slog.Logger) (storeHandle, string, error) {
	redis.SetLogger(redisLogger{log})
	m := newMetrics(cfg)
	cc := cfg.Store.Cache()
	cc.Observer = m
	m.SetFloodStrictFor(cc.Flood.StrictFor)
	// Records live as long as the longest tag lifetime needs (a domain's
	// lifetime may exceed the retention configured).
	if ttl := cfg.MaxRecordTTL(); cc.Retention < ttl {
		cc.Retention = ttl
	}
	bst, err := backend.Open(cc, cfg.DataDir, log)
	if err != nil {
		return storeHandle{}, "", err
	}
	// Records of signed mail go through a Recorder: written in batches in
	// the background, kept (and spooled for the embedded store) while the
	// store cannot take them; it also keeps the store's gaps.
	ro := cache.RecorderOptions{
		Logger: log,
		OnGiveUp: func(n int) {
			for range n {
				m.RecordDropped()
			}
		},
		HistoryOptions: cache.HistoryOptions{Shared: cc.Backend == cache.BackendRedis, Instance: cache.InstanceID(cfg.DataDir)},
	}
	if cc.Backend == cache.BackendEmbedded {
		ro.SpoolPath = filepath.Join(cfg.DataDir, "outbox.spool")
	}
	st := cache.NewRecorder(bst, ro)
	desc := cc.Backend
	if cc.Backend == cache.BackendRedis {
		desc += " " + cc.Redis.Mode()
		ctx, cancel := context.WithTimeout(context.Background(), cc.Timeout)
		if err := st.Ping(ctx); err != nil {
			// Not fatal: the failure policy covers an outage, and Redis
			// may come up after us.
			log.Warn("store: redis does not answer yet", "err", err)
		}
		cancel()
	}
	return storeHandle{store: st, cfg: cc, metrics: m}, desc, nil
}

// applyRedisFlag makes --redis URL select the Redis store.
func applyRedisFlag(cfg *config.Config, url string) error {
	if url == "" {
		return nil
	}
	if _, err := cache.ParseRedisURL(url); err != nil {
		return fmt.Errorf("--redis: %w", err)
	}
	cfg.Store.Backend = cache.BackendRedis
	cfg.Store.Redis.URL = url
	return nil
}
