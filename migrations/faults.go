package migrations

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
)

// ErrUnavailable is matched (errors.Is) by every error UnavailableError
// wraps: the database could not answer in time, or not at all, and the
// request may succeed if tried again later.
var ErrUnavailable = errors.New("database unavailable")

// IsUnavailable reports whether err means the database is down, hung,
// restarting or overloaded rather than that the request was wrong: a lost
// or refused connection, a statement or lock timeout, a query cancelled by
// a deadline, a server shutting down or starting up, too many connections,
// a deadlock or serialization failure, or SQLite being busy. Callers answer
// these with 503 and Retry-After instead of 500.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || IsConnLost(err) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57014", // query_canceled (statement_timeout, or a cancelled context)
			"55P03", // lock_not_available (lock_timeout)
			"57P03", // cannot_connect_now (starting up)
			"53300", // too_many_connections
			"53400", // configuration_limit_exceeded
			"40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") || // SQLite
		strings.Contains(msg, "canceling statement due to") // lib/pq's cancel after a context ended
}

// IsConnLost reports whether err means the connection was lost or could
// not be made: driver.ErrBadConn, a closed connection, a network error, or
// PostgreSQL ending the session (a restart, pg_terminate_backend).
func IsConnLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code.Class() == "08" || // connection_exception
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" // shutdowns, starting up
	}
	return false
}

// retryPause is how long RetryRead waits before its one retry: long enough
// for the pool to notice a dead connection, short against a request's
// deadline.
const retryPause = 50 * time.Millisecond

// RetryRead runs read, and once more when it fails because its connection
// was lost (IsConnLost) and ctx still has time. Only idempotent reads may be
// retried this way: a write whose connection died may have committed.
func RetryRead(ctx context.Context, read func(ctx context.Context) error) error {
	err := read(ctx)
	if err == nil || !IsConnLost(err) || ctx.Err() != nil {
		return err
	}
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return err
	case <-t.C:
	}
	return read(ctx)
}
