package servertest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/secrets"
)

// RP is an independent relying party for tests: coreos/go-oidc and
// x/oauth2 with its own RSA key, registered like an NHS login client, with
// a callback server that answers its redirect URI.
type RP struct {
	t   testing.TB
	s   *Server
	key *rsa.PrivateKey
	// Client is the registration.
	Client *idp.Client
	// Config is the OAuth 2.0 configuration (endpoints from discovery).
	Config oauth2.Config
	// Provider is the discovered provider (JWKS, userinfo).
	Provider *oidc.Provider
	callback *httptest.Server
}

// NewRP registers a relying party allowed the NHS profile vectors and the
// given scopes (besides openid); a public one uses PKCE without a key.
func NewRP(t testing.TB, s *Server, public bool, scopes ...string) *RP {
	t.Helper()
	return NewRPWithID(t, s, "", public, scopes...)
}

// NewRPWithID is NewRP with a chosen client_id (configuration such as
// IDLINK_ASSERTED_LOGIN_PAIRS names clients before they exist); "" lets
// the server choose.
func NewRPWithID(t testing.TB, s *Server, id string, public bool, scopes ...string) *RP {
	t.Helper()
	callback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("relying party callback"))
	}))
	t.Cleanup(callback.Close)
	c := idp.Client{
		ID: id, Name: "Test Health Service", RedirectURIs: []string{callback.URL + "/callback"},
		Scopes: append([]string{"openid"}, scopes...), VTR: idp.NHSProfileVectors(), Public: public,
	}
	r := &RP{t: t, s: s, callback: callback}
	if !public {
		var err error
		r.key, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&r.key.PublicKey)
		require.NoError(t, err)
		c.PublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		c.RefreshTokens = true
	}
	created, err := s.OIDC.Clients().Create(context.Background(), c)
	require.NoError(t, err)
	r.Client = created
	r.Provider, err = oidc.NewProvider(context.Background(), s.URL)
	require.NoError(t, err)
	ep := r.Provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	r.Config = oauth2.Config{ClientID: created.ID, Endpoint: ep, RedirectURL: callback.URL + "/callback", Scopes: append([]string{"openid"}, scopes...)}
	return r
}

// AuthRequest is one authorization request and what it needs to finish.
type AuthRequest struct {
	URL, State, Nonce, Verifier string
}

// Request builds an authorization request URL with state, nonce, PKCE and
// the extra parameters.
func (r *RP) Request(extra map[string]string) AuthRequest {
	a := AuthRequest{State: secrets.NewID(), Nonce: secrets.NewID(), Verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(a.Nonce), oauth2.S256ChallengeOption(a.Verifier)}
	for k, v := range extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	a.URL = r.Config.AuthCodeURL(a.State, opts...)
	return a
}

// Returned checks that the browser came back to the relying party and
// returns the query it brought.
func (r *RP) Returned(p *Page, a AuthRequest) url.Values {
	r.t.Helper()
	require.Equal(r.t, r.CallbackURL(), p.URL.Scheme+"://"+p.URL.Host+p.URL.Path, "ended on %s (%s) %v", p.URL, p.H1(), p.Errors())
	q := p.URL.Query()
	require.Equal(r.t, a.State, q.Get("state"))
	return q
}

// CallbackURL is the relying party's redirect URI.
func (r *RP) CallbackURL() string { return r.callback.URL + "/callback" }

// Exchange redeems a code with a private_key_jwt assertion signed RS512
// and verifies the ID token against the provider's JWKS.
func (r *RP) Exchange(code string, a AuthRequest) (*oauth2.Token, *oidc.IDToken, map[string]any) {
	r.t.Helper()
	ctx := context.Background()
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(a.Verifier)}
	if r.key != nil {
		opts = append(opts, oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
			oauth2.SetAuthURLParam("client_assertion", r.Assertion()))
	}
	tok, err := r.Config.Exchange(ctx, code, opts...)
	require.NoError(r.t, err)
	raw, ok := tok.Extra("id_token").(string)
	require.True(r.t, ok, "an id_token in the response")
	idt, err := r.Provider.Verifier(&oidc.Config{ClientID: r.Client.ID, SupportedSigningAlgs: []string{oidc.RS512}}).Verify(ctx, raw)
	require.NoError(r.t, err)
	require.Equal(r.t, a.Nonce, idt.Nonce)
	claims := map[string]any{}
	require.NoError(r.t, idt.Claims(&claims))
	return tok, idt, claims
}

// Key is the relying party's private key (nil for a public client), for
// tests that sign their own assertions.
func (r *RP) Key() *rsa.PrivateKey { return r.key }

// UserInfo reads /userinfo with tok's access token and returns its claims
// (where NHS login's relying parties find every scope claim beyond the
// ID token's few).
func (r *RP) UserInfo(tok *oauth2.Token) map[string]any {
	r.t.Helper()
	info, err := r.Provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	require.NoError(r.t, err)
	claims := map[string]any{}
	require.NoError(r.t, info.Claims(&claims))
	return claims
}

// Assertion returns a fresh private_key_jwt client assertion.
func (r *RP) Assertion() string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: r.key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(r.t, err)
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: r.Client.ID, Subject: r.Client.ID, Audience: jwt.Audience{r.Config.Endpoint.TokenURL},
		ID: secrets.NewID(), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
	require.NoError(r.t, err)
	return raw
}

// Sign returns a JWT with claims signed RS512 by the relying party's key
// (an asserted_login_identity, say).
func (r *RP) Sign(claims map[string]any) string {
	r.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: r.key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(r.t, err)
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	require.NoError(r.t, err)
	return raw
}
