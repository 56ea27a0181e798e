// Package config reads bounce-milter's one TOML configuration file, which
// the milter, the policy service and the socketmap all share, and converts
// it into each package's own settings (Engine for the decision engine,
// KeySpec for the key files, Store.Cache for the store); no package below
// cmd reads this one's types.
//
// Decoding is strict: an unknown key or a bad value is an error that names
// the key and the line, because a typo in a mail filter's config silently
// turning a check off is worse than refusing to start. Values are checked as
// they are decoded (the types below implement encoding.TextUnmarshaler), so
// the decoder can say where the bad value stands.
//
// # What a reload changes
//
// SIGHUP (systemctl reload) reads the file and every key file again and
// builds everything that depends on them in one place; only when all of it
// loads does it replace the old, in every service at once, and a message
// in flight finishes under the configuration it began with. A file or key
// file that does not load is refused and the old configuration stays.
//
// Changed by a reload: domains and everything under [domains] (mode,
// syntax, delimiter, lifetime and so how long new records are kept, sign,
// since, key files and signing keys), the top-level mode, syntax,
// delimiter, lifetime, grace, key_file and signing_key, all of [outbound]
// and [inbound] (trusted networks, originating daemons, opt-out, VERP
// senders, bounce senders, exemptions, pass-through, relays, error actions,
// header, unrecorded_tag_budget, strip_tags, max_message_bytes), and the
// domain labels of the metrics.
//
// Also changed: [alerts] (detectors, thresholds, windows, baselines,
// responses), except its interval and webhook.
//
// Needing a restart (a reload logs that they changed and keeps the old
// ones): [listen] (addresses, socket mode and group, connection limits),
// [web], [alerts] interval and webhook,
// [store] (backend, its addresses, timeouts, flood limits), data_dir and
// [log]. ([store] replay_slack is read again: the engine applies it.)
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
)

// Config is the whole file.
type Config struct {
	// DataDir holds the generated key file, the embedded store and state.
	DataDir string `toml:"data_dir"`
	// KeyFile is the default key file, for domains without their own.
	KeyFile string `toml:"key_file"`
	// SigningKey overrides the default key file's signing key (default: the
	// last key listed in the file).
	SigningKey *int `toml:"signing_key"`
	// Lifetime of a tag in days (1-30).
	Lifetime int `toml:"lifetime"`
	// Mode for untagged bounces to domains that do not set their own.
	Mode Mode `toml:"mode"`
	// Syntax of the tags: "prvs" (prvs=KDDDHHHHHH=user@domain) or
	// "subaddress" (user+prvs=KDDDHHHHHH@domain).
	Syntax Syntax `toml:"syntax"`
	// Delimiter of the sub-address syntax (default "+").
	Delimiter Delimiter `toml:"delimiter"`
	// Grace is how long after a domain is first switched on untagged
	// bounces are accepted, since they can be for mail sent before signing
	// began (Postfix retries for 5 days by default).
	Grace *Duration `toml:"grace"`

	Listen   Listen            `toml:"listen"`
	Log      Log               `toml:"log"`
	Outbound Outbound          `toml:"outbound"`
	Inbound  Inbound           `toml:"inbound"`
	Domains  map[string]Domain `toml:"domains"`
	Store    Store             `toml:"store"`
	Events   Events            `toml:"events"`
	Web      Web               `toml:"web"`
	Alerts   Alerts            `toml:"alerts"`
}

// Events is the [events] section: what genuine bounces tell our senders
// (package events).
type Events struct {
	// Retention is how long events are kept (default 30d).
	Retention Duration `toml:"retention"`
	// Max bounds the events kept (default 1000000; the oldest go first).
	Max int `toml:"max"`
	// HashRecipients stores remote addresses only as keyed hashes (with
	// [store] secret_file), for sites that must not keep them.
	HashRecipients bool `toml:"hash_recipients"`
	// Webhook is a URL that gets one signed JSON POST per event ("": off).
	Webhook string `toml:"webhook"`
	// WebhookSecretFile holds the key of the webhook's HMAC signature.
	WebhookSecretFile string `toml:"webhook_secret_file"`
}

