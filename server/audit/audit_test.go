package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/audit"
)

func TestRecordAndList(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		log := audit.New(db, func() time.Time { now = now.Add(time.Second); return now })
		actor := audit.Actor{IP: "192.0.2.1", UserAgent: "test", RequestID: "r1"}

		require.NoError(t, log.Record(ctx, actor, "login.password", audit.Failure, "", map[string]any{"reason": "unknown_email"}))
		require.NoError(t, log.Record(ctx, actor, "login.password", audit.Failure, "acc1", nil))
		require.NoError(t, log.Record(ctx, actor, "login.password", audit.Success, "acc1", nil))

		evs, err := log.ForAccount(ctx, "acc1", 10)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Equal(t, audit.Success, evs[0].Outcome, "newest first")
		require.Equal(t, "192.0.2.1", evs[0].IP)

		n, err := log.Count(ctx, "", "login.password", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})
}
