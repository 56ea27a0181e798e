package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/chromedp/chromedp"
)

// AlertsExpect is what t-85-alerts's traffic must show while its alerts
// are active.
type AlertsExpect struct {
	Base string `json:"base"`
	// Active are the alerts expected, "kind|subject".
	Active []string `json:"active"`
	// Follow is the alert whose first evidence link is followed, and
	// FollowTo what the page it leads to must contain in its URL; the
	// page must list events, the first with reason FollowReason.
	Follow       string `json:"follow"`
	FollowTo     string `json:"follow_to"`
	FollowReason string `json:"follow_reason"`
	// Held is the sender held.
	Held string `json:"held"`
}

func alertPages(ctx context.Context, ex AlertsExpect, out string) {
	want := append([]string(nil), ex.Active...)
	sort.Strings(want)
	// The Overview: the banner and the menu's count.
	must(chromedp.Do(ctx, chromedp.Navigate(ex.Base+"/")), "open the overview")
	banner := eval[string](ctx, `document.querySelector('#alerts-banner')?.dataset.count || ''`)
	check(banner == fmt.Sprint(len(want)), "overview: the banner counts %q alerts, want %d", banner, len(want))
	kinds := eval[[]string](ctx, `[...document.querySelectorAll('#alerts-banner li')].map(l => l.textContent.split(' since ')[0].replace(': ', '|')).sort()`)
	check(strings.Join(kinds, ",") == strings.Join(want, ","), "overview: the banner lists %v", kinds)
	badge := eval[string](ctx, `document.querySelector('#alert-count')?.textContent || ''`)
	check(badge == fmt.Sprint(len(want)), "menu: the Alerts item counts %q", badge)
	shot(ctx, out, "overview-alerts")

	// The Alerts page, through the menu: one row per alert, its count at
	// or over its threshold, as the API says.
	loc := clickAndLoad(ctx, `header nav a[href="/alerts"]`)
	check(strings.HasSuffix(loc, "/alerts"), "alerts: reached by the menu (%s)", loc)
	rows := eval[[]string](ctx, `[...document.querySelectorAll('#active-alerts tr[data-kind]')].map(r => r.dataset.kind + '|' + r.dataset.subject).sort()`)
	check(strings.Join(rows, ",") == strings.Join(want, ","), "alerts: rows %v, want %v", rows, want)
	over := eval[[]bool](ctx, `[...document.querySelectorAll('#active-alerts tr[data-kind]')].map(r => Number(r.children[3].textContent) >= Number(r.children[4].textContent) && Number(r.children[4].textContent) > 0)`)
	allOver := len(over) == len(want)
	for _, o := range over {
		allOver = allOver && o
	}
	check(allOver, "alerts: every count at or over its threshold %v", over)
	var api struct {
		Active []struct {
			Kind, Subject string
			Figures       struct{ Count, Threshold int64 }
		}
		Holds []struct{ Sender string }
	}
	apiGet(ex.Base, "/api/alerts", &api)
	var got []string
	for _, a := range api.Active {
		got = append(got, a.Kind+"|"+a.Subject)
	}
	sort.Strings(got)
	check(strings.Join(got, ",") == strings.Join(want, ","), "api/alerts: active %v", got)
	held := eval[string](ctx, `[...document.querySelectorAll('#holds tr[data-sender]')].map(r => r.dataset.sender).join(',')`)
	check(held == ex.Held && len(api.Holds) == 1 && api.Holds[0].Sender == ex.Held, "alerts: held %q (api %v), want %q", held, api.Holds, ex.Held)
	shot(ctx, out, "alerts")

	// An evidence link leads to the bounces it names.
	kind, subject, _ := strings.Cut(ex.Follow, "|")
	loc = clickAndLoad(ctx, fmt.Sprintf(`#active-alerts tr[data-kind="%s"][data-subject="%s"] a.evidence`, kind, subject))
	check(strings.Contains(loc, ex.FollowTo), "evidence of %s: %s, want %s", ex.Follow, loc, ex.FollowTo)
	n := eval[int](ctx, `document.querySelectorAll('#events tr[data-reason]').length`)
	first := eval[string](ctx, `document.querySelector('#events tr[data-reason]')?.dataset.reason || ''`)
	check(n > 0 && first == ex.FollowReason, "evidence of %s: %d events, the first %q, want %q", ex.Follow, n, first, ex.FollowReason)
}
