package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/config"
)

// serveFlags are the essentials that can be given without a config file;
// a flag given overrides the file.
type serveFlags struct {
	config, milter, sign, socketmap, policy, domains, keyFile, dataDir, mode, grace, redis, logFormat, logLevel, metrics, web *string
}

func addServeFlags(fs *flag.FlagSet) serveFlags {
	return serveFlags{
		config:    fs.String("config", "", "configuration `file` (TOML); without it everything runs on defaults"),
		milter:    fs.String("milter", "", "milter listen `address`, unix:PATH or inet:HOST:PORT (default unix:"+config.PostfixSpool+"/bounce-milter/milter.sock)"),
		sign:      fs.String("sign", "", "sign-only milter listen `address` for the submission service (default without a config: unix:"+config.PostfixSpool+"/bounce-milter/sign.sock; \"off\" to disable)"),
		socketmap: fs.String("socketmap", "", "socketmap listen `address` (default unix:"+config.PostfixSpool+"/bounce-milter/socketmap.sock; \"off\" to disable)"),
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
		web:       fs.String("web", "", "monitoring pages listen `HOST:PORT` (default off; \"off\" to disable)"),
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
		dir := config.SocketDir(cfg.DataDir)
		if !cfg.Listen.Socketmap.IsSet() {
			cfg.Listen.Socketmap = config.Endpoint{Network: "unix", Address: filepath.Join(dir, "socketmap.sock")}
		}
		if *f.milter == "" {
			cfg.Listen.Sign = config.Endpoint{Network: "unix", Address: filepath.Join(dir, "sign.sock")}
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
	if err := errors.Join(set("milter", *f.milter, &cfg.Listen.Milter), set("sign", *f.sign, &cfg.Listen.Sign), set("socketmap", *f.socketmap, &cfg.Listen.Socketmap), set("policy", *f.policy, &cfg.Listen.Policy)); err != nil {
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
	switch *f.web {
	case "":
	case "off":
		cfg.Listen.Web = ""
	default:
		cfg.Listen.Web = *f.web
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

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "serve [--config FILE] [--milter ADDR] [--socketmap ADDR] [--domains LIST] [--key-file F] [--data-dir DIR] [--mode MODE] [--redis URL]",
		"Runs the milter, the socketmap and (when configured) the policy service in one process.\n"+
			"With no configuration: milter and socketmap on unix sockets that only Postfix can open\n"+
			"(in "+config.PostfixSpool+"/bounce-milter when Postfix is installed, else the data\n"+
			"directory), a key file created under the data directory, the embedded store. Prints the\n"+
			"Postfix lines to add. SIGHUP reloads the configuration and keys; SIGTERM finishes mail in\n"+
			"flight and exits.", stderr)
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
	smallMachineProcs()
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
	rt, err := buildReloadable(cfg, time.Now())
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

	svc, err := startServices(rt, store, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if len(svc.list) == 0 {
		log.Error("nothing to serve: every listener is off")
		return 2
	}
	var listening []string
	errc := make(chan error, len(svc.list))
	var wg sync.WaitGroup
	for _, x := range svc.list {
		if !x.background {
			listening = append(listening, x.name)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- x.run() }()
	}
	log.Info("bounce-milter started", "version", versionString(), "listening", strings.Join(listening, ", "),
		"domains", strings.Join(cfg.DomainNames(), ","), "store", storeDesc, "data_dir", cfg.DataDir,
		"gomaxprocs", runtime.GOMAXPROCS(0))
	logDomains(rt, log)
	fmt.Fprintf(stdout, "bounce-milter %s listening: %s\n\n%s", versionString(), strings.Join(listening, ", "), postfixLines(cfg, rt.engine, time.Now(), RegexpMapPath, detectPostfix("/etc/postfix")))
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
				if next := reload(sf, cfg, svc, log); next != nil {
					cfg = next
				}
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
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, x := range svc.list {
		if err := x.shutdown(sctx); err != nil {
			log.Warn("shutdown", "service", x.name, "err", err)
		}
	}
	wg.Wait()
	log.Info("stopped")
	return code
}

// logDomains says at start and at each reload what runs for each domain:
// its mode and, during the grace period, when untagged bounces start to be
// refused.
func logDomains(rt *reloadable, log *slog.Logger) {
	for _, st := range rt.engine.Status(time.Now()) {
		args := []any{"domain", st.Name, "mode", st.Mode.String(), "signing", st.Sign, "lifetime_days", st.Lifetime}
		if st.SigningKey >= 0 {
			args = append(args, "key", st.SigningKey)
		}
		if st.InGraceNow {
			args = append(args, "grace_until", st.GraceEnds.UTC().Format(time.RFC3339))
			log.Info("domain: grace period: untagged bounces without evidence accepted until "+st.GraceEnds.UTC().Format(time.RFC3339)+", then mode "+st.Mode.String(), args...)
			continue
		}
		log.Info("domain", args...)
	}
}

// reload re-reads the config and keys and swaps the new reloadable into every
// service at once; a bad new config is refused and the old one stays in
// force. It returns the new configuration, or nil when refused.
func reload(sf serveFlags, old *config.Config, svc *services, log *slog.Logger) *config.Config {
	notifyReloading()
	defer notifyReady(log)
	cfg, err := sf.loadConfig()
	if err == nil {
		var rt *reloadable
		if rt, err = buildReloadable(cfg, time.Now()); err == nil {
			for _, w := range restartOnly(old, cfg) {
				log.Warn("reload: " + w + " changed; it takes effect at the next restart")
			}
			svc.apply(rt)
			log.Info("reloaded", "domains", strings.Join(cfg.DomainNames(), ","))
			logDomains(rt, log)
			return cfg
		}
	}
	log.Error("reload refused; the previous configuration stays in force", "err", err)
	return nil
}

// restartOnly names what changed between two configurations that a reload
// does not apply (see package config's documentation).
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	if cfg.Listen != old.Listen {
		out = append(out, "listen addresses")
	}
	if cfg.DataDir != old.DataDir {
		out = append(out, "data_dir")
	}
	if fmt.Sprint(cfg.Store) != fmt.Sprint(old.Store) {
		out = append(out, "store")
	}
	if cfg.Log != old.Log {
		out = append(out, "log")
	}
	if cfg.Web != old.Web {
		out = append(out, "web")
	}
	if cfg.Alerts.Interval != old.Alerts.Interval || cfg.Alerts.Webhook != old.Alerts.Webhook || cfg.AlertsWebhookSecretFile() != old.AlertsWebhookSecretFile() {
		out = append(out, "alerts interval or webhook")
	}
	return out
}
