package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/metrics"
)

// In production /metrics is served only on its own listener or with a
// token: never to anyone who asks.
func TestProductionMetricsAreNotPublic(t *testing.T) {
	s := &Server{cfg: config.Config{Env: config.Production}, App: fiber.New(), Metrics: metrics.New(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.registerMetrics()
	resp, err := s.App.Test(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
