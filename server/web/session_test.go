package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/web"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// app is a tiny application that stores and shows a session value.
func app(t *testing.T, db *sqlx.DB, clk *clock) (*fiber.App, *web.Sessions) {
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	st := web.NewSessions(db, keys, 30*time.Minute, 12*time.Hour, false, clk.Now)
	a := fiber.New()
	a.Use(st.Middleware())
	a.Get("/set", func(c fiber.Ctx) error { web.Sess(c).Put("v", c.Query("v")); return c.SendString("ok") })
	a.Get("/get", func(c fiber.Ctx) error {
		var v string
		web.Sess(c).Get("v", &v)
		return c.SendString(v)
	})
	a.Get("/login", func(c fiber.Ctx) error {
		s := web.Sess(c)
		s.Renew()
		s.SetAccount(c.Query("acct"))
		return c.SendString("ok")
	})
	a.Get("/logout", func(c fiber.Ctx) error { web.Sess(c).Destroy(); return c.SendString("ok") })
	return a, st
}

func do(t *testing.T, a *fiber.App, path, cookie string) (string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", web.SessionCookie+"="+cookie)
	}
	resp, err := a.Test(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == web.SessionCookie {
			cookie = c.Value
		}
	}
	return string(body), cookie
}

func TestSessionLifetimes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		clk := &clock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
		a, _ := app(t, db, clk)

		_, c := do(t, a, "/set?v=hello", "")
		require.NotEmpty(t, c)
		got, _ := do(t, a, "/get", c)
		require.Equal(t, "hello", got)

		// Activity keeps the session alive past the idle limit …
		for range 5 {
			clk.Add(20 * time.Minute)
			got, _ = do(t, a, "/get", c)
			require.Equal(t, "hello", got)
		}
		// … but 30 idle minutes end it.
		clk.Add(30 * time.Minute)
		got, _ = do(t, a, "/get", c)
		require.Empty(t, got)

		// The absolute limit ends even a busy session.
		_, c = do(t, a, "/set?v=busy", "")
		for range 12*3 - 1 {
			clk.Add(20 * time.Minute)
			got, _ = do(t, a, "/get", c)
			require.Equal(t, "busy", got)
		}
		clk.Add(20 * time.Minute)
		got, _ = do(t, a, "/get", c)
		require.Empty(t, got, "12 hours after it began")

		// A made-up cookie gets a fresh, empty session.
		got, _ = do(t, a, "/get", strings.Repeat("A", 43))
		require.Empty(t, got)
	})
}

func TestSessionRenewalAndEnding(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		clk := &clock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
		a, st := app(t, db, clk)

		_, before := do(t, a, "/set?v=kept", "")
		_, after := do(t, a, "/login?acct=acc1", before)
		require.NotEqual(t, before, after, "signing in changes the id")
		got, _ := do(t, a, "/get", after)
		require.Equal(t, "kept", got, "and keeps the contents")
		got, _ = do(t, a, "/get", before)
		require.Empty(t, got, "the old id is worthless")

		_, other := do(t, a, "/login?acct=acc1", "")
		do(t, a, "/set?v=other", other)
		n, err := st.EndAccountSessions(context.Background(), "acc1", "")
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		got, _ = do(t, a, "/get", other)
		require.Empty(t, got)

		_, c := do(t, a, "/set?v=x", "")
		do(t, a, "/logout", c)
		got, _ = do(t, a, "/get", c)
		require.Empty(t, got)
	})
}

// Under https the session cookie carries the __Host- prefix (Secure,
// Path=/, no Domain), so no subdomain or plain-http page can plant one;
// the prefixed cookie is the one read back.
func TestHostPrefixedCookieUnderHTTPS(t *testing.T) {
	db := dbtest.SQLite(t)
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	st := web.NewSessions(db, keys, 30*time.Minute, 12*time.Hour, true, nil)
	require.Equal(t, "__Host-idlink_session", st.CookieName())
	a := fiber.New()
	a.Use(st.Middleware())
	a.Get("/set", func(c fiber.Ctx) error { web.Sess(c).Put("v", "x"); return c.SendString("ok") })
	a.Get("/get", func(c fiber.Ctx) error {
		var v string
		web.Sess(c).Get("v", &v)
		return c.SendString(v)
	})
	resp, err := a.Test(httptest.NewRequest(http.MethodGet, "/set", nil))
	require.NoError(t, err)
	raw := resp.Header.Get("Set-Cookie")
	require.True(t, strings.HasPrefix(raw, "__Host-idlink_session="), raw)
	require.Contains(t, strings.ToLower(raw), "secure")
	require.Contains(t, raw, "path=/")
	require.NotContains(t, strings.ToLower(raw), "domain=")
	var id string
	for _, c := range resp.Cookies() {
		id = c.Value
	}
	req := httptest.NewRequest(http.MethodGet, "/get", nil)
	req.Header.Set("Cookie", "__Host-idlink_session="+id)
	resp, err = a.Test(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, "x", string(body))
	req = httptest.NewRequest(http.MethodGet, "/get", nil)
	req.Header.Set("Cookie", "idlink_session="+id)
	resp, err = a.Test(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	require.Empty(t, string(body), "an unprefixed cookie is not read under https")
}
