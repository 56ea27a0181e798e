package cache

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Backend names accepted in Config.Backend.
const (
	BackendEmbedded = "embedded" // bbolt file in the data directory (default)
	BackendRedis    = "redis"    // Redis standalone, Sentinel or Cluster
	BackendMemory   = "memory"   // in-process, lost on restart; for tests
)

// Defaults. They are documented in the package doc and applied by
// Config.WithDefaults.
const (
	DefaultTimeout = 250 * time.Millisecond
	// DefaultReplaySlack: a relay that holds our message for days sends
	// warnings before its failure (Exim, the default MTA of Debian, warns
	// every 24 hours until its 4-day timeout: 3 warnings, then the failure,
	// for one recipient), and a remote alias may expand one recipient into
	// several that fail apart. 5 takes these in; a harvested tag's spam run
	// is thousands.
	DefaultReplaySlack      = 5
	DefaultRetention        = 14 * 24 * time.Hour
	DefaultBreakerFailures  = 3
	DefaultBreakerCooldown  = 2 * time.Second
	DefaultRecipientLimit   = 30
	DefaultClientLimit      = 100
	DefaultFloodWindow      = 10 * time.Minute
	DefaultStrictFor        = time.Hour
	DefaultRedisDialTimeout = 150 * time.Millisecond
	DefaultRedisIOTimeout   = 150 * time.Millisecond
	DefaultRedisPoolTimeout = 100 * time.Millisecond
	DefaultRedisKeyPrefix   = "bm:"
	// MaxTimeout bounds Config.Timeout: the store's budget must stay well
	// under Postfix's milter_command_timeout (30 s by default, often set
	// lower); a store that is slower than this is treated as down.
	MaxTimeout = 5 * time.Second
)

// Config is the [store] section of the configuration file.
//
//	[store]
//	backend = "embedded"        # or "redis" ("memory" for tests)
//	path = ""                   # embedded: default <data_dir>/state.db
//	timeout = "250ms"           # budget of one store call (Redis: also the
//	                            # socket deadline, ContextTimeoutEnabled)
//	secret_file = ""            # key for hashing Message-IDs, tags, recipients
//	replay_slack = 5            # bounces allowed per tag beyond its recipients
//	retention = "336h"          # TTL of a record that comes without one, and
//	                            # of the bounce count of a tag that has no
//	                            # record; records otherwise keep their own
//	                            # TTL (up to MaxTTL, 33 days) whatever this is
//	breaker_failures = 3        # consecutive failures that open the breaker
//	breaker_cooldown = "2s"     # open time before a half-open probe
//
//	[store.flood]
//	recipient_limit = 30        # null-sender messages per recipient per window
//	client_limit = 100          # null-sender messages per client IP per window
//	window = "10m"
//	strict_for = "1h"
//	max_entries = 30000         # embedded store: keys per in-memory counter;
//	                            # beyond, the least useful is evicted (about
//	                            # 80 bytes each; see FloodCounter)
//
//	[store.redis]
//	url = "redis://127.0.0.1:6379/0"   # see ParseRedisURL; or the fields below
//	addrs = ["10.0.0.1:26379", "10.0.0.2:26379"]
//	master_name = "mymaster"    # Sentinel (addrs are sentinels)
//	cluster = false             # Cluster (addrs are seed nodes)
//	username = ""               # ACL user; password = ""
//	sentinel_username = ""      # sentinel_password = ""
//	db = 0
//	tls = false                 # tls_server_name, tls_ca_file,
//	                            # tls_insecure_skip_verify
//	key_prefix = "bm:"
//	dial_timeout = "150ms"      # read_timeout, write_timeout = "150ms"
//	pool_timeout = "100ms"      # pool_size = 0 (go-redis default)
type Config struct {
	Backend         string        `toml:"backend"`
	Path            string        `toml:"path"`
	Timeout         time.Duration `toml:"timeout"`
	SecretFile      string        `toml:"secret_file"`
	ReplaySlack     int           `toml:"replay_slack"`
	Retention       time.Duration `toml:"retention"`
	BreakerFailures int           `toml:"breaker_failures"`
	BreakerCooldown time.Duration `toml:"breaker_cooldown"`
	Flood           FloodConfig   `toml:"flood"`
	Redis           RedisConfig   `toml:"redis"`

	// Events bounds the bounce events the store keeps (the [events]
	// section, not [store]).
	Events EventsConfig `toml:"-"`

	// Secret is the hashing key; LoadSecret fills it from SecretFile.
	// Empty means unkeyed SHA-256 (see Hasher).
	Secret []byte `toml:"-"`
	// Observer receives per-operation timings and breaker state changes
	// (for metrics). Optional.
	Observer Observer `toml:"-"`
}

