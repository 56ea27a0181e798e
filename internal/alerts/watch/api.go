package watch

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// Answer is GET /api/alerts's answer (and the command line's input).
type Answer struct {
	Generated time.Time `json:"generated"`
	// EvaluatedBy is the host whose evaluation the state is; Here says
	// it is this one.
	EvaluatedBy   string         `json:"evaluated_by,omitempty"`
	Here          bool           `json:"evaluating_here"`
	Updated       time.Time      `json:"updated,omitzero"`
	LearningUntil time.Time      `json:"learning_until,omitzero"`
	Error         string         `json:"error,omitempty"`
	Active        []alerts.Alert `json:"active"`
	Recent        []alerts.Alert `json:"recent"`
	Holds         []alerts.Hold  `json:"holds"`
	// Responses are the responses configured ("none", ...).
	Responses map[string]string `json:"responses"`
}

// AnswerOf builds the API's answer from a view.
func AnswerOf(v *View, now time.Time) Answer {
	st := v.State
	return Answer{Generated: now.UTC(), EvaluatedBy: st.Host, Here: v.Leader, Updated: st.Updated, LearningUntil: st.LearningUntil,
		Error: v.Err, Active: nonNil(st.Active), Recent: nonNil(st.Recent), Holds: nonNilH(st.Holds),
		Responses: map[string]string{string(alerts.KindForged): v.Config.ForgedResponse, string(alerts.KindCompromised): v.Config.CompromisedResponse}}
}

func nonNil(a []alerts.Alert) []alerts.Alert {
	if a == nil {
		return []alerts.Alert{}
	}
	return a
}

func nonNilH(a []alerts.Hold) []alerts.Hold {
	if a == nil {
		return []alerts.Hold{}
	}
	return a
}

// ClearBody is POST /api/alerts/clear's body.
type ClearBody struct {
	Kind       string `json:"kind"`
	Subject    string `json:"subject"`
	FalseAlarm bool   `json:"false_alarm"`
}

// API serves
//
//	GET  /api/alerts          the alerts (Answer)
//	POST /api/alerts/clear    {"kind": K, "subject": S, "false_alarm": false}
//
// The POST must be application/json (which a web page elsewhere cannot
// send without the browser asking first, and nobody answers that), and is
// answered 202: the host that evaluates applies it at its next round.
// Serve the POST only where requests are authenticated ([listen] web).
func (w *Watcher) API(allowClear bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, AnswerOf(w.View(), w.o.Now()))
	})
	if allowClear {
		mux.HandleFunc("POST /api/alerts/clear", w.clearHandler)
	}
	return mux
}

func (w *Watcher) clearHandler(rw http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(rw, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	var b ClearBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		http.Error(rw, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	kind, ok := alerts.ParseKind(strings.TrimSpace(b.Kind))
	subject := strings.TrimSpace(b.Subject)
	if !ok || subject == "" {
		http.Error(rw, "want a kind ("+kindList()+") and a subject", http.StatusBadRequest)
		return
	}
	// Subjects are kept in lower case (package stats counts them so).
	subject = strings.ToLower(subject)
	req := alerts.ClearRequest{Key: alerts.Key(kind, subject), FalseAlarm: b.FalseAlarm}
	if err := w.RequestClear(r.Context(), req); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, cache.ErrTooManyClears) {
			code = http.StatusTooManyRequests
		}
		http.Error(rw, "clear: "+err.Error(), code)
		return
	}
	active := w.View().State.Find(req.Key) != nil
	writeJSON(rw, http.StatusAccepted, map[string]any{"requested": req.Key, "false_alarm": req.FalseAlarm, "active": active,
		"applied_within": alerts.FormatDuration(w.o.Interval)})
}

func kindList() string {
	var ks []string
	for _, k := range alerts.Kinds {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}
