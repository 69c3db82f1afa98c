package server_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// /metrics behind a bearer token, or on a listener of its own and not
// on the main one.
func TestMetricsExposure(t *testing.T) {
	const token = "a-metrics-token-of-thirty-two-characters"
	s := servertest.Start(t, dbtest.SQLiteURL(t), map[string]string{"IDLINK_METRICS_TOKEN": token}, server.Options{})
	b := s.NewBrowser(t)
	require.Equal(t, http.StatusUnauthorized, b.Get("/metrics").Status)
	req, err := http.NewRequest(http.MethodGet, s.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s2 := servertest.Start(t, dbtest.SQLiteURL(t), map[string]string{"IDLINK_METRICS_ADDR": addr}, server.Options{})
	require.Equal(t, http.StatusNotFound, s2.NewBrowser(t).Get("/metrics").Status, "not on the main listener")
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
}
