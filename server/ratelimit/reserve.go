package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rate is a limit of N events per window Per, written "N/duration" in
// configuration ("10/15m", "3/24h").
type Rate struct {
	N   int
	Per time.Duration
}

// String writes the rate as ParseRate reads it.
func (r Rate) String() string { return strconv.Itoa(r.N) + "/" + shortDuration(r.Per) }

func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// ParseRate reads "N/duration": N a whole number ≥ 1, duration a Go
// duration of at least a second ("10/15m", "3/24h", "600/1m").
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not N/duration, like 10/15m", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 {
		return Rate{}, fmt.Errorf("%q: N must be a whole number of at least 1", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d < time.Second {
		return Rate{}, fmt.Errorf("%q: the window must be a duration of at least 1s, like 15m or 24h", s)
	}
	return Rate{N: count, Per: d}, nil
}

// Budget is one limit an event must fit in: at most Limit events for Key
// per Window.
type Budget struct {
	Key    string
	Limit  int
	Window time.Duration
	// FirstOf, when set, names another budget of the same Reserve: this
	// one counts the event only when it is the first event of that
	// budget's window ("distinct numbers per journey": a marker per
	// number, and a count of the markers). It is decided in the same
	// transaction, so racing events count exactly.
	FirstOf string
}

// Of makes the budget of rate r for key.
func Of(key string, r Rate) Budget { return Budget{Key: key, Limit: r.N, Window: r.Per} }

// ErrExceeded is matched by *Exceeded.
var ErrExceeded = errors.New("rate limit exceeded")

// Exceeded says which budgets an event did not fit in, and when the last
// of them opens again.
type Exceeded struct {
	Keys    []string
	RetryAt time.Time
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("rate limit exceeded (%s) until %s", strings.Join(e.Keys, ", "), e.RetryAt.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrExceeded) true.
func (e *Exceeded) Is(target error) bool { return target == ErrExceeded }

// Reservation is one event counted against every budget of a Reserve.
// Release gives it back (the event did not happen after all).
type Reservation struct {
	l      *Limiter
	keys   []string
	starts []time.Time
	counts map[string]int
}

// Count returns the event's number within key's window (1 for the first).
func (r *Reservation) Count(key string) int { return r.counts[key] }

// Reserve counts one event against every budget at once, in one
// transaction: either the event fits in all of them and is counted in
// all, or it fits in one of them not and nothing is counted (an
// *Exceeded error says which did not, and when they open again). Counts
// are exact however many callers race, on either database.
func (l *Limiter) Reserve(ctx context.Context, budgets ...Budget) (*Reservation, error) {
	// One row lock per key, always taken in the same order: concurrent
	// reservations over overlapping keys cannot deadlock.
	// Conditional budgets come after all others (still in key order), so
	// that their conditions are known and every lock order is the same.
	bs := slices.Clone(budgets)
	slices.SortFunc(bs, func(a, b Budget) int {
		if (a.FirstOf == "") != (b.FirstOf == "") {
			if a.FirstOf == "" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	bs = slices.CompactFunc(bs, func(a, b Budget) bool { return a.Key == b.Key })
	now := l.now().UTC().Truncate(time.Microsecond)
	tx, err := l.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res := &Reservation{l: l, counts: map[string]int{}}
	var over *Exceeded
	for _, b := range bs {
		if b.FirstOf != "" && res.counts[b.FirstOf] != 1 {
			continue // not the first event of its condition's window
		}
		var row struct {
			Count       int       `db:"count"`
			WindowStart time.Time `db:"window_start"`
		}
		closed := now.Add(-b.Window)
		err := tx.GetContext(ctx, &row, tx.Rebind(`INSERT INTO rate_counters (key, window_start, count) VALUES (?, ?, 1)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN rate_counters.window_start <= ? THEN 1 ELSE rate_counters.count + 1 END,
				window_start = CASE WHEN rate_counters.window_start <= ? THEN excluded.window_start ELSE rate_counters.window_start END
			RETURNING count, window_start`), b.Key, now, closed, closed)
		if err != nil {
			return nil, fmt.Errorf("reserve %s: %w", b.Key, err)
		}
		if row.Count > b.Limit {
			if over == nil {
				over = &Exceeded{}
			}
			over.Keys = append(over.Keys, b.Key)
			if at := row.WindowStart.UTC().Add(b.Window); at.After(over.RetryAt) {
				over.RetryAt = at
			}
			continue
		}
		res.keys = append(res.keys, b.Key)
		res.starts = append(res.starts, row.WindowStart)
		res.counts[b.Key] = row.Count
	}
	if over != nil {
		return nil, over // the rollback uncounts everything
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return res, nil
}

// Release uncounts the reservation's event from every budget whose window
// is still the one it was counted in. Releasing twice does nothing more.
func (r *Reservation) Release(ctx context.Context) error {
	if r == nil || len(r.keys) == 0 {
		return nil
	}
	tx, err := r.l.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for i, k := range r.keys {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE rate_counters SET count = count - 1 WHERE key = ? AND window_start = ? AND count > 0`),
			k, r.starts[i]); err != nil {
			return fmt.Errorf("release %s: %w", k, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	r.keys, r.starts = nil, nil
	return nil
}
