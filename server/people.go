package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/oidc"
)

// people gives the OIDC provider the claims about an account. It lives in
// the wiring so that neither capability imports the other.
type people struct{ accounts *account.Service }

// Person implements oidc.People.
func (p people) Person(ctx context.Context, accountID string) (oidc.Person, error) {
	a, err := p.accounts.Account(ctx, accountID)
	if errors.Is(err, account.ErrNotFound) {
		return oidc.Person{}, fmt.Errorf("%w: %s", oidc.ErrNoPerson, accountID)
	}
	if err != nil {
		return oidc.Person{}, err
	}
	return oidc.Person{
		Email:               a.Email,
		EmailVerified:       true, // accounts exist only once the email link was followed
		PhoneNumber:         a.PhoneNumber(),
		PhoneNumberVerified: a.PhoneVerifiedAt != nil,
		ProofingLevel:       a.Level(),
		Blocked:             a.Status != account.StatusActive,
	}, nil
}
