package account

import (
	"context"
	"fmt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/trust"
)

// RaiseLevel raises the account's proofing level to level. A level at or
// below the current one changes nothing: levels never go down here.
func (s *Service) RaiseLevel(ctx context.Context, a audit.Actor, accountID string, level trust.Level) error {
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("raise level: %w", err)
	}
	if level <= acct.Level() {
		return nil
	}
	now := s.st.nowUTC()
	// Level names sort in order (P0 < P5 < P9): the condition keeps a
	// concurrent higher raise.
	res, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET proofing_level = ?, updated_at = ?
		WHERE id = ? AND proofing_level < ?`), level.String(), now, accountID, level.String())
	if err != nil {
		return fmt.Errorf("raise level: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return s.record(ctx, a, "account.level_raised", audit.Success, accountID,
		map[string]any{"from": acct.Level().String(), "to": level.String()})
}

// Block stops the account from signing in (a person PDS marks as
// deceased, say). reason is recorded in the audit event.
func (s *Service) Block(ctx context.Context, a audit.Actor, accountID, reason string) error {
	now := s.st.nowUTC()
	res, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET status = ?, updated_at = ? WHERE id = ? AND status <> ?`),
		StatusBlocked, now, accountID, StatusBlocked)
	if err != nil {
		return fmt.Errorf("block account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // already blocked
	}
	return s.record(ctx, a, "account.blocked", audit.Success, accountID, map[string]any{"reason": reason})
}
