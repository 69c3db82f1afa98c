package sending_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
)

// provider counts what it accepts, or fails when told to.
type provider struct {
	accepted atomic.Int64
	fail     atomic.Bool
}

func (p *provider) Send(_ context.Context, m notify.Message) error {
	if p.fail.Load() {
		return fmt.Errorf("%w: provider down", notify.ErrSendFailed)
	}
	p.accepted.Add(1)
	return nil
}

type fixture struct {
	s       *sending.Sender
	p       *provider
	m       *metrics.Metrics
	now     time.Time
	limiter *ratelimit.Limiter
}

func newSender(t *testing.T, db *sqlx.DB, adjust func(*sending.Limits)) *fixture {
	t.Helper()
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	f := &fixture{p: &provider{}, m: metrics.New(), now: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	l := sending.DefaultLimits()
	if adjust != nil {
		adjust(&l)
	}
	clock := func() time.Time { return f.now }
	f.limiter = ratelimit.New(db, clock)
	f.s = sending.New(sending.Config{Limits: l}, f.p, f.limiter, keys, f.m, nil, clock)
	return f
}

func signup(journey, to string, client string) sending.Text {
	return sending.Text{Purpose: sending.Signup, AccountID: journey, Client: netip.MustParseAddr(client),
		Message: notify.Message{To: to, Kind: "signup_code", Text: "code", Code: "123456"}}
}

func login(account, to string, client string) sending.Text {
	return sending.Text{Purpose: sending.Login, AccountID: account, Client: netip.MustParseAddr(client),
		Message: notify.Message{To: to, Kind: "login_code", Text: "code", Code: "123456"}}
}

// ukMobile is the i-th of a range of valid UK mobile numbers.
func ukMobile(i int) string { return fmt.Sprintf("+44740012%04d", i) }

// race sends n texts at once and returns how many the provider accepted
// and how many were refused by a budget.
func race(t *testing.T, f *fixture, n int, text func(i int) sending.Text) (sent, limited int) {
	t.Helper()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.s.SendText(context.Background(), text(i))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, sending.ErrLimited):
				refused.Add(1)
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
	return int(ok.Load()), int(refused.Load())
}

// Every budget holds exactly when many texts race, across many numbers
// and addresses, on both databases.
func TestBudgetsUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Run("one sign-up journey, many numbers", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, limited := race(t, f, 40, func(i int) sending.Text { return signup("journey-1", ukMobile(i), "192.0.2.1") })
			require.Equal(t, 3, sent, "three distinct numbers per sign-up journey")
			require.Equal(t, 37, limited)
			require.EqualValues(t, 3, f.p.accepted.Load())
			require.EqualValues(t, 37, testutil.ToFloat64(f.m.SendRefused.WithLabelValues("sms", sending.BudgetSignupNumbers)))
		})
		t.Run("one sign-up journey, one number, resends", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, _ := race(t, f, 30, func(int) sending.Text { return signup("journey-2", ukMobile(100), "192.0.2.2") })
			require.Equal(t, 5, sent, "the number's own budget (5 an hour) binds before the journey's 6 codes")
		})
		t.Run("one address, many journeys", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, _ := race(t, f, 50, func(i int) sending.Text {
				return signup(fmt.Sprintf("journey-a%d", i), ukMobile(200+i), "203.0.113.9")
			})
			require.Equal(t, 10, sent, "ten sign-up texts an hour per client address")
		})
		t.Run("one network, many addresses", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, _ := race(t, f, 80, func(i int) sending.Text {
				return signup(fmt.Sprintf("journey-n%d", i), ukMobile(300+i), fmt.Sprintf("198.51.100.%d", i+1))
			})
			require.Equal(t, 30, sent, "thirty sign-up texts an hour per /24")
		})
		t.Run("one IPv6 /56, many addresses", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, _ := race(t, f, 60, func(i int) sending.Text {
				return signup(fmt.Sprintf("journey-6-%d", i), ukMobile(400+i), fmt.Sprintf("2001:db8:0:%x::1", i)) // /64s inside one /56
			})
			require.Equal(t, 30, sent)
		})
		t.Run("one account, many logins", func(t *testing.T) {
			f := newSender(t, db, nil)
			sent, _ := race(t, f, 40, func(i int) sending.Text { return login("account-1", ukMobile(500), fmt.Sprintf("192.0.2.%d", i+1)) })
			require.Equal(t, 12, sent, "twelve texts per account per 15 minutes")
		})
	})
}

