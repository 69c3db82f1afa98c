package identity

import (
	"context"
	"fmt"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// AccountByNHSNumber returns the account proven with the NHS number (ten
// digits, spaces allowed), or ErrNotFound; a number that is not valid is
// ErrInvalid. It is for the support desk's search and the partner APIs
// (server/partner), never for pages a stranger can reach.
func (s *Service) AccountByNHSNumber(ctx context.Context, raw string) (string, error) {
	n, err := nhsnumber.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: NHS number", ErrInvalid)
	}
	var id string
	err = s.d.DB.GetContext(ctx, &id, s.d.DB.Rebind(`SELECT account_id FROM identity_records WHERE nhs_number = ?`), n.String())
	if migrations.IsNoRows(err) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("account by NHS number: %w", err)
	}
	return id, nil
}
