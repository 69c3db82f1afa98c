package oidc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// TestRelyingPartyInterop runs the provider on a real listener and uses
// coreos/go-oidc and golang.org/x/oauth2, as an independent relying party
// would: discovery, code exchange with PKCE and a private_key_jwt
// assertion signed RS512, ID-token verification against JWKS, userinfo.
// The code comes from IssueCode, standing in for /authorize.
func TestRelyingPartyInterop(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		issuer := "http://" + ln.Addr().String()
		e := newEnv(t, db, func(c *Config) { c.Issuer, c.Development = issuer, true })
		go func() { _ = e.app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
		t.Cleanup(func() { _ = e.app.ShutdownWithTimeout(5 * time.Second) })

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		provider, err := oidc.NewProvider(ctx, issuer)
		require.NoError(t, err)
		var meta struct {
			VTRValues []string `json:"vtr_values_supported"`
		}
		require.NoError(t, provider.Claims(&meta))
		require.Len(t, meta.VTRValues, 9)

		endpoint := provider.Endpoint()
		endpoint.AuthStyle = oauth2.AuthStyleInParams
		cfg := oauth2.Config{ClientID: e.rp.ID, Endpoint: endpoint, RedirectURL: rpRedirect,
			Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
		verifier := provider.Verifier(&oidc.Config{ClientID: e.rp.ID, SupportedSigningAlgs: []string{oidc.RS512}})

		for _, tc := range []struct{ vtr, vot string }{
			{`["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`, "P9.Cp.Cd"},
			{`["P5.Cp.Cd", "P9.Cm"]`, "P5.Cp.Cd"},
			{`["P0.Cp"]`, "P0.Cp"},
		} {
			t.Run(tc.vtr, func(t *testing.T) {
				vtr, err := e.rp.RequestedVectors(tc.vtr) // as /authorize reads it
				require.NoError(t, err)
				vot, ok := trust.Choose(vtr, trust.P9, trust.Credentials{trust.Cp, trust.Cd})
				require.True(t, ok)
				require.Equal(t, tc.vot, vot.String())
				scopes, err := ResolveScopes(e.rp, "openid profile email", vot.Level)
				require.NoError(t, err)

				pkce := oauth2.GenerateVerifier()
				nonce := "n-" + secrets.NewID()
				code, err := e.srv.IssueCode(ctx, Grant{
					ClientID: e.rp.ID, RedirectURI: rpRedirect, AccountID: testAccount, Scopes: scopes,
					Nonce: nonce, VoT: vot.String(), VTR: vtr, AuthTime: time.Now().Add(-time.Minute),
					Credentials:   trust.Credentials{trust.Cp, trust.Cd},
					CodeChallenge: oauth2.S256ChallengeFromVerifier(pkce), CodeChallengeMethod: CodeChallengeS256,
				})
				require.NoError(t, err)

				claims := e.assertionClaims(e.rp.ID)
				claims["aud"] = endpoint.TokenURL
				assertion := signJWT(t, e.rpKey, jose.RS512, claims)
				tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce),
					oauth2.SetAuthURLParam("client_assertion_type", ClientAssertionType),
					oauth2.SetAuthURLParam("client_assertion", assertion))
				require.NoError(t, err)
				require.Equal(t, "Bearer", tok.Type())
				require.NotEmpty(t, tok.RefreshToken)

				rawID, ok := tok.Extra("id_token").(string)
				require.True(t, ok)
				idt, err := verifier.Verify(ctx, rawID)
				require.NoError(t, err)
				require.Equal(t, nonce, idt.Nonce)
				var idc struct {
					VoT       string `json:"vot"`
					VTM       string `json:"vtm"`
					NHSNumber string `json:"nhs_number"`
				}
				require.NoError(t, idt.Claims(&idc))
				require.Equal(t, tc.vot, idc.VoT)
				require.Equal(t, issuer+"/trustmark/"+ln.Addr().String(), idc.VTM)
				if vot.Level >= trust.P5 {
					require.Equal(t, "9000000009", idc.NHSNumber)
				} else {
					require.Empty(t, idc.NHSNumber, "profile is not released below P5")
				}

				ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
				require.NoError(t, err)
				require.Equal(t, idt.Subject, ui.Subject)
				require.Equal(t, "jane@example.test", ui.Email)
				require.True(t, ui.EmailVerified)
			})
		}
	})
}
