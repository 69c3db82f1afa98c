package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jmoiron/sqlx"
)

// Client authentication with private_key_jwt (RFC 7523, OpenID Connect
// Core section 9).
const (
	// ClientAssertionType is the only client_assertion_type accepted.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertionSize bounds a client assertion (and an
	// asserted_login_identity): an RS512 JWT with ordinary claims is about
	// 700 bytes; a 8192-bit key's signature adds about 1.4 KB.
	maxAssertionSize = 8 << 10
	maxJTILen        = 256
	// clockSkew is the tolerance for clocks of relying parties.
	clockSkew = 30 * time.Second
	// maxAssertionLifetime bounds how far ahead a client assertion's exp
	// may be.
	maxAssertionLifetime = 60 * time.Minute
)

// jti kinds in oidc_jtis.
const (
	jtiClientAssertion = "client_assertion"
	jtiAssertedLogin   = "asserted_login_identity"
)

// assertionAlgs is the JWS allow-list for JWTs signed by clients: RSA
// only. go-jose rejects anything else (none, HMAC) before any key is used.
func assertionAlgs() []jose.SignatureAlgorithm {
	algs := clientAuthAlgs()
	out := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

// clientJWTClaims are the claims read from JWTs signed by clients.
type clientJWTClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	ID        string           `json:"jti"`
	// Code is asserted_login_identity's reference to an ID token's jti.
	Code string `json:"code"`
}

// rejection is a JWT that is not acceptable; the reason is safe to show.
type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

func reject(format string, args ...any) error {
	return &rejection{reason: fmt.Sprintf(format, args...)}
}

// clientLookup finds registered clients (Clients implements it).
type clientLookup interface {
	Get(ctx context.Context, id string) (*Client, error)
}

// assertionVerifier checks JWTs signed by clients with their registered
// keys. It keeps no state: single use of jti is the caller's job.
type assertionVerifier struct {
	clients   clientLookup
	now       func() time.Time
	audiences []string // the token endpoint URL and the issuer
}

// parseSigned parses raw, finds the client named by iss (which must equal
// wantIssuer when that is not empty), and verifies the signature with the
// client's key and one of its registered algorithms. Failures are
// *rejection; other errors are the database's.
func (v *assertionVerifier) parseSigned(ctx context.Context, raw, wantIssuer string) (*Client, clientJWTClaims, error) {
	var claims clientJWTClaims
	if len(raw) > maxAssertionSize {
		return nil, claims, reject("JWT longer than %d bytes", maxAssertionSize)
	}
	tok, err := jwt.ParseSigned(raw, assertionAlgs())
	if err != nil {
		return nil, claims, reject("not a JWS signed with an accepted algorithm (%s)", joinAlgs())
	}
	if len(tok.Headers) != 1 {
		return nil, claims, reject("exactly one signature expected")
	}
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return nil, claims, reject("claims are not a valid JWT claims set")
	}
	if claims.Issuer == "" {
		return nil, claims, reject("iss is missing")
	}
	if wantIssuer != "" && claims.Issuer != wantIssuer {
		return nil, claims, reject("iss does not match client_id")
	}
	client, err := v.clients.Get(ctx, claims.Issuer)
	if errors.Is(err, ErrClientNotFound) {
		return nil, claims, reject("unknown client")
	}
	if err != nil {
		return nil, claims, err
	}
	if client.publicKey == nil {
		return nil, claims, reject("the client has no registered key")
	}
	alg := tok.Headers[0].Algorithm
	if !slices.Contains(client.AuthAlgs, alg) {
		return nil, claims, reject("algorithm %s is not registered for this client", alg)
	}
	// Verify only: the claims already decoded are those of the payload
	// the signature covers.
	if err := tok.Claims(client.publicKey); err != nil {
		return nil, claims, reject("signature does not verify with the client's registered key")
	}
	return client, claims, nil
}

func joinAlgs() string { return strings.Join(clientAuthAlgs(), ", ") }

// verifyClientAssertion checks a private_key_jwt client assertion:
// signature, iss = sub = client_id (clientID, when the request also names
// it), aud naming the token endpoint or the issuer, exp present, not past
// and at most 60 minutes ahead, iat and nbf not in the future, jti present.
// It does not record the jti.
func (v *assertionVerifier) verifyClientAssertion(ctx context.Context, raw, clientID string) (*Client, clientJWTClaims, error) {
	client, c, err := v.parseSigned(ctx, raw, clientID)
	if err != nil {
		return nil, c, err
	}
	if c.Subject != c.Issuer {
		return nil, c, reject("iss and sub must both be the client_id")
	}
	audOK := false
	for _, a := range v.audiences {
		if c.Audience.Contains(a) {
			audOK = true
			break
		}
	}
	if !audOK {
		return nil, c, reject("aud must contain the token endpoint URL %s", v.audiences[0])
	}
	now := v.now()
	if err := checkTimes(c, now, maxAssertionLifetime); err != nil {
		return nil, c, err
	}
	if c.ID == "" {
		return nil, c, reject("jti is missing")
	}
	if len(c.ID) > maxJTILen {
		return nil, c, reject("jti longer than %d bytes", maxJTILen)
	}
	return client, c, nil
}

// checkTimes applies the time rules common to client-signed JWTs: exp
// present, not past (with clock skew) and at most maxAhead in the future;
// iat and nbf, when present, not in the future.
func checkTimes(c clientJWTClaims, now time.Time, maxAhead time.Duration) error {
	if c.Expiry == nil {
		return reject("exp is missing")
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(clockSkew)) {
		return reject("the JWT has expired")
	}
	if exp.After(now.Add(maxAhead + clockSkew)) {
		return reject("exp is more than %s ahead", maxAhead)
	}
	if c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(clockSkew)) {
		return reject("iat is in the future")
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(clockSkew)) {
		return reject("the JWT is not valid yet (nbf)")
	}
	return nil
}

// useJTI records a JWT id as used until exp, within tx (or on its own when
// tx is nil). It reports false when the id was already used by the same
// client for the same purpose and has not expired: a replay. An expired
// record is reused in place.
func (s *Server) useJTI(ctx context.Context, tx *sqlx.Tx, kind, clientID, jti string, exp time.Time) (bool, error) {
	return s.store.useJTI(ctx, tx, kind, clientID, jti, exp.UTC().Add(clockSkew), s.now())
}
