package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

func setLevel(t *testing.T, s *servertest.Server, email, level string) {
	t.Helper()
	_, err := s.DB.Exec(s.DB.Rebind(`UPDATE accounts SET proofing_level = ? WHERE email = ?`), level, email)
	require.NoError(t, err)
}

// TestRelyingPartyThroughThePages is the done-when: an independent
// relying party, a person creating an account and logging in through the
// pages, and vot for several vtr requests, on both databases.
func TestRelyingPartyThroughThePages(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := servertest.NewRP(t, s, false, "profile", "email", "phone")
		b := s.NewBrowser(t)
		ctx := context.Background()

		// A new person arrives from the relying party, creates an account
		// from the login page, and is taken back through consent.
		a := r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
		p := b.Get(a.URL)
		require.Equal(t, "Log in", p.H1())
		require.Contains(t, p.Body, "to continue to Test Health Service")
		p = s.CreateAccount(t, b, "rp.user@example.org", pw, phone)
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		require.Contains(t, p.Body, "your email address")
		require.NotContains(t, p.Body, "NHS number", "profile needs P5: not shared at P0")
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		q := r.Returned(p, a)
		tok, idt, claims := r.Exchange(q.Get("code"), a)
		require.Equal(t, "P0.Cp.Cd", claims["vot"])
		require.Equal(t, s.URL+"/trustmark/"+s.URL[len("http://"):], claims["vtm"])
		require.NotEmpty(t, idt.Subject)
		require.NotContains(t, []string{"rp.user@example.org"}, idt.Subject)
		require.Nil(t, claims["email"], "as NHS login's, the ID token leaves email to /userinfo")
		require.Nil(t, claims["nhs_number"])
		require.Equal(t, "bearer", tok.TokenType)
		info, err := r.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		require.NoError(t, err)
		require.Equal(t, idt.Subject, info.Subject)
		require.Equal(t, "rp.user@example.org", info.Email)

		// SSO: the session already meets these vectors, consent was given:
		// straight back to the relying party, with vot per the request.
		for _, tc := range []struct{ vtr, vot string }{
			{`["P0.Cp","P0.Cp.Cd"]`, "P0.Cp"},
			{`["P5.Cp.Cd", "P0.Cp.Cd"]`, "P0.Cp.Cd"},
			{`["P0.Cp.Cd"]`, "P0.Cp.Cd"},
		} {
			a := r.Request(map[string]string{"vtr": tc.vtr})
			q := r.Returned(b.Get(a.URL), a)
			_, idt2, claims := r.Exchange(q.Get("code"), a)
			require.Equal(t, tc.vot, claims["vot"], tc.vtr)
			require.Equal(t, idt.Subject, idt2.Subject, "sub is stable")
		}
		a = r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "prompt": "none"})
		r.Returned(b.Get(a.URL), a)

		// At P9 the default vector list is met and profile is released
		// (newly asked, so consent is asked again).
		setLevel(t, s, "rp.user@example.org", "P9")
		a = r.Request(nil)
		p = b.Get(a.URL)
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		require.Contains(t, p.Body, "NHS number")
		q = r.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, _, claims = r.Exchange(q.Get("code"), a)
		require.Equal(t, "P9.Cp.Cd", claims["vot"])
		require.Equal(t, "P9", claims["identity_proofing_level"])

		// prompt=login asks for the password and code again.
		a = r.Request(map[string]string{"vtr": `["P9.Cp.Cd"]`, "prompt": "login"})
		p = b.Get(a.URL)
		require.Equal(t, "Log in", p.H1())
		p = s.LogIn(t, b, p, "rp.user@example.org", pw, phone)
		q = r.Returned(p, a)
		_, _, claims = r.Exchange(q.Get("code"), a)
		require.Equal(t, "P9.Cp.Cd", claims["vot"])

		// A fresh browser with prompt=none cannot sign in silently.
		a = r.Request(map[string]string{"prompt": "none"})
		q = r.Returned(s.NewBrowser(t).Get(a.URL), a)
		require.Equal(t, "sso_login_required", q.Get("error"))

		// A second browser logs in through the login page of the journey.
		b2 := s.NewBrowser(t)
		a = r.Request(map[string]string{"vtr": `["P9.Cp.Cd"]`})
		q = r.Returned(s.LogIn(t, b2, b2.Get(a.URL), "rp.user@example.org", pw, phone), a)
		_, _, claims = r.Exchange(q.Get("code"), a)
		require.Equal(t, "P9.Cp.Cd", claims["vot"])
	})
}

