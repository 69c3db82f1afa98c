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
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
)

var fast = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type fixture struct {
	svc     *account.Service
	outbox  *notify.Sandbox
	audit   *audit.Log
	clock   *clock
	actor   audit.Actor
	sender  *switchSender
	metrics *metrics.Metrics
}

// switchSender sends through the sandbox, or fails when told to, so tests
// can see what a provider outage does.
type switchSender struct {
	inner notify.Sender
	fail  atomic.Bool
}

func (s *switchSender) Send(ctx context.Context, m notify.Message) error {
	if s.fail.Load() {
		return fmt.Errorf("%w: provider unavailable", notify.ErrSendFailed)
	}
	return s.inner.Send(ctx, m)
}

func newFixture(t *testing.T, db *sqlx.DB) *fixture { return newFixtureWith(t, db, nil) }

// newFixtureWith builds the fixture after adjust has changed the sending
// budgets and the account configuration.
func newFixtureWith(t *testing.T, db *sqlx.DB, adjust func(*sending.Limits, *account.Config)) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	outbox := notify.NewSandbox(db, clk.Now)
	sender := &switchSender{inner: outbox}
	log := audit.New(db, clk.Now)
	limiter := ratelimit.New(db, clk.Now)
	m := metrics.New()
	limits := sending.DefaultLimits()
	cfg := account.Config{Issuer: "http://idp.test", TermsVersion: "v1", Development: true}
	if adjust != nil {
		adjust(&limits, &cfg)
	}
	send := sending.New(sending.Config{Limits: limits, AllowDrama: true}, sender, limiter, keys, m, nil, clk.Now)
	svc := account.NewService(cfg, db, keys, password.NewHasher(fast, 4), send, limiter, log, m, clk.Now)
	return &fixture{svc: svc, outbox: outbox, audit: log, clock: clk, actor: audit.Actor{IP: "192.0.2.7"}, sender: sender, metrics: m}
}

// activeAccount creates an account through the service API.
func (f *fixture) activeAccount(t *testing.T, email, pw, phone string) account.Account {
	t.Helper()
	ctx := context.Background()
	hash, err := f.svc.CheckNewPassword(ctx, email, pw)
	require.NoError(t, err)
	_, err = f.svc.StartSignup(ctx, f.actor, email, hash)
	require.NoError(t, err)
	link, err := f.outbox.Latest(ctx, email, "signup_verify_email")
	require.NoError(t, err)
	acct, _, err := f.svc.CompleteSignupLink(ctx, f.actor, tokenOf(t, link.Link))
	require.NoError(t, err)
	require.NoError(t, f.svc.SendSignupCode(ctx, f.actor, acct.ID, phone))
	code, err := f.outbox.Latest(ctx, phone, "signup_code")
	require.NoError(t, err)
	require.NoError(t, f.svc.CompleteSignupPhone(ctx, f.actor, acct.ID, phone, code.Code))
	acct, err = f.svc.Account(ctx, acct.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusActive, acct.Status)
	return acct
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	const marker = "token="
	for i := range len(link) - len(marker) {
		if link[i:i+len(marker)] == marker {
			return link[i+len(marker):]
		}
	}
	t.Fatalf("no token in %s", link)
	return ""
}

