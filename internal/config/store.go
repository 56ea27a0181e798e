package config

import (
	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// Store is the [store] section. It mirrors cache.Config key for key (a test
// keeps the two in step) so that durations can be written "250ms" and bad
// values are reported with their line, which the TOML decoder can do only
// for types it unmarshals itself. See the cache package for the meaning
// and defaults of each key.
type Store struct {
	Backend         string     `toml:"backend"`
	Path            string     `toml:"path"`
	Timeout         Duration   `toml:"timeout"`
	SecretFile      string     `toml:"secret_file"`
	ReplaySlack     int        `toml:"replay_slack"`
	Retention       Duration   `toml:"retention"`
	BreakerFailures int        `toml:"breaker_failures"`
	BreakerCooldown Duration   `toml:"breaker_cooldown"`
	Flood           StoreFlood `toml:"flood"`
	Redis           StoreRedis `toml:"redis"`
}

// StoreFlood is [store.flood].
type StoreFlood struct {
	RecipientLimit int      `toml:"recipient_limit"`
	ClientLimit    int      `toml:"client_limit"`
	Window         Duration `toml:"window"`
	StrictFor      Duration `toml:"strict_for"`
	MaxEntries     int      `toml:"max_entries"`
}

// StoreRedis is [store.redis].
type StoreRedis struct {
	URL              string   `toml:"url"`
	Addrs            []string `toml:"addrs"`
	MasterName       string   `toml:"master_name"`
	Cluster          bool     `toml:"cluster"`
	Username         string   `toml:"username"`
	Password         string   `toml:"password"`
	SentinelUsername string   `toml:"sentinel_username"`
	SentinelPassword string   `toml:"sentinel_password"`
	DB               int      `toml:"db"`
	TLS              bool     `toml:"tls"`
	TLSServerName    string   `toml:"tls_server_name"`
	TLSCAFile        string   `toml:"tls_ca_file"`
	TLSSkipVerify    bool     `toml:"tls_insecure_skip_verify"`
	KeyPrefix        string   `toml:"key_prefix"`
	DialTimeout      Duration `toml:"dial_timeout"`
	ReadTimeout      Duration `toml:"read_timeout"`
	WriteTimeout     Duration `toml:"write_timeout"`
	PoolTimeout      Duration `toml:"pool_timeout"`
	PoolSize         int      `toml:"pool_size"`
}

// Cache returns the store configuration for the cache package, defaults
// applied.
func (s Store) Cache() cache.Config {
	r := s.Redis
	return cache.Config{
		Backend: s.Backend, Path: s.Path, Timeout: s.Timeout.Duration, SecretFile: s.SecretFile,
		ReplaySlack: s.ReplaySlack, Retention: s.Retention.Duration, BreakerFailures: s.BreakerFailures,
		BreakerCooldown: s.BreakerCooldown.Duration,
		Flood: cache.FloodConfig{
			RecipientLimit: s.Flood.RecipientLimit, ClientLimit: s.Flood.ClientLimit,
			Window: s.Flood.Window.Duration, StrictFor: s.Flood.StrictFor.Duration, MaxEntries: s.Flood.MaxEntries,
		},
		Redis: cache.RedisConfig{
			URL: r.URL, Addrs: r.Addrs, MasterName: r.MasterName, Cluster: r.Cluster, Username: r.Username,
			Password: r.Password, SentinelUsername: r.SentinelUsername, SentinelPassword: r.SentinelPassword,
			DB: r.DB, TLS: r.TLS, TLSServerName: r.TLSServerName, TLSCAFile: r.TLSCAFile, TLSSkipVerify: r.TLSSkipVerify,
			KeyPrefix: r.KeyPrefix, DialTimeout: r.DialTimeout.Duration, ReadTimeout: r.ReadTimeout.Duration,
			WriteTimeout: r.WriteTimeout.Duration, PoolTimeout: r.PoolTimeout.Duration, PoolSize: r.PoolSize,
		},
	}.WithDefaults()
}
