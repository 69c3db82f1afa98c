// Package closure ends accounts: deleting one when its owner asks, and
// closing accounts unused for two years (NHS login's rule) after warning
// their owners 30 days before. Closing is deleting. Each capability
// forgets what it keeps about the account through its own ForgetAccount;
// the account's audit events are kept without IP addresses, browsers or
// details (the retention policy in README), and its sub is never given to
// anyone else.
//
// The closure job runs in every replica; a lease in job_leases lets one
// run at a time.
package closure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
)

// Forgetter deletes what one capability keeps about an account.
type Forgetter interface {
	ForgetAccount(ctx context.Context, accountID string) error
}

// Sessions ends every session of an account.
type Sessions interface {
	EndAccountSessions(ctx context.Context, accountID, keepHash string) (int64, error)
}

// Config sets the closure rule.
type Config struct {
	// After is how long an account may go without a login (two years).
	After time.Duration
	// Warning is how long before closing the owner is emailed (30 days).
	Warning time.Duration
	// Batch bounds how many accounts one run warns or closes (default 500).
	Batch int
}

// Deps are what closure uses.
type Deps struct {
	DB       *sqlx.DB
	Accounts *account.Service
	// Forget are the other capabilities' ForgetAccount (the provider,
	// devices, WebAuthn, phone approvals, identity).
	Forget   []Forgetter
	Sessions Sessions
	Audit    *audit.Log
	Registry prometheus.Registerer // may be nil
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service deletes and closes accounts. It is safe for concurrent use.
type Service struct {
	cfg    Config
	d      Deps
	holder string
	runs   *prometheus.CounterVec
	ended  *prometheus.CounterVec
}

// New returns the service and registers its metrics.
func New(cfg Config, d Deps) (*Service, error) {
	if d.DB == nil || d.Accounts == nil || d.Sessions == nil || d.Audit == nil {
		return nil, errors.New("closure: db, accounts, sessions and audit are required")
	}
	if cfg.After <= 0 || cfg.Warning <= 0 || cfg.Warning >= cfg.After {
		return nil, errors.New("closure: the warning must be positive and shorter than the closure period")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, d: d, holder: secrets.NewID(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idlink_closure_runs_total",
			Help: "Runs of the job closing unused accounts, by outcome (ran, skipped: another replica held the lease, failed)."}, []string{"outcome"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idlink_accounts_ended_total",
			Help: "Accounts deleted by their owner (deleted), warned of closure (warned) or closed for lack of use (closed)."}, []string{"how"}),
	}
	if d.Registry != nil {
		if err := d.Registry.Register(s.runs); err != nil {
			return nil, fmt.Errorf("closure metrics: %w", err)
		}
		if err := d.Registry.Register(s.ended); err != nil {
			return nil, fmt.Errorf("closure metrics: %w", err)
		}
	}
	return s, nil
}

// Delete deletes an account at its owner's request, and emails them.
func (s *Service) Delete(ctx context.Context, a audit.Actor, accountID string) error {
	acct, err := s.end(ctx, a, accountID, "account.deleted")
	if err != nil {
		return err
	}
	s.ended.WithLabelValues("deleted").Inc()
	return s.d.Accounts.SendFarewell(ctx, a, acct, account.NoticeAccountDeleted, "Your idlink account was deleted at your request")
}

// end forgets the account everywhere, deletes it and keeps the minimum
// audit record. The audit event is written first, so it is redacted too.
func (s *Service) end(ctx context.Context, a audit.Actor, accountID, event string) (account.Account, error) {
	acct, err := s.d.Accounts.Account(ctx, accountID)
	if err != nil {
		return acct, fmt.Errorf("end account: %w", err)
	}
	for _, f := range s.d.Forget {
		if err := f.ForgetAccount(ctx, accountID); err != nil {
			return acct, fmt.Errorf("end account: %w", err)
		}
	}
	if _, err := s.d.Sessions.EndAccountSessions(ctx, accountID, ""); err != nil {
		return acct, fmt.Errorf("end account: %w", err)
	}
	if _, err := s.d.Accounts.DeleteAccount(ctx, accountID); err != nil {
		return acct, fmt.Errorf("end account: %w", err)
	}
	if err := s.d.Audit.Record(ctx, a, event, audit.Success, accountID, nil); err != nil {
		return acct, err
	}
	if _, err := s.d.Audit.Redact(ctx, accountID); err != nil {
		return acct, err
	}
	return acct, nil
}

