// Package dbtest gives tests a freshly migrated database on each dialect:
// an SQLite file in a temporary directory, and a PostgreSQL schema of its own
// (created in IDLINK_TEST_POSTGRES_URL and dropped when the test ends).
//
// PostgreSQL runs are skipped with a message when IDLINK_TEST_POSTGRES_URL is
// unset, unless IDLINK_REQUIRE_POSTGRES=1, when they fail instead.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
)

// Each runs fn as a subtest once per dialect, each with its own empty,
// migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *sqlx.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// EachURL is Each for tests that need a database URL (to start a server or
// a second process) rather than a handle. The database is already migrated.
func EachURL(t *testing.T, fn func(t *testing.T, dbURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresURL(t)) })
}

// SQLiteURL creates a migrated SQLite database in a temporary directory and
// returns its URL.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	u := "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	db, err := migrations.OpenMigrated(context.Background(), u)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return u
}

// SQLite returns a migrated handle on a new SQLite database.
func SQLite(t testing.TB) *sqlx.DB {
	t.Helper()
	return openURL(t, SQLiteURL(t))
}

// PostgresURL creates a migrated schema of its own in the test PostgreSQL
// server and returns a URL whose search_path selects it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("IDLINK_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("IDLINK_REQUIRE_POSTGRES") == "1" {
			t.Fatal("IDLINK_REQUIRE_POSTGRES=1 but IDLINK_TEST_POSTGRES_URL is not set")
		}
		t.Skip("PostgreSQL tests skipped: set IDLINK_TEST_POSTGRES_URL (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	ctx := context.Background()
	admin, err := migrations.Open(ctx, base)
	require.NoError(t, err, "connect to IDLINK_TEST_POSTGRES_URL")
	defer admin.Close()

	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		db, err := migrations.Open(context.Background(), base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})

	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	schemaURL := u.String()

	db, err := migrations.OpenMigrated(ctx, schemaURL)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return schemaURL
}

// Postgres returns a migrated handle on a schema of its own.
func Postgres(t testing.TB) *sqlx.DB {
	t.Helper()
	return openURL(t, PostgresURL(t))
}

func openURL(t testing.TB, u string) *sqlx.DB {
	t.Helper()
	db, err := migrations.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}