// Bad authorization requests: a wrong client or redirect URI never
// redirects; everything else comes back to the client as an error.
func TestAuthorizeErrors(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	r := servertest.NewRP(t, s, false, "profile", "basic_demographics", "email")
	pub := servertest.NewRP(t, s, true, "email")
	b := s.NewBrowser(t)

	base := func(mod func(url.Values)) string {
		a := r.Request(nil)
		u, err := url.Parse(a.URL)
		require.NoError(t, err)
		q := u.Query()
		q.Set("scope", "openid email")
		mod(q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, tc := range []struct {
		name string
		mod  func(url.Values)
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }},
		{"missing client", func(q url.Values) { q.Del("client_id") }},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }},
		{"redirect_uri with a query", func(q url.Values) { q.Set("redirect_uri", q.Get("redirect_uri")+"?x=1") }},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Get(base(tc.mod))
			require.Equal(t, http.StatusBadRequest, p.Status)
			require.Equal(t, "There is a problem with the service you came from", p.H1())
		})
	}

	for _, tc := range []struct {
		name, code string
		mod        func(url.Values)
	}{
		{"no openid", "invalid_scope", func(q url.Values) { q.Set("scope", "email") }},
		{"profile with basic_demographics", "invalid_scope", func(q url.Values) { q.Set("scope", "openid profile basic_demographics") }},
		{"scope not approved", "invalid_scope", func(q url.Values) { q.Set("scope", "openid phone") }},
		{"malformed vtr", "invalid_request", func(q url.Values) { q.Set("vtr", `["P9.Cp.Cd"`) }},
		{"unknown vtr component", "invalid_request", func(q url.Values) { q.Set("vtr", `["P7.Cp"]`) }},
		{"response_type token", "unsupported_response_type", func(q url.Values) { q.Set("response_type", "token") }},
		{"response_mode fragment", "invalid_request", func(q url.Values) { q.Set("response_mode", "fragment") }},
		{"request object", "request_not_supported", func(q url.Values) { q.Set("request", "eyJ") }},
		{"request_uri", "request_uri_not_supported", func(q url.Values) { q.Set("request_uri", "https://x") }},
		{"registration", "registration_not_supported", func(q url.Values) { q.Set("registration", "{}") }},
		{"prompt none with login", "invalid_request", func(q url.Values) { q.Set("prompt", "none login") }},
		{"unknown prompt", "invalid_request", func(q url.Values) { q.Set("prompt", "select_account") }},
		{"unknown display", "invalid_request", func(q url.Values) { q.Set("display", "tv") }},
		{"vtr of Ck only", "invalid_request", func(q url.Values) { q.Set("vtr", `["P9.Cp.Ck"]`) }},
		{"plain PKCE", "invalid_request", func(q url.Values) { q.Set("code_challenge_method", "plain") }},
		{"fido_auth_response", "invalid_request", func(q url.Values) { q.Set("fido_auth_response", "eyJ") }},
		{"oversized nonce", "invalid_request", func(q url.Values) { q.Set("nonce", strings.Repeat("n", 9000)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Get(base(tc.mod))
			require.Equal(t, r.CallbackURL(), p.URL.Scheme+"://"+p.URL.Host+p.URL.Path, "%s: %s", p.H1(), p.Errors())
			require.Equal(t, tc.code, p.URL.Query().Get("error"))
			require.NotEmpty(t, p.URL.Query().Get("error_description"))
		})
	}

	t.Run("missing state: an error without one", func(t *testing.T) {
		p := b.Get(base(func(q url.Values) { q.Del("state"); q.Set("scope", "email") }))
		require.Equal(t, "invalid_scope", p.URL.Query().Get("error"))
		require.NotContains(t, p.URL.Query(), "state")
	})
	// NHS login: "repeats the same parameter" is invalid_request.
	t.Run("repeated state", func(t *testing.T) {
		u := base(func(q url.Values) { q.Add("state", "second") })
		p := b.Get(u)
		require.Equal(t, r.CallbackURL(), p.URL.Scheme+"://"+p.URL.Host+p.URL.Path)
		require.Equal(t, "invalid_request", p.URL.Query().Get("error"))
		require.Contains(t, p.URL.Query().Get("error_description"), "state is repeated")
	})
	t.Run("repeated client_id: a page, never a redirect", func(t *testing.T) {
		p := b.Get(base(func(q url.Values) { q.Add("client_id", q.Get("client_id")) }))
		require.Equal(t, http.StatusBadRequest, p.Status)
		require.Equal(t, "There is a problem with the service you came from", p.H1())
	})
	t.Run("public client without PKCE", func(t *testing.T) {
		a := pub.Request(nil)
		u, _ := url.Parse(a.URL)
		q := u.Query()
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		u.RawQuery = q.Encode()
		p := b.Get(u.String())
		require.Equal(t, "invalid_request", p.URL.Query().Get("error"))
	})
}