// 200 concurrent wrong passwords: no more than five are ever checked, and
// the account ends up locked.
func TestLockoutHoldsUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		f.activeAccount(t, "lock@example.org", "right password here", "+447700900001")
		var wrong, locked atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.svc.CheckPassword(context.Background(), f.actor, "lock@example.org", "wrong password")
				switch {
				case errors.Is(err, account.ErrBadPassword):
					wrong.Add(1)
				case errors.Is(err, account.ErrLocked):
					locked.Add(1)
				default:
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		// The fifth wrong password itself answers "locked".
		require.EqualValues(t, account.MaxFailedLogins-1, wrong.Load())
		require.EqualValues(t, 200-(account.MaxFailedLogins-1), locked.Load())
		checked, err := f.audit.Count(context.Background(), "", "login.password", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 200, checked, "every attempt is audited")

		_, err = f.svc.CheckPassword(context.Background(), f.actor, "lock@example.org", "right password here")
		require.ErrorIs(t, err, account.ErrLocked, "the right password waits out the lock too")

		f.clock.Add(account.LockDuration)
		_, err = f.svc.CheckPassword(context.Background(), f.actor, "lock@example.org", "right password here")
		require.NoError(t, err, "the lock lifts after 15 minutes")
		n, err := f.audit.Count(context.Background(), "", "account.locked", "")
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestRightPasswordResetsCount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		f.activeAccount(t, "reset@example.org", "right password here", "+447700900001")
		ctx := context.Background()
		for range account.MaxFailedLogins - 1 {
			_, err := f.svc.CheckPassword(ctx, f.actor, "reset@example.org", "nope nope")
			require.ErrorIs(t, err, account.ErrBadPassword)
		}
		_, err := f.svc.CheckPassword(ctx, f.actor, "reset@example.org", "right password here")
		require.NoError(t, err)
		for range account.MaxFailedLogins - 1 {
			_, err := f.svc.CheckPassword(ctx, f.actor, "reset@example.org", "nope nope")
			require.ErrorIs(t, err, account.ErrBadPassword, "the count started again")
		}
	})
}

func TestSecurityCodes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		phone, s1 := "", ""
		latest := func(f *fixture) string {
			e, err := f.outbox.Latest(ctx, phone, "login_code")
			require.NoError(t, err)
			return e.Code
		}
		other := func(code string) string {
			if code == "000000" {
				return "000001"
			}
			return "000000"
		}
		tests := []struct {
			name string
			run  func(t *testing.T, f *fixture)
		}{
			{"right code once", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				code := latest(f)
				require.NoError(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, code, ""))
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, code, ""), account.ErrCodeExpired, "single use")
			}},
			{"expires after five minutes", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				f.clock.Add(account.CodeLifetime)
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, latest(f), ""), account.ErrCodeExpired)
			}},
			{"five wrong tries void it", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				code := latest(f)
				for i := 1; i < account.CodeMaxAttempts; i++ {
					var wrong *account.WrongCodeError
					err := f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, other(code), "")
					require.ErrorAs(t, err, &wrong)
					require.Equal(t, account.CodeMaxAttempts-i, wrong.TriesLeft)
				}
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, other(code), ""), account.ErrCodeExpired)
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, code, ""), account.ErrCodeExpired, "void even when right")
			}},
			{"bound to purpose and subject", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				code := latest(f)
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1+"-other", code, ""), account.ErrCodeExpired)
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeReset, s1, code, ""), account.ErrCodeExpired)
				require.NoError(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, code, ""))
			}},
			{"a new code voids the old one", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				first := latest(f)
				f.clock.Add(time.Second)
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				second := latest(f)
				if first != second {
					require.Error(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, first, ""))
				}
				require.NoError(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, second, ""))
			}},
			{"the account's budget of texts", func(t *testing.T, f *fixture) {
				n := sending.DefaultLimits().AccountTexts.N
				for range n {
					require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				}
				var cse *account.CodeSendError
				err := f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, "")
				require.ErrorIs(t, err, account.ErrTooManyCodes)
				require.ErrorAs(t, err, &cse)
				require.Equal(t, f.clock.Now().Add(15*time.Minute).UTC(), cse.RetryAt.UTC(), "the page can say when to try again")
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1+"-other", "+447700900003", ""), "other accounts are not affected")
				f.clock.Add(15 * time.Minute)
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
			}},
			{"a failed send stores no code and costs no budget", func(t *testing.T, f *fixture) {
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""))
				earlier := latest(f)
				f.sender.fail.Store(true)
				for range 2 * sending.DefaultLimits().AccountTexts.N {
					require.ErrorIs(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""), account.ErrSendFailed)
				}
				live, err := f.svc.LiveCode(ctx, account.PurposeLogin, s1)
				require.NoError(t, err)
				require.True(t, live, "a failed resend leaves the earlier code working")
				f.sender.fail.Store(false)
				f.clock.Add(time.Second)
				require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, s1, phone, ""), "the failures used none of the budget")
				require.NotEqual(t, "", latest(f))
				if latest(f) != earlier {
					require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, earlier, ""), account.ErrCodeWrong)
				}
				require.NoError(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, s1, latest(f), ""))
			}},
		}
		for i, tc := range tests {
			phone = fmt.Sprintf("+4477009002%02d", i)
			s1 = fmt.Sprintf("subject-%d", i)
			t.Run(tc.name, func(t *testing.T) { tc.run(t, newFixture(t, db)) })
		}
	})
}