// Listen says where the services listen: "inet:HOST:PORT" or "unix:PATH";
// empty turns a service off.
type Listen struct {
	Milter Endpoint `toml:"milter"`
	// Sign is a second milter that only signs: the submission service
	// uses it (-o smtpd_milters=...), which costs Postfix less than the
	// full milter and keeps judging bounces at the MX only.
	Sign      Endpoint `toml:"sign"`
	Socketmap Endpoint `toml:"socketmap"`
	Policy    Endpoint `toml:"policy"`
	// Metrics is HOST:PORT for the Prometheus endpoint and /healthz.
	Metrics string `toml:"metrics"`
	// Web is HOST:PORT for the monitoring pages and their JSON API
	// (see Web).
	Web string `toml:"web"`
	// SocketMode is the permission of unix sockets (default 0660).
	SocketMode string `toml:"socket_mode"`
	// SocketGroup is the group unix sockets (and the directory holding
	// them) are given, so that Postfix can connect and other local users
	// cannot (default "postfix" when that group exists and the daemon may
	// give files to it).
	SocketGroup string `toml:"socket_group"`
	// MaxConnections caps the connections each service (milter, sign-only
	// milter, socketmap, policy, metrics, web) holds open at once (default 1000). Over
	// it a new connection is closed at once, so that whoever can connect
	// cannot hold memory without bound.
	MaxConnections int `toml:"max_connections"`
}

// Log configures logging to stderr.
type Log struct {
	Format string `toml:"format"` // "text" or "json"
	Level  string `toml:"level"`  // "debug", "info", "warn", "error"
}

// Outbound says which mail is ours to sign.
type Outbound struct {
	// TrustedNetworks whose clients are our users (empty by default: a
	// loopback client is not ours by itself, content filters re-inject
	// from loopback).
	TrustedNetworks []Prefix `toml:"trusted_networks"`
	// OriginatingDaemons are {daemon_name} values of Postfix services that
	// carry our users' mail (-o milter_macro_daemon_name=ORIGINATING).
	OriginatingDaemons []string `toml:"originating_daemons"`
	// OptOut lists senders never to sign: "user@domain", "@domain",
	// "user@" or glob patterns with '*'.
	OptOut []string `toml:"opt_out"`
	// VERPSenders lists senders whose mail gets a signed VERP return path
	// (one per recipient is not possible in a milter; used when the
	// message has a single recipient), same pattern syntax as OptOut.
	VERPSenders []string `toml:"verp_senders"`
	// OnError is what happens to outbound mail on an internal error:
	// "accept-unsigned" (default) or "tempfail".
	OnError Action `toml:"on_error"`
}

// Inbound says how bounces to our domains are checked.
type Inbound struct {
	// BounceSenders are local parts of non-null senders treated as bounce
	// senders (default mailer-daemon, postmaster).
	BounceSenders []string `toml:"bounce_senders"`
	// Exempt recipients are never rejected: local parts ("abuse"), full
	// addresses or "@domain"/glob patterns. postmaster is always exempt.
	Exempt []string `toml:"exempt"`
	// Relays are our own outgoing relay host names: seeing one in the
	// Received lines of a returned original proves we sent it.
	Relays []string `toml:"relays"`
	// OnError is the action on an internal error: "accept" (default),
	// "tempfail" or "reject".
	OnError Action `toml:"on_error"`
	// OnStoreError is the action for an untagged bounce whose decision
	// needs the store when it cannot answer: "tempfail" (default; real
	// MTAs retry, spam bots do not), "accept" or "reject".
	OnStoreError Action `toml:"on_store_error"`
	// Header is the verdict header's name.
	Header string `toml:"header"`
	// PassThrough are recipients left alone: they are not user mailboxes
	// and their owners check what reaches them (PostSRSd's SRS0=/SRS1=
	// addresses, the VERP bounce addresses of list managers). Patterns as
	// for exempt; a glob without "@" matches the local part. Default:
	// backscatter.DefaultPassThrough; [] judges them like any recipient.
	PassThrough []string `toml:"pass_through"`
	// UnrecordedTagBudget is how many bounces a valid tag with no record
	// of signing may receive (default 5): a tag found by guessing gets a
	// few, not an unlimited number. -1 removes the limit.
	UnrecordedTagBudget int `toml:"unrecorded_tag_budget"`
	// StripTags says who strips valid tags from recipients: "postfix"
	// (default: the socketmap or the regexp map postfix-config prints, in
	// recipient_canonical_maps; they also let tagged recipients pass
	// recipient validation) or "milter" (the milter replaces the
	// recipient; only for sites with no recipient validation).
	StripTags string `toml:"strip_tags"`
	// MaxMessageBytes caps how much of a possible bounce is buffered and
	// analysed.
	MaxMessageBytes Size `toml:"max_message_bytes"`
}

