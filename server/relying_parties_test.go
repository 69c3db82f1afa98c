package server_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// These tests play the three relying parties of issue 13 from their
// observable requests: each must work unchanged but for configuration.

// rsJWT signs claims RS512 with key, as the relying parties' own code does.
func rsJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	require.NoError(t, err)
	return raw
}

// tokenPost posts a form to /token and decodes the JSON answer.
func tokenPost(t *testing.T, s *servertest.Server, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.URL+"/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body := map[string]any{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// TestNodeOpenIDClient3RelyingParty plays the Node/Express example built on
// openid-client 3: discovery, /authorize with state, nonce and vtr, a
// hand-built RS512 client assertion with a 30-minute exp, the token
// request, and userinfo with profile and gp_integration_credentials. It
// also asks for nhs_app_credentials, a scope idlink does not offer: it is
// ignored, as NHS login ignores unknown scopes.
func TestNodeOpenIDClient3RelyingParty(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := servertest.NewRP(t, s, false, "profile", "gp_integration_credentials")
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "node.rp@example.org", pw, phone)
		setLevel(t, s, "node.rp@example.org", "P9")

		a := servertest.AuthRequest{State: secrets.NewID(), Nonce: secrets.NewID()}
		q := url.Values{
			"client_id": {r.Client.ID}, "redirect_uri": {r.CallbackURL()}, "response_type": {"code"},
			"scope": {"openid profile gp_integration_credentials nhs_app_credentials"},
			"state": {a.State}, "nonce": {a.Nonce}, "vtr": {`["P9.Cp.Cd", "P9.Cm"]`},
		}
		p := b.Get(s.URL + "/authorize?" + q.Encode())
		require.Equal(t, "Share your details with Test Health Service", p.H1(), p.Errors())
		code := r.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a).Get("code")

		now := time.Now()
		status, tok := tokenPost(t, s, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {r.CallbackURL()},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {rsJWT(t, r.Key(), map[string]any{
				"iss": r.Client.ID, "sub": r.Client.ID, "aud": s.URL + "/token", "jti": secrets.NewID(),
				"iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(),
			})},
		})
		require.Equal(t, http.StatusOK, status, tok)
		require.Equal(t, "openid profile gp_integration_credentials", tok["scope"], "nhs_app_credentials is ignored")
		idt, err := r.Provider.Verifier(&oidc.Config{ClientID: r.Client.ID, SupportedSigningAlgs: []string{oidc.RS512}}).Verify(context.Background(), tok["id_token"].(string))
		require.NoError(t, err)
		require.Equal(t, a.Nonce, idt.Nonce)
		info := r.UserInfo(&oauth2.Token{AccessToken: tok["access_token"].(string), TokenType: "Bearer"})
		require.Equal(t, "P9", info["identity_proofing_level"])
		require.Equal(t, idt.Subject, info["sub"])
		require.NotContains(t, info, "im1_token", "nothing invented for nhs_app_credentials")
	})
}

// TestHandBuiltAuthorizeRelyingParty plays the Vue front end with an
// Express API: /authorize built by hand with client_id, scope, response_type
// and redirect_uri only (no state, nonce, vtr or PKCE); the API sends
// client_id beside the assertion, and redirect_uri on refresh.
func TestHandBuiltAuthorizeRelyingParty(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := servertest.NewRP(t, s, false, "profile")
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "vue.rp@example.org", pw, phone)
		setLevel(t, s, "vue.rp@example.org", "P9")

		p := b.Get(s.URL + "/authorize?client_id=" + url.QueryEscape(r.Client.ID) + "&scope=openid%20profile&response_type=code&redirect_uri=" + url.QueryEscape(r.CallbackURL()))
		require.Equal(t, "Share your details with Test Health Service", p.H1(), p.Errors())
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		q := r.Returned(p, servertest.AuthRequest{}) // no state sent, none returned
		require.NotContains(t, q, "state")
		code := q.Get("code")
		require.NotEmpty(t, code)

		auth := func(form url.Values) url.Values {
			form.Set("client_id", r.Client.ID)
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", r.Assertion())
			return form
		}
		status, tok := tokenPost(t, s, auth(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {r.CallbackURL()}}))
		require.Equal(t, http.StatusOK, status, tok)
		parts := strings.Split(tok["id_token"].(string), ".")
		require.Len(t, parts, 3)
		idt, err := r.Provider.Verifier(&oidc.Config{ClientID: r.Client.ID, SupportedSigningAlgs: []string{oidc.RS512}}).Verify(context.Background(), tok["id_token"].(string))
		require.NoError(t, err)
		var claims map[string]any
		require.NoError(t, idt.Claims(&claims))
		require.NotContains(t, claims, "nonce", "no nonce asked, none in the ID token")
		require.Equal(t, "P9.Cp.Cd", claims["vot"], "the default vectors")

		status, refreshed := tokenPost(t, s, auth(url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {tok["refresh_token"].(string)}, "redirect_uri": {r.CallbackURL()}}))
		require.Equal(t, http.StatusOK, status, refreshed)
		require.NotEmpty(t, refreshed["access_token"])
		require.NotContains(t, refreshed, "id_token", "NHS login: an ID token for authorization_code only")
	})
}