// EventsConfig bounds the bounce events a store keeps: for Retention, and
// at most Max of them (the oldest go first).
type EventsConfig struct {
	Retention time.Duration
	Max       int
}

// Defaults of EventsConfig.
const (
	DefaultEventsRetention = 30 * 24 * time.Hour
	DefaultEventsMax       = 1_000_000
)

// WithDefaults fills in what is unset.
func (e EventsConfig) WithDefaults() EventsConfig {
	if e.Retention <= 0 {
		e.Retention = DefaultEventsRetention
	}
	if e.Max <= 0 {
		e.Max = DefaultEventsMax
	}
	return e
}

// FloodConfig sets the null-sender rate limits (flood control). A limit of
// 0 takes the default; a negative limit disables that counter.
type FloodConfig struct {
	RecipientLimit int           `toml:"recipient_limit"`
	ClientLimit    int           `toml:"client_limit"`
	Window         time.Duration `toml:"window"`
	StrictFor      time.Duration `toml:"strict_for"`
	MaxEntries     int           `toml:"max_entries"`
}

// RedisConfig is the [store.redis] section. Either URL (see ParseRedisURL)
// or Addrs with MasterName/Cluster; fields set in the URL override the
// others.
type RedisConfig struct {
	URL              string   `toml:"url"`
	Addrs            []string `toml:"addrs"`
	MasterName       string   `toml:"master_name"` // Sentinel: the monitored master's name; Addrs are the sentinels
	Cluster          bool     `toml:"cluster"`     // Addrs are cluster seed nodes
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

	DialTimeout  time.Duration `toml:"dial_timeout"`
	ReadTimeout  time.Duration `toml:"read_timeout"`
	WriteTimeout time.Duration `toml:"write_timeout"`
	PoolTimeout  time.Duration `toml:"pool_timeout"`
	PoolSize     int           `toml:"pool_size"`
}

// Mode reports "standalone", "sentinel" or "cluster".
func (r RedisConfig) Mode() string {
	switch {
	case r.MasterName != "":
		return "sentinel"
	case r.Cluster:
		return "cluster"
	default:
		return "standalone"
	}
}