// Domain is one of our domains. Everything left unset follows the top level.
type Domain struct {
	Mode       Mode      `toml:"mode"`
	KeyFile    string    `toml:"key_file"`
	SigningKey *int      `toml:"signing_key"`
	Syntax     Syntax    `toml:"syntax"`
	Delimiter  Delimiter `toml:"delimiter"`
	Lifetime   int       `toml:"lifetime"`
	// Sign turns outbound signing off for the domain when false (inbound
	// checks still run, e.g. while another host signs).
	Sign *bool `toml:"sign"`
	// Since is when signing began for the domain (YYYY-MM-DD). Unset, the
	// first start that sees the domain records it in the data directory.
	Since *toml.LocalDate `toml:"since"`
}

// The engine's own types, read from the file as they are.
type (
	// Mode is what happens to an untagged bounce without evidence.
	Mode = backscatter.Mode
	// Syntax is the tag syntax.
	Syntax = backscatter.Syntax
	// Action is a failure action.
	Action = backscatter.ErrorAction
)

// Modes, syntaxes and actions.
const (
	ModeUnset            = backscatter.ModeUnset
	ModeOff              = backscatter.ModeOff
	ModeTag              = backscatter.ModeTag
	ModeQuarantine       = backscatter.ModeQuarantine
	ModeReject           = backscatter.ModeReject
	SyntaxUnset          = backscatter.SyntaxUnset
	SyntaxPRVS           = backscatter.SyntaxPRVS
	SyntaxSubaddress     = backscatter.SyntaxSubaddress
	ActionUnset          = backscatter.ErrorUnset
	ActionAccept         = backscatter.ErrorAccept
	ActionAcceptUnsigned = backscatter.ErrorAcceptUnsigned
	ActionTempfail       = backscatter.ErrorTempfail
	ActionReject         = backscatter.ErrorReject
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) { return backscatter.ParseMode(s) }

// Delimiter is a one-character sub-address delimiter.
type Delimiter byte

func (d *Delimiter) UnmarshalText(b []byte) error {
	if len(b) != 1 || !strings.ContainsRune("+-_=.", rune(b[0])) {
		return fmt.Errorf("delimiter %q: want one of the characters \"+-_=.\"", b)
	}
	*d = Delimiter(b[0])
	return nil
}

// Endpoint is a listen address, written inet:HOST:PORT or unix:PATH, or
// "off".
type Endpoint struct {
	Network, Address string // as for net.Listen; empty when off
	// Off is set when the file says "off": the service is off even where
	// it has a default.
	Off bool
}

func (e Endpoint) String() string {
	switch e.Network {
	case "":
		return ""
	case "unix":
		return "unix:" + e.Address
	}
	return "inet:" + e.Address
}

// IsSet reports whether the endpoint is configured.
func (e Endpoint) IsSet() bool { return e.Network != "" }

// ParseEndpoint checks an endpoint and returns its network and address.
func ParseEndpoint(s string) (network, address string, err error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("listen address %q: want inet:HOST:PORT or unix:PATH", s)
	}
	switch kind {
	case "inet", "tcp", "inet6":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return "", "", fmt.Errorf("listen address %q: want inet:HOST:PORT", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", "", fmt.Errorf("listen address %q: bad port %q", s, port)
		}
		return "tcp", rest, nil
	case "unix", "local":
		if !filepath.IsAbs(rest) {
			return "", "", fmt.Errorf("listen address %q: the socket path must be absolute", s)
		}
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("listen address %q: want inet:HOST:PORT or unix:PATH", s)
}

