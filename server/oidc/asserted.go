package oidc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/trust"
)

// maxAssertedLoginLifetime bounds asserted_login_identity: exp at most 60 s
// ahead of now and of iat.
const maxAssertedLoginLifetime = 60 * time.Second

// AssertedLogin is what a valid asserted_login_identity establishes: who
// the person is, and how they logged in at the first relying party.
type AssertedLogin struct {
	AccountID string
	// FromClientID is the relying party that made the assertion (RP1).
	FromClientID string
	// VoT, Credentials and AuthTime are those of the login behind the ID
	// token the assertion names.
	VoT         string
	Credentials trust.Credentials
	AuthTime    time.Time
}

// VerifyAssertedLoginIdentity checks the asserted_login_identity parameter
// of an authorization request from targetClientID (RP2) and returns the
// account it names. See VerifyAssertedLogin for the rules.
func (s *Server) VerifyAssertedLoginIdentity(ctx context.Context, raw, targetClientID string) (string, error) {
	l, err := s.VerifyAssertedLogin(ctx, raw, targetClientID)
	if err != nil {
		return "", err
	}
	return l.AccountID, nil
}

// VerifyAssertedLogin checks an asserted_login_identity JWT: signed by the
// registered key of the client in iss (RP1) with one of its algorithms;
// the pair RP1 → targetClientID configured in AllowedAssertedPairs; aud,
// when present, naming this provider (the issuer, or the authorization
// endpoint the JWT is sent to); code
// the jti of an unexpired ID token this server issued to RP1, from a grant
// not revoked; jti present and never seen before; iat present; exp at most
// 60 s ahead. Rejections wrap ErrAssertedLoginIdentity (or
// ErrAccountBlocked / ErrNoPerson for the account).
func (s *Server) VerifyAssertedLogin(ctx context.Context, raw, targetClientID string) (AssertedLogin, error) {
	fail := func(format string, args ...any) (AssertedLogin, error) {
		return AssertedLogin{}, fmt.Errorf("%w: %s", ErrAssertedLoginIdentity, fmt.Sprintf(format, args...))
	}
	client, c, err := s.verifier.parseSigned(ctx, raw, "")
	var rj *rejection
	if errors.As(err, &rj) {
		return fail("%s", rj.reason)
	}
	if err != nil {
		return AssertedLogin{}, err
	}
	if !s.pairs[client.ID][targetClientID] {
		return fail("client %s may not assert logins to client %s", client.ID, targetClientID)
	}
	if len(c.Audience) > 0 && !c.Audience.Contains(s.issuer) && !c.Audience.Contains(s.endpoint("/authorize")) {
		return fail("aud names neither this provider (%s) nor its authorization endpoint", s.issuer)
	}
	now := s.now()
	if err := checkTimes(c, now, maxAssertedLoginLifetime); err != nil {
		return fail("%v", err)
	}
	switch {
	case c.IssuedAt == nil:
		return fail("iat is missing")
	case c.Expiry.Time().Sub(c.IssuedAt.Time()) > maxAssertedLoginLifetime:
		return fail("lifetime (exp − iat) is longer than %s", maxAssertedLoginLifetime)
	case c.ID == "" || len(c.ID) > maxJTILen:
		return fail("jti is missing or longer than %d bytes", maxJTILen)
	case c.Code == "" || len(c.Code) > maxJTILen:
		return fail("code (the jti of an ID token) is missing or too long")
	}
	row, err := s.store.idToken(ctx, c.Code, client.ID)
	if migrations.IsNoRows(err) {
		return fail("code does not name an ID token issued to client %s", client.ID)
	}
	if err != nil {
		return AssertedLogin{}, fmt.Errorf("look up ID token: %w", err)
	}
	switch {
	case !now.Before(row.ExpiresAt):
		return fail("the ID token named by code has expired")
	case row.RevokedAt != nil:
		return fail("the login behind the ID token has been revoked")
	}
	fresh, err := s.useJTI(ctx, nil, jtiAssertedLogin, client.ID, c.ID, c.Expiry.Time())
	if err != nil {
		return AssertedLogin{}, err
	}
	if !fresh {
		return fail("jti already used")
	}
	if _, err := s.person(ctx, row.AccountID); err != nil {
		return AssertedLogin{}, err
	}
	var creds trust.Credentials
	for _, f := range strings.Fields(row.Credentials) {
		creds = creds.With(trust.Credential(f))
	}
	return AssertedLogin{
		AccountID:    row.AccountID,
		FromClientID: client.ID,
		VoT:          row.VoT,
		Credentials:  creds,
		AuthTime:     row.AuthTime.UTC(),
	}, nil
}