// leaseName names the closure job's lease.
const leaseName = "close-unused-accounts"

// take takes the job's lease for d unless another holder has an
// unexpired one. One statement, so two replicas cannot both take it.
func (s *Service) take(ctx context.Context, d time.Duration) (bool, error) {
	now := s.d.Now().UTC()
	var holder string
	err := s.d.DB.GetContext(ctx, &holder, s.d.DB.Rebind(`INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE job_leases.expires_at <= ? OR job_leases.holder = excluded.holder
		RETURNING holder`), leaseName, s.holder, now.Add(d), now)
	if migrations.IsNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take closure lease: %w", err)
	}
	return holder == s.holder, nil
}

// Result is what one run did.
type Result struct {
	Ran            bool // false: another replica holds the lease
	Warned, Closed int
}

// RunOnce warns the owners of accounts that reach the closure period
// within the warning time, and closes those warned at least the warning
// time ago whose last login is older than the closure period. The run is
// audited and counted.
func (s *Service) RunOnce(ctx context.Context) (Result, error) {
	ok, err := s.take(ctx, 10*time.Minute)
	if err != nil {
		s.runs.WithLabelValues("failed").Inc()
		return Result{}, err
	}
	if !ok {
		s.runs.WithLabelValues("skipped").Inc()
		return Result{}, nil
	}
	res, err := s.run(ctx)
	res.Ran = true
	outcome, auditOutcome := "ran", audit.Success
	if err != nil {
		outcome, auditOutcome = "failed", audit.Failure
	}
	s.runs.WithLabelValues(outcome).Inc()
	detail := map[string]any{"warned": res.Warned, "closed": res.Closed}
	if err != nil {
		detail["error"] = err.Error()
	}
	if aerr := s.d.Audit.Record(ctx, jobActor, "closure.run", auditOutcome, "", detail); aerr != nil {
		return res, errors.Join(err, aerr)
	}
	return res, err
}

var jobActor = audit.Actor{RequestID: "closure-job"}

func (s *Service) run(ctx context.Context) (Result, error) {
	var res Result
	now := s.d.Now().UTC()
	closeCutoff := now.Add(-s.cfg.After)
	warnCutoff := closeCutoff.Add(s.cfg.Warning)
	warn, err := s.d.Accounts.UnusedToWarn(ctx, warnCutoff, s.cfg.Batch)
	if err != nil {
		return res, err
	}
	for _, acct := range warn {
		closeAt := lastUse(acct).Add(s.cfg.After)
		if earliest := now.Add(s.cfg.Warning); closeAt.Before(earliest) {
			closeAt = earliest // never sooner than the warning promised
		}
		err := s.d.Accounts.WarnClosure(ctx, jobActor, acct, closeAt)
		if errors.Is(err, account.ErrSendFailed) || errors.Is(err, account.ErrTooManyEmails) {
			s.d.Logger.Warn("closure warning not sent; next run retries", "account", acct.ID, "error", err)
			continue
		}
		if err != nil {
			return res, err
		}
		res.Warned++
		s.ended.WithLabelValues("warned").Inc()
	}
	closing, err := s.d.Accounts.UnusedToClose(ctx, closeCutoff, now.Add(-s.cfg.Warning), s.cfg.Batch)
	if err != nil {
		return res, err
	}
	for _, acct := range closing {
		gone, err := s.end(ctx, jobActor, acct.ID, "account.closed")
		if errors.Is(err, account.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return res, err
		}
		res.Closed++
		s.ended.WithLabelValues("closed").Inc()
		if err := s.d.Accounts.SendFarewell(ctx, jobActor, gone, account.NoticeAccountClosed,
			"Your idlink account was closed because it had not been used for a long time"); err != nil {
			return res, err
		}
	}
	return res, nil
}

func lastUse(a account.Account) time.Time {
	if a.LastLoginAt != nil {
		return *a.LastLoginAt
	}
	return a.CreatedAt
}

// Run runs the job every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if res, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.d.Logger.Error("closure job", "error", err)
		} else if res.Warned > 0 || res.Closed > 0 {
			s.d.Logger.Info("closure job", "warned", res.Warned, "closed", res.Closed)
		}
	}
}
