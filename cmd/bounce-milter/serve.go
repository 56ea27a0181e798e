package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/milter"
	"github.com/bounce-milter/bounce-milter/internal/policy"
)

// serveFlags are the essentials that can be given without a config file;
// a flag given overrides the file.
type serveFlags struct {
	config, milter, socketmap, policy, domains, keyFile, dataDir, mode, grace, redis, logFormat, logLevel, metrics *string
}

func addServeFlags(fs *flag.FlagSet) serveFlags {
	return serveFlags{
		config:    fs.String("config", "", "configuration `file` (TOML); without it everything runs on defaults"),
		milter:    fs.String("milter", "", "milter listen `address`, inet:HOST:PORT or unix:PATH (default inet:127.0.0.1:8891)"),
		socketmap: fs.String("socketmap", "", "socketmap listen `address` (default inet:127.0.0.1:8892; \"off\" to disable)"),
		policy:    fs.String("policy", "", "policy-delegation listen `address` (default off)"),
		domains:   fs.String("domains", "", "our domains, comma-separated `list` (added to the config's)"),
		keyFile:   fs.String("key-file", "", "default key `file` (created with mode 0600 if missing)"),
		dataDir:   fs.String("data-dir", "", "data `directory` for keys, the embedded store and state"),
		mode:      fs.String("mode", "", "default `mode` for untagged bounces: off, tag, quarantine, reject"),
		grace:     fs.String("grace", "", "accept untagged bounces for this `long` after a domain is first seen (default 10d)"),
		redis:     fs.String("redis", "", "shared store `URL` (redis://, rediss://, redis-sentinel://, redis-cluster://)"),
		logFormat: fs.String("log-format", "", "log `format`: text or json"),
		logLevel:  fs.String("log-level", "", "log `level`: debug, info, warn, error"),
		metrics:   fs.String("metrics", "", "metrics and /healthz listen `HOST:PORT` (default off)"),
	}
}

// loadConfig reads the config file (or the defaults) and applies the flags.
func (f serveFlags) loadConfig() (*config.Config, error) {
	var cfg *config.Config
	if *f.config != "" {
		c, err := config.Load(*f.config)
		if err != nil {
			return nil, err
		}
		cfg = c
		if *f.dataDir != "" {
			cfg.DataDir = *f.dataDir
		}
	} else {
		cfg = config.Default(*f.dataDir)
		if !cfg.Listen.Socketmap.IsSet() {
			cfg.Listen.Socketmap = config.MustEndpoint("inet:127.0.0.1:8892")
		}
	}
	set := func(name, v string, into *config.Endpoint) error {
		if v == "" {
			return nil
		}
		if v == "off" {
			*into = config.Endpoint{}
			return nil
		}
		if err := into.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		return nil
	}
	if err := errors.Join(set("milter", *f.milter, &cfg.Listen.Milter), set("socketmap", *f.socketmap, &cfg.Listen.Socketmap), set("policy", *f.policy, &cfg.Listen.Policy)); err != nil {
		return nil, err
	}
	if *f.keyFile != "" {
		cfg.KeyFile = *f.keyFile
	} else if *f.config == "" || cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(cfg.DataDir, "keys")
	}
	if *f.mode != "" {
		m, err := config.ParseMode(*f.mode)
		if err != nil {
			return nil, fmt.Errorf("--mode: %w", err)
		}
		cfg.Mode = m
	}
	for _, d := range strings.Split(*f.domains, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			if strings.ContainsAny(d, "@ /") {
				return nil, fmt.Errorf("--domains: %q is not a domain name", d)
			}
			if _, ok := cfg.Domains[d]; !ok {
				cfg.Domains[d] = config.Domain{}
			}
		}
	}
	if *f.grace != "" {
		d, err := config.ParseDuration(*f.grace)
		if err != nil {
			return nil, fmt.Errorf("--grace: %w", err)
		}
		cfg.Grace = &config.Duration{Duration: d}
	}
	if *f.logFormat != "" {
		cfg.Log.Format = *f.logFormat
	}
	if *f.logLevel != "" {
		cfg.Log.Level = *f.logLevel
	}
	if *f.metrics != "" {
		cfg.Listen.Metrics = *f.metrics
	}
	if err := applyRedisFlag(cfg, *f.redis); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ensureKeyFile creates a key file with one fresh key when none exists,
// mode 0600 in a 0700 directory.
func ensureKeyFile(path string, log *slog.Logger) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key file directory: %w", err)
	}
	line, err := newKeyLine(0)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	_, werr := fmt.Fprintf(f, "# bounce-milter keys: \"K SECRET\", one a line; the last one signs, all verify.\n# Created %s. Copy this file to every host of the fleet.\n%s\n", time.Now().UTC().Format(time.RFC3339), line)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	log.Info("created key file", "path", path)
	return nil
}

