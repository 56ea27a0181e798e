package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/events"
)

// brokenReader is a store that cannot answer (Redis down).
type brokenReader struct{}

func (brokenReader) Events(context.Context, events.Query) ([]events.Event, error) {
	return nil, errors.New("redis: connection refused")
}

func (brokenReader) Suppressions(context.Context, events.SuppressionQuery) ([]events.Suppression, error) {
	return nil, errors.New("redis: connection refused")
}

// The API's answers: a JSON array (empty, not null, when nothing matches),
// 400 for a query it cannot read, 503 when the store cannot answer.
func TestAPIAnswers(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	mem := &events.MemoryStore{}
	e := events.Event{ID: events.NewID(now.Add(-time.Hour)), Time: now.Add(-time.Hour), Sender: "alice@example.com", Recipient: "gone@remote.example"}
	if err := mem.AppendEvents(context.Background(), []events.Event{e}); err != nil {
		t.Fatal(err)
	}
	get := func(r events.Reader, path string) (int, string) {
		rec := httptest.NewRecorder()
		events.API(r, func() time.Time { return now }).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	for _, tc := range []struct {
		r          events.Reader
		path       string
		code       int
		bodyPrefix string
		n          int // the array's length, on 200
	}{
		{mem, "/api/events?since=24h", 200, `[`, 1},
		{mem, "/api/events?since=24h&sender=nobody@example.com", 200, `[]`, 0},
		{mem, "/api/suppressions?since=30d", 200, `[]`, 0},
		{mem, "/api/events?since=yesterday", 400, ``, 0},
		{mem, "/api/suppressions?min_hard=x", 400, ``, 0},
		{brokenReader{}, "/api/events?since=24h", 503, `events: redis`, 0},
		{brokenReader{}, "/api/suppressions", 503, `suppressions: redis`, 0},
	} {
		code, body := get(tc.r, tc.path)
		if code != tc.code || !strings.HasPrefix(body, tc.bodyPrefix) {
			t.Errorf("GET %s: %d %q, want %d starting %q", tc.path, code, body, tc.code, tc.bodyPrefix)
		}
		if code == 200 {
			var v []map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil || len(v) != tc.n {
				t.Errorf("GET %s: %d elements (%v), want a JSON array of %d", tc.path, len(v), err, tc.n)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"0d":                   now,
		"36500d":               now.Add(-36500 * 24 * time.Hour),
		"2026-11-01T00:00:00Z": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := events.ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1d", "-24h", "106752d", "7x", "d", "yesterday", "1.5d", "2026-13-01T00:00:00Z"} {
		if got, err := events.ParseTime(in, now); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

// Whatever the parameters, a query is refused or reads a window that ends
// no later than now, with a bounded limit.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"24h", "7d", "-1d", "106752d", "7x", "", "2026-11-01T00:00:00Z", "9223372036854775807d"} {
		f.Add(s, "10", "true")
	}
	f.Add("1d", "0", "maybe")
	f.Add("1d", "-1", "soft")
	f.Add("1d", "99999999", "")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, since, limit, hard string) {
		params := map[string]string{"since": since, "limit": limit, "hard": hard, "min_hard": limit}
		get := func(k string) string { return params[k] }
		if q, err := events.ParseQuery(get, now); err == nil {
			if q.Since.After(now) && !strings.ContainsAny(since, "TZ:") {
				t.Errorf("since=%q: a window starting after now (%v)", since, q.Since)
			}
			if q.Limit < 1 || q.Limit > events.MaxLimit {
				t.Errorf("limit=%q: %d outside 1..%d", limit, q.Limit, events.MaxLimit)
			}
		}
		if q, err := events.ParseSuppressionQuery(get, now); err == nil && q.MinHard < 1 {
			t.Errorf("min_hard=%q: %d", limit, q.MinHard)
		}
	})
}
