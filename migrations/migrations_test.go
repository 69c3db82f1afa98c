package migrations_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestUpIsIdempotent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		v, err := migrations.Version(ctx, db)
		require.NoError(t, err)
		require.Positive(t, v)
		n, err := migrations.Up(ctx, db)
		require.NoError(t, err)
		require.Zero(t, n, "a migrated database has nothing left to apply")
	})
}

// Replicas that start together must migrate once: the advisory lock makes
// the second wait for the first and then find nothing to do.
func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	u := dbtest.PostgresURL(t)
	ctx := context.Background()
	// Reset the schema so that the concurrent runs start from nothing.
	db, err := migrations.Open(ctx, u)
	require.NoError(t, err)
	defer db.Close()
	var schema string
	require.NoError(t, db.GetContext(ctx, &schema, "SELECT current_schema()"))
	_, err = db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)

	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := migrations.Open(ctx, u)
			if err != nil {
				errs[i] = err
				return
			}
			defer h.Close()
			applied[i], errs[i] = migrations.Up(ctx, h)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		require.NoError(t, errs[i])
		total += applied[i]
	}
	// Migration numbers are assigned per branch and may leave gaps: count
	// the files rather than trusting the highest version.
	files, err := filepath.Glob(filepath.Join("postgres", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.Equal(t, len(files), total, "each migration applied exactly once across replicas")
	v, err := migrations.Version(ctx, db)
	require.NoError(t, err)
	require.Positive(t, v)
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	_, err := migrations.Open(context.Background(), "mysql://root@localhost/x")
	require.ErrorIs(t, err, migrations.ErrUnsupportedURL)
}

// The SQLite file and its journals are readable by this user only.
func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "idlink.db")
	db, err := migrations.OpenMigrated(context.Background(), "sqlite:"+path)
	require.NoError(t, err)
	defer db.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
	}
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// A file made world-readable earlier is restricted when opened.
	db.Close()
	require.NoError(t, os.Chmod(path, 0o644))
	again, err := migrations.Open(context.Background(), "sqlite:"+path)
	require.NoError(t, err)
	defer again.Close()
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
