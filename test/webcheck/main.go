// Command webcheck drives Debian's Chromium (headless, through chromedp)
// over bounce-milter's monitoring pages after test/t-80-web has sent a
// known mix of mail through Postfix: it opens every page, finds the counts
// the mix must give in the charts and tables (and the same in the JSON
// API), follows the links between the pages, checks that the console
// shows no error, and keeps a screenshot of each page.
//
// It is a module of its own so that the browser driver is no dependency
// of the daemon.
//
//	webcheck -expect expect.json -out DIR
//	webcheck -mode alerts -expect alerts.json -out DIR
//
// The alerts mode (test/t-85-alerts) checks the alerts while they are
// active: the Overview's banner and the menu's count, the Alerts page's
// rows against the JSON API, an evidence link followed to the bounces it
// names, the held sender; and keeps screenshots.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Expect is what the mix of mail must show (written by run.sh).
type Expect struct {
	Base     string            `json:"base"`
	Inbound  map[string]int64  `json:"inbound"`  // "verdict/reason" → count
	Outbound map[string]int64  `json:"outbound"` // "verdict/reason" → count
	Domains  map[string]string `json:"domains"`  // domain → mode
	// Floods: the top targeted recipient, network and reporting MTA, with
	// their counts; the recipient that entered the flood state.
	TopRecipient [2]any `json:"top_recipient"`
	TopNetwork   [2]any `json:"top_network"`
	TopReporter  [2]any `json:"top_reporter"`
	FloodEntered string `json:"flood_entered"`
	// Keys: the signing key and what it signed.
	Key       int   `json:"key"`
	KeySigned int64 `json:"key_signed"`
	// A key that is listed but does not sign, and what the page says of
	// retiring it.
	OldKey       int    `json:"old_key"`
	OldKeyRetire string `json:"old_key_retire"`
	// One domain's inbound total (the Keys page links to it).
	Domain      string `json:"domain"`
	DomainTotal int64  `json:"domain_total"`
	// Bounces: the genuine bounces delivered (events) and the first one's
	// reason.
	Events      int    `json:"events"`
	EventReason string `json:"event_reason"`
}

var failures []string

func check(ok bool, format string, args ...any) {
	if !ok {
		msg := fmt.Sprintf(format, args...)
		failures = append(failures, msg)
		fmt.Println("not ok -", msg)
		return
	}
	fmt.Println("ok -", fmt.Sprintf(format, args...))
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %s: %v\n", what, err)
		os.Exit(1)
	}
}

func eval[T any](ctx context.Context, js string) T {
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	must(err, "evaluate "+js)
	return v
}

// sumRects adds the data-count of a chart's segments per line.
func sumRects(ctx context.Context, chart string) map[string]int64 {
	return eval[map[string]int64](ctx, `[...document.querySelectorAll('#`+chart+` rect[data-line]')].reduce((m, r) => { m[r.dataset.line] = (m[r.dataset.line] || 0) + Number(r.dataset.count); return m }, {})`)
}

// tableLines reads a totals table: data-line → its last cell.
func tableLines(ctx context.Context, table string) map[string]int64 {
	return eval[map[string]int64](ctx, `Object.fromEntries([...document.querySelectorAll('#`+table+` tr[data-line]')].map(r => [r.dataset.line, Number(r.lastElementChild.textContent)]))`)
}

// firstRow reads the first row of a table: [name, count].
func firstRow(ctx context.Context, table string) []string {
	return eval[[]string](ctx, `[...(document.querySelector('#`+table+` tbody tr')?.children || [])].map(td => td.textContent.trim())`)
}

func clickAndLoad(ctx context.Context, sel string) string {
	_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
	must(err, "click "+sel)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must(err, "location")
	return loc
}

func shot(ctx context.Context, dir, name string) {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(err, "screenshot "+name)
	must(os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644), "writing "+name)
	fmt.Printf("ok - screenshot %s.png (%d bytes)\n", name, len(buf))
}

func apiGet(base, path string, v any) {
	resp, err := http.Get(base + path)
	must(err, "GET "+path)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		must(fmt.Errorf("%d %s", resp.StatusCode, body), "GET "+path)
	}
	must(json.Unmarshal(body, v), "decoding "+path)
}

func num(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case int64:
		return x
	}
	return -1
}

