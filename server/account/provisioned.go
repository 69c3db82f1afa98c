package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/audit"
)

// CreateProvisionedAccount creates the account of a patient claiming an
// account a healthcare partner provisioned (server/partner): the email
// address was proven by following the emailed link, the mobile number
// (E.164) by the texted code, the terms were accepted and passwordHash
// comes from CheckNewPassword. The account starts at P0; identity raises
// it. An address already in use gives ErrEmailTaken.
func (s *Service) CreateProvisionedAccount(ctx context.Context, a audit.Actor, email, phone, passwordHash string) (Account, error) {
	e, err := ParseEmail(email)
	if err != nil {
		return Account{}, err
	}
	if phone == "" || passwordHash == "" {
		return Account{}, errors.New("create provisioned account: a phone number and a password hash are required")
	}
	acct, err := s.insertVerified(ctx, e, phone, passwordHash)
	if err != nil {
		return Account{}, err
	}
	if err := s.record(ctx, a, "account.created", audit.Success, acct.ID, map[string]any{"via": "provisioning"}); err != nil {
		return Account{}, fmt.Errorf("create provisioned account: %w", err)
	}
	return acct, nil
}
