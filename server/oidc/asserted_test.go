package oidc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

func TestAssertedLoginIdentity(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, func(c *Config) {
			c.AllowedAssertedPairs = map[string][]string{"rp1": {"rp2"}}
		})
		ctx := context.Background()
		rp2Key := testKey(t, "rp2")
		_, err := e.srv.Clients().Create(ctx, Client{ID: "rp2", Name: "RP2", RedirectURIs: []string{"https://rp2.example/cb"},
			PublicKeyPEM: publicPEM(t, rp2Key), Scopes: SupportedScopes(), VTR: NHSProfileVectors()})
		require.NoError(t, err)
		_, err = e.srv.Clients().Create(ctx, Client{ID: "rp3", Name: "RP3", RedirectURIs: []string{"https://rp3.example/cb"},
			PublicKeyPEM: publicPEM(t, testKey(t, "other"))})
		require.NoError(t, err)

		idJTI := func(tokens map[string]any) string {
			_, id := e.verifyToken(tokens["id_token"].(string))
			return id["jti"].(string)
		}
		code := idJTI(e.login(nil))
		rp2Tokens := e.loginAs("rp2", rp2Key, "https://rp2.example/cb", nil)
		rp2Code := idJTI(rp2Tokens)

		claims := func(mutate func(map[string]any)) map[string]any {
			now := e.clock.Now()
			c := map[string]any{"iss": "rp1", "code": code, "jti": secrets.NewID(), "iat": now.Unix(), "exp": now.Add(60 * time.Second).Unix()}
			if mutate != nil {
				mutate(c)
			}
			return c
		}
		byRP1 := func(mutate func(map[string]any)) string { return signJWT(t, e.rpKey, jose.RS512, claims(mutate)) }

		// Valid.
		raw := byRP1(nil)
		l, err := e.srv.VerifyAssertedLogin(ctx, raw, "rp2")
		require.NoError(t, err)
		require.Equal(t, AssertedLogin{AccountID: testAccount, FromClientID: "rp1", VoT: "P9.Cp.Cd",
			Credentials: trust.Credentials{trust.Cd, trust.Cp}, AuthTime: l.AuthTime}, l)
		require.False(t, l.AuthTime.IsZero())
		// Single use.
		_, err = e.srv.VerifyAssertedLoginIdentity(ctx, raw, "rp2")
		require.ErrorIs(t, err, ErrAssertedLoginIdentity)
		require.Contains(t, err.Error(), "jti already used")
		acct, err := e.srv.VerifyAssertedLoginIdentity(ctx, byRP1(nil), "rp2")
		require.NoError(t, err)
		require.Equal(t, testAccount, acct)

		now := e.clock.Now()
		tests := []struct {
			name, raw, target, want string
		}{
			{"pair not configured", byRP1(nil), "rp3", "may not assert"},
			{"reverse direction", signJWT(t, rp2Key, jose.RS512, claims(func(c map[string]any) { c["iss"], c["code"] = "rp2", rp2Code })), "rp1", "may not assert"},
			{"to itself", byRP1(nil), "rp1", "may not assert"},
			{"code of another client's ID token", byRP1(func(c map[string]any) { c["code"] = rp2Code }), "rp2", "does not name an ID token"},
			{"unknown code", byRP1(func(c map[string]any) { c["code"] = "nope" }), "rp2", "does not name an ID token"},
			{"no code", byRP1(func(c map[string]any) { delete(c, "code") }), "rp2", "code"},
			{"no jti", byRP1(func(c map[string]any) { delete(c, "jti") }), "rp2", "jti"},
			{"no iat", byRP1(func(c map[string]any) { delete(c, "iat") }), "rp2", "iat is missing"},
			{"no exp", byRP1(func(c map[string]any) { delete(c, "exp") }), "rp2", "exp is missing"},
			{"expired", byRP1(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "rp2", "expired"},
			{"exp too far ahead", byRP1(func(c map[string]any) { c["exp"] = now.Add(5 * time.Minute).Unix() }), "rp2", "ahead"},
			{"lifetime over 60 s", byRP1(func(c map[string]any) {
				c["iat"], c["exp"] = now.Add(-30*time.Second).Unix(), now.Add(45*time.Second).Unix()
			}), "rp2", "lifetime"},
			{"iat in the future", byRP1(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }), "rp2", "iat"},
			{"no iss", byRP1(func(c map[string]any) { delete(c, "iss") }), "rp2", "iss is missing"},
			{"unknown iss", byRP1(func(c map[string]any) { c["iss"] = "nobody" }), "rp2", "unknown client"},
			{"signed by another key", signJWT(t, testKey(t, "other"), jose.RS512, claims(nil)), "rp2", "signature"},
			{"signed by RP2", signJWT(t, rp2Key, jose.RS512, claims(nil)), "rp2", "signature"},
			{"alg none", unsignedJWT(claims(nil)), "rp2", "accepted algorithm"},
			{"HS256 with the public key", signJWT(t, []byte(e.rp.PublicKeyPEM), jose.HS256, claims(nil)), "rp2", "accepted algorithm"},
			{"alg not registered", signJWT(t, e.rpKey, jose.RS256, claims(nil)), "rp2", "not registered"},
			{"oversized", byRP1(func(c map[string]any) { c["pad"] = strings.Repeat("p", maxAssertionSize) }), "rp2", "longer than"},
			{"garbage", "a.b.c", "rp2", "accepted algorithm"},
			{"empty", "", "rp2", "accepted algorithm"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.srv.VerifyAssertedLoginIdentity(ctx, tc.raw, tc.target)
				require.ErrorIs(t, err, ErrAssertedLoginIdentity)
				require.Contains(t, err.Error(), tc.want)
			})
		}

		// A blocked account.
		p := fullPerson()
		p.Blocked = true
		e.people.set(testAccount, p)
		_, err = e.srv.VerifyAssertedLoginIdentity(ctx, byRP1(nil), "rp2")
		require.ErrorIs(t, err, ErrAccountBlocked)
		e.people.set(testAccount, fullPerson())

		// A revoked login (its code was replayed).
		g, verifier := e.grant(nil)
		c := e.issue(g)
		resp, first := e.postForm("/token", e.exchangeForm(c, verifier))
		require.Equal(t, 200, resp.StatusCode)
		e.postForm("/token", e.exchangeForm(c, verifier))
		revoked := idJTI(first)
		_, err = e.srv.VerifyAssertedLoginIdentity(ctx, byRP1(func(m map[string]any) { m["code"] = revoked }), "rp2")
		require.ErrorIs(t, err, ErrAssertedLoginIdentity)
		require.Contains(t, err.Error(), "revoked")

		// The ID token has expired.
		e.clock.Advance(DefaultIDTokenLifetime)
		_, err = e.srv.VerifyAssertedLoginIdentity(ctx, byRP1(nil), "rp2")
		require.ErrorIs(t, err, ErrAssertedLoginIdentity)
		require.Contains(t, err.Error(), "expired")
		require.False(t, errors.Is(err, ErrAccountBlocked))
	})
}
