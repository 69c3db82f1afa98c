package web_test

import (
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/web"
)

// A notice is shown once, to the page that takes it, and notices under
// different keys do not meet.
func TestNotice(t *testing.T) {
	db := dbtest.SQLite(t)
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	clk := &clock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
	st := web.NewSessions(db, keys, 30*time.Minute, 12*time.Hour, false, clk.Now)
	settings, admin := web.Notice("settings_notice"), web.Notice("admin_notice")
	a := fiber.New()
	a.Use(st.Middleware())
	a.Get("/set", func(c fiber.Ctx) error { settings.Set(c, c.Query("msg")); return c.SendString("ok") })
	a.Get("/take", func(c fiber.Ctx) error { return c.SendString(settings.Take(c)) })
	a.Get("/other", func(c fiber.Ctx) error { return c.SendString(admin.Take(c)) })

	_, cookie := do(t, a, "/take", "")
	tests := []struct{ path, want string }{
		{"/take", ""},
		{"/set?msg=The+passkey+has+been+renamed.", "ok"},
		{"/other", ""},
		{"/take", "The passkey has been renamed."},
		{"/take", ""},
		{"/set?msg=first", "ok"},
		{"/set?msg=second", "ok"},
		{"/take", "second"},
	}
	for _, tc := range tests {
		got, c := do(t, a, tc.path, cookie)
		require.Equal(t, tc.want, got, tc.path)
		cookie = c
	}
}
