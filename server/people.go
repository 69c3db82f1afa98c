package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/oidc"
)

// people gives the OIDC provider the claims about an account: the
// account's own, and what identity proofing established. It lives in the
// wiring so that no capability imports another.
type people struct {
	accounts *account.Service
	identity *identity.Service
}

// Person implements oidc.People.
func (p *people) Person(ctx context.Context, accountID string) (oidc.Person, error) {
	a, err := p.accounts.Account(ctx, accountID)
	if errors.Is(err, account.ErrNotFound) {
		return oidc.Person{}, fmt.Errorf("%w: %s", oidc.ErrNoPerson, accountID)
	}
	if err != nil {
		return oidc.Person{}, err
	}
	p2 := oidc.Person{
		Email:               a.Email,
		EmailVerified:       true, // accounts exist only once the email link was followed
		PhoneNumber:         a.PhoneNumber(),
		PhoneNumberVerified: a.PhoneVerifiedAt != nil,
		// A landline is given by the person and never verified: no call
		// can be made from here (README, "landline").
		LandlineNumber:         a.LandlineNumber(),
		LandlineNumberVerified: false,
		ProofingLevel:          a.Level(),
		Blocked:                a.Status != account.StatusActive,
	}
	if p.identity == nil {
		return p2, nil
	}
	r, ok, err := p.identity.Record(ctx, accountID)
	if err != nil {
		return oidc.Person{}, err
	}
	if ok {
		p2.NHSNumber, p2.FamilyName, p2.GivenName, p2.BirthDate = r.NHSNumber, r.FamilyName, r.GivenName, r.BirthDate
		p2.GPODSCode, p2.PhoneNumberPDSMatched = r.GPODSCode, r.PhonePDSMatched
		if r.HasGPCredentials() {
			p2.GPIntegration = &oidc.GPIntegrationCredentials{GPUserID: r.GPAccountID, GPLinkageKey: r.GPLinkageKey, GPODSCode: r.GPLinkageODS}
		}
	}
	return p2, nil
}
