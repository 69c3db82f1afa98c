package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/trust"
)

// Outcomes of a per-login check, as counted.
const (
	CheckOK          = "ok"
	CheckNoRecord    = "no_record" // P0: nothing to check
	CheckUnavailable = "unavailable"
	CheckNotFound    = "not_found"
	CheckDeceased    = "deceased"
)

// CheckLogin is the PDS check run on every login of a proven person: it
// refreshes the GP practice and, at P9, the linkage at that practice,
// recomputes phone_number_pds_matched (once true it stays true), and
// blocks the account of a person PDS marks as deceased, revoking what
// relying parties hold (ErrBlocked: the login must be refused). When PDS
// cannot be reached the login goes ahead with the stored details and the
// check is marked to be retried (RetryPending).
func (s *Service) CheckLogin(ctx context.Context, a audit.Actor, accountID string) error {
	r, ok, err := s.Record(ctx, accountID)
	if err != nil {
		return err
	}
	if !ok {
		s.d.Checks.Inc(CheckNoRecord)
		return nil
	}
	nhs, err := nhsnumber.Parse(r.NHSNumber)
	if err != nil {
		return fmt.Errorf("stored NHS number: %w", err)
	}
	p, err := s.d.PDS.Read(ctx, nhs)
	switch {
	case errors.Is(err, pds.ErrUnavailable):
		s.d.Checks.Inc(CheckUnavailable)
		s.log.Warn("identity: PDS unavailable at login; using stored details", "account_id", accountID, "err", err)
		if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE identity_records SET check_pending = ? WHERE account_id = ?`), true, accountID); err != nil {
			return fmt.Errorf("mark check pending: %w", err)
		}
		return nil
	case errors.Is(err, pds.ErrNotFound), errors.Is(err, pds.ErrInvalidNHSNumber):
		s.d.Checks.Inc(CheckNotFound)
		s.record(ctx, a, "identity.login_check", false, accountID, map[string]any{"reason": "pds_record_not_found"})
		return nil
	case err != nil:
		return fmt.Errorf("pds read at login: %w", err)
	}
	if p.Deceased {
		s.d.Checks.Inc(CheckDeceased)
		if err := s.d.Accounts.Block(ctx, a, accountID, "marked deceased in PDS"); err != nil {
			return err
		}
		if s.d.Grants != nil {
			if _, err := s.d.Grants.RevokeAccount(ctx, accountID); err != nil {
				return fmt.Errorf("revoke grants of a deceased person: %w", err)
			}
		}
		s.record(ctx, a, "identity.deceased", false, accountID, nil)
		return ErrBlocked
	}
	acct, err := s.d.Accounts.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	var link *gp.Linkage
	if acct.Level() >= trust.P9 && p.GPODSCode != "" && p.GPODSCode != r.GPLinkageODS {
		// A new practice: its linkage replaces the old one.
		link = s.linkageFor(ctx, p)
	}
	if _, err := s.save(ctx, acct, p, routeUnchanged, link); err != nil {
		return err
	}
	s.d.Checks.Inc(CheckOK)
	if r.GPODSCode != p.GPODSCode {
		s.record(ctx, a, "identity.gp_changed", true, accountID, map[string]any{"from": r.GPODSCode, "to": p.GPODSCode, "linkage": link != nil})
	}
	return nil
}

// RetryPending runs the checks that could not run at login because PDS
// was unavailable. It returns how many it retried.
func (s *Service) RetryPending(ctx context.Context, a audit.Actor) (int, error) {
	var ids []string
	if err := s.d.DB.SelectContext(ctx, &ids, s.d.DB.Rebind(`SELECT account_id FROM identity_records WHERE check_pending = ? LIMIT 500`), true); err != nil {
		return 0, fmt.Errorf("pending checks: %w", err)
	}
	for _, id := range ids {
		if err := s.CheckLogin(ctx, a, id); err != nil && !errors.Is(err, ErrBlocked) {
			return 0, err
		}
	}
	return len(ids), nil
}