// signingSince returns when signing began per domain: the config's since,
// else the date recorded in the data directory the first time the domain
// was seen (recorded now for new domains).
func signingSince(cfg *config.Config, now time.Time) (map[string]time.Time, error) {
	path := filepath.Join(cfg.DataDir, "domains-since.json")
	recorded := map[string]time.Time{}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &recorded); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	changed := false
	out := map[string]time.Time{}
	for _, d := range cfg.DomainNames() {
		eff, _ := cfg.For(d)
		if !eff.Since.IsZero() {
			out[d] = eff.Since
			continue
		}
		t, ok := recorded[d]
		if !ok {
			t, changed = now.UTC(), true
			recorded[d] = t
		}
		out[d] = t
	}
	if changed {
		data, _ := json.MarshalIndent(recorded, "", "  ")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("recording domains: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("recording domains: %w", err)
		}
	}
	return out, nil
}

// buildEngine is everything a (re)load does before it can take effect.
func buildEngine(cfg *config.Config) (*backscatter.Engine, error) {
	ring, err := backscatter.LoadKeyRing(cfg)
	if err != nil {
		return nil, err
	}
	since, err := signingSince(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	return backscatter.NewEngine(cfg, ring, since), nil
}

func listen(ep config.Endpoint, socketMode string) (net.Listener, error) {
	if ep.Network == "unix" {
		if err := os.MkdirAll(filepath.Dir(ep.Address), 0o755); err != nil {
			return nil, err
		}
		// A socket left by a previous run that crashed.
		if fi, err := os.Lstat(ep.Address); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			if c, err := net.Dial("unix", ep.Address); err == nil {
				c.Close()
				return nil, fmt.Errorf("%s: another process is listening there", ep)
			}
			os.Remove(ep.Address)
		}
	}
	ln, err := net.Listen(ep.Network, ep.Address)
	if err != nil {
		return nil, err
	}
	if ep.Network == "unix" {
		mode, _ := strconv.ParseUint(socketMode, 8, 32)
		if err := os.Chmod(ep.Address, fs.FileMode(mode)); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

// services is what serve runs; reload swaps their engine.
type services struct {
	milter    *milter.Server
	socketmap *policy.Socketmap
	extra     []func(*backscatter.Engine)
}

func (s *services) setEngine(e *backscatter.Engine) {
	if s.milter != nil {
		s.milter.SetEngine(e)
	}
	if s.socketmap != nil {
		s.socketmap.SetEngine(e)
	}
	for _, f := range s.extra {
		f(e)
	}
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "serve [--config FILE] [--milter ADDR] [--socketmap ADDR] [--domains LIST] [--key-file F] [--data-dir DIR] [--mode MODE] [--redis URL]",
		"Runs the milter, the socketmap and (when configured) the policy service in one process.\n"+
			"With no configuration: milter on inet:127.0.0.1:8891, socketmap on inet:127.0.0.1:8892,\n"+
			"a key file created under the data directory, the embedded store. Prints the Postfix lines\n"+
			"to add. SIGHUP reloads the configuration and keys; SIGTERM finishes mail in flight and exits.", stderr)
	sf := addServeFlags(fs)
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	cfg, err := sf.loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	gomilter.LogWarning = func(format string, v ...any) {
		log.Warn("milter protocol: " + fmt.Sprintf(format, v...))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		log.Error("data directory", "path", cfg.DataDir, "err", err)
		return 1
	}
	if err := ensureKeyFile(cfg.KeyFile, log); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	engine, err := buildEngine(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if len(cfg.Domains) == 0 {
		log.Warn("no domains configured: nothing is signed or checked; add --domains example.com or [domains.\"example.com\"] to the config")
	}
	store, storeDesc, err := openStore(cfg, log)
	if err != nil {
		log.Error("cannot open the store", "err", err)
		return 1
	}
	defer store.Close()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	svc := &services{}
	var runners []func() error
	var shutdowns []func(context.Context) error
	var listening []string
	analyzer := newAnalyzer(cfg)
	if cfg.Listen.Milter.IsSet() {
		ln, err := listen(cfg.Listen.Milter, cfg.Listen.SocketMode)
		if err != nil {
			log.Error("milter: cannot listen", "address", cfg.Listen.Milter.String(), "err", err)
			return 1
		}
		svc.milter = milter.New(milter.Options{
			Engine: engine, Store: store.Store(), Analyzer: analyzer, Logger: log,
			Observer:      store.observer(),
			StripInMilter: !cfg.Listen.Socketmap.IsSet(),
			StoreTimeout:  store.timeout(),
			TagTTL:        time.Duration(cfg.Lifetime+3) * 24 * time.Hour,
		})
		runners = append(runners, func() error { return svc.milter.Serve(ln) })
		shutdowns = append(shutdowns, svc.milter.Shutdown)
		listening = append(listening, "milter "+cfg.Listen.Milter.String())
	}
	if cfg.Listen.Socketmap.IsSet() {
		ln, err := listen(cfg.Listen.Socketmap, cfg.Listen.SocketMode)
		if err != nil {
			log.Error("socketmap: cannot listen", "address", cfg.Listen.Socketmap.String(), "err", err)
			return 1
		}
		svc.socketmap = policy.NewSocketmap(engine, log)
		runners = append(runners, func() error { return svc.socketmap.Serve(ln) })
		shutdowns = append(shutdowns, svc.socketmap.Shutdown)
		listening = append(listening, "socketmap "+cfg.Listen.Socketmap.String())
	}
	more, err := startExtraServices(ctx, cfg, engine, store, log, svc)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	for _, x := range more {
		runners = append(runners, x.run)
		shutdowns = append(shutdowns, x.shutdown)
		listening = append(listening, x.name)
	}
	if len(runners) == 0 {
		log.Error("nothing to serve: every listener is off")
		return 2
	}

	errc := make(chan error, len(runners))
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- r() }()
	}
	log.Info("bounce-milter started", "version", versionString(), "listening", strings.Join(listening, ", "),
		"domains", strings.Join(cfg.DomainNames(), ","), "store", storeDesc, "data_dir", cfg.DataDir)
	fmt.Fprintf(stdout, "bounce-milter %s listening: %s\n\n%s", versionString(), strings.Join(listening, ", "), postfixLines(cfg))
	notifyReady(log)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	code := 0
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(sf, cfg, svc, log)
				continue
			}
			log.Info("stopping", "signal", sig.String())
			break loop
		case err := <-errc:
			if err != nil {
				log.Error("listener failed", "err", err)
				code = 1
			}
			break loop
		}
	}
	notifyStopping()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sd := range shutdowns {
		if err := sd(sctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	wg.Wait()
	log.Info("stopped")
	return code
}

// reload re-reads the config and keys; a bad new config is refused and the
// old one stays in force. Listener addresses and the store are not changed
// by a reload (restart for those).
func reload(sf serveFlags, old *config.Config, svc *services, log *slog.Logger) {
	notifyReloading()
	defer notifyReady(log)
	cfg, err := sf.loadConfig()
	if err == nil {
		var e *backscatter.Engine
		if e, err = buildEngine(cfg); err == nil {
			if cfg.Listen != old.Listen {
				log.Warn("reload: listen addresses changed; they take effect at the next restart")
			}
			svc.setEngine(e)
			log.Info("reloaded", "domains", strings.Join(cfg.DomainNames(), ","))
			return
		}
	}
	log.Error("reload refused; the previous configuration stays in force", "err", err)
}

// postfixLines are the main.cf and master.cf lines for cfg.
func postfixLines(cfg *config.Config) string {
	var b strings.Builder
	ep := func(e config.Endpoint) string { return e.String() }
	b.WriteString("# --- main.cf (postconf -e '...' each line, then postfix reload) ---\n")
	if cfg.Listen.Milter.IsSet() {
		m := ep(cfg.Listen.Milter)
		b.WriteString("# Mail from SMTP clients: sign our users' senders, check bounces to us.\n")
		fmt.Fprintf(&b, "smtpd_milters = %s\n", m)
		b.WriteString("# Mail from sendmail(1)/pickup: signed, never rejected.\n")
		fmt.Fprintf(&b, "non_smtpd_milters = %s\n", m)
		b.WriteString("# If bounce-milter is down, mail still flows (unsigned, unchecked).\n")
		b.WriteString("milter_default_action = accept\n")
		b.WriteString("milter_protocol = 6\n")
	}
	if cfg.Listen.Socketmap.IsSet() {
		b.WriteString("# Strip valid tags before delivery; lets tagged recipients pass\n# reject_unlisted_recipient and repairs Postfix's own bounces to tagged senders.\n" +
			"# While bounce-milter is down this map cannot answer and Postfix defers mail (4xx,\n# nothing lost). For mail to flow unchecked instead, run serve --socketmap off and\n# leave this line out: the milter then strips tags itself.\n")
		fmt.Fprintf(&b, "recipient_canonical_maps = socketmap:%s:unbatv\n", ep(cfg.Listen.Socketmap))
		b.WriteString("recipient_canonical_classes = envelope_recipient\n")
	}
	b.WriteString(policyLines(cfg))
	b.WriteString("\n# --- master.cf: mark mail of your users on submission as ours ---\n")
	b.WriteString("submission inet n - y - - smtpd\n  -o syslog_name=postfix/submission\n  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n  -o milter_macro_daemon_name=ORIGINATING\n")
	if len(cfg.Domains) > 0 {
		names := cfg.DomainNames()
		sort.Strings(names)
		fmt.Fprintf(&b, "\n# Our domains: %s\n", strings.Join(names, ", "))
	}
	return b.String()
}

func cmdPostfixConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("postfix-config", "postfix-config [--config FILE] [--milter ADDR] [--socketmap ADDR] [--policy ADDR]",
		"Prints the Postfix main.cf and master.cf lines for the configuration that serve would run,\n"+
			"with a comment on each. Takes the same options as serve.", stderr)
	sf := addServeFlags(fs)
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	cfg, err := sf.loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "postfix-config: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, postfixLines(cfg))
	return 0
}