func main() {
	expectFile := flag.String("expect", "", "the expectations (JSON)")
	mode := flag.String("mode", "pages", "what to check: pages (t-80-web) or alerts (t-85-alerts)")
	out := flag.String("out", "", "directory for the screenshots")
	chromium := flag.String("chromium", "/usr/bin/chromium", "the browser")
	timeout := flag.Duration("timeout", 60*time.Second, "for everything")
	flag.Parse()
	data, err := os.ReadFile(*expectFile)
	must(err, "expectations")
	must(os.MkdirAll(*out, 0o755), "screenshot directory")
	profile, err := os.MkdirTemp("", "webcheck-profile")
	must(err, "profile directory")
	defer os.RemoveAll(profile)

	// The flags this machine's closed network needs (no background
	// connections) and a fresh profile.
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(*chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900))
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()

	// The browser and the tab first, then the console: every message from
	// the first page on.
	must(chromedp.Do(ctx, chromedp.Navigate("about:blank")), "starting chromium")
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	var mu sync.Mutex
	var console []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				console = append(console, fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()

	switch *mode {
	case "pages":
		var ex Expect
		must(json.Unmarshal(data, &ex), "expectations")
		pages(ctx, ex, *out)
	case "alerts":
		var ex AlertsExpect
		must(json.Unmarshal(data, &ex), "expectations")
		alertPages(ctx, ex, *out)
	default:
		must(fmt.Errorf("unknown mode %q", *mode), "-mode")
	}

	// Let late console messages arrive, then stop listening.
	time.Sleep(200 * time.Millisecond)
	stopConsole()
	<-done
	mu.Lock()
	check(len(console) == 0, "console: %d errors or warnings %v", len(console), console)
	mu.Unlock()
	if len(failures) > 0 {
		fmt.Printf("webcheck: %d checks failed\n", len(failures))
		os.Exit(1)
	}
	fmt.Println("webcheck: all checks passed")
}

