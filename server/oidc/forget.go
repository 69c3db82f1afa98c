package oidc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SharedService is a relying party a person has agreed to share details
// with, for their account's "services" page.
type SharedService struct {
	ClientID   string
	ClientName string
	// Shares says in words what the service receives, scope by scope;
	// empty when it receives only the fact of the login.
	Shares []string
	// FirstUsed and LastUsed are when the service was first and last
	// sent the person back with a login (zero when never).
	FirstUsed, LastUsed time.Time
}

// SharedWith lists the services the account has consented to share with,
// by name.
func (s *Server) SharedWith(ctx context.Context, accountID string) ([]SharedService, error) {
	var rows []struct {
		ClientID string `db:"client_id"`
		Scopes   string `db:"scopes"`
	}
	if err := s.store.db.SelectContext(ctx, &rows, s.store.db.Rebind(`SELECT client_id, scopes FROM oidc_consents WHERE account_id = ? ORDER BY client_id`), accountID); err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	out := make([]SharedService, 0, len(rows))
	for _, r := range rows {
		client, err := s.clients.Get(ctx, r.ClientID)
		if errors.Is(err, ErrClientNotFound) {
			continue // the service has been removed; it can receive nothing
		}
		if err != nil {
			return nil, err
		}
		svc := SharedService{ClientID: r.ClientID, ClientName: client.Name, Shares: describeScopes(strings.Fields(r.Scopes))}
		if s.audit != nil {
			span, err := s.audit.SpanOf(ctx, accountID, "authorize.code_issued", "client_id", r.ClientID)
			if err != nil {
				return nil, err
			}
			svc.FirstUsed, svc.LastUsed = span.First, span.Last
		}
		out = append(out, svc)
	}
	return out, nil
}

// StopSharing withdraws the account's consent for a client and revokes
// every grant it holds for the account (its refresh tokens are refused and
// its access tokens rejected): the next visit asks for consent again. It
// reports whether there was a consent to withdraw.
func (s *Server) StopSharing(ctx context.Context, accountID, clientID string) (bool, error) {
	tx, err := s.store.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("stop sharing: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM oidc_consents WHERE account_id = ? AND client_id = ?`), accountID, clientID)
	if err != nil {
		return false, fmt.Errorf("withdraw consent: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE oidc_grants SET revoked_at = ? WHERE account_id = ? AND client_id = ? AND revoked_at IS NULL`),
		s.now(), accountID, clientID); err != nil {
		return false, fmt.Errorf("revoke grants: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("stop sharing: %w", err)
	}
	return true, nil
}

// ForgetPerson deletes what the provider keeps about a deleted account:
// consents, grants with their refresh tokens and ID-token records (so
// issued access tokens stop working at /userinfo), and client metadata.
// The subject identifier stays, bound to the account's random id, so the
// sub is never given to anyone else and a relying party's question about
// it can be answered from the audit record.
func (s *Server) ForgetPerson(ctx context.Context, accountID string) error {
	tx, err := s.store.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget person: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, q := range []string{
		`DELETE FROM oidc_consents WHERE account_id = ?`,
		`DELETE FROM oidc_refresh_tokens WHERE grant_id IN (SELECT id FROM oidc_grants WHERE account_id = ?)`,
		`DELETE FROM oidc_id_tokens WHERE account_id = ?`,
		`DELETE FROM oidc_grants WHERE account_id = ?`,
		`DELETE FROM oidc_client_metadata WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget person: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forget person: %w", err)
	}
	return nil
}