// Past the overall ceiling, sign-up texts are refused first; login texts
// to verified numbers go on to the full ceiling.
func TestCeiling(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		{
			f := newSender(t, db, func(l *sending.Limits) { l.CeilingPerMinute, l.SignupShare = 40, 50 })
			sent, _ := race(t, f, 100, func(i int) sending.Text {
				return signup(fmt.Sprintf("journey-c%d", i), ukMobile(600+i), fmt.Sprintf("10.%d.0.1", i))
			})
			require.Equal(t, 20, sent, "sign-up texts stop at their share of the ceiling")
			require.EqualValues(t, 80, testutil.ToFloat64(f.m.CeilingReached.WithLabelValues("signup")))
			sent, _ = race(t, f, 100, func(i int) sending.Text {
				return login(fmt.Sprintf("account-c%d", i), ukMobile(800+i), fmt.Sprintf("10.%d.0.2", i))
			})
			require.Equal(t, 20, sent, "login texts to verified numbers keep flowing to the full ceiling")
			require.EqualValues(t, 80, testutil.ToFloat64(f.m.CeilingReached.WithLabelValues("all")))
			f.now = f.now.Add(time.Minute)
			require.NoError(t, f.s.SendText(context.Background(), login("account-c0", ukMobile(800), "10.0.0.2")), "a new minute opens")
		}
	})
}

// A stranger's sign-ups with someone's number do not use up the budget of
// that number's logins.
func TestVerifiedNumbersHaveBudgetsOfTheirOwn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newSender(t, db, nil)
		victim := ukMobile(900)
		for i := range 20 {
			_ = f.s.SendText(context.Background(), signup(fmt.Sprintf("attacker-%d", i), victim, fmt.Sprintf("203.0.113.%d", i+1)))
		}
		var l *sending.Limited
		require.ErrorAs(t, f.s.SendText(context.Background(), signup("attacker-x", victim, "203.0.113.200")), &l)
		require.Equal(t, []string{sending.BudgetNewNumber}, l.Budgets)
		for range 3 {
			require.NoError(t, f.s.SendText(context.Background(), login("victim", victim, "192.0.2.50")), "the victim's login codes still go")
		}
	})
}

// A text the provider did not accept uses no budget: an outage never
// turns into "too many codes".
func TestFailedSendsAreGivenBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newSender(t, db, nil)
		f.p.fail.Store(true)
		for i := range 50 {
			err := f.s.SendText(context.Background(), login("account-f", ukMobile(950), fmt.Sprintf("192.0.2.%d", i+1)))
			require.ErrorIs(t, err, sending.ErrFailed, "every failure is a failure, never a refusal (%d)", i)
		}
		f.p.fail.Store(false)
		sent, _ := race(t, f, 40, func(i int) sending.Text { return login("account-f", ukMobile(950), "192.0.2.1") })
		require.Equal(t, 12, sent, "the whole budget is still there")
	})
}

func TestDestinations(t *testing.T) {
	db := dbtest.SQLite(t)
	f := newSender(t, db, nil)
	for _, to := range []string{"+2348031234567", "+96171123456", "+37362112345", "+33612345678"} {
		require.ErrorIs(t, f.s.SendText(context.Background(), signup("j", to, "192.0.2.1")), sending.ErrDestination, to)
		require.False(t, f.s.AllowsDestination(to))
	}
	require.True(t, f.s.AllowsDestination(ukMobile(1)))
	fr := newSender(t, db, func(l *sending.Limits) { l.Countries = []string{"FR"} })
	require.True(t, fr.s.AllowsDestination("+33612345678"))
	require.False(t, fr.s.AllowsDestination("+2348031234567"))
	require.NoError(t, fr.s.SendText(context.Background(), signup("j2", "+33612345678", "192.0.2.1")))
}

func TestEmailBudgets(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newSender(t, db, nil)
		mail := func(to, client string, stranger bool) sending.Email {
			return sending.Email{Stranger: stranger, Client: netip.MustParseAddr(client),
				Message: notify.Message{To: to, Kind: "reset_email", Text: "x"}}
		}
		for range 5 {
			require.NoError(t, f.s.SendEmail(context.Background(), mail("a@example.org", "192.0.2.1", true)))
		}
		require.ErrorIs(t, f.s.SendEmail(context.Background(), mail("A@example.org", "192.0.2.2", true)), sending.ErrLimited, "five per recipient")
		for i := range 30 {
			require.NoError(t, f.s.SendEmail(context.Background(), mail(fmt.Sprintf("b%d@example.org", i), "192.0.2.9", true)))
		}
		require.ErrorIs(t, f.s.SendEmail(context.Background(), mail("c@example.org", "192.0.2.9", true)), sending.ErrLimited, "thirty per address")
		require.NoError(t, f.s.SendEmail(context.Background(), mail("c@example.org", "192.0.2.9", false)), "alerts to the owner are not a stranger's")
	})
}

func TestNetwork(t *testing.T) {
	require.Equal(t, "198.51.100.0/24", sending.Network(netip.MustParseAddr("198.51.100.77")).String())
	require.Equal(t, "2001:db8:0:ff00::/56", sending.Network(netip.MustParseAddr("2001:db8:0:ff12::1")).String())
	require.Equal(t, "198.51.100.0/24", sending.Network(netip.MustParseAddr("::ffff:198.51.100.77")).String())
}
