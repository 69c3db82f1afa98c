package partner

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
)

// store holds every SQL statement of the partner APIs.
type store struct{ db *sqlx.DB }

const provisioningCols = `id, client_id, ods_code, nhs_number, given_name, family_name, birth_date, mobile, email,
	token_hash, status, account_id, created_at, expires_at, claimed_at`

// createProvisioning stores a new pending request, first marking the
// patient's pending request expired if it is past its expiry. created is
// false when the patient has a pending request still open.
func (st store) createProvisioning(ctx context.Context, r provisionRow, now time.Time) (bool, error) {
	tx, err := st.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("create provisioning: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE partner_provisionings SET status = 'expired'
		WHERE nhs_number = ? AND status = 'pending' AND expires_at <= ?`), r.NHSNumber, now); err != nil {
		return false, fmt.Errorf("create provisioning: %w", err)
	}
	_, err = tx.NamedExecContext(ctx, `INSERT INTO partner_provisionings (`+provisioningCols+`)
		VALUES (:id, :client_id, :ods_code, :nhs_number, :given_name, :family_name, :birth_date, :mobile, :email,
		:token_hash, :status, :account_id, :created_at, :expires_at, :claimed_at)`, r)
	if migrations.IsUniqueViolation(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create provisioning: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("create provisioning: %w", err)
	}
	return true, nil
}

// provisioning reads a request by id.
func (st store) provisioning(ctx context.Context, id string) (provisionRow, bool, error) {
	return st.provisioningWhere(ctx, `id = ?`, id)
}

// provisioningByToken reads a request by the hash of its claim token.
func (st store) provisioningByToken(ctx context.Context, hash string) (provisionRow, bool, error) {
	return st.provisioningWhere(ctx, `token_hash = ?`, hash)
}

func (st store) provisioningWhere(ctx context.Context, where string, arg any) (provisionRow, bool, error) {
	var r provisionRow
	err := st.db.GetContext(ctx, &r, st.db.Rebind(`SELECT `+provisioningCols+` FROM partner_provisionings WHERE `+where), arg)
	if migrations.IsNoRows(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("read provisioning: %w", err)
	}
	return r, true, nil
}

// markClaimed records that accountID claimed the pending request id;
// false when it was no longer pending.
func (st store) markClaimed(ctx context.Context, id, accountID string, now time.Time) (bool, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`UPDATE partner_provisionings SET status = 'claimed', account_id = ?, claimed_at = ?
		WHERE id = ? AND status = 'pending'`), accountID, now, id)
	if err != nil {
		return false, fmt.Errorf("mark provisioning claimed: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// forgetAccount deletes the provisioning requests an account claimed.
func (st store) forgetAccount(ctx context.Context, accountID string) error {
	if _, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM partner_provisionings WHERE account_id = ?`), accountID); err != nil {
		return fmt.Errorf("forget provisioning requests: %w", err)
	}
	return nil
}

// deleteProvisioning removes a request (one whose email could not be sent).
func (st store) deleteProvisioning(ctx context.Context, id string) error {
	if _, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM partner_provisionings WHERE id = ?`), id); err != nil {
		return fmt.Errorf("delete provisioning: %w", err)
	}
	return nil
}
