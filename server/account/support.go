package account

import (
	"context"
	"fmt"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/notify"
)

// This file is what the support desk (server/backoffice) asks of
// accounts: finding a person by mobile number, lifting a lockout,
// unblocking, and registrations still waiting for their email link. Each
// change is audited naming the staff member (by).

// AccountsByPhone returns the accounts whose verified mobile number is
// phone (E.164), oldest first. Like AccountByEmail it is for staff pages
// only.
func (s *Service) AccountsByPhone(ctx context.Context, phone string) ([]Account, error) {
	var out []Account
	err := s.st.db.SelectContext(ctx, &out, s.st.db.Rebind(`SELECT `+accountCols+` FROM accounts WHERE phone = ? ORDER BY created_at, id`), phone)
	if err != nil {
		return nil, fmt.Errorf("accounts by phone: %w", err)
	}
	return out, nil
}

// Unlock lifts a password lockout: the count of wrong passwords starts
// again. by is the staff member; the event is account.unlocked.
func (s *Service) Unlock(ctx context.Context, a audit.Actor, by, accountID string) error {
	_, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?`),
		s.st.nowUTC(), accountID)
	if err != nil {
		return fmt.Errorf("unlock account: %w", err)
	}
	return s.record(ctx, a, "account.unlocked", audit.Success, accountID, map[string]any{"staff": by})
}

// Unblock lets a blocked account sign in again. by is the staff member and
// reason is recorded in the event account.unblocked. An account that is not
// blocked is left as it is.
func (s *Service) Unblock(ctx context.Context, a audit.Actor, by, accountID, reason string) error {
	res, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET status = ?, updated_at = ? WHERE id = ? AND status = ?`),
		StatusActive, s.st.nowUTC(), accountID, StatusBlocked)
	if err != nil {
		return fmt.Errorf("unblock account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return s.record(ctx, a, "account.unblocked", audit.Success, accountID, map[string]any{"staff": by, "reason": reason})
}

// DescribeEvent says in plain words what an audit event of an account
// means, as the account page says it to its owner.
func DescribeEvent(ev audit.Event) string { return accountView{}.Describe(ev) }

// PendingSignup is a registration waiting for its email link: no account
// exists yet. It carries no token.
type PendingSignup struct {
	ID        string    `db:"id"`
	Email     string    `db:"email"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// PendingSignups returns the registrations for email whose link has not
// been followed, newest first. It is for staff pages only.
func (s *Service) PendingSignups(ctx context.Context, email string) ([]PendingSignup, error) {
	var out []PendingSignup
	err := s.st.db.SelectContext(ctx, &out, s.st.db.Rebind(`SELECT id, email, created_at, expires_at FROM signups
		WHERE email = ? AND used_at IS NULL ORDER BY created_at DESC, id`), NormalizeEmail(email))
	if err != nil {
		return nil, fmt.Errorf("pending signups: %w", err)
	}
	return out, nil
}

// PendingSignup returns one registration waiting for its link, or
// ErrNotFound.
func (s *Service) PendingSignup(ctx context.Context, id string) (PendingSignup, error) {
	var p PendingSignup
	err := s.st.db.GetContext(ctx, &p, s.st.db.Rebind(`SELECT id, email, created_at, expires_at FROM signups
		WHERE id = ? AND used_at IS NULL`), id)
	if migrations.IsNoRows(err) {
		return PendingSignup{}, ErrNotFound
	}
	if err != nil {
		return PendingSignup{}, fmt.Errorf("pending signup: %w", err)
	}
	return p, nil
}

// SendSupportNotice emails the account's owner what the support desk did
// (what, sentences without the last full stop), when, and what to do if they did
// not ask for it. Like SendNotice, a notice that cannot be sent is audited
// and does not undo the action; only an audit failure is returned.
func (s *Service) SendSupportNotice(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, what string) error {
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("support notice: %w", err)
	}
	text := fmt.Sprintf("%s.\n\nThis was done on %s (UK time). If you did not contact us about your account, reset your password at %s/forgot-password "+
		"and check your security settings.", what, s.noticeTime(), s.cfg.Issuer)
	return s.noticeTo(ctx, a, accountID, acct.Email, kind, text, s.cfg.Issuer+"/account/security")
}
