package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/servertest"
)

// namedPostgres returns a test schema's URL whose connections carry an
// application_name of their own, so the test can find (and kill) exactly
// its server's pooled connections.
func namedPostgres(t *testing.T) (dbURL, name string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "idlink_test_" + hex.EncodeToString(b[:])
	return dbtest.PostgresURL(t) + "&application_name=" + name, name
}

// faultEnv keeps the pages quick to fail: a lock waited on for 200 ms.
var faultEnv = map[string]string{"IDLINK_DB_LOCK_TIMEOUT": "200ms", "IDLINK_DB_STATEMENT_TIMEOUT": "2s", "IDLINK_REQUEST_TIMEOUT": "4s"}

// lockSessions holds a lock on the sessions table from another connection
// until the returned function is called: ACCESS EXCLUSIVE stops reads too,
// SHARE only writes.
func lockSessions(t *testing.T, dbURL, mode string) func() {
	t.Helper()
	db, err := migrations.Open(context.Background(), dbURL)
	require.NoError(t, err)
	tx, err := db.BeginTxx(context.Background(), nil)
	require.NoError(t, err)
	_, err = tx.Exec("LOCK TABLE sessions IN " + mode + " MODE")
	require.NoError(t, err)
	done := false
	unlock := func() {
		if !done {
			done = true
			_ = tx.Rollback()
			_ = db.Close()
		}
	}
	t.Cleanup(unlock)
	return unlock
}

func fetch(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp, sb.String()
}

// A locked sessions table (a hung database as every request sees it):
// /readyz fails, pages and APIs answer 503 with Retry-After instead of
// waiting, and both recover by themselves once the lock goes.
func TestHungDatabase(t *testing.T) {
	dbURL, _ := namedPostgres(t)
	s := servertest.Start(t, dbURL, faultEnv, server.Options{})
	b := s.NewBrowser(t)
	require.Equal(t, http.StatusOK, b.Get("/login").Status)
	resp, _ := fetch(t, s.URL+"/readyz", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	unlock := lockSessions(t, dbURL, "ACCESS EXCLUSIVE")
	resp, body := fetch(t, s.URL+"/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	p := b.Get("/login")
	require.Equal(t, http.StatusServiceUnavailable, p.Status)
	require.NotEmpty(t, p.Header.Get("Retry-After"))
	require.Equal(t, "Sorry, the service is unavailable", p.H1())

	resp, body = fetch(t, s.URL+"/login", map[string]string{"Accept": "application/json"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, `"error":"temporarily_unavailable"`)

	unlock()
	require.Eventually(t, func() bool {
		resp, _ := fetch(t, s.URL+"/readyz", nil)
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusOK, b.Get("/login").Status)
}

// Every pooled connection killed by the server (pg_terminate_backend, as a
// restart or a proxy does): the next requests are served on new
// connections, and a whole signup and login still work.
func TestConnectionsKilled(t *testing.T) {
	dbURL, name := namedPostgres(t)
	s := servertest.Start(t, dbURL, faultEnv, server.Options{})
	admin, err := migrations.Open(context.Background(), dbURL)
	require.NoError(t, err)
	defer admin.Close()
	kill := func() int {
		var n int
		require.NoError(t, admin.Get(&n, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()) k`, name))
		return n
	}
	b := s.NewBrowser(t)
	for range 3 {
		require.Equal(t, http.StatusOK, b.Get("/login").Status)
		require.Positive(t, kill())
	}
	require.Equal(t, http.StatusOK, b.Get("/login").Status)
	kill()
	p := s.CreateAccount(t, b, "killed@example.org", pw, phone)
	require.Equal(t, "Your account", p.H1())
	kill()
	p = b.Submit(p, "/sign-out", nil)
	require.Equal(t, "You have signed out", p.H1())
	kill()
	require.Equal(t, "Your account", s.LogIn(t, b, nil, "killed@example.org", pw, phone).H1())
}

// Sessions that cannot be written while the security code is checked: the
// login fails with 503, nothing of it is kept (no login.completed event, the
// code not used, the old session still valid), and the same code then
// completes the login. A login page whose session cannot be saved starts no
// journey in the metrics.
func TestLoginSaveFailureKeepsNothing(t *testing.T) {
	dbURL, _ := namedPostgres(t)
	s := servertest.Start(t, dbURL, faultEnv, server.Options{})
	s.CreateAccount(t, s.NewBrowser(t), "save@example.org", pw, phone)
	completed := func() int {
		n, err := s.Audit.Count(context.Background(), "", "login.completed", audit.Success)
		require.NoError(t, err)
		return n
	}
	before := completed()

	b := s.NewBrowser(t)
	p := b.Get("/login")
	p = b.Submit(p, "/login", map[string]string{"email": "save@example.org", "password": pw})
	require.Equal(t, "Enter the security code", p.H1(), p.Errors())
	code := s.CodeFor(t, servertest.E164(t, phone), "login_code")

	started := testutil.ToFloat64(s.Metrics.JourneysStarted.WithLabelValues("login"))
	unlock := lockSessions(t, dbURL, "SHARE")
	failed := b.Submit(p, "/login/code", map[string]string{"code": code})
	require.Equal(t, http.StatusServiceUnavailable, failed.Status, failed.H1())
	require.NotEmpty(t, failed.Header.Get("Retry-After"))
	fresh := s.NewBrowser(t).Get("/login")
	require.Equal(t, http.StatusServiceUnavailable, fresh.Status)
	unlock()

	require.Equal(t, before, completed(), "no login recorded without its session")
	require.Equal(t, started, testutil.ToFloat64(s.Metrics.JourneysStarted.WithLabelValues("login")),
		"a login page that failed started nothing")
	p = b.Submit(p, "/login/code", map[string]string{"code": code})
	require.Equal(t, "Your account", p.H1(), "the same code still works: it was not used")
	require.Equal(t, before+1, completed())
}

// With every place taken and no queue, a page gets the "busy" answer at
// once: 503 with Retry-After, while the probes still answer.
func TestBusyPage(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), map[string]string{
		"IDLINK_MAX_CONCURRENT_REQUESTS": "1", "IDLINK_REQUEST_QUEUE": "-1",
	}, server.Options{})
	b := s.NewBrowser(t)
	p := b.Get("/login")
	require.Equal(t, http.StatusOK, p.Status)

	// A form posted slowly holds the only place while its body trickles in.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nemail=\r\n")
	require.NoError(t, err)

	var busy *servertest.Page
	require.Eventually(t, func() bool {
		busy = b.Get("/login")
		return busy.Status == http.StatusServiceUnavailable
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, "The service is busy", busy.H1())
	require.NotEmpty(t, busy.Header.Get("Retry-After"))
	resp, _ := fetch(t, s.URL+"/readyz", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Positive(t, testutil.ToFloat64(s.Metrics.Shed.WithLabelValues("queue_full")))
	conn.Close()
	require.Eventually(t, func() bool { return b.Get("/login").Status == http.StatusOK }, 30*time.Second, 10*time.Millisecond)
}
