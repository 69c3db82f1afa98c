package identity

import (
	"context"
	"fmt"

	"github.com/idlink/idlink/server/audit"
)

// An admin can take a check back from a reviewer who has stopped (away,
// left the team): release puts it back in the queue, reassign hands it to
// another ID checker. Both are conditional updates on the reviewer seen,
// so a decision made meanwhile is never undone.

// Release puts a check in review back in the queue. by must be an admin.
func (s *Service) Release(ctx context.Context, a audit.Actor, by Staff, id string) (Check, error) {
	return s.moveClaim(ctx, a, by, id, "")
}

// Reassign gives a check in review to another ID checker (to, an account
// id), who must hold the id_checker role and not be the person checked.
// by must be an admin.
func (s *Service) Reassign(ctx context.Context, a audit.Actor, by Staff, id, to string) (Check, error) {
	m, ok, err := s.StaffMember(ctx, to)
	if err != nil {
		return Check{}, err
	}
	if !ok || !m.CanReview() {
		return Check{}, fmt.Errorf("%w: the new reviewer must be an ID checker", ErrInvalid)
	}
	return s.moveClaim(ctx, a, by, id, to)
}

func (s *Service) moveClaim(ctx context.Context, a audit.Actor, by Staff, id, to string) (Check, error) {
	if !by.Has(RoleAdmin) {
		return Check{}, ErrForbidden
	}
	c, err := s.GetCheck(ctx, id)
	if err != nil {
		return Check{}, err
	}
	if c.Status != CheckInReview || c.ClaimedBy == nil {
		return Check{}, ErrClaimed
	}
	if to == c.AccountID {
		return Check{}, ErrOwnCheck
	}
	from := *c.ClaimedBy
	var q string
	var args []any
	if to == "" {
		q = `UPDATE identity_checks SET status = ?, claimed_by = NULL, claimed_at = NULL WHERE id = ? AND status = ? AND claimed_by = ?`
		args = []any{CheckSubmitted, id, CheckInReview, from}
	} else {
		q = `UPDATE identity_checks SET claimed_by = ?, claimed_at = ? WHERE id = ? AND status = ? AND claimed_by = ?`
		args = []any{to, s.nowUTC(), id, CheckInReview, from}
	}
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(q), args...)
	if err != nil {
		return Check{}, fmt.Errorf("move claim: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Check{}, ErrClaimed
	}
	detail := map[string]any{"check_id": id, "staff": by.AccountID, "from": from}
	typ := "idcheck.released"
	if to != "" {
		typ, detail["to"] = "idcheck.reassigned", to
	}
	s.record(ctx, a, typ, true, c.AccountID, detail)
	return s.GetCheck(ctx, id)
}
