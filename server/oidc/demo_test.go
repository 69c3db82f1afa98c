package oidc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
)

func TestEnsureDemoClients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, func(c *Config) { c.Development = true })
		ctx := context.Background()
		keyPath := filepath.Join(t.TempDir(), "demo", "demo-rp-key.pem")
		d, err := e.srv.EnsureDemoClients(ctx, keyPath)
		require.NoError(t, err)
		require.Equal(t, DemoClientID, d.RP.ID)
		require.Equal(t, DemoRedirectURIs(), d.RP.RedirectURIs)
		require.Equal(t, SupportedScopes(), d.RP.Scopes)
		require.Len(t, d.RP.VTR, 9)
		require.True(t, d.RP.RefreshTokens)
		require.Equal(t, CompanionClientID, d.Companion.ID)
		require.True(t, d.Companion.Public)
		require.True(t, d.Companion.HasRedirectURI(CompanionRedirectURI))
		require.True(t, d.Companion.AllowsScope(ScopeDeviceEnrolment))
		require.False(t, d.RP.AllowsScope(ScopeDeviceEnrolment), "only the companion app may enrol devices")
		st, err := os.Stat(keyPath)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		pemBytes, err := os.ReadFile(keyPath)
		require.NoError(t, err)

		// Idempotent: same key, same clients.
		d2, err := e.srv.EnsureDemoClients(ctx, keyPath)
		require.NoError(t, err)
		require.Equal(t, d.RP.PublicKeyPEM, d2.RP.PublicKeyPEM)
		again, err := os.ReadFile(keyPath)
		require.NoError(t, err)
		require.Equal(t, pemBytes, again)

		// The demo relying party completes a flow with the written key.
		key, err := parseRSAPrivateKeyPEM(pemBytes, keyPath)
		require.NoError(t, err)
		e.loginAs(DemoClientID, key, DemoRedirectURIs()[0], nil)

		// A lost key file gets a new key, and the registration follows.
		require.NoError(t, os.Remove(keyPath))
		d3, err := e.srv.EnsureDemoClients(ctx, keyPath)
		require.NoError(t, err)
		require.NotEqual(t, d.RP.PublicKeyPEM, d3.RP.PublicKeyPEM)
		got, err := e.srv.Clients().Get(ctx, DemoClientID)
		require.NoError(t, err)
		require.Equal(t, d3.RP.PublicKeyPEM, got.PublicKeyPEM)

		// A file that is not a key is an error, not overwritten.
		require.NoError(t, os.WriteFile(keyPath, []byte("hello"), 0o600))
		_, err = e.srv.EnsureDemoClients(ctx, keyPath)
		require.Error(t, err)
		b, _ := os.ReadFile(keyPath)
		require.Equal(t, "hello", string(b))
	})
}

func TestEnsureDemoClientsOnlyInDevelopment(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	_, err := e.srv.EnsureDemoClients(context.Background(), filepath.Join(t.TempDir(), "k.pem"))
	require.ErrorIs(t, err, ErrNotDevelopment)
}
