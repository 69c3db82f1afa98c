package oidc

import (
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/trust"
)

func TestUserinfo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(nil)
		at := tokens["access_token"].(string)
		_, id := e.verifyToken(tokens["id_token"].(string))

		resp, body := e.userinfo(at)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		require.Equal(t, map[string]any{
			"sub": id["sub"], "iss": testIssuer, "aud": e.rp.ID,
			"nhs_number": "9000000009", "family_name": "Smith", "birthdate": "2010-10-22", "identity_proofing_level": "P9",
			"email": "jane@example.test", "email_verified": true,
			"phone_number": "+447700900123", "phone_number_verified": true, "phone_number_pds_matched": true,
		}, body, "claims of the granted scopes only")

		// POST with the header, and POST with the token in the form body.
		req := httptest.NewRequest(http.MethodPost, "/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		require.Equal(t, http.StatusOK, e.do(req).StatusCode)
		resp, body = e.postForm("/userinfo", url.Values{"access_token": {at}})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.Equal(t, id["sub"], body["sub"])
	})
}

func TestUserinfoErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(nil)
		at := tokens["access_token"].(string)
		// A token with the right claims signed by a key that is not ours.
		_, claims := e.verifyToken(at)
		forged := signJWT(t, testKey(t, "other"), jose.RS512, claims)
		jwksResp := e.do(httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
		jwksBody, _ := io.ReadAll(jwksResp.Body)

		tests := []struct {
			name      string
			req       func() *http.Request
			status    int
			code      string // "" means no error code in the challenge
			challenge string
		}{
			{"no token", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/userinfo", nil) }, 401, "", `Bearer realm="https://id.example.test"`},
			{"basic scheme", func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
				r.Header.Set("Authorization", "Basic abc")
				return r
			}, 400, "invalid_request", ""},
			{"bearer without token", func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
				r.Header.Set("Authorization", "Bearer ")
				return r
			}, 400, "invalid_request", ""},
			{"token in the query", func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/userinfo?access_token="+at, nil)
			}, 400, "invalid_request", ""},
			{"header and form", func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/userinfo", strings.NewReader("access_token="+at))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Authorization", "Bearer "+at)
				return r
			}, 400, "invalid_request", ""},
			{"garbage", bearer("not.a.token"), 401, "invalid_token", ""},
			{"oversized", func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/userinfo", strings.NewReader("access_token="+strings.Repeat("a", maxAccessTokenSize+1)))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}, 401, "invalid_token", ""},
			{"forged signature", bearer(forged), 401, "invalid_token", ""},
			{"ID token instead of access token", bearer(tokens["id_token"].(string)), 401, "invalid_token", ""},
			{"alg none", bearer(unsignedJWT(claims)), 401, "invalid_token", ""},
			{"HS256 keyed with the JWKS", bearer(signJWT(t, jwksBody, jose.HS256, claims)), 401, "invalid_token", ""},
			{"RS256 by another key", bearer(signJWT(t, testKey(t, "other"), jose.RS256, claims)), 401, "invalid_token", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp := e.do(tc.req())
				require.Equal(t, tc.status, resp.StatusCode)
				ch := resp.Header.Get("WWW-Authenticate")
				require.True(t, strings.HasPrefix(ch, "Bearer "), "challenge %q", ch)
				if tc.code == "" {
					require.NotContains(t, ch, "error=")
				} else {
					require.Contains(t, ch, `error="`+tc.code+`"`)
					require.Equal(t, tc.code, jsonBody(t, resp)["error"])
				}
				if tc.challenge != "" {
					require.Equal(t, tc.challenge, ch)
				}
			})
		}

		// Expired: 5 minutes later.
		e.clock.Advance(DefaultAccessTokenLifetime)
		resp, _ := e.userinfo(at)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), "expired")
	})
}

func bearer(tok string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
}

func TestUserinfoInsufficientScope(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(nil)
		f := e.refreshForm(tokens["refresh_token"].(string))
		f.Set("scope", "email")
		resp, body := e.postForm("/token", f)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.NotContains(t, body, "id_token", "no ID token without openid")
		resp, body = e.userinfo(body["access_token"].(string))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Equal(t, "insufficient_scope", body["error"])
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), `scope="openid"`)
	})
}

