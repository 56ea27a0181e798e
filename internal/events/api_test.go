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