func (e *Endpoint) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*e = Endpoint{}
		return nil
	}
	if string(b) == "off" {
		*e = Endpoint{Off: true}
		return nil
	}
	n, a, err := ParseEndpoint(string(b))
	if err != nil {
		return err
	}
	*e = Endpoint{Network: n, Address: a}
	return nil
}

// MustEndpoint parses an endpoint known to be good (defaults, tests).
func MustEndpoint(s string) Endpoint {
	var e Endpoint
	if err := e.UnmarshalText([]byte(s)); err != nil {
		panic(err)
	}
	return e
}

// Prefix is an IP network ("192.0.2.0/24", or one address).
type Prefix struct{ netip.Prefix }

func (p *Prefix) UnmarshalText(b []byte) error {
	s := string(b)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("network %q: %w", s, err)
		}
		p.Prefix = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("network %q: %w", s, err)
	}
	p.Prefix = v.Masked()
	return nil
}

// Duration is a time.Duration written as "90s", "12h" or "10d".
type Duration struct{ time.Duration }

// ParseDuration parses Go durations and whole days ("10d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("duration %q: want e.g. 10d, 12h, 30s", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 10d, 12h, 30s", s)
	}
	return d, nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	d.Duration = v
	return err
}

// Size is a byte count written as 1048576, "512k" or "10M".
type Size int64

func (s *Size) UnmarshalText(b []byte) error {
	str := strings.ToUpper(strings.TrimSpace(string(b)))
	mult := int64(1)
	switch {
	case strings.HasSuffix(str, "K"):
		mult, str = 1<<10, str[:len(str)-1]
	case strings.HasSuffix(str, "M"):
		mult, str = 1<<20, str[:len(str)-1]
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n <= 0 || n > 1<<30/mult {
		return fmt.Errorf("size %q: want bytes, e.g. 1048576, 512k, 4M (at most 1G)", b)
	}
	*s = Size(n * mult)
	return nil
}

// Default returns the configuration used with no file: everything on
// loopback, keys and store under dataDir.
func Default(dataDir string) *Config {
	c := &Config{DataDir: dataDir}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keys")
	}
	if c.Lifetime == 0 {
		c.Lifetime = 7
	}
	if c.Mode == ModeUnset {
		c.Mode = ModeReject
	}
	if c.Syntax == SyntaxUnset {
		c.Syntax = SyntaxPRVS
	}
	if c.Delimiter == 0 {
		c.Delimiter = '+'
	}
	if c.Grace == nil {
		c.Grace = &Duration{10 * 24 * time.Hour}
	}
	if !c.Listen.Milter.IsSet() && !c.Listen.Milter.Off {
		c.Listen.Milter = Endpoint{Network: "unix", Address: filepath.Join(SocketDir(c.DataDir), "milter.sock")}
	}
	if c.Listen.SocketMode == "" {
		c.Listen.SocketMode = "0660"
	}
	if c.Listen.MaxConnections == 0 {
		c.Listen.MaxConnections = DefaultMaxConnections
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Outbound.OriginatingDaemons == nil {
		c.Outbound.OriginatingDaemons = []string{"ORIGINATING"}
	}
	if c.Outbound.OnError == ActionUnset {
		c.Outbound.OnError = ActionAcceptUnsigned
	}
	if c.Inbound.BounceSenders == nil {
		c.Inbound.BounceSenders = []string{"mailer-daemon", "postmaster"}
	}
	if c.Inbound.OnError == ActionUnset {
		c.Inbound.OnError = ActionAccept
	}
	if c.Inbound.OnStoreError == ActionUnset {
		c.Inbound.OnStoreError = ActionTempfail
	}
	if c.Inbound.Header == "" {
		c.Inbound.Header = "X-Bounce-Check"
	}
	if c.Inbound.PassThrough == nil {
		c.Inbound.PassThrough = append([]string(nil), backscatter.DefaultPassThrough...)
	}
	if c.Inbound.UnrecordedTagBudget == 0 {
		c.Inbound.UnrecordedTagBudget = 5
	}
	if c.Inbound.StripTags == "" {
		c.Inbound.StripTags = "postfix"
	}
	if c.Inbound.MaxMessageBytes == 0 {
		c.Inbound.MaxMessageBytes = 1 << 20
	}
	if c.Domains == nil {
		c.Domains = map[string]Domain{}
	}
	if c.Events.Retention.Duration == 0 {
		c.Events.Retention.Duration = 30 * 24 * time.Hour
	}
	if c.Events.Max == 0 {
		c.Events.Max = 1_000_000
	}
	c.applyWebDefaults()
	c.applyAlertsDefaults()
}

// DefaultMaxConnections is listen.max_connections when unset: more than
// Postfix's smtpd and cleanup processes hold at once on a busy site
// (default_process_limit is 100), far less memory than an attacker would
// like (an idle milter connection costs some 10 KB).
const DefaultMaxConnections = 1000

// MaxMaxConnections bounds listen.max_connections.
const MaxMaxConnections = 100000

// PostfixSpool is where Debian's Postfix runs chrooted: a unix socket
// under it is reachable from the chroot as the path relative to it.
const PostfixSpool = "/var/spool/postfix"

// SocketDir is where the default unix sockets go: a bounce-milter
// directory in Postfix's spool (inside its chroot, which is where
// Postfix's smtpd and cleanup look for milter sockets on Debian) when
// Postfix is installed, else the data directory.
func SocketDir(dataDir string) string {
	if fi, err := os.Stat(PostfixSpool); err == nil && fi.IsDir() {
		return filepath.Join(PostfixSpool, "bounce-milter")
	}
	return dataDir
}

// PostfixEndpoint is how Postfix's main.cf names an endpoint: a unix
// socket in Postfix's spool relative to it (so that chrooted and
// unchrooted daemons both find it).
func PostfixEndpoint(e Endpoint) string {
	if e.Network == "unix" {
		if rel, ok := strings.CutPrefix(e.Address, PostfixSpool+"/"); ok {
			return "unix:" + rel
		}
	}
	return e.String()
}

// DefaultDataDir is /var/lib/bounce-milter for root and
// $XDG_STATE_HOME/bounce-milter (or ~/.local/state/bounce-milter) otherwise.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/bounce-milter"
	}
	if s := os.Getenv("XDG_STATE_HOME"); s != "" {
		return filepath.Join(s, "bounce-milter")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "bounce-milter")
	}
	return "bounce-milter-data"
}

