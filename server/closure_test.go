package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/closure"
	"github.com/idlink/idlink/server/servertest"
)

// Accounts unused for two years are closed, after an email 30 days
// before; a login in between keeps the account. The clock is injected.
func TestClosureOfUnusedAccounts(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		ctx := context.Background()
		s.CreateAccount(t, s.NewBrowser(t), "idle@example.org", pw, phone)
		s.CreateAccount(t, s.NewBrowser(t), "keeps@example.org", pw, otherPhone)
		s.LogIn(t, s.NewBrowser(t), nil, "idle@example.org", pw, phone)

		res, err := s.Closure.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, closure.Result{Ran: true}, res, "nothing to do yet")

		// 30 days before two years: both are warned.
		clk.Add(2*365*24*time.Hour - 30*24*time.Hour + time.Hour)
		res, err = s.Closure.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, res.Warned)
		warn := s.Latest(t, "idle@example.org", "account_closure_warning")
		require.Contains(t, warn.Text, "log in before then")
		res, err = s.Closure.RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, res.Warned, "warned once")

		// One of them logs in: the clock starts again for them.
		require.Equal(t, "Your account", s.LogIn(t, s.NewBrowser(t), nil, "keeps@example.org", pw, otherPhone).H1())

		clk.Add(30*24*time.Hour + time.Hour)
		res, err = s.Closure.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, res.Closed)
		require.Contains(t, s.Latest(t, "idle@example.org", "account_closed").Text, "not been used")
		require.Equal(t, 0, rows(t, s, `SELECT COUNT(*) FROM accounts WHERE email = ?`, "idle@example.org"))
		require.Equal(t, 1, rows(t, s, `SELECT COUNT(*) FROM accounts WHERE email = ?`, "keeps@example.org"))
		require.Equal(t, 1, audited(t, s, "account.closed", "success"))
		require.Positive(t, audited(t, s, "closure.run", "success"), "every run is audited")
	})
}

// Replicas share the job: while one holds the lease, the others skip it.
func TestClosureRunsOnOneReplica(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		// One request first: a server stopped before it has begun
		// listening does not shut down cleanly (Serve's race, not ours).
		require.Equal(t, http.StatusOK, s.NewBrowser(t).Get("/healthz").Status)
		var jobs []*closure.Service
		for range 4 {
			j, err := closure.New(closure.Config{After: 2 * 365 * 24 * time.Hour, Warning: 30 * 24 * time.Hour},
				closure.Deps{DB: s.DB, Accounts: s.Accounts, Sessions: s.Sessions, Audit: s.Audit})
			require.NoError(t, err)
			jobs = append(jobs, j)
		}
		var wg sync.WaitGroup
		ran := make([]bool, len(jobs))
		for i, j := range jobs {
			wg.Go(func() {
				res, err := j.RunOnce(context.Background())
				require.NoError(t, err)
				ran[i] = res.Ran
			})
		}
		wg.Wait()
		n := 0
		for _, r := range ran {
			if r {
				n++
			}
		}
		require.Equal(t, 1, n, "one replica ran the job")
	})
}
