package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/ratelimit"
)

func TestWindow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		l := ratelimit.New(db, func() time.Time { return now })
		for i := 1; i <= 7; i++ {
			ok, err := l.Take(ctx, "k", 5, 15*time.Minute)
			require.NoError(t, err)
			require.Equal(t, i <= 5, ok, "event %d", i)
		}
		n, err := l.Count(ctx, "k", 15*time.Minute)
		require.NoError(t, err)
		require.Equal(t, 7, n)

		other, err := l.Take(ctx, "other", 5, 15*time.Minute)
		require.NoError(t, err)
		require.True(t, other, "keys are independent")

		now = now.Add(15 * time.Minute)
		ok, err := l.Take(ctx, "k", 5, 15*time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "a new window opens after the old one closes")

		require.NoError(t, l.Reset(ctx, "k"))
		n, err = l.Count(ctx, "k", 15*time.Minute)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// The limit must hold when many requests arrive at once.
func TestConcurrentTakesNeverExceedLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		l := ratelimit.New(db, nil)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := l.Take(context.Background(), "burst", 5, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 5, allowed.Load())
	})
}

// Reserve counts an event against several budgets at once or against
// none: with 200 racing events, the tightest budget binds exactly and the
// others count only the events that got through.
func TestReserveIsAllOrNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		l := ratelimit.New(db, nil)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.Reserve(ctx,
					ratelimit.Budget{Key: "wide", Limit: 100, Window: time.Hour},
					ratelimit.Budget{Key: fmt.Sprintf("narrow-%d", i%2), Limit: 7, Window: time.Hour})
				switch {
				case err == nil:
					allowed.Add(1)
				case !errors.Is(err, ratelimit.ErrExceeded):
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 14, allowed.Load())
		wide, err := l.Count(ctx, "wide", time.Hour)
		require.NoError(t, err)
		require.Equal(t, 14, wide, "refused events are not counted anywhere")

		res, err := l.Reserve(ctx, ratelimit.Budget{Key: "wide", Limit: 100, Window: time.Hour})
		require.NoError(t, err)
		require.Equal(t, 15, res.Count("wide"))
		require.NoError(t, res.Release(ctx))
		require.NoError(t, res.Release(ctx), "releasing twice gives back once")
		wide, err = l.Count(ctx, "wide", time.Hour)
		require.NoError(t, err)
		require.Equal(t, 14, wide)

		var ex *ratelimit.Exceeded
		_, err = l.Reserve(ctx, ratelimit.Budget{Key: "narrow-0", Limit: 7, Window: time.Hour})
		require.ErrorAs(t, err, &ex)
		require.Equal(t, []string{"narrow-0"}, ex.Keys)
		require.WithinDuration(t, time.Now().Add(time.Hour), ex.RetryAt, time.Minute)
	})
}

// A FirstOf budget counts an event only when it is the first of its
// condition's window: distinct things, exactly, however many race.
func TestReserveFirstOf(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		l := ratelimit.New(db, nil)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				marker := fmt.Sprintf("thing-%d", i%6) // six things, ten events each
				_, err := l.Reserve(ctx,
					ratelimit.Budget{Key: marker, Limit: 100, Window: time.Hour},
					ratelimit.Budget{Key: "distinct", Limit: 4, Window: time.Hour, FirstOf: marker})
				if err == nil {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 40, allowed.Load(), "four distinct things, every event of theirs")
		n, err := l.Count(ctx, "distinct", time.Hour)
		require.NoError(t, err)
		require.Equal(t, 4, n)
	})
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]ratelimit.Rate{"10/15m": {N: 10, Per: 15 * time.Minute}, " 3 / 24h ": {N: 3, Per: 24 * time.Hour}, "600/1m": {N: 600, Per: time.Minute}} {
		got, err := ratelimit.ParseRate(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
		again, err := ratelimit.ParseRate(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again)
	}
	for _, bad := range []string{"", "10", "0/1m", "-1/1m", "x/1m", "10/0s", "10/500ms", "10/forever"} {
		_, err := ratelimit.ParseRate(bad)
		require.Error(t, err, bad)
	}
}