// Parse decodes a configuration file's contents; name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, describe(err, name)
	}
	for d, dc := range c.Domains {
		lower := strings.ToLower(strings.TrimSuffix(d, "."))
		if lower == "" || strings.ContainsAny(lower, " @/") {
			return nil, fmt.Errorf("%s: [domains.%q]: not a domain name", name, d)
		}
		if lower != d {
			if _, dup := c.Domains[lower]; dup {
				return nil, fmt.Errorf("%s: [domains.%q] and [domains.%q] are the same domain", name, d, lower)
			}
			delete(c.Domains, d)
			c.Domains[lower] = dc
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

// Load reads and decodes a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// describe turns the TOML decoder's errors into one message that names the
// file, line and key.
func describe(err error, name string) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var msgs []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", name, row, strings.Join(e.Key(), ".")))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("%s:%d: key %q: %s", name, row, strings.Join(k, "."), de.Error())
		}
		return fmt.Errorf("%s:%d: %s", name, row, de.Error())
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Validate checks what single values cannot show.
func (c *Config) Validate() error {
	if c.Lifetime < 1 || c.Lifetime > 30 {
		return fmt.Errorf("lifetime = %d: want 1-30 days", c.Lifetime)
	}
	if c.SigningKey != nil && (*c.SigningKey < 0 || *c.SigningKey > 9) {
		return fmt.Errorf("signing_key = %d: want a digit 0-9", *c.SigningKey)
	}
	if _, err := strconv.ParseUint(c.Listen.SocketMode, 8, 32); err != nil {
		return fmt.Errorf("listen.socket_mode = %q: want an octal mode such as 0660", c.Listen.SocketMode)
	}
	if c.Listen.MaxConnections < 1 || c.Listen.MaxConnections > MaxMaxConnections {
		return fmt.Errorf("listen.max_connections = %d: want 1-%d", c.Listen.MaxConnections, MaxMaxConnections)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format = %q: want text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level = %q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Outbound.OnError != ActionAcceptUnsigned && c.Outbound.OnError != ActionTempfail {
		return fmt.Errorf("outbound.on_error = %s: want accept-unsigned or tempfail", c.Outbound.OnError)
	}
	if c.Events.Max < 0 {
		return fmt.Errorf("events.max = %d: want a positive number", c.Events.Max)
	}
	if c.Events.Webhook != "" {
		u, err := url.Parse(c.Events.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("events.webhook = %q: want an http(s) URL", c.Events.Webhook)
		}
		if c.Events.WebhookSecretFile == "" {
			return fmt.Errorf("events.webhook needs events.webhook_secret_file (the key of its HMAC signature)")
		}
	}
	if c.Inbound.StripTags != "postfix" && c.Inbound.StripTags != "milter" {
		return fmt.Errorf("inbound.strip_tags = %q: want postfix or milter", c.Inbound.StripTags)
	}
	if c.Inbound.UnrecordedTagBudget < -1 {
		return fmt.Errorf("inbound.unrecorded_tag_budget = %d: want a positive number, or -1 for no limit", c.Inbound.UnrecordedTagBudget)
	}
	if c.Inbound.OnError == ActionAcceptUnsigned || c.Inbound.OnStoreError == ActionAcceptUnsigned {
		return fmt.Errorf("inbound: accept-unsigned is an outbound action; want accept, tempfail or reject")
	}
	if err := c.Store.Cache().Validate(); err != nil {
		return err
	}
	if err := c.validateWeb(); err != nil {
		return err
	}
	if err := c.validateAlerts(); err != nil {
		return err
	}
	for name, d := range c.Domains {
		if d.Lifetime != 0 && (d.Lifetime < 1 || d.Lifetime > 30) {
			return fmt.Errorf("domains.%q.lifetime = %d: want 1-30 days", name, d.Lifetime)
		}
		if d.SigningKey != nil && (*d.SigningKey < 0 || *d.SigningKey > 9) {
			return fmt.Errorf("domains.%q.signing_key = %d: want a digit 0-9", name, *d.SigningKey)
		}
	}
	return nil
}

// DomainNames lists our domains, sorted.
func (c *Config) DomainNames() []string {
	out := make([]string, 0, len(c.Domains))
	for d := range c.Domains {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Effective is a domain's settings with the top level's filled in.
type Effective struct {
	Name       string
	Mode       Mode
	KeyFile    string
	SigningKey *int
	Syntax     Syntax
	Delimiter  byte
	Lifetime   int
	Sign       bool
	Since      time.Time
}

// For returns the effective settings of domain (lower-cased), and whether
// it is one of ours.
func (c *Config) For(domain string) (Effective, bool) {
	d, ok := c.Domains[strings.ToLower(strings.TrimSuffix(domain, "."))]
	if !ok {
		return Effective{}, false
	}
	e := Effective{
		Name: strings.ToLower(domain), Mode: c.Mode, KeyFile: c.KeyFile, SigningKey: c.SigningKey,
		Syntax: c.Syntax, Delimiter: byte(c.Delimiter), Lifetime: c.Lifetime, Sign: true,
	}
	if d.Since != nil {
		e.Since = d.Since.AsTime(time.UTC)
	}
	if d.Mode != ModeUnset {
		e.Mode = d.Mode
	}
	if d.KeyFile != "" {
		e.KeyFile, e.SigningKey = d.KeyFile, nil
	}
	if d.SigningKey != nil {
		e.SigningKey = d.SigningKey
	}
	if d.Syntax != SyntaxUnset {
		e.Syntax = d.Syntax
	}
	if d.Delimiter != 0 {
		e.Delimiter = byte(d.Delimiter)
	}
	if d.Lifetime != 0 {
		e.Lifetime = d.Lifetime
	}
	if d.Sign != nil {
		e.Sign = *d.Sign
	}
	return e, true
}
