package redisstore

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// The fail-fast settings go-redis needs (see the package doc). A hung Redis
// test alone would not catch a lost ContextTimeoutEnabled while the socket
// timeouts are short, so they are checked here.
func TestOptionsFailFast(t *testing.T) {
	for _, url := range []string{"redis://h", "redis-sentinel://s1,s2/m", "redis-cluster://a,b,c"} {
		cfg := cache.Config{Backend: cache.BackendRedis, Redis: cache.RedisConfig{URL: url}}.WithDefaults()
		o, err := Options(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !o.ContextTimeoutEnabled || o.MaxRetries != -1 || o.DialerRetries != 1 ||
			o.DialTimeout != 150*time.Millisecond || o.ReadTimeout != 150*time.Millisecond || o.WriteTimeout != 150*time.Millisecond || o.PoolTimeout != 100*time.Millisecond {
			t.Fatalf("%s: options %+v", url, o)
		}
		c := redis.NewUniversalClient(o)
		var kind string
		switch c.(type) {
		case *redis.ClusterClient:
			kind = "cluster"
		case *redis.Client:
			kind = "client"
		}
		c.Close()
		want := map[string]string{"redis://h": "client", "redis-sentinel://s1,s2/m": "client", "redis-cluster://a,b,c": "cluster"}[url]
		if kind != want {
			t.Fatalf("%s: %s client, want %s", url, kind, want)
		}
	}
	cfg := cache.Config{Backend: cache.BackendRedis, Redis: cache.RedisConfig{URL: "rediss://h", TLSCAFile: "/nonexistent"}}.WithDefaults()
	if _, err := Options(cfg); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
