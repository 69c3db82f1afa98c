package push

import (
	"context"
	"fmt"
)

// Unpause lifts a pause of the account's approvals (set after "this wasn't
// me"), so that the app can be asked again; the support desk calls it once
// the person has been helped. It reports whether a pause was in force.
func (s *Service) Unpause(ctx context.Context, accountID string) (bool, error) {
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`DELETE FROM push_pauses WHERE account_id = ? AND until > ?`), accountID, s.now().UTC())
	if err != nil {
		return false, fmt.Errorf("push: lift pause: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
