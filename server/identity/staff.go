package identity

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/idlink/idlink/server/audit"
)

// Staff roles of the back office. A member may hold several.
const (
	RoleIDChecker = "id_checker" // reviews photo ID checks
	RoleAdmin     = "admin"      // manages staff and relying parties, reads the audit trail, releases checks
	RoleSupport   = "support"    // helps people with their accounts (the support desk)
)

// Roles lists every back-office role, in the order pages show them.
var Roles = []string{RoleAdmin, RoleIDChecker, RoleSupport}

// Staff is a back-office member: an account with one or more roles.
type Staff struct {
	AccountID string
	// Roles are the member's roles, sorted.
	Roles []string
}

// Has reports whether the member holds any of roles.
func (s Staff) Has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(s.Roles, r) {
			return true
		}
	}
	return false
}

// CanReview reports whether the member may review photo ID checks.
func (s Staff) CanReview() bool { return s.Has(RoleIDChecker) }

// validRole reports whether r is a back-office role.
func validRole(r string) bool { return slices.Contains(Roles, r) }

type staffRow struct {
	AccountID string `db:"account_id"`
	Role      string `db:"role"`
}

// StaffMember returns the account's back-office roles; ok is false for
// everyone else.
func (s *Service) StaffMember(ctx context.Context, accountID string) (Staff, bool, error) {
	var rows []staffRow
	err := s.d.DB.SelectContext(ctx, &rows, s.d.DB.Rebind(`SELECT account_id, role FROM staff_roles WHERE account_id = ? ORDER BY role`), accountID)
	if err != nil {
		return Staff{}, false, fmt.Errorf("staff member: %w", err)
	}
	if len(rows) == 0 {
		return Staff{}, false, nil
	}
	m := Staff{AccountID: accountID}
	for _, r := range rows {
		m.Roles = append(m.Roles, r.Role)
	}
	return m, true, nil
}

// ListStaff returns the back-office members, the longest-serving first.
func (s *Service) ListStaff(ctx context.Context) ([]Staff, error) {
	var rows []struct {
		staffRow
		First string `db:"first"`
	}
	// Each row carries its member's first role's creation, so members stay
	// together and in order of joining.
	err := s.d.DB.SelectContext(ctx, &rows, `SELECT r.account_id, r.role,
		(SELECT MIN(f.created_at) FROM staff_roles f WHERE f.account_id = r.account_id) AS first
		FROM staff_roles r ORDER BY first, r.account_id, r.role`)
	if err != nil {
		return nil, fmt.Errorf("list staff: %w", err)
	}
	var out []Staff
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].AccountID == r.AccountID {
			out[n-1].Roles = append(out[n-1].Roles, r.Role)
			continue
		}
		out = append(out, Staff{AccountID: r.AccountID, Roles: []string{r.Role}})
	}
	return out, nil
}

// SetStaff gives an account exactly the back-office roles given (empty
// strings are ignored); no role removes the account from the staff. It is
// an operator's command (idlink staff); the back office calls SetRoles,
// which names the member making the change.
func (s *Service) SetStaff(ctx context.Context, a audit.Actor, accountID string, roles ...string) error {
	return s.SetRoles(ctx, a, "", accountID, roles)
}

// SetRoles gives an account exactly the roles given (none: it is no longer
// staff). by is the staff member making the change ("" for the CLI); the
// audit event staff.role_set names both. An unknown role is ErrInvalid.
func (s *Service) SetRoles(ctx context.Context, a audit.Actor, by, accountID string, roles []string) error {
	if _, err := s.d.Accounts.Account(ctx, accountID); err != nil {
		return fmt.Errorf("staff: %w", err)
	}
	var set []string
	for _, r := range roles {
		if r == "" || slices.Contains(set, r) {
			continue
		}
		if !validRole(r) {
			return fmt.Errorf("%w: a role must be %s, %s or %s", ErrInvalid, RoleAdmin, RoleIDChecker, RoleSupport)
		}
		set = append(set, r)
	}
	sort.Strings(set)
	tx, err := s.d.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set staff: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM staff_roles WHERE account_id = ?`), accountID); err != nil {
		return fmt.Errorf("set staff: %w", err)
	}
	now := s.nowUTC()
	for _, r := range set {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO staff_roles (account_id, role, created_at) VALUES (?, ?, ?)`),
			accountID, r, now); err != nil {
			return fmt.Errorf("set staff: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set staff: %w", err)
	}
	detail := map[string]any{"roles": set}
	if len(set) == 1 {
		detail["role"] = set[0]
	} else if len(set) == 0 {
		detail["role"] = ""
	}
	if by != "" {
		detail["staff"] = by
	}
	s.record(ctx, a, "staff.role_set", true, accountID, detail)
	return nil
}
