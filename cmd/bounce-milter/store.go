package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/backend"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/metrics"
	"github.com/redis/go-redis/v9"
)

// storeHandle is the open store and what the services need of it.
type storeHandle struct {
	store   cache.Store
	cfg     cache.Config
	metrics *metrics.Metrics // never nil; also the store's cache.Observer
	// events records bounce events (to the store and the webhook);
	// eventsReader reads them back (the API, the command line).
	events        *events.Recorder
	eventsReader  events.Reader
	hashRecipient func(string) string // nil unless [events] hash_recipients
}

func (h storeHandle) Store() cache.Store     { return h.store }
func (h storeHandle) timeout() time.Duration { return h.cfg.Timeout }
func (h storeHandle) Close() error {
	if h.events != nil {
		h.events.Close()
	}
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
	cc.Events = cache.EventsConfig{Retention: cfg.Events.Retention.Duration, Max: cfg.Events.Max}.WithDefaults()
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
		HistoryOptions: cache.HistoryOptions{Shared: cc.Backend == cache.BackendRedis, Instance: cache.InstanceID(cfg.DataDir),
			EpochFile: filepath.Join(cfg.DataDir, "store-epoch")},
	}
	if cc.Backend == cache.BackendEmbedded {
		ro.SpoolPath = filepath.Join(cfg.DataDir, "outbox.spool")
	}
	st := cache.NewRecorder(bst, ro)
	m.WatchStore(st)
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
	h := storeHandle{store: st, cfg: cc, metrics: m}
	if err := h.openEvents(cfg, bst, log); err != nil {
		st.Close()
		return storeHandle{}, "", err
	}
	return h, desc, nil
}

// openEvents starts the bounce-event recorder: to the store (every backend
// keeps events; a store without them keeps them in memory) and, when
// configured, to the webhook.
func (h *storeHandle) openEvents(cfg *config.Config, bst cache.Store, log *slog.Logger) error {
	es, ok := bst.(events.Store)
	if !ok {
		es = &events.MemoryStore{Max: cfg.Events.Max}
	}
	var hook *events.Webhook
	if cfg.Events.Webhook != "" {
		secret, err := os.ReadFile(cfg.Events.WebhookSecretFile)
		if err != nil {
			return fmt.Errorf("events.webhook_secret_file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(secret)))
		if len(secret) < 16 {
			return fmt.Errorf("events.webhook_secret_file %s: the key is shorter than 16 bytes", cfg.Events.WebhookSecretFile)
		}
		hook = events.NewWebhook(events.WebhookOptions{URL: cfg.Events.Webhook, Secret: secret, Logger: log})
	}
	if cfg.Events.HashRecipients {
		c := h.cfg
		if err := c.LoadSecret(); err != nil {
			return err
		}
		hs := cache.NewHasher(c.Secret)
		h.hashRecipient = func(a string) string { return "h:" + hs.Recipient(a) }
	}
	rec := events.NewRecorder(es, events.RecorderOptions{Webhook: hook, Logger: log})
	rec.OnDrop, rec.OnWritten = h.metrics.EventsDropped, h.metrics.EventsWritten
	h.events, h.eventsReader = rec, es
	return nil
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
