package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

// The events and suppressions commands read the daemon's API (the store is
// the daemon's: the embedded one is open by one process only, and a fleet
// shares Redis through any of its hosts).

// apiBase finds the daemon's HTTP listener: --url, else the config's
// [listen] metrics.
func apiBase(urlFlag, configFile string) (string, error) {
	if urlFlag != "" {
		return strings.TrimRight(urlFlag, "/"), nil
	}
	cfg := config.Default("")
	if configFile != "" {
		c, err := config.Load(configFile)
		if err != nil {
			return "", err
		}
		cfg = c
	}
	if cfg.Listen.Metrics == "" {
		return "", fmt.Errorf("no [listen] metrics address in the configuration: give --url http://HOST:PORT")
	}
	return "http://" + cfg.Listen.Metrics, nil
}

// apiRequest calls the daemon's JSON API: body (JSON) when not nil, the
// bearer token when not empty; a status other than 2xx is an error with
// the start of the answer.
func apiRequest(ctx context.Context, method, u, token string, body []byte, into any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(into)
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("events", "events [--since 24h] [--sender ADDR] [--recipient ADDR] [--reason R] [--kind K] [--hard|--soft] [--limit N] [--json] [--follow] [--config FILE | --url URL]",
		"Prints bounce events: what genuine bounces and auto-replies told our senders, one per\n"+
			"bounced recipient (the fleet's, with Redis), newest last. Reads the running daemon's\n"+
			"HTTP listener ([listen] metrics).", stderr)
	since := fs.String("since", "24h", "events from this long ago (24h, 7d) or an RFC 3339 `time`")
	sender := fs.String("sender", "", "only events for this sender of ours (`address`)")
	rcpt := fs.String("recipient", "", "only events about this remote `address`")
	reason := fs.String("reason", "", "only this `reason` (userunknown, mailboxfull, ...)")
	kind := fs.String("kind", "", "only this `kind`: bounce, delay, autoreply")
	hard := fs.Bool("hard", false, "only hard bounces")
	soft := fs.Bool("soft", false, "only soft ones")
	limit := fs.Int("limit", 1000, "at most `N` events")
	asJSON := fs.Bool("json", false, "one JSON object a line")
	follow := fs.Bool("follow", false, "keep printing new events")
	cfgFile := fs.String("config", "", "the daemon's configuration `file`, for its address")
	urlFlag := fs.String("url", "", "the daemon's HTTP listener, http://HOST:PORT")
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	base, err := apiBase(*urlFlag, *cfgFile)
	if err != nil {
		fmt.Fprintf(stderr, "events: %v\n", err)
		return 2
	}
	v := url.Values{}
	v.Set("since", *since)
	for k, x := range map[string]string{"sender": *sender, "recipient": *rcpt, "reason": *reason, "kind": *kind} {
		if x != "" {
			v.Set(k, x)
		}
	}
	switch {
	case *hard && *soft:
		fmt.Fprintln(stderr, "events: --hard and --soft exclude each other")
		return 2
	case *hard:
		v.Set("hard", "true")
	case *soft:
		v.Set("hard", "false")
	}
	v.Set("limit", strconv.Itoa(*limit))
	seen := map[string]bool{}
	for {
		var es []events.Event
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := apiRequest(ctx, http.MethodGet, base+"/api/events?"+v.Encode(), "", nil, &es)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "events: %v\n", err)
			return 1
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
		for _, e := range es {
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			printEvent(stdout, e, *asJSON)
		}
		if !*follow {
			return 0
		}
		if len(es) > 0 {
			v.Set("since", es[len(es)-1].Time.Add(-time.Second).UTC().Format(time.RFC3339))
		}
		time.Sleep(2 * time.Second)
	}
}

func printEvent(w io.Writer, e events.Event, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	sev := "soft"
	if e.Hard {
		sev = "hard"
	}
	fmt.Fprintf(w, "%s %-9s %s -> %s %s %s %s %s\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.Sender, e.Recipient,
		e.Reason, sev, e.Status, terminalSafe(e.Diagnostic))
}

// terminalSafe keeps a remote text from driving the terminal.
func terminalSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func cmdSuppressions(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("suppressions", "suppressions [--min-hard N] [--since 30d] [--json] [--config FILE | --url URL]",
		"Prints the recipients that hard-bounced at least N times (one address a line): the\n"+
			"addresses a list manager or an application should stop mailing.", stderr)
	minHard := fs.Int("min-hard", 2, "at least `N` hard bounces")
	since := fs.String("since", "30d", "counted from this long ago (30d) or an RFC 3339 `time`")
	limit := fs.Int("limit", events.MaxLimit, "at most `N` addresses")
	asJSON := fs.Bool("json", false, "one JSON object a line, with the counts")
	cfgFile := fs.String("config", "", "the daemon's configuration `file`, for its address")
	urlFlag := fs.String("url", "", "the daemon's HTTP listener, http://HOST:PORT")
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	base, err := apiBase(*urlFlag, *cfgFile)
	if err != nil {
		fmt.Fprintf(stderr, "suppressions: %v\n", err)
		return 2
	}
	v := url.Values{"min_hard": {strconv.Itoa(*minHard)}, "since": {*since}, "limit": {strconv.Itoa(*limit)}}
	var ss []events.Suppression
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := apiRequest(ctx, http.MethodGet, base+"/api/suppressions?"+v.Encode(), "", nil, &ss); err != nil {
		fmt.Fprintf(stderr, "suppressions: %v\n", err)
		return 1
	}
	for _, s := range ss {
		if *asJSON {
			b, _ := json.Marshal(s)
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		fmt.Fprintln(stdout, s.Recipient)
	}
	return 0
}
