package ratelimit_test

import (
	"context"
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
