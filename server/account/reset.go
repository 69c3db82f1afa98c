package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
)

// RequestReset emails a password-reset link (1 hour, single use) when the
// address has an account. It answers the same whether or not it does.
func (s *Service) RequestReset(ctx context.Context, a audit.Actor, email string) error {
	s.metrics.JourneysStarted.WithLabelValues("reset").Inc()
	acct, err := s.st.byEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return s.record(ctx, a, "reset.requested", audit.Failure, "", map[string]any{"reason": "unknown_email"})
	}
	if err != nil {
		return err
	}
	token := secrets.NewToken()
	now := s.st.nowUTC()
	if err := s.st.createReset(ctx, reset{ID: secrets.NewID(), AccountID: acct.ID, TokenHash: s.tokenMAC("reset", token),
		ExpiresAt: now.Add(ResetLinkLifetime), CreatedAt: now}); err != nil {
		return err
	}
	link := s.link("/reset-password/verify", token)
	if err := s.sendEmail(ctx, a, acct.ID, acct.Email, "reset_email", fmt.Sprintf(
		"Reset your idlink password: %s\n\nThe link works once and expires in 1 hour. If you did not ask for this, you can ignore this email: your password has not changed.", link), link, true); err != nil {
		return err
	}
	return s.record(ctx, a, "reset.requested", audit.Success, acct.ID, nil)
}

// CheckResetLink reports whether a reset link is still good, without using it.
func (s *Service) CheckResetLink(ctx context.Context, token string) error {
	_, err := s.st.resetByToken(ctx, s.tokenMAC("reset", token))
	return err
}

// UseResetLink uses a reset link and returns the account it belongs to.
// The reset continues with a security code to the account's phone.
func (s *Service) UseResetLink(ctx context.Context, a audit.Actor, token string) (Account, error) {
	r, err := s.st.consumeReset(ctx, s.tokenMAC("reset", token))
	if err != nil {
		if errors.Is(err, ErrLinkInvalid) {
			return Account{}, errors.Join(err, s.record(ctx, a, "reset.link_invalid", audit.Failure, "", nil))
		}
		return Account{}, err
	}
	acct, err := s.st.byID(ctx, r.AccountID)
	if err != nil {
		return Account{}, err
	}
	return acct, s.record(ctx, a, "reset.link_used", audit.Success, acct.ID, nil)
}

// SetNewPassword stores a new password for an account that has proven its
// email link and phone code, lifts any lockout, and emails the owner.
// Ending the account's other sessions is the caller's job (it owns them).
func (s *Service) SetNewPassword(ctx context.Context, a audit.Actor, accountID, hash string) error {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return err
	}
	if err := s.st.setPassword(ctx, accountID, hash); err != nil {
		return err
	}
	if err := s.record(ctx, a, "reset.completed", audit.Success, accountID, nil); err != nil {
		return err
	}
	s.metrics.JourneysFinished.WithLabelValues("reset", "completed").Inc()
	// The change has happened; a failed courtesy email (audited by
	// sendEmail) must not undo it, unless the audit itself failed.
	if err := s.sendEmail(ctx, a, accountID, acct.Email, "password_changed",
		"Your idlink password has been changed. You have been signed out everywhere else, services will ask you to log in again, and the idlink app has been removed from your phones: set it up again if you use it. If this was not you, reset your password now.",
		s.cfg.Issuer+"/forgot-password", false); err != nil && !errors.Is(err, ErrSendFailed) && !errors.Is(err, ErrTooManyEmails) {
		return err
	}
	return nil
}
