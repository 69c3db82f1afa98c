package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/trust"
)

// RouteProvisioned is the route of a P9 proven by a healthcare partner
// that provisioned the account (server/partner) and the patient's claim:
// the partner checked the person, PDS matched them with the mobile number
// the patient then proved.
const RouteProvisioned = "provisioned"

// ProveProvisioned raises accountID to P9 as the patient PDS knows by nhs,
// for a provisioned account the patient has just claimed: PDS is read
// again (a record gone, deceased or restricted since the partner asked is
// refused), the record is saved with the GP linkage of the patient's
// practice, and the account's level raised. Errors: ErrNoMatch,
// ErrDeceased, ErrRestricted, ErrMismatch (the account is proven as
// someone else), ErrNHSNumberInUse, ErrUnavailable.
func (s *Service) ProveProvisioned(ctx context.Context, a audit.Actor, accountID string, nhs nhsnumber.Number) (Record, error) {
	acct, err := s.d.Accounts.Account(ctx, accountID)
	if err != nil {
		return Record{}, fmt.Errorf("identity: %w", err)
	}
	fail := func(err error, reason string) (Record, error) {
		s.record(ctx, a, "identity.provisioned", false, accountID, map[string]any{"reason": reason})
		return Record{}, err
	}
	p, err := s.d.PDS.Read(ctx, nhs)
	switch {
	case errors.Is(err, pds.ErrNotFound), errors.Is(err, pds.ErrInvalidNHSNumber):
		return fail(ErrNoMatch, "no_match")
	case errors.Is(err, pds.ErrUnavailable):
		return fail(fmt.Errorf("%w: %w", ErrUnavailable, err), "pds_unavailable")
	case err != nil:
		return Record{}, fmt.Errorf("pds read: %w", err)
	}
	if err := usable(p); err != nil {
		reason := "deceased"
		if errors.Is(err, ErrRestricted) {
			reason = "restricted"
		}
		return fail(err, reason)
	}
	if old, ok, err := s.Record(ctx, accountID); err != nil {
		return Record{}, err
	} else if ok && old.NHSNumber != p.NHSNumber.String() {
		return fail(ErrMismatch, "other_person")
	}
	r, err := s.save(ctx, acct, p, RouteProvisioned, s.linkageFor(ctx, p))
	if errors.Is(err, ErrNHSNumberInUse) {
		return fail(err, "nhs_number_in_use")
	}
	if err != nil {
		return Record{}, err
	}
	if err := s.d.Accounts.RaiseLevel(ctx, a, accountID, trust.P9); err != nil {
		return Record{}, err
	}
	s.record(ctx, a, "identity.provisioned", true, accountID, map[string]any{"gp_linkage": r.HasGPCredentials()})
	return r, nil
}
