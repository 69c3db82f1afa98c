// Package ratelimit counts events per key in the database with one atomic
// statement, so that a limit holds across goroutines and server replicas:
// "at most 5 codes per phone number per 15 minutes".
//
// A window opens at the first event for a key and lasts the given duration;
// the count resets when the next event arrives after it has closed.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Limiter checks and counts events. It is safe for concurrent use.
type Limiter struct {
	db  *sqlx.DB
	now func() time.Time
}

// New returns a Limiter storing its counters in db.
func New(db *sqlx.DB, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{db: db, now: now}
}

// Take counts one event for key and reports whether it is within limit
// events per window. Events over the limit are counted too, so hammering a
// key does not open it sooner.
func (l *Limiter) Take(ctx context.Context, key string, limit int, window time.Duration) (bool, error) {
	n, err := l.add(ctx, key, window, 1)
	if err != nil {
		return false, err
	}
	return n <= limit, nil
}

// Add counts one event for key and returns its number within the window
// (1 for the first).
func (l *Limiter) Add(ctx context.Context, key string, window time.Duration) (int, error) {
	return l.add(ctx, key, window, 1)
}

// Count returns how many events key has in its current window, without
// counting one.
func (l *Limiter) Count(ctx context.Context, key string, window time.Duration) (int, error) {
	var row struct {
		WindowStart time.Time `db:"window_start"`
		Count       int       `db:"count"`
	}
	err := l.db.GetContext(ctx, &row, l.db.Rebind(`SELECT window_start, count FROM rate_counters WHERE key = ?`), key)
	if err != nil {
		if isNoRows(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("read rate counter: %w", err)
	}
	if !l.now().UTC().Before(row.WindowStart.Add(window)) {
		return 0, nil
	}
	return row.Count, nil
}

// Reset forgets key's events (after a successful login, say).
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if _, err := l.db.ExecContext(ctx, l.db.Rebind(`DELETE FROM rate_counters WHERE key = ?`), key); err != nil {
		return fmt.Errorf("reset rate counter: %w", err)
	}
	return nil
}

func (l *Limiter) add(ctx context.Context, key string, window time.Duration, delta int) (int, error) {
	now := l.now().UTC()
	closed := now.Add(-window)
	var n int
	// One statement: the increment and the window reset happen atomically
	// on both PostgreSQL and SQLite, so concurrent callers each see a
	// distinct count.
	err := l.db.GetContext(ctx, &n, l.db.Rebind(`INSERT INTO rate_counters (key, window_start, count) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN rate_counters.window_start <= ? THEN excluded.count ELSE rate_counters.count + excluded.count END,
			window_start = CASE WHEN rate_counters.window_start <= ? THEN excluded.window_start ELSE rate_counters.window_start END
		RETURNING count`), key, now, delta, closed, closed)
	if err != nil {
		return 0, fmt.Errorf("count rate event %s: %w", key, err)
	}
	return n, nil
}

// PurgeExpired deletes counters whose window closed more than maxWindow ago.
func (l *Limiter) PurgeExpired(ctx context.Context, maxWindow time.Duration) (int64, error) {
	res, err := l.db.ExecContext(ctx, l.db.Rebind(`DELETE FROM rate_counters WHERE window_start <= ?`), l.now().UTC().Add(-maxWindow))
	if err != nil {
		return 0, fmt.Errorf("purge rate counters: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
