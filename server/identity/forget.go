package identity

import (
	"context"
	"fmt"
)

// ResetPhoneMatch forgets that the account's mobile number matched one in
// PDS, after the number changed: the next login's PDS check works
// phone_number_pds_matched out again for the new number.
func (s *Service) ResetPhoneMatch(ctx context.Context, accountID string) error {
	if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE identity_records SET phone_pds_matched = ? WHERE account_id = ?`), false, accountID); err != nil {
		return fmt.Errorf("reset phone match: %w", err)
	}
	return nil
}

// ForgetAccount deletes what identity proofing keeps about a deleted
// account: its record (NHS number, PDS details, GP linkage), its photo ID
// checks with their evidence files, and any staff role.
func (s *Service) ForgetAccount(ctx context.Context, accountID string) error {
	var media []struct {
		Photo string `db:"photo_id"`
		Video string `db:"video_id"`
	}
	if err := s.d.DB.SelectContext(ctx, &media, s.d.DB.Rebind(`SELECT photo_id, video_id FROM identity_checks WHERE account_id = ? AND media_deleted_at IS NULL`), accountID); err != nil {
		return fmt.Errorf("forget identity: %w", err)
	}
	for _, m := range media {
		for _, id := range []string{m.Photo, m.Video} {
			if err := s.d.Media.Delete(ctx, id); err != nil {
				return fmt.Errorf("forget identity evidence: %w", err)
			}
		}
	}
	for _, q := range []string{
		`DELETE FROM identity_checks WHERE account_id = ?`,
		`DELETE FROM identity_records WHERE account_id = ?`,
		`DELETE FROM staff_roles WHERE account_id = ?`,
	} {
		if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget identity: %w", err)
		}
	}
	return nil
}