// pages checks every page after t-80-web's mix.
func pages(ctx context.Context, ex Expect, out string) {
	// Overview.
	must(chromedp.Do(ctx, chromedp.Navigate(ex.Base+"/")), "open the overview")
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	must(err, "overview title")
	check(strings.HasPrefix(h1, "Overview"), "overview: title %q", h1)
	for _, c := range []struct {
		chart string
		want  map[string]int64
	}{{"in24", ex.Inbound}, {"in30", ex.Inbound}, {"out24", ex.Outbound}, {"out30", ex.Outbound}} {
		got := sumRects(ctx, c.chart)
		check(reflect.DeepEqual(got, c.want), "overview: chart %s shows %v, want %v", c.chart, got, c.want)
		legend := eval[map[string]int64](ctx, `Object.fromEntries([...document.querySelectorAll('#`+c.chart+` .legend li')].map(l => [l.dataset.line, Number(l.dataset.total)]))`)
		check(reflect.DeepEqual(legend, c.want), "overview: legend of %s shows %v", c.chart, legend)
	}
	got := tableLines(ctx, "inbound-totals")
	check(reflect.DeepEqual(got, ex.Inbound), "overview: inbound table %v", got)
	got = tableLines(ctx, "outbound-totals")
	check(reflect.DeepEqual(got, ex.Outbound), "overview: outbound table %v", got)
	modes := eval[map[string]string](ctx, `Object.fromEntries([...document.querySelectorAll('#domains tr[data-domain]')].map(r => [r.dataset.domain, r.children[1].textContent.trim()]))`)
	check(reflect.DeepEqual(modes, ex.Domains), "overview: domains and modes %v", modes)
	flood := eval[string](ctx, `document.querySelector('#flood-state').textContent`)
	check(strings.Contains(flood, ex.FloodEntered), "overview: %s shown in the flood state", ex.FloodEntered)
	store := eval[string](ctx, `document.querySelector('#store').textContent`)
	check(strings.Contains(store, "embedded") && strings.Contains(store, "closed") && strings.Contains(store, "working"), "overview: the store is healthy")
	// The API behind the page says the same.
	var ov struct {
		Inbound24h struct {
			Lines []struct {
				Verdict, Reason string
				Total           int64
			}
		} `json:"inbound_24h"`
	}
	apiGet(ex.Base, "/api/overview", &ov)
	api := map[string]int64{}
	for _, l := range ov.Inbound24h.Lines {
		api[l.Verdict+"/"+l.Reason] = l.Total
	}
	check(reflect.DeepEqual(api, ex.Inbound), "api/overview: inbound %v", api)
	shot(ctx, out, "overview")

	// Floods, through the menu.
	loc := clickAndLoad(ctx, `header nav a[href="/floods"]`)
	check(strings.HasSuffix(loc, "/floods"), "floods: reached by the menu (%s)", loc)
	for _, c := range []struct {
		table string
		want  [2]any
	}{{"top-recipients", ex.TopRecipient}, {"top-networks", ex.TopNetwork}, {"top-reporters", ex.TopReporter}} {
		row := firstRow(ctx, c.table)
		check(len(row) == 2 && row[0] == c.want[0] && row[1] == fmt.Sprint(num(c.want[1])), "floods: first of %s is %v, want %v", c.table, row, c.want)
	}
	entered := eval[string](ctx, `[...document.querySelectorAll('#marks tr.entered')].map(r => r.textContent).join('|')`)
	check(strings.Contains(entered, ex.FloodEntered), "floods: %s entered the flood state (%q)", ex.FloodEntered, entered)
	var fl struct {
		Recipients []struct {
			Name  string
			Count int64
		}
	}
	apiGet(ex.Base, "/api/floods?window=24h", &fl)
	check(len(fl.Recipients) > 0 && fl.Recipients[0].Name == ex.TopRecipient[0] && fl.Recipients[0].Count == num(ex.TopRecipient[1]), "api/floods: top recipient %+v", fl.Recipients)
	// The 30-day window counts the same.
	loc = clickAndLoad(ctx, `nav.windows a[href="/floods?window=30d"]`)
	row := firstRow(ctx, "top-recipients")
	check(strings.HasSuffix(loc, "window=30d") && len(row) == 2 && row[1] == fmt.Sprint(num(ex.TopRecipient[1])), "floods: 30 days, first recipient %v", row)
	loc = clickAndLoad(ctx, `nav.windows a[href="/floods?window=24h"]`)
	check(strings.HasSuffix(loc, "window=24h"), "floods: back to 24 hours (%s)", loc)
	shot(ctx, out, "floods")

	// From a targeted recipient to its bounces.
	loc = clickAndLoad(ctx, `#top-recipients tbody a`)
	sender, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input[name="sender"]`)))
	must(err, "sender filter")
	check(strings.Contains(loc, "/bounces?sender=") && sender == ex.TopRecipient[0], "bounces: the recipient's link filters by sender %q (%s)", sender, loc)

	// Bounces, through the menu: the page lists what the API answers.
	loc = clickAndLoad(ctx, `header nav a[href="/bounces"]`)
	check(strings.HasSuffix(loc, "/bounces"), "bounces: reached by the menu (%s)", loc)
	var evs []map[string]any
	apiGet(ex.Base, "/api/events?since=7d&limit=200", &evs)
	rows := eval[int](ctx, `document.querySelectorAll('#events tr[data-reason]').length`)
	check(rows == len(evs) && rows == ex.Events, "bounces: %d event rows, the API has %d, want %d", rows, len(evs), ex.Events)
	if rows > 0 {
		reason := eval[string](ctx, `document.querySelector('#events tr[data-reason]').dataset.reason`)
		check(reason == ex.EventReason, "bounces: the first event's reason is %q, want %q", reason, ex.EventReason)
	}
	if len(evs) == 0 {
		none := eval[string](ctx, `document.querySelector('#events tbody').textContent`)
		check(strings.Contains(none, "no events"), "bounces: says there are no events")
	}
	var sup []map[string]any
	apiGet(ex.Base, "/api/suppressions?since=7d&min_hard=2", &sup)
	srows := eval[int](ctx, `document.querySelectorAll('#suppressions tbody tr').length`)
	check(srows == max(len(sup), 1), "bounces: %d suppression rows, the API has %d", srows, len(sup))
	shot(ctx, out, "bounces")

	// Keys.
	loc = clickAndLoad(ctx, `header nav a[href="/keys"]`)
	check(strings.HasSuffix(loc, "/keys"), "keys: reached by the menu (%s)", loc)
	kr := eval[[]string](ctx, fmt.Sprintf(`[...(document.querySelector('#keys tr[data-key="%d"]')?.children || [])].map(td => td.textContent.trim())`, ex.Key))
	check(len(kr) == 7 && kr[3] == fmt.Sprint(ex.KeySigned) && kr[5] == "no", "keys: key %d row %v (signed %d, not retirable)", ex.Key, kr, ex.KeySigned)
	old := eval[[]string](ctx, fmt.Sprintf(`[...(document.querySelector('#keys tr[data-key="%d"]')?.children || [])].map(td => td.textContent.trim())`, ex.OldKey))
	check(len(old) == 7 && old[2] == "" && old[3] == "0" && old[5] == ex.OldKeyRetire, "keys: key %d row %v (retire %q)", ex.OldKey, old, ex.OldKeyRetire)
	ktotal := eval[string](ctx, fmt.Sprintf(`document.querySelector('#key%d').dataset.total`, ex.Key))
	kchart := sumRects(ctx, fmt.Sprintf("key%d", ex.Key))
	check(ktotal == fmt.Sprint(ex.KeySigned) && len(kchart) == 1, "keys: chart of key %d totals %s %v", ex.Key, ktotal, kchart)
	shot(ctx, out, "keys")

	// From a key to its domain's overview.
	loc = clickAndLoad(ctx, fmt.Sprintf(`#keys tr[data-key="%d"] a[href="/?domain=%s"]`, ex.Key, ex.Domain))
	h1, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	must(err, "domain overview title")
	dtotal := eval[string](ctx, `document.querySelector('#in24').dataset.total`)
	check(strings.Contains(h1, ex.Domain) && dtotal == fmt.Sprint(ex.DomainTotal), "overview of %s: %q, inbound total %s, want %d (%s)", ex.Domain, h1, dtotal, ex.DomainTotal, loc)
}
