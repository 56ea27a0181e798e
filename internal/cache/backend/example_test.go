package backend_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/backend"
)

// How `serve --redis URL` maps onto the configuration: setting the URL
// selects the Redis backend; without it the embedded store in the data
// directory is used.
func ExampleOpen() {
	var cfg cache.Config // from the [store] section of the config file
	if url := os.Getenv("BM_REDIS_URL"); url != "" {
		cfg.Backend = cache.BackendRedis
		cfg.Redis.URL = url // e.g. redis-sentinel://10.0.0.1,10.0.0.2/mymaster
	}
	st, err := backend.Open(cfg, os.TempDir(), slog.Default())
	if err != nil {
		slog.Error("store", "err", err)
		return
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = st.RecordSent(ctx, cache.SentMessage{MessageID: "<id@example.org>", Tag: "prvs=0123abcdef=u@example.org",
		Sender: "u@example.org", Recipients: []string{"r@example.net"}, Time: time.Now(), TTL: 8 * 24 * time.Hour})
}
