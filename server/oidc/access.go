package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idlink/idlink/server/trust"
)

// AccessToken is what a verified access token grants: who, through which
// client, with which scopes, and how the person logged in.
type AccessToken struct {
	// AccountID is the person the token was issued for.
	AccountID string
	// ClientID is the client the token was issued to.
	ClientID string
	// Scopes are the scopes granted.
	Scopes []string
	// VoT is the vector of trust of the login ("P0.Cp.Cd").
	VoT string
	// Credentials are the components the session had proven when the
	// code was issued (a superset of the vot's).
	Credentials trust.Credentials
	// AuthTime is when the person logged in.
	AuthTime time.Time
	// Expiry is when the token stops being accepted.
	Expiry time.Time
	// GrantID names the grant the token came from (RevokeGrant).
	GrantID string
}

// HasScope reports whether the token carries scope.
func (t AccessToken) HasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

// VerifyAccessToken checks a bearer access token as /userinfo does: RS512
// signature by a key of this server, this issuer, not expired, an access
// token (not an ID token), its grant neither revoked nor gone, its client
// still registered. Refusals wrap ErrInvalidToken with the reason; other
// errors are the database's. It does not check scopes: see HasScope.
func (s *Server) VerifyAccessToken(ctx context.Context, raw string) (AccessToken, error) {
	v, err := s.verifyAccessToken(ctx, raw)
	var rj *rejection
	if errors.As(err, &rj) {
		return AccessToken{}, fmt.Errorf("%w: %s", ErrInvalidToken, rj.reason)
	}
	if err != nil {
		return AccessToken{}, fmt.Errorf("verify access token: %w", err)
	}
	var creds trust.Credentials
	for _, f := range strings.Fields(v.grant.Credentials) {
		creds = creds.With(trust.Credential(f))
	}
	out := AccessToken{
		AccountID: v.grant.AccountID, ClientID: v.client.ID, Scopes: slices.Clone(v.scopes),
		VoT: v.grant.VoT, Credentials: creds, AuthTime: v.grant.AuthTime.UTC(), GrantID: v.grant.ID,
	}
	if v.claims.Expiry != nil {
		out.Expiry = v.claims.Expiry.Time().UTC()
	}
	return out, nil
}
