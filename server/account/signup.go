package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
)

// StartSignup records a registration and emails its verification link. If
// the address already has an account, the owner is emailed instead and
// nothing else happens; the caller cannot tell the two apart, so neither
// can the person at the keyboard. It returns the signup's id ("" for an
// existing account) for ResendSignup.
func (s *Service) StartSignup(ctx context.Context, a audit.Actor, email, passwordHash string) (string, error) {
	s.metrics.JourneysStarted.WithLabelValues("signup").Inc()
	if _, err := s.st.byEmail(ctx, email); err == nil {
		if err := s.sendExisting(ctx, a, email); err != nil {
			return "", err
		}
		return "", s.record(ctx, a, "signup.existing_email", audit.Success, "", nil)
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	now := s.st.nowUTC()
	token := secrets.NewToken()
	su := signup{
		ID: secrets.NewID(), Email: email, PasswordHash: passwordHash,
		TermsVersion: s.cfg.TermsVersion, TermsAcceptedAt: now,
		TokenHash: s.tokenMAC("signup", token), ExpiresAt: now.Add(SignupLinkLifetime), CreatedAt: now,
	}
	if err := s.st.createSignup(ctx, su); err != nil {
		return "", err
	}
	if err := s.sendVerify(ctx, a, email, token); err != nil {
		return su.ID, err
	}
	return su.ID, s.record(ctx, a, "signup.started", audit.Success, "", map[string]any{"signup": su.ID, "terms": s.cfg.TermsVersion})
}

// ResendSignup sends the verification email again with a new link (the
// previous link stops working), or the existing-account email again when
// signupID is "".
func (s *Service) ResendSignup(ctx context.Context, a audit.Actor, signupID, email string) error {
	if signupID == "" {
		return s.sendExisting(ctx, a, email)
	}
	token := secrets.NewToken()
	if err := s.st.renewSignupToken(ctx, signupID, s.tokenMAC("signup", token), s.st.nowUTC().Add(SignupLinkLifetime)); err != nil {
		return err
	}
	if err := s.sendVerify(ctx, a, email, token); err != nil {
		return err
	}
	return s.record(ctx, a, "signup.link_resent", audit.Success, "", map[string]any{"signup": signupID})
}

func (s *Service) sendVerify(ctx context.Context, a audit.Actor, email, token string) error {
	link := s.link("/create-account/verify", token)
	return s.sendEmail(ctx, a, "", email, "signup_verify_email", fmt.Sprintf(
		"Confirm your email address to continue creating your idlink account: %s\n\nThe link works once and expires in 24 hours. If you did not ask for this, ignore this email.", link), link, true)
}

func (s *Service) sendExisting(ctx context.Context, a audit.Actor, email string) error {
	link := s.cfg.Issuer + "/login"
	return s.sendEmail(ctx, a, "", email, "signup_existing_account", fmt.Sprintf(
		"Someone tried to create an idlink account with this email address, but you already have one. You can log in at %s. "+
			"If you have forgotten your password you can reset it there. If this was not you, you do not need to do anything.", link), link, true)
}

// CheckSignupLink reports whether a verification link is still good,
// without using it (email scanners follow links too).
func (s *Service) CheckSignupLink(ctx context.Context, token string) error {
	_, err := s.st.signupByToken(ctx, s.tokenMAC("signup", token))
	return err
}

// CompleteSignupLink uses a verification link: the account is created with
// a verified email address, waiting for its mobile number. It returns the
// new account and the id of the signup the link belonged to.
func (s *Service) CompleteSignupLink(ctx context.Context, a audit.Actor, token string) (Account, string, error) {
	acct, su, err := s.st.completeSignup(ctx, s.tokenMAC("signup", token))
	switch {
	case errors.Is(err, ErrLinkInvalid):
		return acct, "", errors.Join(err, s.record(ctx, a, "signup.link_invalid", audit.Failure, "", nil))
	case errors.Is(err, ErrEmailTaken):
		return acct, "", errors.Join(err, s.record(ctx, a, "signup.email_taken", audit.Failure, "", nil))
	case err != nil:
		return acct, "", err
	}
	return acct, su.ID, s.record(ctx, a, "signup.email_verified", audit.Success, acct.ID, map[string]any{"signup": su.ID})
}

// SignupSubject is the subject of a sign-up code: the account and the
// number together, so that a code proves the number it was sent to and
// no other.
func SignupSubject(accountID, phone string) string { return accountID + ":" + phone }

// SendSignupCode texts the code that proves a new account's mobile number.
func (s *Service) SendSignupCode(ctx context.Context, a audit.Actor, accountID, phone string) error {
	return s.SendCode(ctx, a, PurposeSignup, SignupSubject(accountID, phone), phone, accountID)
}

// CompleteSignupPhone checks the code sent to phone and, when it is right,
// stores the number and activates the account at P0.
func (s *Service) CompleteSignupPhone(ctx context.Context, a audit.Actor, accountID, phone, code string) error {
	if err := s.VerifyCode(ctx, a, PurposeSignup, SignupSubject(accountID, phone), code, accountID); err != nil {
		return err
	}
	return s.ConfirmSignupPhone(ctx, a, accountID, phone)
}

// ConfirmSignupPhone stores a number whose sign-up code was just entered
// right and activates the account at P0.
func (s *Service) ConfirmSignupPhone(ctx context.Context, a audit.Actor, accountID, phone string) error {
	if err := s.st.setPhone(ctx, accountID, phone); err != nil {
		return err
	}
	s.metrics.JourneysFinished.WithLabelValues("signup", "completed").Inc()
	return s.record(ctx, a, "signup.completed", audit.Success, accountID, nil)
}

// ParsePhone reads a mobile number with this server's rules (the sandbox
// also accepts Ofcom's drama numbers): a valid mobile number
// (ErrPhoneInvalid) in a country texts may go to (ErrPhoneCountry).
func (s *Service) ParsePhone(raw string) (string, error) {
	e164, err := ParsePhone(raw, s.cfg.Development)
	if err != nil {
		return "", err
	}
	if !s.sender.AllowsDestination(e164) {
		return "", ErrPhoneCountry
	}
	return e164, nil
}

// LiveCode reports whether (purpose, subject) has a security code that can
// still be entered (one that was sent, has not expired, been used or
// voided by wrong tries).
func (s *Service) LiveCode(ctx context.Context, purpose Purpose, subject string) (bool, error) {
	return s.st.liveCode(ctx, purpose, subject)
}
