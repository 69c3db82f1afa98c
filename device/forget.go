package device

import (
	"context"
	"fmt"
)

// ForgetAccount deletes every remembered browser and companion-app device
// of an account (with their used request-JWT ids), when the account is
// deleted.
func (s *Store) ForgetAccount(ctx context.Context, accountID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget devices: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, q := range []string{
		`DELETE FROM remembered_browsers WHERE account_id = ?`,
		`DELETE FROM device_jtis WHERE device_id IN (SELECT id FROM devices WHERE account_id = ?)`,
		`DELETE FROM devices WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget devices: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forget devices: %w", err)
	}
	return nil
}
