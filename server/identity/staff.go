package identity

import (
	"context"
	"fmt"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
)

// Staff roles of the back office.
const (
	RoleIDChecker = "id_checker" // reviews photo ID checks
	RoleAdmin     = "admin"      // reviews, and manages staff
)

// Staff is a back-office member: an account with a role.
type Staff struct {
	AccountID string `db:"account_id"`
	Role      string `db:"role"`
}

// CanReview reports whether the member may review photo ID checks.
func (s Staff) CanReview() bool { return s.Role == RoleIDChecker || s.Role == RoleAdmin }

// StaffMember returns the account's back-office role; ok is false for
// everyone else.
func (s *Service) StaffMember(ctx context.Context, accountID string) (Staff, bool, error) {
	var m Staff
	err := s.d.DB.GetContext(ctx, &m, s.d.DB.Rebind(`SELECT account_id, role FROM staff WHERE account_id = ?`), accountID)
	if migrations.IsNoRows(err) {
		return Staff{}, false, nil
	}
	if err != nil {
		return Staff{}, false, fmt.Errorf("staff member: %w", err)
	}
	return m, true, nil
}

// SetStaff gives an account a back-office role (or changes it); role ""
// removes it. It is an operator's command (idlink staff).
func (s *Service) SetStaff(ctx context.Context, a audit.Actor, accountID, role string) error {
	if _, err := s.d.Accounts.Account(ctx, accountID); err != nil {
		return fmt.Errorf("staff: %w", err)
	}
	var err error
	switch role {
	case "":
		_, err = s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`DELETE FROM staff WHERE account_id = ?`), accountID)
	case RoleIDChecker, RoleAdmin:
		_, err = s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`INSERT INTO staff (account_id, role, created_at) VALUES (?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET role = excluded.role`), accountID, role, s.nowUTC())
	default:
		return fmt.Errorf("%w: role must be %s or %s", ErrInvalid, RoleIDChecker, RoleAdmin)
	}
	if err != nil {
		return fmt.Errorf("set staff: %w", err)
	}
	s.record(ctx, a, "staff.role_set", true, accountID, map[string]any{"role": role})
	return nil
}
