package push

import (
	"context"
	"fmt"
)

// ForgetAccount deletes an account's approval requests and any pause of
// its approvals, when the account is deleted.
func (s *Service) ForgetAccount(ctx context.Context, accountID string) error {
	for _, q := range []string{
		`DELETE FROM push_approvals WHERE account_id = ?`,
		`DELETE FROM push_pauses WHERE account_id = ?`,
	} {
		if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget approvals: %w", err)
		}
	}
	return nil
}
