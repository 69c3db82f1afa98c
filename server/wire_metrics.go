package server

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registerMetrics exposes /metrics: on a listener of its own when
// IDLINK_METRICS_ADDR is set (and not on the main one); otherwise on the
// main listener, behind the bearer token IDLINK_METRICS_TOKEN when set.
// In production without either, /metrics is not served at all: it tells
// an attacker how the service is doing and what it refuses.
func (s *Server) registerMetrics() {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	if s.cfg.MetricsAddr != "" {
		s.MetricsApp = fiber.New(fiber.Config{AppName: "idlink-metrics", ErrorHandler: s.handleError})
		s.MetricsApp.Get("/metrics", h)
		s.MetricsApp.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
		return
	}
	switch {
	case s.cfg.MetricsToken != "":
		s.App.Get("/metrics", s.metricsToken, h)
	case s.cfg.Dev():
		s.App.Get("/metrics", h)
	default:
		s.log.Warn("/metrics is not served: set IDLINK_METRICS_ADDR or IDLINK_METRICS_TOKEN")
	}
}

// metricsToken lets through requests bearing IDLINK_METRICS_TOKEN.
func (s *Server) metricsToken(c fiber.Ctx) error {
	scheme, token, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.MetricsToken)) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
		return c.Status(http.StatusUnauthorized).SendString("a bearer token is required")
	}
	return c.Next()
}
