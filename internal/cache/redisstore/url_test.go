package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// For the URL forms go-redis also parses (one host, redis:// or rediss://),
// cache.ParseRedisURL and go-redis's ParseURL agree.
func TestParseRedisURLAgreesWithGoRedis(t *testing.T) {
	for _, u := range []string{
		"redis://localhost", "redis://10.0.0.1:7000/2", "redis://u:p%40ss@h:6380/0", "redis://:pw@h:1",
		"rediss://h:6380/3", "redis://[::1]:6379", "redis://user@h",
	} {
		ours, err := cache.ParseRedisURL(u)
		if err != nil {
			t.Errorf("%s: ours: %v", u, err)
			continue
		}
		theirs, err := redis.ParseURL(u)
		if err != nil {
			t.Errorf("%s: go-redis: %v", u, err)
			continue
		}
		if len(ours.Addrs) != 1 || ours.Addrs[0] != theirs.Addr || ours.DB != theirs.DB ||
			ours.Username != theirs.Username || ours.Password != theirs.Password || ours.TLS != (theirs.TLSConfig != nil) {
			t.Errorf("%s: ours %+v, go-redis addr %s db %d user %q pass %q tls %v", u, ours, theirs.Addr, theirs.DB, theirs.Username, theirs.Password, theirs.TLSConfig != nil)
		}
	}
}
