package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
)

// unsignedJWT builds an "alg":"none" JWT.
func unsignedJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// tokenRequest is an authorization_code request with a code that does not
// exist: a request whose client authentication passes gets invalid_grant.
func tokenRequest(auth url.Values) url.Values {
	f := url.Values{"grant_type": {GrantTypeAuthorizationCode}, "code": {"no-such-code"}, "redirect_uri": {rpRedirect}}
	for k, v := range auth {
		f[k] = v
	}
	return f
}

func TestClientAuthentication(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		rp2Key := testKey(t, "rp2")
		_, err := e.srv.Clients().Create(ctx, Client{
			ID: "rp2", Name: "RP2 (PS256)", RedirectURIs: []string{"https://rp2.example/cb"},
			PublicKeyPEM: publicPEM(t, rp2Key), AuthAlgs: []string{"PS256"},
		})
		require.NoError(t, err)
		now := e.clock.Now()
		with := func(mutate func(map[string]any)) url.Values { return clientAuth(e.assertion(mutate)) }
		signedBy := func(key any, alg jose.SignatureAlgorithm, mutate func(map[string]any)) url.Values {
			c := e.assertionClaims(e.rp.ID)
			if mutate != nil {
				mutate(c)
			}
			return clientAuth(signJWT(t, key, alg, c))
		}
		tests := []struct {
			name    string
			auth    url.Values
			header  string
			wantErr string // substring of error_description; "" means authentication passes
		}{
			{name: "valid", auth: with(nil)},
			{name: "valid with client_id", auth: func() url.Values {
				v := with(nil)
				v.Set("client_id", e.rp.ID)
				return v
			}()},
			{name: "aud is the issuer", auth: with(func(c map[string]any) { c["aud"] = testIssuer })},
			{name: "aud array", auth: with(func(c map[string]any) { c["aud"] = []string{"https://other", testIssuer + "/token"} })},
			{name: "expired within skew", auth: with(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })},
			{name: "exp 60 minutes ahead", auth: with(func(c map[string]any) { c["exp"] = now.Add(60 * time.Minute).Unix() })},
			{name: "no iat", auth: with(func(c map[string]any) { delete(c, "iat") })},
			{name: "PS256 client", auth: func() url.Values {
				c := e.assertionClaims("rp2")
				return clientAuth(signJWT(t, rp2Key, jose.PS256, c))
			}()},

			{name: "no authentication", auth: url.Values{}, wantErr: "client authentication is required"},
			{name: "client_id only for a confidential client", auth: url.Values{"client_id": {e.rp.ID}}, wantErr: "must authenticate with private_key_jwt"},
			{name: "unknown client_id only", auth: url.Values{"client_id": {"nobody"}}, wantErr: "unknown client"},
			{name: "client_secret", auth: url.Values{"client_id": {e.rp.ID}, "client_secret": {"s"}}, wantErr: "only private_key_jwt"},
			{name: "basic auth header", auth: with(nil), header: "Basic cnAxOnM=", wantErr: "only private_key_jwt"},
			{name: "wrong assertion type", auth: func() url.Values {
				v := with(nil)
				v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
				return v
			}(), wantErr: "client_assertion_type"},
			{name: "assertion without type", auth: url.Values{"client_assertion": {e.assertion(nil)}}, wantErr: "client_assertion_type"},
			{name: "type without assertion", auth: url.Values{"client_assertion_type": {ClientAssertionType}}, wantErr: "client_assertion is required"},
			{name: "expired", auth: with(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), wantErr: "expired"},
			{name: "no exp", auth: with(func(c map[string]any) { delete(c, "exp") }), wantErr: "exp is missing"},
			{name: "exp too far ahead", auth: with(func(c map[string]any) { c["exp"] = now.Add(62 * time.Minute).Unix() }), wantErr: "ahead"},
			{name: "exp not a number", auth: with(func(c map[string]any) { c["exp"] = "tomorrow" }), wantErr: "claims"},
			{name: "iat in the future", auth: with(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }), wantErr: "iat"},
			{name: "nbf in the future", auth: with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }), wantErr: "nbf"},
			{name: "no jti", auth: with(func(c map[string]any) { delete(c, "jti") }), wantErr: "jti is missing"},
			{name: "long jti", auth: with(func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }), wantErr: "jti longer"},
			{name: "wrong audience", auth: with(func(c map[string]any) { c["aud"] = "https://other.example/token" }), wantErr: "aud"},
			{name: "no audience", auth: with(func(c map[string]any) { delete(c, "aud") }), wantErr: "aud"},
			{name: "iss differs from sub", auth: with(func(c map[string]any) { c["sub"] = "someone" }), wantErr: "iss and sub"},
			{name: "no sub", auth: with(func(c map[string]any) { delete(c, "sub") }), wantErr: "iss and sub"},
			{name: "no iss", auth: with(func(c map[string]any) { delete(c, "iss") }), wantErr: "iss is missing"},
			{name: "unknown issuer", auth: with(func(c map[string]any) { c["iss"], c["sub"] = "nobody", "nobody" }), wantErr: "unknown client"},
			{name: "client_id differs from iss", auth: func() url.Values {
				v := with(nil)
				v.Set("client_id", "rp2")
				return v
			}(), wantErr: "iss does not match client_id"},
			{name: "signed by another key", auth: signedBy(testKey(t, "other"), jose.RS512, nil), wantErr: "signature"},
			{name: "signed by another client's key", auth: signedBy(rp2Key, jose.RS512, nil), wantErr: "signature"},
			{name: "alg not registered for the client", auth: signedBy(e.rpKey, jose.RS256, nil), wantErr: "RS256 is not registered"},
			{name: "alg none", auth: clientAuth(unsignedJWT(e.assertionClaims(e.rp.ID))), wantErr: "accepted algorithm"},
			{name: "HS256 keyed with the public key (alg confusion)", auth: signedBy([]byte(e.rp.PublicKeyPEM), jose.HS256, nil), wantErr: "accepted algorithm"},
			{name: "HS512", auth: signedBy([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), jose.HS512, nil), wantErr: "accepted algorithm"},
			{name: "ES256", auth: clientAuth("eyJhbGciOiJFUzI1NiJ9.e30.AAAA"), wantErr: "accepted algorithm"},
			{name: "garbage", auth: clientAuth("not-a-jwt"), wantErr: "accepted algorithm"},
			{name: "three empty parts", auth: clientAuth(".."), wantErr: "accepted algorithm"},
			{name: "JSON serialization", auth: clientAuth(`{"payload":"e30","signatures":[]}`), wantErr: "accepted algorithm"},
			{name: "oversized", auth: with(func(c map[string]any) { c["pad"] = strings.Repeat("p", maxAssertionSize) }), wantErr: "longer than"},
			{name: "claims not an object", auth: func() url.Values {
				signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: e.rpKey}, nil)
				jws, _ := signer.Sign([]byte(`[1,2]`))
				s, _ := jws.CompactSerialize()
				return clientAuth(s)
			}(), wantErr: "claims"},
			{name: "public client with an assertion", auth: func() url.Values {
				c := e.assertionClaims(e.app1.ID)
				return clientAuth(signJWT(t, e.rpKey, jose.RS512, c))
			}(), wantErr: "no registered key"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := tokenRequest(tc.auth)
				req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(f.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp := e.do(req)
				body := jsonBody(t, resp)
				if tc.wantErr == "" {
					require.Equal(t, http.StatusBadRequest, resp.StatusCode, "body: %v", body)
					require.Equal(t, "invalid_grant", body["error"], "authentication passed; the code is unknown")
					return
				}
				// NHS login's error table: invalid_client is a 400.
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "body: %v", body)
				require.Equal(t, "invalid_client", body["error"])
				require.Contains(t, body["error_description"], tc.wantErr)
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			})
		}
	})
}

