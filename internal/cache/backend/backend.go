// Package backend opens the configured cache.Store. It is the only package
// that imports the drivers, so the decision engine depends on
// internal/cache alone.
package backend

import (
	"fmt"
	"log/slog"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/boltstore"
	"github.com/bounce-milter/bounce-milter/internal/cache/redisstore"
)

// Open applies defaults, loads the secret file, validates cfg and opens the
// store: the embedded bbolt file in dataDir (default), Redis, or memory.
// Opening Redis does no I/O; call Ping to check it answers.
func Open(cfg cache.Config, dataDir string, log *slog.Logger) (cache.Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.LoadSecret(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Secret) == 0 {
		log.Info("store: no secret_file; Message-IDs and addresses are stored as unkeyed SHA-256 hashes")
	}
	switch cfg.Backend {
	case cache.BackendEmbedded:
		s, err := boltstore.Open(cfg, dataDir, log)
		if err != nil {
			return nil, err
		}
		log.Info("store: embedded", "path", boltstore.Path(cfg, dataDir))
		return s, nil
	case cache.BackendRedis:
		s, err := redisstore.New(cfg, log)
		if err != nil {
			return nil, err
		}
		log.Info("store: redis", "mode", cfg.Redis.Mode(), "addrs", cfg.Redis.Addrs, "master_name", cfg.Redis.MasterName, "tls", cfg.Redis.TLS)
		return s, nil
	case cache.BackendMemory:
		log.Warn("store: in-memory; state is lost on restart and not shared")
		return cache.NewMemoryStore(cfg), nil
	}
	return nil, fmt.Errorf("store: unknown backend %q", cfg.Backend)
}

// Every store of this module reports its health.
var (
	_ cache.Health = (*boltstore.Store)(nil)
	_ cache.Health = (*redisstore.Store)(nil)
	_ cache.Health = (*cache.MemoryStore)(nil)
)
