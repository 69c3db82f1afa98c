package partner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// clientToken asks /token for a client_credentials access token with a
// fresh assertion signed by rp; it returns the status and the JSON body.
func clientToken(t *testing.T, s *servertest.Server, rp *servertest.RP, scope string) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {rp.Assertion()},
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := http.PostForm(s.URL+"/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body := map[string]any{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// mustClientToken returns an access token for rp's partner scopes.
func mustClientToken(t *testing.T, s *servertest.Server, rp *servertest.RP) string {
	t.Helper()
	status, body := clientToken(t, s, rp, "")
	require.Equal(t, http.StatusOK, status, body)
	tok, ok := body["access_token"].(string)
	require.True(t, ok, body)
	return tok
}

// call makes a partner API request with token (none when empty) and
// returns the status, the headers and the JSON body.
func call(t *testing.T, s *servertest.Server, method, path, token string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		if raw, ok := body.(string); ok {
			r = strings.NewReader(raw)
		} else {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			r = strings.NewReader(string(b))
		}
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, resp.Header, out
}

// provenJane creates Jane Smith's account through the signup pages and
// matches her in the PDS sandbox (P5); it returns her account id.
func provenJane(t *testing.T, s *servertest.Server) string {
	t.Helper()
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, "jane.smith@example.org", "correct horse battery staple", "07700 900009")
	id := s.AccountID(t, "jane.smith@example.org")
	_, err := s.Identity.MatchPDS(context.Background(), audit.Actor{RequestID: "test"}, id, identity.Details{
		GivenName: "Jane", FamilyName: "Smith", BirthDate: "2010-10-22", Postcode: "LS1 6AE", NHSNumber: "9000000009",
	})
	require.NoError(t, err)
	return id
}

// newAPI builds the partner APIs over s's capabilities with cfg and a
// clock of the test's own, served by a Fiber app of their own.
func newAPI(t *testing.T, s *servertest.Server, cfg partner.Config, now func() time.Time) *fiber.App {
	t.Helper()
	return newAPIWith(t, s, cfg, now, s.Outbox)
}

// newAPIWith is newAPI with a sender of the test's own.
func newAPIWith(t *testing.T, s *servertest.Server, cfg partner.Config, now func() time.Time, sender notify.Sender) *fiber.App {
	t.Helper()
	keys, err := secrets.NewKeyring(make([]byte, secrets.KeySize))
	require.NoError(t, err)
	api, err := partner.New(cfg, partner.Deps{
		DB: s.DB, Tokens: s.OIDC, Subjects: s.OIDC, Accounts: s.Accounts, Identity: s.Identity,
		PDS: s.PDSSandbox, Keys: keys, Sender: sender, Renderer: s.Renderer, Limiter: ratelimit.New(s.DB, now), Audit: s.Audit, Now: now,
	})
	require.NoError(t, err)
	app := fiber.New()
	api.Register(app)
	return app
}

// appCall is call against an app built by newAPI; it returns the status
// and the JSON body (the headers are in the response, Retry-After under
// "retry_after").
func appCall(t *testing.T, app *fiber.App, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := app.Test(req, fiber.TestConfig{Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		out["retry_after"] = ra
	}
	return resp.StatusCode, out
}
