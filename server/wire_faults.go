package server

import (
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/overload"
)

// readyTimeout bounds the readiness probe, so that /readyz fails within
// 2 s of the database hanging (a lock held, every pooled connection
// stuck) or going away.
const readyTimeout = 1500 * time.Millisecond

// retryAfter is the Retry-After (seconds) of every 503: busy, or the
// database unavailable.
const retryAfter = "2"

// dbOptions is the pool and its server-side timeouts from configuration.
func dbOptions(cfg config.Config) migrations.Options {
	return migrations.Options{
		MaxOpenConns: cfg.DBMaxOpenConns, MaxIdleConns: cfg.DBMaxIdleConns,
		StatementTimeout: cfg.DBStatementTimeout, LockTimeout: cfg.DBLockTimeout,
		ApplicationName: "idlink",
	}
}

// overloadConfig is admission control and the request deadline from
// configuration. Probes, metrics, assets and the long-lived streams (the
// phone's socket, the approval page's events) are outside both: they hold a
// connection, not a share of the machine, and a probe must answer when the
// server is full.
func overloadConfig(cfg config.Config) overload.Config {
	return overload.Config{
		RequestTimeout: cfg.RequestTimeout, MaxConcurrent: cfg.MaxConcurrentRequests,
		Queue: cfg.RequestQueue, QueueWait: cfg.RequestQueueWait,
		Exempt: overload.PathPrefixes(
			[]string{"/healthz", "/readyz", "/metrics", "/app/v1/stream", "/login/approve/events", "/dev/push/bench"},
			[]string{"/assets/"}),
		// A photo ID upload may take a while to arrive (up to 64 MiB).
		Slow: overload.PathPrefixes([]string{"/prove/photo"}, nil),
	}
}

// shedCounter counts requests refused by admission control.
type shedCounter struct{ m *metrics.Metrics }

func (s shedCounter) Inc(reason string) { s.m.Shed.WithLabelValues(reason).Inc() }
