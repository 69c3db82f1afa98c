package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// maxAccessTokenSize bounds bearer tokens accepted at /userinfo.
const maxAccessTokenSize = 8 << 10

// tokenSet is what one successful /token request issues.
type tokenSet struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
}

// vtm is the trustmark URL put in tokens: {issuer}/trustmark/{host}.
func (s *Server) vtm() string { return s.endpoint("/trustmark/" + s.issuerURL.Host) }

// mint signs the ID token (when openid is among scopes) and the access
// token for a grant. idJTI is the ID token's jti, already recorded.
func (s *Server) mint(ctx context.Context, g *grantRow, client *Client, scopes []string, p Person, idJTI, refresh string, now time.Time) (*tokenSet, error) {
	level := g.level()
	authTime := g.AuthTime.Unix()
	allClaims := client.IDTokenClaims == IDTokenClaimsAll
	var metadata string
	if allClaims && idJTI != "" && slices.Contains(scopes, ScopeClientMetadata) {
		var err error
		if metadata, err = s.clientMetadata(ctx, g.AccountID, client); err != nil {
			return nil, err
		}
	}
	out := &tokenSet{
		TokenType:    "bearer",
		ExpiresIn:    int64(s.cfg.AccessTokenLifetime / time.Second),
		RefreshToken: refresh,
		Scope:        strings.Join(scopes, " "),
	}

	at := accessTokenClaims{
		Issuer: s.issuer, Subject: g.Subject, Audience: client.ID,
		Expiry: now.Add(s.cfg.AccessTokenLifetime).Unix(), IssuedAt: now.Unix(), ID: secrets.NewID(),
		Scope: out.Scope, AuthTime: authTime, VoT: g.VoT, VTM: s.vtm(), ClientID: client.ID, GrantID: g.ID,
	}
	if slices.Contains(scopes, ScopeProfile) && level >= trust.P5 {
		at.NHSNumber = p.NHSNumber
	}
	payload, err := json.Marshal(at)
	if err != nil {
		return nil, fmt.Errorf("encode access token: %w", err)
	}
	if out.AccessToken, err = s.keys.sign(ctx, payload); err != nil {
		return nil, err
	}

	if idJTI != "" {
		payload, err := json.Marshal(idTokenClaims{
			Issuer: s.issuer, Subject: g.Subject, Audience: client.ID,
			Expiry: now.Add(s.cfg.IDTokenLifetime).Unix(), IssuedAt: now.Unix(), ID: idJTI,
			AuthTime: authTime, Nonce: g.Nonce, VoT: g.VoT, VTM: s.vtm(),
		})
		if err != nil {
			return nil, fmt.Errorf("encode ID token: %w", err)
		}
		extra := scopeClaims(p, scopes, level, metadata)
		if !allClaims {
			// NHS login's ID token carries only these scope claims
			// (Interface Specification – Federation, section 4.2); the
			// rest come from /userinfo.
			maps.DeleteFunc(extra, func(k string, _ any) bool { return !slices.Contains(nhsIDTokenClaims, k) })
		}
		if len(extra) > 0 {
			// Scope claims never share a name with the fixed claims.
			b, err := json.Marshal(extra)
			if err != nil {
				return nil, fmt.Errorf("encode ID token: %w", err)
			}
			payload = append(append(payload[:len(payload)-1], ','), b[1:]...)
		}
		if out.IDToken, err = s.keys.sign(ctx, payload); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// nhsIDTokenClaims are the scope claims NHS login puts in its ID token.
var nhsIDTokenClaims = []string{"nhs_number", "family_name", "birthdate", "identity_proofing_level"}

// accessTokenClaims are what an access token says.
type accessTokenClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	Expiry    int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	ID        string `json:"jti"`
	Scope     string `json:"scope"`
	AuthTime  int64  `json:"auth_time"`
	VoT       string `json:"vot"`
	VTM       string `json:"vtm"`
	NHSNumber string `json:"nhs_number,omitempty"`
	ClientID  string `json:"client_id"`
	// GrantID names the grant, so that revoking it revokes the token.
	GrantID string `json:"grant_id"`
}

// idTokenClaims are the fixed claims of an ID token; scope claims are
// added to them.
type idTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	AuthTime int64  `json:"auth_time"`
	Nonce    string `json:"nonce,omitempty"`
	VoT      string `json:"vot"`
	VTM      string `json:"vtm"`
}

// accessClaims are the claims of this server's access tokens.
type accessClaims struct {
	Issuer   string           `json:"iss"`
	Subject  string           `json:"sub"`
	Audience jwt.Audience     `json:"aud"`
	Expiry   *jwt.NumericDate `json:"exp"`
	ID       string           `json:"jti"`
	Scope    string           `json:"scope"`
	VoT      string           `json:"vot"`
	ClientID string           `json:"client_id"`
	GrantID  string           `json:"grant_id"`
}

// verifiedAccess is a valid access token with its live grant.
type verifiedAccess struct {
	claims accessClaims
	grant  *grantRow
	client *Client
	scopes []string
	level  trust.Level
}

// verifyAccessToken checks a bearer token: RS512 signature by a published
// key, this issuer, not expired, an access token (not an ID token), its
// grant neither revoked nor gone, its client still registered.
// Failures are *rejection.
func (s *Server) verifyAccessToken(ctx context.Context, raw string) (*verifiedAccess, error) {
	if len(raw) > maxAccessTokenSize {
		return nil, reject("token longer than %d bytes", maxAccessTokenSize)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{signingAlg})
	if err != nil || len(tok.Headers) != 1 {
		return nil, reject("not an access token issued by this server")
	}
	pub, ok, err := s.keys.publicKey(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, reject("not signed by a key of this server")
	}
	var c accessClaims
	if err := tok.Claims(pub, &c); err != nil {
		return nil, reject("signature does not verify")
	}
	now := s.now()
	switch {
	case c.Issuer != s.issuer:
		return nil, reject("issued by another issuer")
	case c.GrantID == "" || c.ClientID == "" || c.Subject == "":
		return nil, reject("not an access token")
	case c.Expiry == nil || !now.Before(c.Expiry.Time()):
		return nil, reject("the access token has expired")
	}
	g, err := s.store.grantByID(ctx, nil, c.GrantID)
	if migrations.IsNoRows(err) {
		return nil, reject("the access token has been revoked")
	}
	if err != nil {
		return nil, fmt.Errorf("look up grant: %w", err)
	}
	if g.RevokedAt != nil || g.ClientID != c.ClientID || g.Subject != c.Subject {
		return nil, reject("the access token has been revoked")
	}
	client, err := s.clients.Get(ctx, c.ClientID)
	if errors.Is(err, ErrClientNotFound) {
		return nil, reject("the client is no longer registered")
	}
	if err != nil {
		return nil, err
	}
	return &verifiedAccess{claims: c, grant: &g, client: client, scopes: strings.Fields(c.Scope), level: g.level()}, nil
}
