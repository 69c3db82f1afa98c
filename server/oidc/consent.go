package oidc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
)

// consents remembers which scopes a person agreed to share with a client,
// so they are asked again only when a client asks for something new.
type consents struct{ db *sqlx.DB }

func (cs *consents) get(ctx context.Context, accountID, clientID string) ([]string, error) {
	var scopes string
	err := cs.db.GetContext(ctx, &scopes, cs.db.Rebind(`SELECT scopes FROM oidc_consents WHERE account_id = ? AND client_id = ?`), accountID, clientID)
	if migrations.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read consent: %w", err)
	}
	return strings.Fields(scopes), nil
}

// covers reports whether the person has agreed to share every scope in
// want with the client. Nothing to share needs no agreement only once the
// person has met the client: the first meeting always asks.
func (cs *consents) covers(ctx context.Context, accountID, clientID string, want []string) (bool, error) {
	var n int
	err := cs.db.GetContext(ctx, &n, cs.db.Rebind(`SELECT COUNT(*) FROM oidc_consents WHERE account_id = ? AND client_id = ?`), accountID, clientID)
	if err != nil {
		return false, fmt.Errorf("read consent: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	have, err := cs.get(ctx, accountID, clientID)
	if err != nil {
		return false, err
	}
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false, nil
		}
	}
	return true, nil
}

// add records agreement to scopes (added to what was agreed before).
func (cs *consents) add(ctx context.Context, accountID, clientID string, scopes []string, now time.Time) error {
	have, err := cs.get(ctx, accountID, clientID)
	if err != nil {
		return err
	}
	for _, s := range scopes {
		if !slices.Contains(have, s) {
			have = append(have, s)
		}
	}
	slices.Sort(have)
	_, err = cs.db.ExecContext(ctx, cs.db.Rebind(`INSERT INTO oidc_consents (account_id, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`),
		accountID, clientID, strings.Join(have, " "), now)
	if err != nil {
		return fmt.Errorf("record consent: %w", err)
	}
	return nil
}
