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
	"strconv"
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

// Pool defaults on PostgreSQL: a replica opens at most DefaultMaxOpenConns
// connections from its pool, plus the bus listener's own connection
// (docs/operations.md gives the arithmetic against max_connections).
const (
	DefaultMaxOpenConns     = 20
	DefaultStatementTimeout = 5 * time.Second
	DefaultLockTimeout      = 2 * time.Second
	DefaultApplicationName  = "idlink"
)

// Options tune the connection pool and the server-side limits of every
// connection. Zero values take the defaults above.
type Options struct {
	// MaxOpenConns bounds the pool (IDLINK_DB_MAX_OPEN_CONNS); SQLite
	// always uses 8.
	MaxOpenConns int
	// MaxIdleConns is how many idle connections the pool keeps
	// (IDLINK_DB_MAX_IDLE_CONNS); default MaxOpenConns.
	MaxIdleConns int
	// StatementTimeout ends any PostgreSQL statement running longer
	// (statement_timeout; IDLINK_DB_STATEMENT_TIMEOUT).
	StatementTimeout time.Duration
	// LockTimeout ends a PostgreSQL statement waiting longer for a lock
	// (lock_timeout; IDLINK_DB_LOCK_TIMEOUT).
	LockTimeout time.Duration
	// ApplicationName names the connections in pg_stat_activity.
	ApplicationName string
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
	}
	if o.MaxIdleConns <= 0 || o.MaxIdleConns > o.MaxOpenConns {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.ApplicationName == "" {
		o.ApplicationName = DefaultApplicationName
	}
	return o
}

// IsPostgresURL reports whether rawURL names a PostgreSQL database.
func IsPostgresURL(rawURL string) bool {
	return strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://")
}

// PostgresURL returns rawURL with the runtime parameters of o added
// (statement_timeout, lock_timeout, application_name) unless the URL sets
// them already. lib/pq passes unknown URL parameters to the server as
// runtime parameters, so every connection, the listener's included,
// carries them.
func PostgresURL(rawURL string, o Options) (string, error) {
	o = o.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrUnsupportedURL, redact(rawURL))
	}
	q := u.Query()
	set := func(k, v string) {
		if q.Get(k) == "" {
			q.Set(k, v)
		}
	}
	set("statement_timeout", strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10))
	set("lock_timeout", strconv.FormatInt(o.LockTimeout.Milliseconds(), 10))
	set("application_name", o.ApplicationName)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Open connects to the database named by rawURL without migrating it, with
// the default Options. A URL starting with postgres:// or postgresql://
// selects PostgreSQL (lib/pq); sqlite:PATH or a bare file path selects
// embedded SQLite.
func Open(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith is Open with pool and timeout options.
func OpenWith(ctx context.Context, rawURL string, o Options) (*sqlx.DB, error) {
	o = o.withDefaults()
	switch {
	case IsPostgresURL(rawURL):
		dsn, err := PostgresURL(rawURL, o)
		if err != nil {
			return nil, err
		}
		conn, err := openPostgres(dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db := sqlx.NewDb(sql.OpenDB(conn), string(Postgres))
		db.SetMaxOpenConns(o.MaxOpenConns)
		db.SetMaxIdleConns(o.MaxIdleConns)
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
		// lock at BEGIN so two transactions never deadlock upgrading. The
		// request's deadline interrupts a statement waiting longer.
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
	return OpenMigratedWith(ctx, rawURL, Options{})
}

// OpenMigratedWith is OpenMigrated with pool and timeout options.
func OpenMigratedWith(ctx context.Context, rawURL string, o Options) (*sqlx.DB, error) {
	db, err := OpenWith(ctx, rawURL, o)
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
	// Migration numbers are taken by pieces of work that land in any order
	// (00010 may land after 00011): each migration stands alone, so a
	// database that has a later one still gets an earlier one it lacks.
	opts = append(opts, goose.WithAllowOutofOrder(true))
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
