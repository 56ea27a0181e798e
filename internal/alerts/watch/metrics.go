package watch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the alerts to Prometheus:
//
//	bounce_milter_alert{kind,subject}            1 for each active alert
//	bounce_milter_alerts_evaluating              1 while this host evaluates
//	bounce_milter_alerts_rounds_total            rounds run
//	bounce_milter_alerts_round_failures_total    rounds the store failed
//	bounce_milter_alerts_raised_total            alerts this host raised
//	bounce_milter_alerts_cleared_total           alerts this host cleared
//
// With Redis every host exports the fleet's active alerts (they read one
// state): aggregate with max by (kind, subject).
type Collector struct{ w *Watcher }

// Collector returns the Watcher's collector.
func (w *Watcher) Collector() prometheus.Collector { return Collector{w} }

var (
	alertDesc    = prometheus.NewDesc("bounce_milter_alert", "An active alert (1): kind and subject (see docs/alerts.md).", []string{"kind", "subject"}, nil)
	leaderDesc   = prometheus.NewDesc("bounce_milter_alerts_evaluating", "1 while this host evaluates the alerts (holds the lease).", nil, nil)
	roundsDesc   = prometheus.NewDesc("bounce_milter_alerts_rounds_total", "Rounds of the alerts' evaluation (or reading) run.", nil, nil)
	failuresDesc = prometheus.NewDesc("bounce_milter_alerts_round_failures_total", "Rounds of the alerts the store could not serve.", nil, nil)
	raisedDesc   = prometheus.NewDesc("bounce_milter_alerts_raised_total", "Alerts this host raised.", nil, nil)
	clearedDesc  = prometheus.NewDesc("bounce_milter_alerts_cleared_total", "Alerts this host cleared.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{alertDesc, leaderDesc, roundsDesc, failuresDesc, raisedDesc, clearedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	v := c.w.View()
	seen := map[[2]string]bool{}
	for _, a := range v.State.Active {
		k := [2]string{string(a.Kind), a.Subject}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(alertDesc, prometheus.GaugeValue, 1, k[0], k[1])
	}
	leader := 0.0
	if v.Leader {
		leader = 1
	}
	st := c.w.Stats()
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(roundsDesc, prometheus.CounterValue, float64(st.Rounds))
	ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(st.Failures))
	ch <- prometheus.MustNewConstMetric(raisedDesc, prometheus.CounterValue, float64(st.Raised))
	ch <- prometheus.MustNewConstMetric(clearedDesc, prometheus.CounterValue, float64(st.Cleared))
}
