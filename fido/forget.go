package fido

import (
	"context"
	"fmt"
)

// ForgetAccount deletes every WebAuthn credential of an account (passkeys
// and app keys), its user handle and its pending ceremonies, when the
// account is deleted.
func (s *Service) ForgetAccount(ctx context.Context, accountID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget credentials: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, q := range []string{
		`DELETE FROM fido_credentials WHERE account_id = ?`,
		`DELETE FROM fido_ceremonies WHERE account_id = ?`,
		`DELETE FROM fido_user_handles WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget credentials: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forget credentials: %w", err)
	}
	return nil
}