// Many concurrent guesses of the same code: at most five are compared and
// at most one right answer is accepted.
func TestCodeGuessesUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, "s1", "+447700900004", ""))
		e, err := f.outbox.Latest(ctx, "+447700900004", "login_code")
		require.NoError(t, err)
		var accepted, compared atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				guess := e.Code // every fourth goroutine knows the code
				if i%4 != 0 {
					guess = fmt.Sprintf("%06d", i)
				}
				err := f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, "s1", guess, "")
				if err == nil {
					accepted.Add(1)
				}
				if err == nil || errors.Is(err, account.ErrCodeWrong) {
					compared.Add(1)
				}
			}()
		}
		wg.Wait()
		require.LessOrEqual(t, accepted.Load(), int32(1))
		require.LessOrEqual(t, compared.Load(), int32(account.CodeMaxAttempts))
	})
}

func TestSignupLinks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		hash, err := f.svc.CheckNewPassword(ctx, "a@example.org", "right password here")
		require.NoError(t, err)

		// An expired registration never blocks a new one.
		_, err = f.svc.StartSignup(ctx, f.actor, "a@example.org", hash)
		require.NoError(t, err)
		old, err := f.outbox.Latest(ctx, "a@example.org", "signup_verify_email")
		require.NoError(t, err)
		f.clock.Add(account.SignupLinkLifetime)
		require.ErrorIs(t, f.svc.CheckSignupLink(ctx, tokenOf(t, old.Link)), account.ErrLinkInvalid)
		_, _, err = f.svc.CompleteSignupLink(ctx, f.actor, tokenOf(t, old.Link))
		require.ErrorIs(t, err, account.ErrLinkInvalid)

		// Two registrations for one address: the first link followed wins,
		// the other can no longer complete.
		_, err = f.svc.StartSignup(ctx, f.actor, "a@example.org", hash)
		require.NoError(t, err)
		first, err := f.outbox.Latest(ctx, "a@example.org", "signup_verify_email")
		require.NoError(t, err)
		f.clock.Add(time.Second)
		_, err = f.svc.StartSignup(ctx, f.actor, "a@example.org", hash)
		require.NoError(t, err)
		second, err := f.outbox.Latest(ctx, "a@example.org", "signup_verify_email")
		require.NoError(t, err)
		require.NotEqual(t, first.Link, second.Link)

		var wg sync.WaitGroup
		var created atomic.Int32
		for range 10 { // the same link clicked many times at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := f.svc.CompleteSignupLink(ctx, f.actor, tokenOf(t, second.Link)); err == nil {
					created.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, created.Load())
		_, _, err = f.svc.CompleteSignupLink(ctx, f.actor, tokenOf(t, first.Link))
		require.ErrorIs(t, err, account.ErrEmailTaken, "the other registration's link says the account exists")
		require.ErrorIs(t, f.svc.CheckSignupLink(ctx, tokenOf(t, first.Link)), account.ErrLinkInvalid)

		// The address now has an account: a new signup emails the owner.
		_, err = f.svc.StartSignup(ctx, f.actor, "a@example.org", hash)
		require.NoError(t, err)
		_, err = f.outbox.Latest(ctx, "a@example.org", "signup_existing_account")
		require.NoError(t, err)
	})
}