func TestClaimsByScopeAndLevel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		p5vtr, _ := trust.ParseVTR(`["P5.Cp.Cd","P5.Cm"]`)
		tests := []struct {
			name   string
			mutate func(*Grant)
			want   []string // claims beyond sub, iss, aud
		}{
			{"openid only", func(g *Grant) { g.Scopes = []string{ScopeOpenID} }, nil},
			{"basic_demographics", func(g *Grant) { g.Scopes = []string{ScopeOpenID, ScopeBasicDemographics} },
				[]string{"family_name", "birthdate", "identity_proofing_level"}},
			{"profile_extended and landline", func(g *Grant) { g.Scopes = []string{ScopeOpenID, ScopeProfileExtended, ScopeLandline} },
				[]string{"given_name", "landline_number", "landline_number_verified"}},
			{"gp scopes at P9", func(g *Grant) {
				g.Scopes = []string{ScopeOpenID, ScopeGPRegistrationDetails, ScopeGPIntegrationCredentials}
			}, []string{"gp_registration_details", "gp_integration_credentials"}},
			{"P5 login of a P9 person", func(g *Grant) {
				g.VTR, g.VoT = p5vtr, "P5.Cp.Cd"
				g.Scopes = []string{ScopeOpenID, ScopeProfile}
			}, []string{"nhs_number", "family_name", "birthdate", "identity_proofing_level"}},
		}
		for _, mode := range []string{IDTokenClaimsNHS, IDTokenClaimsAll} {
			rp := *e.rp
			rp.IDTokenClaims = mode
			_, err := e.srv.Clients().Update(context.Background(), rp)
			require.NoError(t, err)
			for _, tc := range tests {
				t.Run(mode+"/"+tc.name, func(t *testing.T) { checkClaims(t, e, mode, tc.name, tc.mutate, tc.want) })
			}
		}
	})
}

// checkClaims logs in with mutate and checks that /userinfo releases
// exactly want, and that the ID token carries them all (mode "all") or
// only NHS login's ID token claims among them (mode "nhs").
func checkClaims(t *testing.T, e *env, mode, name string, mutate func(*Grant), want []string) {
	tokens := e.login(mutate)
	_, body := e.userinfo(tokens["access_token"].(string))
	var got []string
	for k := range body {
		if k != "sub" && k != "iss" && k != "aud" {
			got = append(got, k)
		}
	}
	require.ElementsMatch(t, want, got)
	_, id := e.verifyToken(tokens["id_token"].(string))
	for _, k := range want {
		if mode == IDTokenClaimsAll || slices.Contains(nhsIDTokenClaims, k) {
			require.Equal(t, body[k], id[k], "ID token carries the same scope claim %s", k)
		} else {
			require.NotContains(t, id, k, "NHS login's ID token has no %s: /userinfo has it", k)
		}
	}
	if name == "P5 login of a P9 person" {
		require.Equal(t, "P9", body["identity_proofing_level"], "the person's level, above the vot")
		require.Equal(t, "P5.Cp.Cd", id["vot"])
	}
	if name == "gp scopes at P9" {
		require.Equal(t, map[string]any{"gp_ods_code": "Y12345"}, body["gp_registration_details"])
		require.Equal(t, map[string]any{"gp_user_id": "u-1", "gp_linkage_key": "lk-1", "gp_ods_code": "Y12345"}, body["gp_integration_credentials"])
	}
}

func TestScopeClaimsGating(t *testing.T) {
	p := fullPerson()
	all := SupportedScopes()
	at := func(l trust.Level) map[string]any { return scopeClaims(p, all, l, "meta") }
	require.NotContains(t, at(trust.P0), "nhs_number")
	require.NotContains(t, at(trust.P0), "gp_registration_details")
	require.Contains(t, at(trust.P0), "email")
	require.Contains(t, at(trust.P0), "client_user_metadata")
	require.Contains(t, at(trust.P5), "nhs_number")
	require.NotContains(t, at(trust.P5), "gp_integration_credentials")
	require.Contains(t, at(trust.P9), "gp_integration_credentials")
	// Absent values are omitted, never null or "".
	empty := scopeClaims(Person{ProofingLevel: trust.P5, GPIntegration: &GPIntegrationCredentials{}}, all, trust.P9, "")
	require.Equal(t, map[string]any{"identity_proofing_level": "P5"}, empty)
}

func (e *env) patchMetadata(token, contentType, body string) (*http.Response, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPatch, "/userinfo", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp := e.do(req)
	return resp, jsonBody(e.t, resp)
}

// decryptMetadata decrypts a generated client_user_metadata as NHS
// login's examples do: PKCS#1 OAEP with its defaults (SHA-1, MGF1-SHA-1).
func decryptMetadata(t *testing.T, key *rsa.PrivateKey, v string) []byte {
	t.Helper()
	return decryptMetadataWith(t, sha1.New(), key, v)
}

func decryptMetadataWith(t *testing.T, h hash.Hash, key *rsa.PrivateKey, v string) []byte {
	t.Helper()
	ct, err := base64.RawURLEncoding.DecodeString(v)
	require.NoError(t, err)
	pt, err := rsa.DecryptOAEP(h, nil, key, ct, nil)
	require.NoError(t, err)
	return pt
}

