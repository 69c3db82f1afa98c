package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
)

// Partner scopes: idlink's names for the scopes of NHS login's partner APIs
// (the Users Endpoint V2 and Provision Account interface specifications
// name theirs in documents not published as text; see docs/api/). A client
// approved for one obtains an access token for itself, not for a person,
// with the client_credentials grant and private_key_jwt. These scopes
// release no claims and are never granted at /authorize.
const (
	// ScopeUsersEndpoint lets a partner look people up by NHS number or
	// email (GET /partner/v2/users).
	ScopeUsersEndpoint = "users_endpoint"
	// ScopeAccountProvisioning lets a partner provision P9 accounts for
	// patients (POST /partner/v1/provisioning).
	ScopeAccountProvisioning = "account_provisioning"
)

// GrantTypeClientCredentials is the grant by which a partner client obtains
// an access token for itself (RFC 6749 section 4.4).
const GrantTypeClientCredentials = "client_credentials"

// tokenUseClient marks the access tokens of the client_credentials grant.
const tokenUseClient = "client_credentials"

// ClientScopes returns the partner scopes, which only the
// client_credentials grant issues.
func ClientScopes() []string { return []string{ScopeUsersEndpoint, ScopeAccountProvisioning} }

// isClientScope reports whether scope is a partner scope.
func isClientScope(scope string) bool { return slices.Contains(ClientScopes(), scope) }

// clientTokenClaims are what a client_credentials access token says. It
// has no grant_id, so /userinfo refuses it; it names no person.
type clientTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	TokenUse string `json:"token_use"`
}

// exchangeClientCredentials issues a partner access token: the client
// must have authenticated with a client assertion (a public client
// cannot), and the scopes asked for (all its partner scopes when scope is
// absent) must be partner scopes it is approved for.
func (s *Server) exchangeClientCredentials(ctx context.Context, a audit.Actor, ac *authenticated, f form) (*tokenSet, error) {
	client := ac.client
	if ac.jti == "" {
		return nil, newOAuthError(http.StatusBadRequest, codeUnauthorizedClient, "client_credentials needs private_key_jwt client authentication")
	}
	var approved []string
	for _, sc := range client.Scopes {
		if isClientScope(sc) {
			approved = append(approved, sc)
		}
	}
	if len(approved) == 0 {
		s.record(ctx, a, "oidc.client_token_refused", audit.Failure, "", map[string]any{"client_id": client.ID, "reason": "no_partner_scope"})
		return nil, newOAuthError(http.StatusBadRequest, codeUnauthorizedClient, "the client is not approved for the client_credentials grant")
	}
	scopes := approved
	if raw := f["scope"]; raw != "" {
		if len(raw) > maxScopeParam {
			return nil, newOAuthError(http.StatusBadRequest, codeInvalidScope, "scope longer than %d bytes", maxScopeParam)
		}
		scopes = nil
		for _, sc := range strings.Fields(raw) {
			if !slices.Contains(approved, sc) {
				return nil, newOAuthError(http.StatusBadRequest, codeInvalidScope, "the client is not approved for scope %q with this grant", sc)
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	fresh, err := s.useJTI(ctx, nil, jtiClientAssertion, client.ID, ac.jti, ac.jtiExp)
	if err != nil {
		return nil, err
	}
	ac.spent = true
	if !fresh {
		return nil, invalidClient("client assertion rejected: jti already used")
	}
	now := s.now()
	claims := clientTokenClaims{
		Issuer: s.issuer, Subject: client.ID, Audience: client.ID,
		Expiry: now.Add(s.cfg.AccessTokenLifetime).Unix(), IssuedAt: now.Unix(), ID: secrets.NewID(),
		Scope: strings.Join(scopes, " "), ClientID: client.ID, TokenUse: tokenUseClient,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("encode client access token: %w", err)
	}
	tok, err := s.keys.sign(ctx, payload)
	if err != nil {
		return nil, err
	}
	s.record(ctx, a, "oidc.client_token_issued", audit.Success, "", map[string]any{"client_id": client.ID, "scope": claims.Scope})
	return &tokenSet{
		AccessToken: tok, TokenType: "bearer",
		ExpiresIn: int64(s.cfg.AccessTokenLifetime / time.Second), Scope: claims.Scope,
	}, nil
}

// ClientToken is what a verified client_credentials access token grants.
type ClientToken struct {
	// ClientID is the partner the token was issued to.
	ClientID string
	// ClientName is the partner's registered name.
	ClientName string
	// Scopes are the partner scopes granted that the client is still
	// approved for.
	Scopes []string
	// ID is the token's jti.
	ID string
	// Expiry is when the token stops being accepted.
	Expiry time.Time
}

// HasScope reports whether the token carries scope.
func (t ClientToken) HasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

// VerifyClientToken checks a bearer token issued by the client_credentials
// grant: RS512 signature by a key of this server, this issuer, not
// expired, a client token (a person's access token is refused), its
// client still registered. Scopes the client is no longer approved for
// are left out. Refusals wrap ErrInvalidToken; other errors are the
// database's.
func (s *Server) VerifyClientToken(ctx context.Context, raw string) (ClientToken, error) {
	refuse := func(reason string) (ClientToken, error) {
		return ClientToken{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason)
	}
	if len(raw) > maxAccessTokenSize {
		return refuse("token too long")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{signingAlg})
	if err != nil || len(tok.Headers) != 1 {
		return refuse("not an access token issued by this server")
	}
	pub, ok, err := s.keys.publicKey(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return ClientToken{}, fmt.Errorf("verify client token: %w", err)
	}
	if !ok {
		return refuse("not signed by a key of this server")
	}
	var c struct {
		Issuer   string           `json:"iss"`
		Subject  string           `json:"sub"`
		Expiry   *jwt.NumericDate `json:"exp"`
		ID       string           `json:"jti"`
		Scope    string           `json:"scope"`
		ClientID string           `json:"client_id"`
		TokenUse string           `json:"token_use"`
		GrantID  string           `json:"grant_id"`
	}
	if err := tok.Claims(pub, &c); err != nil {
		return refuse("signature does not verify")
	}
	switch {
	case c.Issuer != s.issuer:
		return refuse("issued by another issuer")
	case c.TokenUse != tokenUseClient || c.GrantID != "" || c.ClientID == "" || c.Subject != c.ClientID:
		return refuse("not a client_credentials access token")
	case c.Expiry == nil || !s.now().Before(c.Expiry.Time()):
		return refuse("the access token has expired")
	}
	client, err := s.clients.Get(ctx, c.ClientID)
	if errors.Is(err, ErrClientNotFound) {
		return refuse("the client is no longer registered")
	}
	if err != nil {
		return ClientToken{}, fmt.Errorf("verify client token: %w", err)
	}
	var scopes []string
	for _, sc := range strings.Fields(c.Scope) {
		if isClientScope(sc) && client.AllowsScope(sc) {
			scopes = append(scopes, sc)
		}
	}
	return ClientToken{ClientID: client.ID, ClientName: client.Name, Scopes: scopes, ID: c.ID, Expiry: c.Expiry.Time().UTC()}, nil
}