func TestClientAssertionReplay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		a := e.assertion(func(c map[string]any) { c["jti"] = "fixed-jti" })
		resp, body := e.postForm("/token", tokenRequest(clientAuth(a)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"], "first use authenticates")
		resp, body = e.postForm("/token", tokenRequest(clientAuth(a)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_client", body["error"])
		require.Contains(t, body["error_description"], "jti already used")

		// A new assertion reusing the jti is a replay too, until the first
		// assertion has expired.
		b := e.assertion(func(c map[string]any) { c["jti"] = "fixed-jti" })
		resp, body = e.postForm("/token", tokenRequest(clientAuth(b)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_client", body["error"])

		// Another client may use the same jti value.
		rp2Key := testKey(t, "rp2")
		_, err := e.srv.Clients().Create(context.Background(), Client{ID: "rp2", Name: "RP2",
			RedirectURIs: []string{"https://rp2.example/cb"}, PublicKeyPEM: publicPEM(t, rp2Key)})
		require.NoError(t, err)
		c := e.assertionClaims("rp2")
		c["jti"] = "fixed-jti"
		_, body = e.postForm("/token", tokenRequest(clientAuth(signJWT(t, rp2Key, jose.RS512, c))))
		require.Equal(t, "invalid_grant", body["error"])

		// After expiry (and purge) the record is gone and the value is free.
		e.clock.Advance(5*time.Minute + clockSkew + time.Second)
		require.NoError(t, e.srv.Purge(context.Background()))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_jtis`))
		d := e.assertion(func(c map[string]any) { c["jti"] = "fixed-jti" })
		_, body = e.postForm("/token", tokenRequest(clientAuth(d)))
		require.Equal(t, "invalid_grant", body["error"])
	})
}

func TestJTIReusedInPlaceAfterExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		exp := e.clock.Now().Add(time.Minute)
		ok, err := e.srv.useJTI(ctx, nil, jtiClientAssertion, "rp1", "j", exp)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = e.srv.useJTI(ctx, nil, jtiClientAssertion, "rp1", "j", exp)
		require.NoError(t, err)
		require.False(t, ok)
		ok, err = e.srv.useJTI(ctx, nil, jtiAssertedLogin, "rp1", "j", exp)
		require.NoError(t, err)
		require.True(t, ok, "kinds do not share ids")
		e.clock.Advance(2 * time.Minute)
		ok, err = e.srv.useJTI(ctx, nil, jtiClientAssertion, "rp1", "j", e.clock.Now().Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok, "an expired record does not block without a purge")
	})
}

// fuzzNow is the fixed clock of FuzzClientAssertion; the committed seeds
// (testdata/fuzz/FuzzClientAssertion) are valid at this time.
var fuzzNow = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

type mapLookup map[string]*Client

func (m mapLookup) Get(_ context.Context, id string) (*Client, error) {
	if c, ok := m[id]; ok {
		return c, nil
	}
	return nil, ErrClientNotFound
}

// fuzzVerifier verifies assertions for client rp1 (key testdata/rp1,
// RS512 and PS256) and the public client app1 at fuzzNow.
func fuzzVerifier(t testing.TB) *assertionVerifier {
	cs := &Clients{}
	rp := Client{ID: "rp1", Name: "RP1", RedirectURIs: []string{rpRedirect}, PublicKeyPEM: publicPEM(t, testKey(t, "rp1")),
		AuthAlgs: []string{"RS512", "PS256"}}
	require.NoError(t, cs.normalize(&rp))
	app := Client{ID: "app1", Name: "App", RedirectURIs: []string{appRedirect}, Public: true}
	require.NoError(t, cs.normalize(&app))
	return &assertionVerifier{
		clients:   mapLookup{"rp1": &rp, "app1": &app},
		now:       func() time.Time { return fuzzNow },
		audiences: []string{testIssuer + "/token", testIssuer},
	}
}

// FuzzClientAssertion feeds arbitrary client assertions to the verifier:
// it must never panic, and whatever it accepts must satisfy every rule.
func FuzzClientAssertion(f *testing.F) {
	key := testKey(f, "rp1")
	base := map[string]any{
		"iss": "rp1", "sub": "rp1", "aud": testIssuer + "/token",
		"exp": fuzzNow.Add(5 * time.Minute).Unix(), "iat": fuzzNow.Unix(), "jti": "seed-1",
	}
	f.Add(signJWT(f, key, jose.RS512, base), "rp1")
	f.Add(signJWT(f, key, jose.PS256, base), "")
	f.Add(signJWT(f, []byte(publicPEM(f, key)), jose.HS256, base), "rp1")
	f.Add(unsignedJWT(base), "rp1")
	f.Add("eyJhbGciOiJSUzUxMiJ9.e30.", "")
	f.Add("", "")
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, raw, clientID string) {
		client, c, err := v.verifyClientAssertion(context.Background(), raw, clientID)
		if err != nil {
			var rj *rejection
			require.ErrorAs(t, err, &rj, "only rejections, no other errors")
			return
		}
		require.Equal(t, "rp1", client.ID, "only the client with a key can authenticate")
		require.Equal(t, client.ID, c.Issuer)
		require.Equal(t, client.ID, c.Subject)
		if clientID != "" {
			require.Equal(t, clientID, client.ID)
		}
		require.True(t, c.Audience.Contains(testIssuer+"/token") || c.Audience.Contains(testIssuer))
		require.NotNil(t, c.Expiry)
		require.True(t, fuzzNow.Before(c.Expiry.Time().Add(clockSkew)))
		require.False(t, c.Expiry.Time().After(fuzzNow.Add(maxAssertionLifetime+clockSkew)))
		require.NotEmpty(t, c.ID)
		require.LessOrEqual(t, len(c.ID), maxJTILen)
		require.LessOrEqual(t, len(raw), maxAssertionSize)
		tok, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS512, jose.PS256})
		require.NoError(t, err)
		_, err = tok.Verify(&key.PublicKey)
		require.NoError(t, err, "accepted only when signed by the registered key")
	})
}

// The committed fuzz seeds include assertions that pass, so that the
// fuzzer explores the accepting path too.
func TestFuzzSeedsIncludeValidAssertions(t *testing.T) {
	v := fuzzVerifier(t)
	for _, name := range []string{"valid_rs512", "valid_no_clientid", "valid_aud_array", "valid_ps256"} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzClientAssertion", name))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Len(t, lines, 3)
		raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		require.NoError(t, err)
		clientID, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "string("), ")"))
		require.NoError(t, err)
		_, _, err = v.verifyClientAssertion(context.Background(), raw, clientID)
		require.NoError(t, err, name)
	}
}
