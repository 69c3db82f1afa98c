package partner

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
)

// store holds every SQL statement of the partner APIs.
type store struct{ db *sqlx.DB }

// accountByNHSNumber finds the account whose identity record holds nhs.
// It reads identity_records (owned by server/identity, which has no
// lookup by NHS number yet) and nothing else of identity's.
func (st store) accountByNHSNumber(ctx context.Context, nhs string) (string, bool, error) {
	var id string
	err := st.db.GetContext(ctx, &id, st.db.Rebind(`SELECT account_id FROM identity_records WHERE nhs_number = ?`), nhs)
	if migrations.IsNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("account by NHS number: %w", err)
	}
	return id, true, nil
}
