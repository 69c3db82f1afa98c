// Package migrations holds the database schema, one goose migration set per
// dialect (SQLite and PostgreSQL), and opens a migrated database handle.
//
// Every capability stores its state through the single *sqlx.DB returned by
// Open. Queries are written with '?' placeholders and passed through
// db.Rebind, so that the same SQL runs on both dialects.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // PostgreSQL driver.
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // SQLite driver (pure Go).
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Dialect names the SQL dialect of an open database.
type Dialect string

// The two supported dialects; the values are also the sqlx driver names.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

func init() {
	// sqlx does not know the modernc driver name; without this Rebind would
	// leave '?' placeholders untouched only by accident.
	sqlx.BindDriver(string(SQLite), sqlx.QUESTION)
}

// DialectOf reports the dialect of a handle opened by Open.
func DialectOf(db *sqlx.DB) Dialect { return Dialect(db.DriverName()) }

// ErrUnsupportedURL is returned for a database URL whose scheme is neither
// postgres:// nor sqlite:// (or a plain file path).
var ErrUnsupportedURL = errors.New("unsupported database URL")

// SQLitePath returns the default SQLite database file inside dataDir.
func SQLitePath(dataDir string) string { return filepath.Join(dataDir, "idlink.db") }

// Open connects to the database named by rawURL without migrating it.
// A URL starting with postgres:// or postgresql:// selects PostgreSQL
// (lib/pq); sqlite:PATH or a bare file path selects embedded SQLite.
func Open(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err := sqlx.Open(string(Postgres), rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		db.SetConnMaxIdleTime(5 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("connect to postgres: %w", err)
		}
		return db, nil
	case strings.Contains(rawURL, "://"):
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedURL, redact(rawURL))
	default:
		path := strings.TrimPrefix(rawURL, "sqlite:")
		if path == "" {
			return nil, fmt.Errorf("%w: empty sqlite path", ErrUnsupportedURL)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		if err := restrictFile(path); err != nil {
			return nil, err
		}
		// WAL lets readers run beside the single writer; busy_timeout makes
		// writers queue instead of failing; _txlock=immediate takes the write
		// lock at BEGIN so two transactions never deadlock upgrading.
		dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)" +
			"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_time_format=sqlite&_txlock=immediate"
		db, err := sqlx.Open(string(SQLite), dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		return db, nil
	}
}

// restrictFile creates the SQLite file readable by this user only (0600)
// before SQLite opens it, and restricts an existing one and its journal
// files: SQLite gives the journals the database file's mode.
func restrictFile(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create sqlite database %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create sqlite database %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict sqlite database %s: %w", p, err)
		}
	}
	return nil
}

// OpenMigrated opens the database and brings its schema up to date.
func OpenMigrated(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	db, err := Open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	if _, err := Up(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Up applies every pending migration and returns how many were applied.
// On PostgreSQL it holds a session advisory lock while migrating, so that
// replicas starting together migrate exactly once.
func Up(ctx context.Context, db *sqlx.DB) (int, error) {
	p, err := provider(db)
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", db.DriverName(), err)
	}
	return len(res), nil
}

// Version reports the schema version currently applied.
func Version(ctx context.Context, db *sqlx.DB) (int64, error) {
	p, err := provider(db)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func provider(db *sqlx.DB) (*goose.Provider, error) {
	var (
		gd   goose.Dialect
		opts []goose.ProviderOption
	)
	switch DialectOf(db) {
	case Postgres:
		gd = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case SQLite:
		gd = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("%w: driver %q", ErrUnsupportedURL, db.DriverName())
	}
	sub, err := fs.Sub(files, db.DriverName())
	if err != nil {
		return nil, fmt.Errorf("migration files: %w", err)
	}
	p, err := goose.NewProvider(gd, db.DB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}

// Ping checks that the database answers; it backs the readiness probe.
func Ping(ctx context.Context, db *sqlx.DB) error {
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("database ping: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either dialect, so callers can branch without knowing the driver.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || // SQLite
		strings.Contains(msg, "duplicate key value violates unique constraint") // PostgreSQL
}

// IsNoRows reports whether err means a query matched no row.
func IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}