// TestNHSAppHandOverRelyingParty plays the NHS England service on
// next-auth entered from the NHS App: every hand-over is prompt=none with
// an asserted_login_identity from the app's login, in a fresh browser. On
// the person's first visit the consent page shows; declining answers
// access_denied, agreeing answers a code whose ID token passes the
// service's P9 check; later hand-overs come straight back.
func TestNHSAppHandOverRelyingParty(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, map[string]string{"IDLINK_ASSERTED_LOGIN_PAIRS": "nhs-app>nhs-service"}, server.Options{})
		app := servertest.NewRPWithID(t, s, "nhs-app", false, "profile")
		svc := servertest.NewRPWithID(t, s, "nhs-service", false, "profile")

		// The person logs in to the NHS App (relying party 1).
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "app.user@example.org", pw, phone)
		setLevel(t, s, "app.user@example.org", "P9")
		a := app.Request(map[string]string{"vtr": `["P9.Cp.Cd"]`})
		q := app.Returned(b.Submit(b.Get(a.URL), "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, appIDT, _ := app.Exchange(q.Get("code"), a)
		var appClaims map[string]any
		require.NoError(t, appIDT.Claims(&appClaims))

		handOver := func() (*servertest.Browser, *servertest.Page, servertest.AuthRequest) {
			now := time.Now()
			assertion := rsJWT(t, app.Key(), map[string]any{
				"iss": "nhs-app", "aud": s.URL, "code": appClaims["jti"], "jti": secrets.NewID(),
				"iat": now.Unix(), "exp": now.Add(50 * time.Second).Unix(),
			})
			a := svc.Request(map[string]string{"prompt": "none", "vtr": `["P9.Cp.Cd","P9.Cm"]`, "asserted_login_identity": assertion})
			hb := s.NewBrowser(t)
			return hb, hb.Get(a.URL), a
		}

		// First visit: the consent page, not consent_required. Declined.
		hb, p, a := handOver()
		require.Equal(t, "Share your details with Test Health Service", p.H1(), "%s %v", p.URL, p.Errors())
		q = svc.Returned(hb.Submit(p, "/authorize/consent", map[string]string{"decision": "deny"}), a)
		require.Equal(t, "access_denied", q.Get("error"))

		// Next visit: asked again, agreed: a code, and the P9 check passes.
		hb, p, a = handOver()
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		q = svc.Returned(hb.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, _, claims := svc.Exchange(q.Get("code"), a)
		require.Equal(t, "P9", claims["identity_proofing_level"])
		require.Equal(t, "P9.Cp.Cd", claims["vot"])

		// Consent exists: straight back with a code.
		_, p, a = handOver()
		q = svc.Returned(p, a)
		require.NotEmpty(t, q.Get("code"))

		// With no session and no assertion, prompt=none stays an error.
		a = svc.Request(map[string]string{"prompt": "none"})
		require.Equal(t, "sso_login_required", svc.Returned(s.NewBrowser(t).Get(a.URL), a).Get("error"))
	})
}
