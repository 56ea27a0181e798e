package redisstore

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial on its global logger; the outage
	// tests cause many on purpose.
	if os.Getenv("BM_REDIS_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	os.Exit(m.Run())
}