// WithDefaults returns c with every unset field given its default. If a
// Redis URL is set it is parsed and merged (an invalid URL is left for
// Validate to report).
func (c Config) WithDefaults() Config {
	c.Events = c.Events.WithDefaults()
	if c.Backend == "" {
		c.Backend = BackendEmbedded
		if c.Redis.URL != "" || len(c.Redis.Addrs) > 0 {
			c.Backend = BackendRedis
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ReplaySlack == 0 {
		c.ReplaySlack = DefaultReplaySlack
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	f := &c.Flood
	if f.RecipientLimit == 0 {
		f.RecipientLimit = DefaultRecipientLimit
	}
	if f.ClientLimit == 0 {
		f.ClientLimit = DefaultClientLimit
	}
	if f.Window == 0 {
		f.Window = DefaultFloodWindow
	}
	if f.StrictFor == 0 {
		f.StrictFor = DefaultStrictFor
	}
	if f.MaxEntries == 0 {
		f.MaxEntries = DefaultFloodMaxEntries
	}
	r := &c.Redis
	if r.URL != "" {
		if u, err := ParseRedisURL(r.URL); err == nil {
			r.Addrs, r.MasterName, r.Cluster, r.DB, r.TLS = u.Addrs, u.MasterName, u.Cluster, u.DB, u.TLS
			if u.Username != "" {
				r.Username = u.Username
			}
			if u.Password != "" {
				r.Password = u.Password
			}
		}
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = DefaultRedisDialTimeout
	}
	if r.ReadTimeout == 0 {
		r.ReadTimeout = DefaultRedisIOTimeout
	}
	if r.WriteTimeout == 0 {
		r.WriteTimeout = DefaultRedisIOTimeout
	}
	if r.PoolTimeout == 0 {
		r.PoolTimeout = DefaultRedisPoolTimeout
	}
	if r.KeyPrefix == "" {
		r.KeyPrefix = DefaultRedisKeyPrefix
	}
	return c
}

// Validate reports configuration errors. Call it on WithDefaults' result.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("store: "+format, a...)) }
	switch c.Backend {
	case BackendEmbedded, BackendMemory:
	case BackendRedis:
		r := c.Redis
		if r.URL != "" {
			if _, err := ParseRedisURL(r.URL); err != nil {
				errs = append(errs, fmt.Errorf("store.redis.url: %w", err))
			}
		}
		if len(r.Addrs) == 0 && r.URL == "" {
			bad("backend is redis but neither redis.url nor redis.addrs is set")
		}
		if r.MasterName != "" && r.Cluster {
			bad("redis: master_name (Sentinel) and cluster are exclusive")
		}
		if r.Cluster && r.DB != 0 {
			bad("redis: Cluster has only database 0 (db = %d)", r.DB)
		}
		if r.DB < 0 {
			bad("redis: db must not be negative")
		}
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"dial_timeout", r.DialTimeout}, {"read_timeout", r.ReadTimeout}, {"write_timeout", r.WriteTimeout}, {"pool_timeout", r.PoolTimeout}} {
			if d.v < 0 || d.v > MaxTimeout {
				bad("redis.%s %v out of range (0, %v]", d.name, d.v, MaxTimeout)
			}
		}
		if r.PoolSize < 0 {
			bad("redis.pool_size must not be negative")
		}
	default:
		bad("unknown backend %q (want %q or %q)", c.Backend, BackendEmbedded, BackendRedis)
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		bad("timeout %v out of range (0, %v]", c.Timeout, MaxTimeout)
	}
	if c.ReplaySlack < 0 {
		bad("replay_slack must not be negative")
	}
	if c.Retention < 24*time.Hour {
		bad("retention %v is shorter than a day", c.Retention)
	}
	if c.BreakerFailures < 1 {
		bad("breaker_failures must be at least 1")
	}
	if c.BreakerCooldown < 0 {
		bad("breaker_cooldown must not be negative")
	}
	if c.Flood.Window <= 0 {
		bad("flood.window must be positive")
	}
	if c.Flood.StrictFor < 0 {
		bad("flood.strict_for must not be negative")
	}
	if c.Flood.MaxEntries < 0 {
		bad("flood.max_entries must not be negative")
	}
	return errors.Join(errs...)
}

// LoadSecret reads SecretFile (if set) into Secret. Surrounding whitespace
// is trimmed; an empty file is an error.
func (c *Config) LoadSecret() error {
	if c.SecretFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return fmt.Errorf("store: reading secret_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return fmt.Errorf("store: secret_file %s is empty", c.SecretFile)
	}
	c.Secret = []byte(s)
	return nil
}

// Observer receives store measurements, for metrics. Implementations must
// be cheap and safe for concurrent use.
type Observer interface {
	// ObserveStore is called after each operation ("record_sent",
	// "inbound", "ping") with its duration and error (nil on success).
	ObserveStore(op string, d time.Duration, err error)
	// BreakerState is called when the circuit breaker changes state
	// ("closed", "open", "half-open").
	BreakerState(state string)
}
