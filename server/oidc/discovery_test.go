package oidc

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/trust"
)

func TestDiscovery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		resp := e.do(httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		d := jsonBody(t, resp)
		str := func(k string) string { return d[k].(string) }
		list := func(k string) []any { return d[k].([]any) }
		require.Equal(t, testIssuer, str("issuer"))
		require.Equal(t, testIssuer+"/authorize", str("authorization_endpoint"))
		require.Equal(t, testIssuer+"/token", str("token_endpoint"))
		require.Equal(t, testIssuer+"/userinfo", str("userinfo_endpoint"))
		require.Equal(t, testIssuer+"/.well-known/jwks.json", str("jwks_uri"))
		require.Equal(t, []any{"code"}, list("response_types_supported"))
		require.Equal(t, []any{"query"}, list("response_modes_supported"))
		require.Equal(t, []any{"authorization_code", "refresh_token"}, list("grant_types_supported"))
		require.Equal(t, []any{"public"}, list("subject_types_supported"))
		require.Equal(t, []any{"RS512"}, list("id_token_signing_alg_values_supported"))
		require.Equal(t, []any{"private_key_jwt"}, list("token_endpoint_auth_methods_supported"))
		require.Contains(t, list("token_endpoint_auth_signing_alg_values_supported"), "RS512")
		require.NotContains(t, list("token_endpoint_auth_signing_alg_values_supported"), "HS256")
		require.Equal(t, []any{"S256"}, list("code_challenge_methods_supported"))
		require.Equal(t, []any{"page", "touch"}, list("display_values_supported"))
		require.Equal(t, []any{"none", "login"}, list("prompt_values_supported"))
		require.Len(t, list("scopes_supported"), 11)
		require.Contains(t, list("claims_supported"), "nhs_number")
		require.Contains(t, list("claims_supported"), "client_user_metadata")
		require.Len(t, list("vtr_values_supported"), 9, "the twelve NHS profiles but the Ck ones")
		for _, v := range list("vtr_values_supported") {
			_, err := trust.ParseVector(v.(string))
			require.NoError(t, err)
		}
		require.Equal(t, testIssuer+"/trustmark/id.example.test", str("vtm"))
		require.Equal(t, testIssuer+"/fido/authenticate/begin", str("fido_authentication_endpoint"))
		require.Contains(t, list("scopes_supported"), "device_enrolment")
		require.NotContains(t, d, "end_session_endpoint")
	})
}

func TestTrustmark(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		resp := e.do(httptest.NewRequest(http.MethodGet, "/trustmark/id.example.test", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, map[string]any{
			"idp": testIssuer, "trustmark_provider": testIssuer,
			"P": []any{"P0", "P5", "P9"}, "C": []any{"Cp", "Cd", "Cm"},
		}, jsonBody(t, resp))
		resp = e.do(httptest.NewRequest(http.MethodGet, "/trustmark/other.example", nil))
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestIssuerWithPathAndPort(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, func(c *Config) { c.Issuer = "http://localhost:8080/idp/"; c.Development = true })
		require.Equal(t, "http://localhost:8080/idp", e.srv.Issuer())
		resp := e.do(httptest.NewRequest(http.MethodGet, "/idp/.well-known/openid-configuration", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		d := jsonBody(t, resp)
		require.Equal(t, "http://localhost:8080/idp/token", d["token_endpoint"])
		require.Equal(t, "http://localhost:8080/idp/trustmark/localhost:8080", d["vtm"])
		resp = e.do(httptest.NewRequest(http.MethodGet, "/idp/trustmark/localhost:8080", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp = e.do(httptest.NewRequest(http.MethodGet, "/idp/.well-known/jwks.json", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

func TestNewValidatesConfig(t *testing.T) {
	db := dbtest.SQLite(t)
	e := newEnv(t, db)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"http issuer in production", Config{Issuer: "http://id.example"}},
		{"issuer with query", Config{Issuer: "https://id.example/?x=1"}},
		{"issuer with fragment", Config{Issuer: "https://id.example/#x"}},
		{"relative issuer", Config{Issuer: "/idp"}},
		{"empty issuer", Config{}},
		{"short admin token", Config{Issuer: testIssuer, AdminToken: "short"}},
		{"pair to itself", Config{Issuer: testIssuer, AllowedAssertedPairs: map[string][]string{"a": {"a"}}}},
		{"pair from nobody", Config{Issuer: testIssuer, AllowedAssertedPairs: map[string][]string{"": {"a"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, e.deps)
			require.Error(t, err)
		})
	}
	_, err := New(Config{Issuer: testIssuer}, Deps{DB: db})
	require.Error(t, err, "keyring and people are required")
}
