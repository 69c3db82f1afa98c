package migrations_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name              string
		err               error
		unavailable, lost bool
	}{
		{"nil", nil, false, false},
		{"bad connection", fmt.Errorf("load session: %w", driver.ErrBadConn), true, true},
		{"reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true, true},
		{"eof", fmt.Errorf("x: %w", io.EOF), true, true},
		{"terminated", &pq.Error{Code: "57P01"}, true, true},
		{"connection failure", &pq.Error{Code: "08006"}, true, true},
		{"statement timeout", &pq.Error{Code: "57014"}, true, false},
		{"lock timeout", &pq.Error{Code: "55P03"}, true, false},
		{"too many connections", &pq.Error{Code: "53300"}, true, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true, false},
		{"sqlite busy", errors.New("database is locked (5) (SQLITE_BUSY)"), true, false},
		{"unique violation", &pq.Error{Code: "23505"}, false, false},
		{"syntax", errors.New("near SELEC: syntax error"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.unavailable, migrations.IsUnavailable(tc.err))
			require.Equal(t, tc.lost, migrations.IsConnLost(tc.err))
		})
	}
}

func TestRetryRead(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   error
	}{
		{"ok at once", []error{nil}, 1, nil},
		{"bad connection then ok", []error{driver.ErrBadConn, nil}, 2, nil},
		{"retried once only", []error{driver.ErrBadConn, driver.ErrBadConn, nil}, 2, driver.ErrBadConn},
		{"other errors are not retried", []error{&pq.Error{Code: "23505"}, nil}, 1, &pq.Error{Code: "23505"}},
		{"timeouts are not retried", []error{context.DeadlineExceeded, nil}, 1, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := migrations.RetryRead(context.Background(), func(context.Context) error {
				calls++
				return tc.errs[calls-1]
			})
			require.Equal(t, tc.wantCalls, calls)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.Equal(t, tc.wantErr.Error(), err.Error())
			}
		})
	}
}

// The runtime parameters reach every connection, and a URL's own win.
func TestPostgresURL(t *testing.T) {
	u, err := migrations.PostgresURL("postgres://u@h/db?sslmode=disable&lock_timeout=50", migrations.Options{ApplicationName: "x"})
	require.NoError(t, err)
	require.Contains(t, u, "statement_timeout=5000")
	require.Contains(t, u, "lock_timeout=50")
	require.Contains(t, u, "application_name=x")
	require.Contains(t, u, "sslmode=disable")
}

// A pool opened with options has their limits, and every connection the
// server's timeouts and name.
func TestPostgresPoolOptions(t *testing.T) {
	base := dbtest.PostgresURL(t)
	ctx := context.Background()
	db, err := migrations.OpenWith(ctx, base, migrations.Options{MaxOpenConns: 3, MaxIdleConns: 2,
		StatementTimeout: 100 * time.Millisecond, LockTimeout: 50 * time.Millisecond, ApplicationName: "idlink_pool_test"})
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, 3, db.Stats().MaxOpenConnections)
	var name, lock string
	require.NoError(t, db.GetContext(ctx, &name, "SELECT current_setting('application_name')"))
	require.NoError(t, db.GetContext(ctx, &lock, "SHOW lock_timeout"))
	require.Equal(t, "idlink_pool_test", name)
	require.Equal(t, "50ms", lock)
	_, err = db.ExecContext(ctx, "SELECT pg_sleep(2)")
	require.Error(t, err)
	require.True(t, migrations.IsUnavailable(err), "a statement timeout is unavailability: %v", err)
}
