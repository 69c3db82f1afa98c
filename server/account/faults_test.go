package account_test

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
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/sending"
)

// A password check that cannot finish (here the stored hash is damaged, as
// a hashing slot that never comes would be) gives its reserved attempt
// back, even with many at once: failures of ours never lock anyone out, and
// a provisional lock set by such an attempt is lifted.
func TestUnfinishedPasswordCheckGivesAttemptBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		t.Cleanup(f.svc.Close)
		ctx := context.Background()
		acct := f.activeAccount(t, "unfinished@example.org", "right password here", "+447700900011")
		for range account.MaxFailedLogins - 1 {
			_, err := f.svc.CheckPassword(ctx, f.actor, acct.Email, "wrong password")
			require.ErrorIs(t, err, account.ErrBadPassword)
		}
		_, err := db.ExecContext(ctx, db.Rebind(`UPDATE accounts SET password_hash = ? WHERE id = ?`), "$argon2id$damaged", acct.ID)
		require.NoError(t, err)

		var wg sync.WaitGroup
		var malformed atomic.Int32
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.svc.CheckPassword(ctx, f.actor, acct.Email, "right password here")
				if errors.Is(err, password.ErrMalformedHash) {
					malformed.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Positive(t, malformed.Load(), "some checks were reserved and could not finish")

		got, err := f.svc.Account(ctx, acct.ID)
		require.NoError(t, err)
		require.Equal(t, account.MaxFailedLogins-1, got.FailedLogins, "only the real wrong passwords count")
		require.Nil(t, got.LockedUntil, "no lock left by checks that could not finish")

		_, err = db.ExecContext(ctx, db.Rebind(`UPDATE accounts SET password_hash = ? WHERE id = ?`), acct.PasswordHash, acct.ID)
		require.NoError(t, err)
		_, err = f.svc.CheckPassword(ctx, f.actor, acct.Email, "right password here")
		require.NoError(t, err)
	})
}

// A right code checked but not used (the session that would keep the
// login was not saved) stays usable; used in a transaction that rolls
// back, it stays usable too; many requests with the right code use it once.
func TestCheckedCodeIsUsedOnlyWithItsTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		phone := "+447700900012"
		require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, "s1", phone, ""))
		e, err := f.outbox.Latest(ctx, phone, "login_code")
		require.NoError(t, err)

		use, err := f.svc.CheckCode(ctx, f.actor, account.PurposeLogin, "s1", e.Code, "")
		require.NoError(t, err)
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, use(ctx, tx))
		require.NoError(t, tx.Rollback())

		var used atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				use, err := f.svc.CheckCode(ctx, f.actor, account.PurposeLogin, "s1", e.Code, "")
				if err != nil {
					return
				}
				tx, err := db.BeginTxx(ctx, nil)
				if err != nil {
					return
				}
				defer tx.Rollback() //nolint:errcheck
				if use(ctx, tx) == nil && tx.Commit() == nil {
					used.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, used.Load(), "the code is used exactly once")
		require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, "s1", e.Code, ""), account.ErrCodeExpired)
	})
}

// Two registrations of one address whose links are followed at the same
// moment: one creates the account, the other is told the account exists,
// never both refused and never a deadlock.
func TestSignupRace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		// 40 sign-up emails from one address: more than the per-address
		// email budget, which is not what this test is about.
		f := newFixtureWith(t, db, func(l *sending.Limits, _ *account.Config) { l.EmailAddress.N = 100 })
		ctx := context.Background()
		hash, err := f.svc.CheckNewPassword(ctx, "race@example.org", "right password here")
		require.NoError(t, err)
		for round := range 20 {
			email := fmt.Sprintf("race%d@example.org", round)
			var links []string
			for range 2 {
				_, err := f.svc.StartSignup(ctx, f.actor, email, hash)
				require.NoError(t, err)
				e, err := f.outbox.Latest(ctx, email, "signup_verify_email")
				require.NoError(t, err)
				links = append(links, tokenOf(t, e.Link))
				f.clock.Add(time.Second)
			}
			require.NotEqual(t, links[0], links[1])
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, errs[i] = f.svc.CompleteSignupLink(ctx, f.actor, links[i])
				}()
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				if err == nil {
					won++
				} else {
					require.ErrorIs(t, err, account.ErrEmailTaken)
				}
			}
			require.Equal(t, 1, won, "round %d: %v", round, errs)
		}
	})
}