func TestResetLinkLifetime(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		f.activeAccount(t, "r@example.org", "right password here", "+447700900005")
		require.NoError(t, f.svc.RequestReset(ctx, f.actor, "r@example.org"))
		e, err := f.outbox.Latest(ctx, "r@example.org", "reset_email")
		require.NoError(t, err)
		f.clock.Add(account.ResetLinkLifetime)
		_, err = f.svc.UseResetLink(ctx, f.actor, tokenOf(t, e.Link))
		require.ErrorIs(t, err, account.ErrLinkInvalid)

		require.NoError(t, f.svc.RequestReset(ctx, f.actor, "r@example.org"))
		e, err = f.outbox.Latest(ctx, "r@example.org", "reset_email")
		require.NoError(t, err)
		_, err = f.svc.UseResetLink(ctx, f.actor, tokenOf(t, e.Link))
		require.NoError(t, err)
		_, err = f.svc.UseResetLink(ctx, f.actor, tokenOf(t, e.Link))
		require.ErrorIs(t, err, account.ErrLinkInvalid)
	})
}

func TestParsePhone(t *testing.T) {
	tests := []struct {
		in, want string
		drama    bool
	}{
		{"07911 123456", "+447911123456", false},
		{"+44 7911 123456", "+447911123456", false},
		{"+33 6 12 34 56 78", "+33612345678", false},
		{"07700 900123", "", false},
		{"07700 900123", "+447700900123", true},
		{"020 7946 0000", "", false},
		{"0161 496 0000", "", true},
		{"hello", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := account.ParsePhone(tc.in, tc.drama)
		if tc.want == "" {
			require.ErrorIs(t, err, account.ErrPhoneInvalid, tc.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

func TestParseEmail(t *testing.T) {
	for in, ok := range map[string]bool{
		"Jane@Example.org": true, " jane@example.org ": true, "a@b.co": false, "jane@example": false,
		"jane@@example.org": false, "Jane <jane@example.org>": false, "jane@example..org": false, "": false,
	} {
		_, err := account.ParseEmail(in)
		require.Equal(t, ok, err == nil, in)
	}
}

func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"07911 123456", "+33 6 12 34 56 78", "+", "00", "0800 000 000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := account.ParsePhone(s, true)
		if err != nil {
			return
		}
		again, err := account.ParsePhone(e, true)
		if err != nil || again != e {
			t.Fatalf("E.164 %q does not round-trip: %q %v", e, again, err)
		}
	})
}

// Wrong codes are capped per account across resends; guesses racing the
// cap add at most the live code's remaining tries, and the person is
// emailed exactly once.
func TestWrongCodeCapAcrossResends(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		acct := f.activeAccount(t, "cap@example.org", "right password here", "+447700900005")
		send := func() string {
			require.NoError(t, f.svc.SendCode(ctx, f.actor, account.PurposeLogin, acct.ID, "+447700900005", acct.ID))
			e, err := f.outbox.Latest(ctx, "+447700900005", "login_code")
			require.NoError(t, err)
			return e.Code
		}
		wrong := func(code string) string {
			if code == "000000" {
				return "000001"
			}
			return "000000"
		}
		compared := 0
		for range 2 { // eight wrong codes over two codes
			code := send()
			for range 4 {
				require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, acct.ID, wrong(code), acct.ID), account.ErrCodeWrong)
				compared++
			}
		}
		code := send()
		var mu sync.Mutex
		var limited int
		var wg sync.WaitGroup
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, acct.ID, wrong(code), acct.ID)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, account.ErrCodeExpired):
					// The live code's tries are used up: refused without
					// comparing (or after its last compare, which the
					// bound below allows for).
				case errors.Is(err, account.ErrCodeWrong):
					compared++
				case errors.Is(err, account.ErrTooManyGuesses):
					limited++
				default:
					require.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		require.LessOrEqual(t, compared, 10+account.CodeMaxAttempts-1)
		require.ErrorIs(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, acct.ID, send(), acct.ID), account.ErrTooManyGuesses,
			"past the cap even a right code is refused")
		n, err := f.audit.Count(ctx, acct.ID, "code.guess_limit_reached", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		alert, err := f.outbox.Latest(ctx, "cap@example.org", "code_guess_limit")
		require.NoError(t, err)
		require.Contains(t, alert.Text, "10 wrong security codes")
		f.clock.Add(time.Hour)
		require.NoError(t, f.svc.VerifyCode(ctx, f.actor, account.PurposeLogin, acct.ID, send(), acct.ID), "the window closes")
	})
}
