package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// ErrNotDevelopment is returned by SeedAccount on a service that was not
// built for development.
var ErrNotDevelopment = errors.New("account seeding is for development servers only")

// SeedAccount creates an account that is already active: email verified,
// mobile number verified, the current terms accepted, proofing level P0.
// passwordHash is stored as it is (a hash from Hasher, which may be shared
// by many seeded accounts). It is for development and load-test seeding
// only, writes no audit event, sends nothing, and refuses with
// ErrNotDevelopment unless the service was built with Config.Development.
// An address already in use gives ErrEmailTaken; an invalid email address
// or phone number gives ErrEmailInvalid or ErrPhoneInvalid.
func (s *Service) SeedAccount(ctx context.Context, email, phone, passwordHash string) (Account, error) {
	if !s.cfg.Development {
		return Account{}, ErrNotDevelopment
	}
	e, err := ParseEmail(email)
	if err != nil {
		return Account{}, err
	}
	p, err := s.ParsePhone(phone)
	if err != nil {
		return Account{}, err
	}
	if passwordHash == "" {
		return Account{}, errors.New("seed account: a password hash is required")
	}
	return s.insertVerified(ctx, e, p, passwordHash)
}

// insertVerified creates an active account whose email address and mobile
// number (E.164) are verified and the current terms accepted, at P0.
func (s *Service) insertVerified(ctx context.Context, e, p, passwordHash string) (Account, error) {
	now := s.st.nowUTC()
	a := Account{
		ID: secrets.NewID(), Email: e, PasswordHash: passwordHash,
		TermsVersion: s.cfg.TermsVersion, TermsAcceptedAt: now, EmailVerifiedAt: now,
		Phone: &p, PhoneVerifiedAt: &now,
		ProofingLevel: trust.P0.String(), Status: StatusActive,
		PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	_, err := s.st.db.NamedExecContext(ctx, `INSERT INTO accounts (id, email, password_hash, terms_version, terms_accepted_at,
		email_verified_at, phone, phone_verified_at, proofing_level, status, password_changed_at, created_at, updated_at)
		VALUES (:id, :email, :password_hash, :terms_version, :terms_accepted_at, :email_verified_at, :phone, :phone_verified_at,
		:proofing_level, :status, :password_changed_at, :created_at, :updated_at)`, a)
	if migrations.IsUniqueViolation(err) {
		return Account{}, ErrEmailTaken
	}
	if err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	return a, nil
}
