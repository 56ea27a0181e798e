package main

// The alerts (package alerts, alerts/watch): the service every host runs,
// the bounce events counted for them, and the alerts command.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

// alertStore is where the alerts' state goes: the store's, or memory for
// a store that keeps none (the memory backend).
func (h storeHandle) alertStore() cache.AlertStore {
	if s, ok := h.backend().(cache.AlertStore); ok {
		return s
	}
	return cache.NewMemoryAlerts()
}

// bouncedSink hands the milter's bounce events to the recorder (store,
// webhook) and counts them in the statistics the alerts read.
type bouncedSink struct {
	rec *events.Recorder
	agg *stats.Aggregator
}

func (b bouncedSink) Record(es ...events.Event) {
	if b.rec != nil {
		b.rec.Record(es...)
	}
	for _, e := range es {
		b.agg.Bounced(e)
	}
}

// domainKeys are our domains' keys as the engine has them.
func domainKeys(e *backscatter.Engine, now time.Time) []alerts.DomainKeys {
	var out []alerts.DomainKeys
	for _, st := range e.Status(now) {
		dk := alerts.DomainKeys{Domain: st.Name, Signing: st.SigningKey, Lifetime: st.Lifetime}
		if ks := e.Keys().For(st.Name); ks != nil {
			dk.Numbers = ks.Numbers()
		}
		out = append(out, dk)
	}
	return out
}

// newWatcher builds the alerts' service for cfg; its webhook, when
// configured, is the events' kind of webhook with the alerts' URL.
func newWatcher(cfg *config.Config, h storeHandle, agg *stats.Aggregator, engine *atomic.Pointer[backscatter.Engine], log *slog.Logger) (*watch.Watcher, *events.Webhook, error) {
	host, _ := os.Hostname()
	o := watch.Options{
		Stats: h.statsStore(), Alerts: h.alertStore(), Agg: agg, Config: cfg.AlertsConfig(), Interval: cfg.Alerts.Interval.Duration,
		Holder: host + "/" + cache.InstanceID(cfg.DataDir), Logger: log,
		Keys: func() []alerts.DomainKeys { return domainKeys(engine.Load(), time.Now()) },
	}
	var hook *events.Webhook
	if cfg.Alerts.Webhook != "" {
		secret, err := os.ReadFile(cfg.AlertsWebhookSecretFile())
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.webhook_secret_file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(secret)))
		if len(secret) < 16 {
			return nil, nil, fmt.Errorf("alerts.webhook_secret_file %s: the key is shorter than 16 bytes", cfg.AlertsWebhookSecretFile())
		}
		hook = events.NewWebhook(events.WebhookOptions{URL: cfg.Alerts.Webhook, Secret: secret, Logger: log})
		o.Webhook = hook
	}
	w := watch.New(o)
	// Registered once per process (tests start services more than once).
	_ = h.metrics.Registry().Register(w.Collector())
	return w, hook, nil
}

// watchService runs the alerts' rounds among the services.
func watchService(w *watch.Watcher, hook *events.Webhook) service {
	stop := make(chan struct{})
	return service{
		name: "alerts", background: true,
		run: func() error { w.Start(); <-stop; return nil },
		shutdown: func(ctx context.Context) error {
			close(stop)
			err := w.Close(ctx)
			if hook != nil {
				hook.Close()
			}
			return err
		},
		apply: func(rt *reloadable) { w.SetConfig(rt.cfg.AlertsConfig()) },
	}
}

// The alerts command reads and writes through the daemon's HTTP listener:
// [listen] web (the clear needs it: it is the listener with a login), or
// [listen] metrics for the list.

// alertsBase finds the daemon's listener and the token to send.
func alertsBase(urlFlag, tokenFile, configFile string, clear bool) (base, token string, err error) {
	cfg := config.Default("")
	if configFile != "" {
		if cfg, err = config.Load(configFile); err != nil {
			return "", "", err
		}
	}
	if tokenFile == "" {
		tokenFile = cfg.Web.TokenFile
	}
	if tokenFile != "" {
		if token, err = readSecret("token_file", tokenFile); err != nil {
			return "", "", err
		}
	}
	switch {
	case urlFlag != "":
		base = strings.TrimRight(urlFlag, "/")
	case cfg.Listen.Web != "":
		base = "http://" + cfg.Listen.Web
	case cfg.Listen.Metrics != "" && !clear:
		base = "http://" + cfg.Listen.Metrics
	case clear:
		return "", "", fmt.Errorf("no [listen] web address in the configuration: give --url http://HOST:PORT (the monitoring pages' listener)")
	default:
		return "", "", fmt.Errorf("no [listen] web or metrics address in the configuration: give --url http://HOST:PORT")
	}
	return base, token, nil
}

