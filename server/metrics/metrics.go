// Package metrics defines the Prometheus metrics the server exports on
// /metrics, on a registry of its own (no global state): HTTP requests and
// latencies, journeys started and finished, security codes sent, lockouts, texts
// and emails sent and refused.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the server's collectors.
type Metrics struct {
	Registry         *prometheus.Registry
	Requests         *prometheus.CounterVec   // by method, route, status
	Latency          *prometheus.HistogramVec // by method, route
	JourneysStarted  *prometheus.CounterVec   // by journey
	JourneysFinished *prometheus.CounterVec   // by journey, outcome
	CodesSent        *prometheus.CounterVec   // by purpose, result
	Lockouts         prometheus.Counter
	PDSChecks        *prometheus.CounterVec // per-login PDS checks by outcome
	SignIns          *prometheus.CounterVec // sign-ins by method, outcome (completed, blocked)
	Shed             *prometheus.CounterVec // requests refused by admission control, by reason
	Sends            *prometheus.CounterVec // texts and emails by channel, result (sent, failed)
	SendRefused      *prometheus.CounterVec // sends refused by channel, budget
	CeilingReached   *prometheus.CounterVec // texts refused by the overall ceiling, by tier (signup, all)
	CodeGuessLimits  prometheus.Counter     // accounts that reached the wrong-code cap
}

// Inc counts one per-login PDS check with its outcome (identity.Counter).
func (m *Metrics) Inc(outcome string) { m.PDSChecks.WithLabelValues(outcome).Inc() }

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_http_requests_total", Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "idlink_http_request_duration_seconds", Help: "HTTP request latency by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		JourneysStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_journeys_started_total", Help: "Journeys started (signup, login, reset).",
		}, []string{"journey"}),
		JourneysFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_journeys_finished_total", Help: "Journeys finished, by outcome.",
		}, []string{"journey", "outcome"}),
		CodesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_security_codes_total", Help: "Security codes by purpose and result (sent, rate_limited, failed).",
		}, []string{"purpose", "result"}),
		Lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idlink_account_lockouts_total", Help: "Accounts locked after too many wrong passwords.",
		}),
		PDSChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_pds_login_checks_total", Help: "PDS checks at login by outcome (ok, no_record, unavailable, not_found, deceased).",
		}, []string{"outcome"}),
		SignIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_sign_ins_total", Help: "Sign-ins by way in (method) and outcome (completed, blocked).",
		}, []string{"method", "outcome"}),
		Shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_http_requests_shed_total", Help: "Requests refused with 503 by admission control, by reason (queue_full, queue_wait).",
		}, []string{"reason"}),
		Sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_sends_total", Help: "Texts and emails handed to the provider, by channel and result (sent, failed).",
		}, []string{"channel", "result"}),
		SendRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_sends_refused_total", Help: "Texts and emails refused before the provider, by channel and budget (docs/SECURITY.md).",
		}, []string{"channel", "budget"}),
		CeilingReached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idlink_sms_ceiling_reached_total", Help: "Texts refused by the overall ceiling, by tier (signup: sign-up texts past their share; all: every text).",
		}, []string{"tier"}),
		CodeGuessLimits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idlink_code_guess_limits_total", Help: "Accounts whose logins stopped after too many wrong security codes.",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.Latency, m.JourneysStarted, m.JourneysFinished, m.CodesSent, m.Lockouts, m.PDSChecks, m.SignIns, m.Shed,
		m.Sends, m.SendRefused, m.CeilingReached, m.CodeGuessLimits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
