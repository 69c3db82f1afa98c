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

// TestSearch: each filter selects what it says, the type prefix and the
// detail pairs treat LIKE's wildcards literally, and the cursor pages
// through events that share a time.
func TestSearch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		now := t0
		log := audit.New(db, func() time.Time { return now })
		rec := func(at time.Time, typ string, outcome audit.Outcome, account, ip string, detail map[string]any) {
			now = at
			require.NoError(t, log.Record(ctx, audit.Actor{IP: ip}, typ, outcome, account, detail))
		}
		rec(t0, "support.unlock", audit.Success, "p1", "192.0.2.1", map[string]any{"staff": "s1"})
		rec(t0, "support.block", audit.Success, "p1", "192.0.2.1", map[string]any{"staff": "s1"})
		rec(t0.Add(time.Hour), "supportXunlock", audit.Success, "p2", "192.0.2.2", map[string]any{"staff": "s_"})
		rec(t0.Add(2*time.Hour), "authorize.invalid_redirect_uri", audit.Failure, "", "192.0.2.3", map[string]any{"client_id": "rp1"})
		rec(t0.Add(2*time.Hour), "authorize.code_issued", audit.Success, "p1", "192.0.2.3", map[string]any{"client_id": "rp1"})
		rec(t0.Add(3*time.Hour), "authorize.code_issued", audit.Success, "p2", "192.0.2.3", map[string]any{"client_id": "rp%"})

		for _, tc := range []struct {
			name string
			f    audit.Filter
			want int
		}{
			{"everything", audit.Filter{}, 6},
			{"person", audit.Filter{AccountID: "p1"}, 3},
			{"exact type", audit.Filter{Type: "support.unlock"}, 1},
			{"prefix, dot literal", audit.Filter{Type: "support."}, 2},
			{"from inclusive", audit.Filter{From: t0.Add(2 * time.Hour)}, 3},
			{"to exclusive", audit.Filter{To: t0.Add(time.Hour)}, 2},
			{"ip", audit.Filter{IP: "192.0.2.3"}, 3},
			{"staff", audit.Filter{Staff: "s1"}, 2},
			{"staff, underscore literal", audit.Filter{Staff: "s_"}, 1},
			{"client", audit.Filter{ClientID: "rp1"}, 2},
			{"client, percent literal", audit.Filter{ClientID: "rp%"}, 1},
			{"failures", audit.Filter{Outcome: audit.Failure}, 1},
			{"combined", audit.Filter{ClientID: "rp1", Type: "authorize.code_issued", AccountID: "p1"}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				evs, err := log.Search(ctx, tc.f, nil, 100)
				require.NoError(t, err)
				require.Len(t, evs, tc.want)
				n, err := log.CountMatching(ctx, tc.f)
				require.NoError(t, err)
				require.Equal(t, tc.want, n)
			})
		}

		// Pages of two, newest first, with two events at t0: every event
		// exactly once.
		seen := map[string]bool{}
		var after *audit.Cursor
		for pages := 0; ; pages++ {
			require.Less(t, pages, 4)
			evs, err := log.Search(ctx, audit.Filter{}, after, 2)
			require.NoError(t, err)
			for i, ev := range evs {
				require.False(t, seen[ev.ID])
				seen[ev.ID] = true
				if i > 0 {
					require.False(t, ev.At.After(evs[i-1].At), "newest first")
				}
			}
			if len(evs) < 2 {
				break
			}
			after = &audit.Cursor{At: evs[1].At, ID: evs[1].ID}
		}
		require.Len(t, seen, 6)
	})
}
