package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/audit"
)

func (e *env) admin(method, path, token, body string) (*http.Response, map[string]any) {
	e.t.Helper()
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp := e.do(req)
	return resp, jsonBody(e.t, resp)
}

func TestAdminAPIAuth(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		for _, tok := range []string{"", "wrong", testAdminToken + "x", testAdminToken[:10]} {
			resp, body := e.admin(http.MethodGet, "/admin/clients", tok, "")
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			require.Equal(t, "unauthorized", body["error"])
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		}
		req := httptest.NewRequest(http.MethodGet, "/admin/clients", nil)
		req.Header.Set("Authorization", "Basic "+testAdminToken)
		require.Equal(t, http.StatusUnauthorized, e.do(req).StatusCode)

		resp, body := e.admin(http.MethodGet, "/admin/clients", testAdminToken, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Len(t, body["clients"], 2)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

		// Without a configured token the API is off.
		cfg := e.cfg
		cfg.AdminToken = ""
		s, err := New(cfg, e.deps)
		require.NoError(t, err)
		e.app = fiber.New()
		s.Admin().Register(e.app.Group("/admin"))
		resp, body = e.admin(http.MethodGet, "/admin/clients", testAdminToken, "")
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Equal(t, "admin_api_disabled", body["error"])
	})
}

func TestAdminAPIClientLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		keyJSON, _ := json.Marshal(publicPEM(t, testKey(t, "rp2")))
		create := `{"name":"Clinic","redirect_uris":["https://clinic.example/cb"],"scopes":["openid","profile"],
			"vtr":["P5.Cp.Cd","P9.Cp.Cd"],"default_vtr":["P9.Cp.Cd"],"public_key_pem":` + string(keyJSON) + `,"refresh_tokens":true}`
		resp, body := e.admin(http.MethodPost, "/admin/clients", testAdminToken, create)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %v", body)
		id := body["client_id"].(string)
		require.Len(t, id, 26)
		require.Equal(t, []any{"RS512"}, body["token_endpoint_auth_signing_algs"])
		require.Equal(t, true, body["refresh_tokens"])

		resp, body = e.admin(http.MethodGet, "/admin/clients/"+id, testAdminToken, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "Clinic", body["name"])

		resp, body = e.admin(http.MethodPatch, "/admin/clients/"+id, testAdminToken, `{"name":"Clinic 2","refresh_tokens":false}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.Equal(t, "Clinic 2", body["name"])
		require.Equal(t, false, body["refresh_tokens"])
		require.Equal(t, []any{"openid", "profile"}, body["scopes"], "absent members are kept")
		require.Equal(t, "nhs", body["id_token_claims"])
		require.Equal(t, "sha1", body["client_metadata_oaep_hash"])

		resp, body = e.admin(http.MethodPatch, "/admin/clients/"+id, testAdminToken, `{"id_token_claims":"all","client_metadata_oaep_hash":"sha256"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.Equal(t, "all", body["id_token_claims"])
		require.Equal(t, "sha256", body["client_metadata_oaep_hash"])
		got, err := e.srv.Clients().Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, IDTokenClaimsAll, got.IDTokenClaims, "stored")
		require.Equal(t, OAEPSHA256, got.MetadataOAEPHash, "stored")

		resp, body = e.admin(http.MethodPatch, "/admin/clients/"+id, testAdminToken, `{"vtr":["P9.Cp.Cd","P9.Cp.Ck"]}`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_client_metadata", body["error"])
		require.Contains(t, body["error_description"], "Ck")

		resp, body = e.admin(http.MethodPatch, "/admin/clients/"+id, testAdminToken, `{"client_id":"other"}`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_client_metadata", body["error"])

		resp, _ = e.admin(http.MethodDelete, "/admin/clients/"+id, testAdminToken, "")
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		resp, body = e.admin(http.MethodGet, "/admin/clients/"+id, testAdminToken, "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Equal(t, "client_not_found", body["error"])
		resp, body = e.admin(http.MethodDelete, "/admin/clients/"+id, testAdminToken, "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Equal(t, "client_not_found", body["error"])
		resp, body = e.admin(http.MethodPatch, "/admin/clients/"+id, testAdminToken, `{"name":"x"}`)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Equal(t, "client_not_found", body["error"])

		n, err := e.srv.audit.Count(context.Background(), "", "oidc.client_create", audit.Success)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestAdminAPIErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		keyJSON, _ := json.Marshal(publicPEM(t, testKey(t, "rp2")))
		tests := []struct {
			name, body string
			status     int
			code       string
			field      string
		}{
			{"not json", `{`, 400, "invalid_request", ""},
			{"unknown member", `{"name":"x","colour":"red"}`, 400, "invalid_request", ""},
			{"wrong type", `{"name":1}`, 400, "invalid_request", ""},
			{"trailing data", `{"name":"x"} {}`, 400, "invalid_request", ""},
			{"array", `[]`, 400, "invalid_request", ""},
			{"too large", `{"name":"` + strings.Repeat("a", maxAdminBody) + `"}`, 400, "invalid_request", ""},
			{"redirect with fragment", `{"name":"x","redirect_uris":["https://a/cb#x"],"public_key_pem":` + string(keyJSON) + `}`, 400, "invalid_redirect_uri", "redirect_uris"},
			{"no key", `{"name":"x","redirect_uris":["https://a/cb"]}`, 400, "invalid_client_metadata", "public_key_pem"},
			{"bad vtr", `{"name":"x","redirect_uris":["https://a/cb"],"vtr":["P9"],"public_key_pem":` + string(keyJSON) + `}`, 400, "invalid_client_metadata", "vtr"},
			{"taken id", `{"client_id":"rp1","name":"x","redirect_uris":["https://a/cb"],"public_key_pem":` + string(keyJSON) + `}`, 409, "client_exists", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := e.admin(http.MethodPost, "/admin/clients", testAdminToken, tc.body)
				require.Equal(t, tc.status, resp.StatusCode, "body: %v", body)
				require.Equal(t, tc.code, body["error"])
				require.NotEmpty(t, body["error_description"])
				if tc.field != "" {
					require.Contains(t, body["error_description"], tc.field)
				}
			})
		}
	})
}

// FuzzAdminClientBody feeds arbitrary bodies to the admin API's decoder
// and the registration rules: no panic, and whatever passes is a valid,
// normalized registration.
func FuzzAdminClientBody(f *testing.F) {
	key := publicPEM(f, testKey(f, "rp1"))
	keyJSON, _ := json.Marshal(key)
	f.Add([]byte(`{"name":"Clinic","redirect_uris":["https://clinic.example/cb"],"public_key_pem":` + string(keyJSON) + `}`))
	f.Add([]byte(`{"name":"App","public":true,"redirect_uris":["com.example.app:/cb"],"vtr":["P5.Cm","Cp.Cd"],"default_vtr":["P5.Cm"]}`))
	f.Add([]byte(`{"name":"x","redirect_uris":["http://localhost/cb"],"scopes":["openid","email","email"]}`))
	f.Add([]byte(`{"client_id":"a.b-c","name":"\u0000","redirect_uris":null,"token_endpoint_auth_signing_algs":["HS256"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseClientRequest(body)
		if err != nil {
			return
		}
		var c Client
		req.apply(&c)
		if c.ID == "" {
			c.ID = "fuzz-client"
		}
		cs := &Clients{development: true}
		if err := cs.normalize(&c); err != nil {
			require.ErrorIs(t, err, ErrInvalidClient)
			return
		}
		require.NotEmpty(t, c.Name)
		require.Contains(t, c.Scopes, ScopeOpenID)
		require.NotEmpty(t, c.RedirectURIs)
		require.LessOrEqual(t, len(c.RedirectURIs), MaxRedirectURIs)
		for _, u := range c.RedirectURIs {
			require.NoError(t, validateRedirectURI(u, c.Public, true))
			require.False(t, strings.ContainsAny(u, "#*?"))
		}
		for _, v := range c.defaultVTR {
			require.True(t, c.allowsVector(v))
		}
		if c.Public {
			require.Nil(t, c.publicKey)
			require.Empty(t, c.AuthAlgs)
		} else {
			require.NotNil(t, c.publicKey)
			require.GreaterOrEqual(t, c.publicKey.N.BitLen(), minClientKeyBits)
			for _, a := range c.AuthAlgs {
				require.Contains(t, clientAuthAlgs(), a)
			}
		}
	})
}
