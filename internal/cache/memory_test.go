package cache_test

import (
	"testing"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg cache.Config) cache.Store {
		s := cache.NewMemoryStore(cfg)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