func TestClientUserMetadata(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(func(g *Grant) { g.Scopes = []string{ScopeOpenID, ScopeClientMetadata} })
		at := tokens["access_token"].(string)

		// Default: a random value encrypted to the client's key, stable.
		_, body := e.userinfo(at)
		def := body["client_user_metadata"].(string)
		require.Len(t, decryptMetadata(t, e.rpKey, def), 32)
		_, id := e.verifyToken(tokens["id_token"].(string))
		require.NotContains(t, id, "client_user_metadata", "not an NHS login ID token claim")
		ct, err := base64.RawURLEncoding.DecodeString(def)
		require.NoError(t, err)
		_, err = rsa.DecryptOAEP(sha256.New(), nil, e.rpKey, ct, nil)
		require.Error(t, err, "SHA-1 OAEP by default, not SHA-256")
		_, body = e.userinfo(at)
		require.Equal(t, def, body["client_user_metadata"])

		resp, _ := e.patchMetadata(at, "application/json", `{"client_user_metadata":"hello ✓"}`)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		_, body = e.userinfo(at)
		require.Equal(t, "hello ✓", body["client_user_metadata"])

		resp, _ = e.patchMetadata(at, "application/json", `{"client_user_metadata":"`+strings.Repeat("é", MaxClientUserMetadata)+`"}`)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "1024 characters (2048 bytes) is allowed")

		resp, _ = e.patchMetadata(at, "application/json", `{"client_user_metadata":"auto"}`)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		_, body = e.userinfo(at)
		auto := body["client_user_metadata"].(string)
		require.NotEqual(t, def, auto)
		require.Len(t, decryptMetadata(t, e.rpKey, auto), 32)

		resp, _ = e.patchMetadata(at, "application/json", `{"client_user_metadata":""}`)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		_, body = e.userinfo(at)
		require.NotContains(t, body, "client_user_metadata", "cleared: omitted")

		for name, tc := range map[string]struct{ ct, body string }{
			"too long":      {"application/json", `{"client_user_metadata":"` + strings.Repeat("x", MaxClientUserMetadata+1) + `"}`},
			"not JSON":      {"application/json", `client_user_metadata=x`},
			"wrong type":    {"application/json", `{"client_user_metadata":5}`},
			"null":          {"application/json", `{"client_user_metadata":null}`},
			"missing":       {"application/json", `{}`},
			"unknown field": {"application/json", `{"client_user_metadata":"x","email":"a@b"}`},
			"two objects":   {"application/json", `{"client_user_metadata":"x"}{}`},
			"form body":     {"application/x-www-form-urlencoded", `client_user_metadata=x`},
			"oversized":     {"application/json", `{"client_user_metadata":"` + strings.Repeat(" ", maxPatchBody) + `"}`},
		} {
			t.Run(name, func(t *testing.T) {
				resp, body := e.patchMetadata(at, tc.ct, tc.body)
				require.Equal(t, http.StatusBadRequest, resp.StatusCode)
				require.Equal(t, "invalid_request", body["error"])
			})
		}

		// The metadata is per client: another client gets its own default,
		// encrypted to its own key.
		// This one asked for SHA-256 OAEP, and every claim in its ID token.
		rp2Key := testKey(t, "rp2")
		_, err = e.srv.Clients().Create(context.Background(), Client{ID: "rp2", Name: "RP2", RedirectURIs: []string{"https://rp2.example/cb"},
			PublicKeyPEM: publicPEM(t, rp2Key), Scopes: []string{ScopeOpenID, ScopeClientMetadata},
			MetadataOAEPHash: OAEPSHA256, IDTokenClaims: IDTokenClaimsAll})
		require.NoError(t, err)
		rp2 := e.loginAs("rp2", rp2Key, "https://rp2.example/cb", func(g *Grant) { g.Scopes = []string{ScopeOpenID, ScopeClientMetadata} })
		_, body = e.userinfo(rp2["access_token"].(string))
		require.Equal(t, "rp2", body["aud"])
		rp2Meta := body["client_user_metadata"].(string)
		require.Len(t, decryptMetadataWith(t, sha256.New(), rp2Key, rp2Meta), 32)
		_, id2 := e.verifyToken(rp2["id_token"].(string))
		require.Equal(t, rp2Meta, id2["client_user_metadata"])

		// Without the client_metadata scope, no PATCH.
		other := e.login(func(g *Grant) { g.Scopes = []string{ScopeOpenID, ScopeEmail} })
		resp, body = e.patchMetadata(other["access_token"].(string), "application/json", `{"client_user_metadata":"x"}`)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Equal(t, "insufficient_scope", body["error"])
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), `scope="client_metadata"`)
		resp, _ = e.patchMetadata("", "application/json", `{"client_user_metadata":"x"}`)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

		e.clock.Advance(DefaultAccessTokenLifetime)
		resp, _ = e.patchMetadata(at, "application/json", `{"client_user_metadata":"x"}`)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}
