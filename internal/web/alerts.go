package web

import (
	"net/http"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/alerts"
	"github.com/bounce-milter/bounce-milter/internal/alerts/watch"
)

// AlertsSource is what the pages need of the alerts (watch.Watcher).
type AlertsSource interface {
	View() *watch.View
	// API serves GET /api/alerts and, with allowClear, POST
	// /api/alerts/clear.
	API(allowClear bool) http.Handler
}

// RecentShown is how far back the Alerts page lists cleared alerts.
const RecentShown = 7 * 24 * time.Hour

// alertsAnswer is /api/alerts's answer, addresses masked.
func (s *server) alertsAnswer() watch.Answer {
	a := watch.AnswerOf(s.o.Alerts.View(), s.o.Now())
	if !s.mask.on() {
		return a
	}
	mask := func(xs []alerts.Alert) []alerts.Alert {
		out := make([]alerts.Alert, len(xs))
		for i, x := range xs {
			if x.Kind == alerts.KindCompromised {
				x.Subject = s.mask.addr(x.Subject)
				x.Summary = s.mask.text(x.Summary)
				x.Evidence = nil
			}
			out[i] = x
		}
		return out
	}
	a.Active, a.Recent = mask(a.Active), mask(a.Recent)
	holds := make([]alerts.Hold, len(a.Holds))
	for i, h := range a.Holds {
		h.Sender = s.mask.addr(h.Sender)
		holds[i] = h
	}
	a.Holds = holds
	return a
}

func (s *server) alertsAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.alertsAnswer())
}

// activeAlerts is the number of alerts active (the menu and the banner).
func (s *server) activeAlerts() []alerts.Alert {
	if s.o.Alerts == nil {
		return nil
	}
	return s.o.Alerts.View().State.Active
}

type alertsPage struct {
	Page, Title string
	Masked      bool
	Now         time.Time
	watch.Answer
	Configured bool
	Recent     []alerts.Alert
	Config     alerts.Config
	Enabled    map[string]bool
	Kinds      []alerts.Kind
}

func (s *server) alertsPage(w http.ResponseWriter, r *http.Request) {
	now := s.o.Now()
	p := alertsPage{Page: "alerts", Title: "Alerts", Masked: s.mask.on(), Now: now.UTC(), Configured: s.o.Alerts != nil, Kinds: alerts.Kinds}
	if s.o.Alerts != nil {
		p.Answer = s.alertsAnswer()
		p.Config = s.o.Alerts.View().Config
		p.Enabled = map[string]bool{}
		for k, on := range p.Config.Enabled {
			p.Enabled[string(k)] = on
		}
		for _, a := range p.Answer.Recent {
			if now.Sub(a.Cleared) <= RecentShown {
				p.Recent = append(p.Recent, a)
			}
		}
	}
	s.render(w, "alerts", p)
}
