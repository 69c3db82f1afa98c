package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestRememberedBrowser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, clk := newStore(t, db, device.Config{})

		tok, err := s.Remember(ctx, "acct-a", "Firefox on Linux\x07")
		require.NoError(t, err)
		require.NotEmpty(t, tok)

		// Only a keyed hash is stored.
		var stored []string
		require.NoError(t, db.SelectContext(ctx, &stored, `SELECT token_hash FROM remembered_browsers`))
		require.Len(t, stored, 1)
		require.NotEqual(t, tok, stored[0])
		require.NotContains(t, stored[0], tok)

		tests := []struct {
			name    string
			account string
			token   string
			ok      bool
		}{
			{"right account and token", "acct-a", tok, true},
			{"another account", "acct-b", tok, false},
			{"wrong token", "acct-a", tok + "x", false},
			{"empty token", "acct-a", "", false},
			{"no account", "", tok, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ok, err := s.CheckRemembered(ctx, tc.account, tc.token)
				require.NoError(t, err)
				require.Equal(t, tc.ok, ok)
			})
		}

		list, err := s.ListRemembered(ctx, "acct-a")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, "Firefox on Linux", list[0].Label)
		require.Equal(t, clk.Now(), list[0].CreatedAt)
		empty, err := s.ListRemembered(ctx, "acct-b")
		require.NoError(t, err)
		require.Empty(t, empty)

		// Forget one: another account cannot; the owner can.
		require.ErrorIs(t, s.ForgetRemembered(ctx, "acct-b", list[0].ID), device.ErrNotFound)
		require.NoError(t, s.ForgetRemembered(ctx, "acct-a", list[0].ID))
		ok, err := s.CheckRemembered(ctx, "acct-a", tok)
		require.NoError(t, err)
		require.False(t, ok)
		require.ErrorIs(t, s.ForgetRemembered(ctx, "acct-a", list[0].ID), device.ErrNotFound)
	})
}

func TestRememberedBrowserIdleExpiry(t *testing.T) {
	tests := []struct {
		name string
		cfg  device.Config
		idle time.Duration
	}{
		{"default six months", device.Config{}, device.DefaultRememberIdle},
		{"configured one day", device.Config{RememberIdle: 24 * time.Hour}, 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				ctx := context.Background()
				s, clk := newStore(t, db, tc.cfg)
				tok, err := s.Remember(ctx, "acct", "Safari on iPhone")
				require.NoError(t, err)

				// Used just before the idle lifetime ends: still valid, and
				// the use restarts the lifetime.
				clk.Add(tc.idle - time.Second)
				ok, err := s.CheckRemembered(ctx, "acct", tok)
				require.NoError(t, err)
				require.True(t, ok)
				clk.Add(tc.idle - time.Second)
				ok, err = s.CheckRemembered(ctx, "acct", tok)
				require.NoError(t, err)
				require.True(t, ok)
				list, err := s.ListRemembered(ctx, "acct")
				require.NoError(t, err)
				require.Len(t, list, 1)
				require.Equal(t, clk.Now(), list[0].LastUsedAt)

				// Unused for the whole idle lifetime: forgotten.
				clk.Add(tc.idle)
				list, err = s.ListRemembered(ctx, "acct")
				require.NoError(t, err)
				require.Empty(t, list)
				ok, err = s.CheckRemembered(ctx, "acct", tok)
				require.NoError(t, err)
				require.False(t, ok)
				var n int
				require.NoError(t, db.GetContext(ctx, &n, `SELECT COUNT(*) FROM remembered_browsers`))
				require.Zero(t, n, "an idle token is deleted when presented")

				// Purge removes idle rows nobody presents.
				_, err = s.Remember(ctx, "acct", "Chrome")
				require.NoError(t, err)
				clk.Add(tc.idle + time.Second)
				require.NoError(t, s.Purge(ctx))
				require.NoError(t, db.GetContext(ctx, &n, `SELECT COUNT(*) FROM remembered_browsers`))
				require.Zero(t, n)
			})
		})
	}
}

func TestForgetAllRemembered(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, _ := newStore(t, db, device.Config{})
		var mine []string
		for range 3 {
			tok, err := s.Remember(ctx, "acct-a", "browser")
			require.NoError(t, err)
			mine = append(mine, tok)
		}
		theirs, err := s.Remember(ctx, "acct-b", "browser")
		require.NoError(t, err)

		n, err := s.ForgetAllRemembered(ctx, "acct-a")
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
		for _, tok := range mine {
			ok, err := s.CheckRemembered(ctx, "acct-a", tok)
			require.NoError(t, err)
			require.False(t, ok)
		}
		ok, err := s.CheckRemembered(ctx, "acct-b", theirs)
		require.NoError(t, err)
		require.True(t, ok, "other accounts keep their browsers")
	})
}