func cmdAlerts(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("alerts", "alerts [--json] [--recent] [--config FILE | --url URL] [--token-file F]\n       bounce-milter alerts clear [--false-alarm] KIND SUBJECT [--config FILE | --url URL] [--token-file F]",
		"Lists the alerts in force (threat signals from bounce patterns: forged-domain,\n"+
			"compromised-account, refused-spam, refused-malware, blocklisted, key-trouble; see\n"+
			"docs/alerts.md), the senders held, and with --recent the alerts cleared; or clears one:\n"+
			"it ends at once, its response (a hold) is lifted, and it is not raised again for\n"+
			"[alerts] snooze. Reads the running daemon's [listen] web (or, to list, [listen] metrics)\n"+
			"with the [web] token_file's token. Exit 0, or 1 when alerts are active (list).", stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	recent := fs.Bool("recent", false, "also list the alerts cleared (last 31 days)")
	falseAlarm := fs.Bool("false-alarm", false, "clear: the alert was wrong; what it counted becomes usual for later baselines")
	cfgFile := fs.String("config", "", "the daemon's configuration `file`, for its address and token")
	urlFlag := fs.String("url", "", "the daemon's HTTP listener, http://HOST:PORT")
	tokenFile := fs.String("token-file", "", "the access token's `file` (default [web] token_file)")
	pos, code, done := parseArgs(fs, args, stdout)
	if done {
		return code
	}
	clear := len(pos) > 0 && pos[0] == "clear"
	switch {
	case len(pos) == 0:
	case clear && len(pos) == 3:
	default:
		fmt.Fprintln(stderr, "alerts: want no arguments, or: clear KIND SUBJECT")
		return 2
	}
	base, token, err := alertsBase(*urlFlag, *tokenFile, *cfgFile, clear)
	if err != nil {
		fmt.Fprintf(stderr, "alerts: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if clear {
		kind, ok := alerts.ParseKind(pos[1])
		if !ok {
			fmt.Fprintf(stderr, "alerts: %q is no kind of alert\n", pos[1])
			return 2
		}
		body, _ := json.Marshal(watch.ClearBody{Kind: string(kind), Subject: pos[2], FalseAlarm: *falseAlarm})
		var out map[string]any
		if err := apiRequest(ctx, http.MethodPost, base+"/api/alerts/clear", token, body, &out); err != nil {
			fmt.Fprintf(stderr, "alerts: clear: %v\n", err)
			return 1
		}
		what := "cleared"
		if *falseAlarm {
			what = "cleared as a false alarm"
		}
		fmt.Fprintf(stdout, "%s %s: %s within %v (at the next evaluation)\n", kind, strings.ToLower(pos[2]), what, out["applied_within"])
		return 0
	}
	var a watch.Answer
	if err := apiRequest(ctx, http.MethodGet, base+"/api/alerts", token, nil, &a); err != nil {
		fmt.Fprintf(stderr, "alerts: %v\n", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(a, "", " ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printAlerts(stdout, a, *recent)
	}
	if len(a.Active) > 0 {
		return 1
	}
	return 0
}

func printAlerts(w io.Writer, a watch.Answer, recent bool) {
	if !a.LearningUntil.IsZero() {
		fmt.Fprintf(w, "learning: nothing is raised before %s (statistics too young for a baseline)\n", a.LearningUntil.UTC().Format(time.RFC3339))
	}
	if a.Error != "" {
		fmt.Fprintf(w, "error: %s\n", terminalSafe(a.Error))
	}
	if len(a.Active) == 0 {
		fmt.Fprintln(w, "no alert active")
	}
	for _, x := range a.Active {
		fmt.Fprintf(w, "ACTIVE %s %s since %s: %s\n", x.Kind, terminalSafe(x.Subject), x.Started.UTC().Format(time.RFC3339), terminalSafe(x.Summary))
		if x.Response != "" {
			fmt.Fprintf(w, "  response: %s\n", x.Response)
		}
	}
	for _, h := range a.Holds {
		fmt.Fprintf(w, "HELD %s since %s (bounce-milter alerts clear compromised-account %s)\n", terminalSafe(h.Sender), h.Since.UTC().Format(time.RFC3339), terminalSafe(h.Sender))
	}
	if recent {
		for _, x := range a.Recent {
			fmt.Fprintf(w, "cleared %s %s %s to %s by %s: %s\n", x.Kind, terminalSafe(x.Subject), x.Started.UTC().Format(time.RFC3339),
				x.Cleared.UTC().Format(time.RFC3339), x.ClearedBy, terminalSafe(x.Summary))
		}
	}
}
