package events

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// API serves the events and the suppression candidates as JSON:
//
//	GET /api/events?since=24h&sender=a@example.com&recipient=...&reason=userunknown&kind=bounce&hard=true&sending_host=192.0.2.1&limit=100
//	GET /api/suppressions?min_hard=2&since=30d&limit=100
//
// since and until take a duration back from now ("24h", "7d") or an
// RFC 3339 time. Answers are bounded (MaxLimit). The command line's events
// and suppressions commands read the same API.
func API(r Reader, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/events", list("events", now, ParseQuery, r.Events))
	mux.HandleFunc("GET /api/suppressions", list("suppressions", now, ParseSuppressionQuery, r.Suppressions))
	return mux
}

// list answers a GET with a JSON array: the query read from the URL (400
// when it is not valid), then what read returns for it (503 when the store
// cannot answer; [] rather than null when nothing matches).
func list[Q, T any](what string, now func() time.Time, parse func(func(string) string, time.Time) (Q, error),
	read func(context.Context, Q) ([]T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		q, err := parse(req.URL.Query().Get, now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := read(req.Context(), q)
		if err != nil {
			http.Error(w, what+": "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if out == nil {
			out = []T{}
		}
		writeJSON(w, out)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}

// ParseTime reads "24h", "7d" (back from now) or an RFC 3339 time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		// At most 100 years: more days overflow a time.Duration and would
		// come out as a time in the future.
		if err != nil || n < 0 || n > 36500 {
			return time.Time{}, fmt.Errorf("time %q: want a duration such as 24h or 7d, or an RFC 3339 time", s)
		}
		return now.Add(-time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("time %q: want a duration such as 24h or 7d, or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// ParseQuery reads a Query from request parameters.
func ParseQuery(get func(string) string, now time.Time) (Query, error) {
	var q Query
	var err error
	if q.Since, err = ParseTime(get("since"), now); err != nil {
		return q, err
	}
	if q.Until, err = ParseTime(get("until"), now); err != nil {
		return q, err
	}
	q.Sender = strings.ToLower(strings.TrimSpace(get("sender")))
	q.Recipient = strings.ToLower(strings.TrimSpace(get("recipient")))
	q.Reason = strings.ToLower(strings.TrimSpace(get("reason")))
	q.Kind = Kind(strings.ToLower(strings.TrimSpace(get("kind"))))
	q.SendingHost = strings.ToLower(strings.TrimSpace(get("sending_host")))
	switch h := get("hard"); h {
	case "":
	case "true", "1", "hard":
		t := true
		q.Hard = &t
	case "false", "0", "soft":
		f := false
		q.Hard = &f
	default:
		return q, fmt.Errorf("hard=%q: want true or false", h)
	}
	if l := get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit=%q: want a positive number", l)
		}
		q.Limit = n
	}
	q.Limit = Cap(q.Limit)
	return q, nil
}

// ParseSuppressionQuery reads a SuppressionQuery from request parameters.
func ParseSuppressionQuery(get func(string) string, now time.Time) (SuppressionQuery, error) {
	var q SuppressionQuery
	var err error
	if q.Since, err = ParseTime(get("since"), now); err != nil {
		return q, err
	}
	q.MinHard = 1
	if m := get("min_hard"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 {
			return q, fmt.Errorf("min_hard=%q: want a positive number", m)
		}
		q.MinHard = n
	}
	if l := get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit=%q: want a positive number", l)
		}
		q.Limit = n
	}
	q.Limit = Cap(q.Limit)
	return q, nil
}