// TestAuthorizeLenientLikeNHSLogin: what NHS login accepts (optional
// state and nonce, the parameters it lists as not supported, any
// allow_registration, vectors with omitted components or stray spaces)
// goes on to the login page instead of back to the client with an error.
func TestAuthorizeLenientLikeNHSLogin(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	r := servertest.NewRP(t, s, false, "email")
	b := s.NewBrowser(t)
	for _, tc := range []struct {
		name string
		mod  func(url.Values)
	}{
		{"no nonce", func(q url.Values) { q.Del("nonce") }},
		{"no state", func(q url.Values) { q.Del("state") }},
		{"max_age", func(q url.Values) { q.Set("max_age", "0") }},
		{"ui_locales", func(q url.Values) { q.Set("ui_locales", "cy") }},
		{"login_hint", func(q url.Values) { q.Set("login_hint", "a@b.example") }},
		{"id_token_hint", func(q url.Values) { q.Set("id_token_hint", "eyJ") }},
		{"acr_values", func(q url.Values) { q.Set("acr_values", "P9") }},
		{"prompt consent", func(q url.Values) { q.Set("prompt", "consent") }},
		{"display popup", func(q url.Values) { q.Set("display", "popup") }},
		{"allow_registration yes", func(q url.Values) { q.Set("allow_registration", "yes") }},
		{"vtr level only", func(q url.Values) { q.Set("vtr", `["P9"]`) }},
		{"vtr with spaces", func(q url.Values) { q.Set("vtr", `["P9.Cp.Cd ", " P9.Cm"]`) }},
		{"NHS default vtr with Ck", func(q url.Values) { q.Set("vtr", `["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.Request(nil)
			u, err := url.Parse(a.URL)
			require.NoError(t, err)
			q := u.Query()
			tc.mod(q)
			u.RawQuery = q.Encode()
			p := b.Get(u.String())
			require.Equal(t, "Log in", p.H1(), "%s: %s", p.URL, p.Errors())
			if tc.name == "allow_registration yes" {
				require.Contains(t, p.Body, "/create-account", "any value but false shows registration")
			}
		})
	}
	t.Run("allow_registration=false hides registration", func(t *testing.T) {
		p := b.Get(r.Request(map[string]string{"allow_registration": "false"}).URL)
		require.Equal(t, "Log in", p.H1())
		require.NotContains(t, p.Body, "/create-account")
	})
}

func TestConsentDeclinedAndUplift(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	r := servertest.NewRP(t, s, false, "email")
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, "decline@example.org", pw, phone)

	a := r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
	p := b.Get(a.URL)
	require.Equal(t, "Share your details with Test Health Service", p.H1())
	q := r.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "deny"}), a)
	require.Equal(t, "access_denied", q.Get("error"))

	// The default list asks for P9: a P0 person is told, and going back
	// gives the relying party access_denied.
	a = r.Request(nil)
	p = b.Get(a.URL)
	require.Equal(t, "You need to prove who you are", p.H1())
	q = r.Returned(b.Submit(p, "/authorize/cancel", nil), a)
	require.Equal(t, "access_denied", q.Get("error"))
	require.Contains(t, q.Get("error_description"), "proven their identity")

	// A code is single use: the second exchange fails.
	a = r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
	p = b.Get(a.URL)
	q = r.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
	r.Exchange(q.Get("code"), a)
	_, err := r.Config.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(a.Verifier),
		oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
		oauth2.SetAuthURLParam("client_assertion", r.Assertion()))
	require.ErrorContains(t, err, "invalid_grant")
}
