package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/servertest"
)

// passkeyDevice is a virtual authenticator holding one passkey.
type passkeyDevice struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
	rp   virtualwebauthn.RelyingParty
}

func newPasskeyDevice() *passkeyDevice {
	return &passkeyDevice{
		auth: virtualwebauthn.NewAuthenticator(),
		cred: virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2),
		rp:   virtualwebauthn.RelyingParty{ID: servertest.WebAuthnRPID, Name: "idlink", Origin: servertest.WebAuthnOrigin},
	}
}

// otherPhone is a second account's mobile number, so that each account
// stays within the limit of codes per number.
const otherPhone = "07700 900456"

var csrfAttr = regexp.MustCompile(`data-csrf="([^"]+)"`)

// csrfOf returns the token the page hands to passkey.js.
func csrfOf(t *testing.T, p *servertest.Page) string {
	t.Helper()
	m := csrfAttr.FindStringSubmatch(p.Body)
	require.NotNil(t, m, "no data-csrf on %s (%s)", p.URL, p.H1())
	return m[1]
}

// postJSON posts body to path as passkey.js does, with the CSRF header
// when csrf is not empty, and returns the status and raw answer.
func postJSON(t *testing.T, s *servertest.Server, b *servertest.Browser, path, csrf string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if csrf != "" {
		req.Header.Set(login.CSRFHeader, csrf)
	}
	resp, err := b.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// answer decodes a JSON answer of the passkey endpoints.
func answer(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var m map[string]string
	require.NoError(t, json.Unmarshal(raw, &m), string(raw))
	return m
}

// addPasskey adds the device's passkey from the settings page.
func addPasskey(t *testing.T, s *servertest.Server, b *servertest.Browser, d *passkeyDevice, name string) *servertest.Page {
	t.Helper()
	p := b.Get("/account/security")
	require.Equal(t, "Security settings", p.H1())
	csrf := csrfOf(t, p)
	status, options := postJSON(t, s, b, "/account/passkeys/begin", csrf, []byte("{}"))
	require.Equal(t, http.StatusOK, status, string(options))
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	cred := virtualwebauthn.CreateAttestationResponse(d.rp, d.auth, d.cred, *ao)
	body, err := json.Marshal(map[string]any{"credential": json.RawMessage(cred), "name": name})
	require.NoError(t, err)
	status, raw := postJSON(t, s, b, "/account/passkeys/finish", csrf, body)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, "/account/security", answer(t, raw)["redirect"])
	d.auth.Options.UserHandle = []byte(ao.UserID)
	d.auth.AddCredential(d.cred)
	return b.Get("/account/security")
}

// beginPasskeyLogin starts a passkey login from page p (a login page) and
// returns its CSRF token and the device's assertion.
func beginPasskeyLogin(t *testing.T, s *servertest.Server, b *servertest.Browser, p *servertest.Page, d *passkeyDevice) (string, []byte) {
	t.Helper()
	require.Contains(t, p.Body, `id="passkey-login"`, "no passkey login on %s (%s)", p.URL, p.H1())
	if p.H1() == "Log in" {
		require.Contains(t, p.Body, `autocomplete="username webauthn"`)
		require.Contains(t, p.Body, "Log in with a passkey")
	}
	csrf := csrfOf(t, p)
	status, options := postJSON(t, s, b, "/login/passkey/begin", csrf, []byte("{}"))
	require.Equal(t, http.StatusOK, status, string(options))
	ao, err := virtualwebauthn.ParseAssertionOptions(string(options))
	require.NoError(t, err)
	d.cred.Counter++
	return csrf, []byte(virtualwebauthn.CreateAssertionResponse(d.rp, d.auth, d.cred, *ao))
}

// passkeyLogin logs in with the device from page p and returns the finish
// endpoint's status and answer.
func passkeyLogin(t *testing.T, s *servertest.Server, b *servertest.Browser, p *servertest.Page, d *passkeyDevice) (int, map[string]string, []byte) {
	t.Helper()
	csrf, assertion := beginPasskeyLogin(t, s, b, p, d)
	status, raw := postJSON(t, s, b, "/login/passkey/finish", csrf, assertion)
	return status, answer(t, raw), assertion
}

func rememberedCookie(b *servertest.Browser, s *servertest.Server) string {
	u, _ := url.Parse(s.URL)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == login.RememberCookie {
			return c.Value
		}
	}
	return ""
}

// logInRemembering logs in with the code, ticking "remember this device".
func logInRemembering(t *testing.T, s *servertest.Server, b *servertest.Browser, email, phone string) {
	t.Helper()
	p := b.Submit(b.Get("/login"), "/login", map[string]string{"email": email, "password": pw})
	require.Equal(t, "Enter the security code", p.H1(), p.Errors())
	require.Contains(t, p.Body, `name="remember"`)
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(p.Body)
	require.NotNil(t, csrf)
	// Post the code without following the redirect, to see the cookie.
	noFollow := *b.Client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(s.URL+"/login/code", url.Values{"csrf_token": {csrf[1]},
		"code": {s.CodeFor(t, servertest.E164(t, phone), "login_code")}, "remember": {"yes"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == login.RememberCookie {
			set = c
		}
	}
	require.NotNil(t, set, "the remembered-browser cookie is set")
	require.True(t, set.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, set.SameSite)
	require.Equal(t, "/", set.Path)
	require.Equal(t, s.Config().RememberDevice, time.Duration(set.MaxAge)*time.Second)
	require.False(t, set.Secure, "the test issuer is http")
	require.Equal(t, "Your account", b.Get(resp.Header.Get("Location")).H1())
	require.NotEmpty(t, rememberedCookie(b, s))
}

// passwordOnly logs in with the password and returns where it ends.
func passwordOnly(t *testing.T, b *servertest.Browser, email string) *servertest.Page {
	t.Helper()
	return b.Submit(b.Get("/login"), "/login", map[string]string{"email": email, "password": pw})
}

// audited counts the audit events of type typ with outcome.
func audited(t *testing.T, s *servertest.Server, typ, outcome string) int {
	t.Helper()
	var n int
	require.NoError(t, s.DB.Get(&n, s.DB.Rebind(`SELECT COUNT(*) FROM audit_events WHERE type = ? AND outcome = ?`), typ, outcome))
	return n
}

func signOut(t *testing.T, b *servertest.Browser) {
	t.Helper()
	p := b.Get("/account")
	require.Equal(t, "You have signed out", b.Submit(p, "/sign-out", nil).H1())
}

func TestRememberedBrowser(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "remember@example.org", pw, phone)
		s.CreateAccount(t, s.NewBrowser(t), "other@example.org", pw, otherPhone)
		require.Empty(t, rememberedCookie(b, s), "nothing is remembered unless asked")
		signOut(t, b)

		logInRemembering(t, s, b, "remember@example.org", phone)
		signOut(t, b)
		// Next time the password is enough: no code is texted.
		before := s.CodeFor(t, "+447700900123", "login_code")
		checks := s.PDSChecks(t)
		p := passwordOnly(t, b, "remember@example.org")
		require.Equal(t, "Your account", p.H1(), p.Errors())
		id := s.AccountID(t, "remember@example.org")
		require.Equal(t, 1, s.SignIns(t, id, "password+remembered_browser"), "one sign-in through login.SignIn")
		require.Equal(t, checks+1, s.PDSChecks(t), "the per-login PDS check ran")
		require.Equal(t, before, s.CodeFor(t, "+447700900123", "login_code"), "no new code was sent")
		p = b.Get("/account/security")
		require.Equal(t, "Security settings", p.H1())
		require.Contains(t, p.Body, "data-browser-label")
		signOut(t, b)

		// The cookie alone signs nobody in: the password is still asked.
		require.Equal(t, "Log in", b.Get("/account").H1())
		// Another account on this browser still needs its code.
		p = passwordOnly(t, b, "other@example.org")
		require.Equal(t, "Enter the security code", p.H1())
		b.Get("/login") // abandon that login
		// Without the cookie the code is asked.
		b2 := s.NewBrowser(t)
		require.Equal(t, "Enter the security code", passwordOnly(t, b2, "remember@example.org").H1())
		// A copy of the cookie works only with the password of its account.
		b3 := s.NewBrowser(t)
		u, _ := url.Parse(s.URL)
		b3.Client.Jar.SetCookies(u, []*http.Cookie{{Name: login.RememberCookie, Value: rememberedCookie(b, s), Path: "/"}})
		require.Equal(t, "Enter the security code", passwordOnly(t, b3, "other@example.org").H1())
		wrong := b3.Submit(b3.Get("/login"), "/login", map[string]string{"email": "remember@example.org", "password": "not the password"})
		require.Equal(t, []string{"Enter a correct email address and password"}, wrong.Errors())

		// Removing it in settings forgets it.
		p = passwordOnly(t, b, "remember@example.org")
		require.Equal(t, "Your account", p.H1())
		p = b.Get("/account/security")
		bad := b.Submit(p, "/account/security/browsers/remove", map[string]string{"id": "no-such-browser"})
		require.Equal(t, http.StatusUnprocessableEntity, bad.Status)
		require.Equal(t, []string{"We could not find that remembered browser. It may have been removed already."}, bad.Errors())
		rid := regexp.MustCompile(`action="/account/security/browsers/remove"[\s\S]*?name="id" value="([^"]+)"`).FindStringSubmatch(p.Body)
		require.NotNil(t, rid)
		p = b.Submit(p, "/account/security/browsers/remove", map[string]string{"id": rid[1]})
		require.Equal(t, "Security settings", p.H1())
		require.Contains(t, p.Body, "No browser is remembered.")
		require.Equal(t, 1, audited(t, s, "remembered_browser.added", "success"))
		require.Equal(t, 2, audited(t, s, "remembered_browser.used", "success"))
		require.Equal(t, 1, audited(t, s, "remembered_browser.forgotten", "success"))
		signOut(t, b)
		require.Equal(t, "Enter the security code", passwordOnly(t, b, "remember@example.org").H1())
		b.Get("/login")
	})
}

func TestPasswordResetForgetsRememberedBrowsers(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "remember@example.org", pw, phone)
		signOut(t, b)
		logInRemembering(t, s, b, "remember@example.org", phone)
		signOut(t, b)
		r := s.NewBrowser(t)
		r.Submit(r.Get("/forgot-password"), "/forgot-password", map[string]string{"email": "remember@example.org"})
		p := r.Get(s.Latest(t, "remember@example.org", "reset_email").Link)
		p = r.Submit(p, "/reset-password/verify", nil)
		p = r.Submit(p, "/reset-password/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "reset_code")})
		p = r.Submit(p, "/reset-password/new", map[string]string{"password": pw + " again"})
		require.Equal(t, "Your password has been changed", p.H1())
		p = b.Submit(b.Get("/login"), "/login", map[string]string{"email": "remember@example.org", "password": pw + " again"})
		require.Equal(t, "Enter the security code", p.H1())
	})
}

func TestSignOutOfAllDevices(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "everywhere@example.org", pw, phone)
		signOut(t, b)
		logInRemembering(t, s, b, "everywhere@example.org", phone)
		other := s.NewBrowser(t)
		require.Equal(t, "Your account", s.LogIn(t, other, nil, "everywhere@example.org", pw, phone).H1())

		p := b.Get("/account")
		require.Contains(t, p.Body, `href="/account/security"`)
		p = b.Submit(b.Get("/account/security"), "/account/security/sign-out-everywhere", nil)
		require.Equal(t, "Security settings", p.H1())
		require.Contains(t, p.Body, "You have been signed out on every other device")
		require.Equal(t, "Log in", other.Get("/account").H1(), "the other session ended")
		require.Equal(t, "Your account", b.Get("/account").H1(), "this one did not")
		signOut(t, b)
		require.Equal(t, "Enter the security code", passwordOnly(t, b, "everywhere@example.org").H1(), "no browser is remembered")
	})
}

func TestPasskeyRegistrationAndLogin(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "passkey@example.org", pw, phone)
		d := newPasskeyDevice()

		p := b.Get("/account/security")
		require.Contains(t, p.Body, "You have not added a passkey.")
		require.Contains(t, p.Body, "you need a browser that supports passkeys")
		// The JSON endpoints need the CSRF header.
		status, raw := postJSON(t, s, b, "/login/passkey/begin", "", []byte("{}"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "csrf", answer(t, raw)["error"])
		status, raw = postJSON(t, s, b, "/account/passkeys/begin", "", []byte("{}"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "csrf", answer(t, raw)["error"])
		status, raw = postJSON(t, s, b, "/account/passkeys/begin", "not-the-token", []byte("{}"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "csrf", answer(t, raw)["error"])
		// A name that is too long is refused and nothing is stored.
		csrf := csrfOf(t, p)
		status, _ = postJSON(t, s, b, "/account/passkeys/begin", csrf, []byte("{}"))
		require.Equal(t, http.StatusOK, status)
		status, raw = postJSON(t, s, b, "/account/passkeys/finish", csrf, []byte(`{"credential":{"id":"x"},"name":"`+strings.Repeat("n", 65)+`"}`))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_name", answer(t, raw)["error"])
		status, raw = postJSON(t, s, b, "/account/passkeys/finish", csrf, []byte(`not json`))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "malformed", answer(t, raw)["error"])

		p = addPasskey(t, s, b, d, "My phone")
		require.Contains(t, p.Body, "Your passkey has been added")
		require.Contains(t, p.Body, "My phone")
		signOut(t, b)

		// Log in with it: Cm, no password, no code.
		checks := s.PDSChecks(t)
		status, ans, used := passkeyLogin(t, s, b, b.Get("/login"), d)
		require.Equal(t, http.StatusOK, status, ans)
		require.Equal(t, "/account", ans["redirect"])
		require.Equal(t, 1, s.SignIns(t, s.AccountID(t, "passkey@example.org"), login.MethodPasskey), "one sign-in through login.SignIn")
		require.Equal(t, checks+1, s.PDSChecks(t), "the per-login PDS check ran")
		require.Equal(t, "Your account", b.Get(ans["redirect"]).H1())
		require.Equal(t, "Security settings", b.Get("/account/security").H1(), "Cm is a second factor")

		// The same assertion again: its ceremony is used up, and a new
		// ceremony has another challenge.
		csrf = csrfOf(t, b.Get("/account/security"))
		status, raw = postJSON(t, s, b, "/login/passkey/finish", csrf, used)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "ceremony_expired", answer(t, raw)["error"])
		status, _ = postJSON(t, s, b, "/login/passkey/begin", csrf, []byte("{}"))
		require.Equal(t, http.StatusOK, status)
		status, raw = postJSON(t, s, b, "/login/passkey/finish", csrf, used)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "verification_failed", answer(t, raw)["error"])
		// A malformed body.
		status, _ = postJSON(t, s, b, "/login/passkey/begin", csrf, []byte("{}"))
		require.Equal(t, http.StatusOK, status)
		status, raw = postJSON(t, s, b, "/login/passkey/finish", csrf, []byte(`{"id":`))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "malformed", answer(t, raw)["error"])
		// Without user verification.
		noUV := newPasskeyDevice()
		noUV.auth, noUV.cred = d.auth, d.cred
		noUV.auth.Options.UserNotVerified = true
		signOut(t, b)
		status, ans, _ = passkeyLogin(t, s, b, b.Get("/login"), noUV)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "user_verification_required", ans["error"])
		require.NotEmpty(t, ans["message"])
		d.cred.Counter = noUV.cred.Counter

		// Rename and remove from settings.
		status, ans, _ = passkeyLogin(t, s, b, b.Get("/login"), d)
		require.Equal(t, http.StatusOK, status, ans)
		p = b.Get("/account/security")
		link := regexp.MustCompile(`href="(/account/security/passkeys/rename\?id=[^"]+)"`).FindStringSubmatch(p.Body)
		require.NotNil(t, link)
		rp := b.Get(strings.ReplaceAll(link[1], "&amp;", "&"))
		require.Equal(t, "Change the name", rp.H1())
		for _, tc := range []struct{ name, want string }{
			{"  ", "Enter a name"},
			{strings.Repeat("x", 65), "The name must be 64 characters or fewer"},
		} {
			got := b.Submit(rp, "/account/security/passkeys/rename", map[string]string{"name": tc.name})
			require.Equal(t, http.StatusUnprocessableEntity, got.Status)
			require.Equal(t, []string{tc.want}, got.Errors())
		}
		got := b.Submit(rp, "/account/security/passkeys/rename", map[string]string{"name": "Work laptop", "id": "bm90LW1pbmU"})
		require.Equal(t, []string{"We could not find that passkey. It may have been removed."}, got.Errors())
		p = b.Submit(rp, "/account/security/passkeys/rename", map[string]string{"name": "Work laptop"})
		require.Contains(t, p.Body, "Work laptop")
		require.NotContains(t, p.Body, "My phone")
		got = b.Submit(p, "/account/security/passkeys/remove", map[string]string{"id": "bm90LW1pbmU"})
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.Contains(t, got.Body, "Work laptop", "nothing was removed")
		p = b.Submit(p, "/account/security/passkeys/remove", nil)
		require.Contains(t, p.Body, "You have not added a passkey.")
		signOut(t, b)
		status, ans, _ = passkeyLogin(t, s, b, b.Get("/login"), d)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "unknown_credential", ans["error"])
	})
}

// Another account's passkey cannot be renamed or removed, and settings
// changes need a second factor.
func TestSettingsNeedASecondFactor(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		owner := s.NewBrowser(t)
		s.CreateAccount(t, owner, "owner@example.org", pw, phone)
		d := newPasskeyDevice()
		p := addPasskey(t, s, owner, d, "Owner's key")
		ownerID := regexp.MustCompile(`rename\?id=([A-Za-z0-9_-]+)`).FindStringSubmatch(p.Body)
		require.NotNil(t, ownerID)

		intruder := s.NewBrowser(t)
		s.CreateAccount(t, intruder, "intruder@example.org", pw, phone)
		icsrf := csrfOf(t, intruder.Get("/account/security"))
		got := intruder.Post("/account/security/passkeys/remove", url.Values{"csrf_token": {icsrf}, "id": {ownerID[1]}})
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.Equal(t, []string{"We could not find that passkey. It may have been removed already."}, got.Errors())
		got = intruder.Post("/account/security/passkeys/rename", url.Values{"csrf_token": {icsrf}, "id": {ownerID[1]}, "name": {"Mine now"}})
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.Contains(t, owner.Get("/account/security").Body, "Owner&#39;s key", "unchanged")

		// A session that proved only the password (an OIDC request for
		// P0.Cp) may not change settings.
		r := servertest.NewRP(t, s, false, "email")
		weak := s.NewBrowser(t)
		a := r.Request(map[string]string{"vtr": `["P0.Cp"]`})
		p = weak.Get(a.URL)
		require.Equal(t, "Log in", p.H1())
		p = weak.Submit(p, "/login", map[string]string{"email": "owner@example.org", "password": pw})
		require.Equal(t, "Share your details with Test Health Service", p.H1(), p.Errors())
		csrf := csrfOf(t, weak.Get("/login"))
		status, raw := postJSON(t, s, weak, "/account/passkeys/begin", csrf, []byte("{}"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "second_factor_required", answer(t, raw)["error"])
		got = weak.Post("/account/security/sign-out-everywhere", url.Values{"csrf_token": {csrf}})
		require.Equal(t, http.StatusForbidden, got.Status)
		require.Equal(t, "You need to log in again", got.H1())
		got = weak.Post("/account/security/passkeys/remove", url.Values{"csrf_token": {csrf}, "id": {ownerID[1]}})
		require.Equal(t, http.StatusForbidden, got.Status)
		require.Contains(t, owner.Get("/account/security").Body, "Owner&#39;s key")
		require.Equal(t, "Your account", owner.Get("/account").H1(), "the owner is still signed in")
		// Opening the settings asks for the missing second factor.
		require.Equal(t, "Enter the security code", weak.Get("/account/security").H1())
	})
}

// A relying party asking for P0.Cm gets a passkey login, and vot P0.Cm.
func TestPasskeyLoginThroughAuthorize(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "rp.passkey@example.org", pw, phone)
		d := newPasskeyDevice()
		addPasskey(t, s, b, d, "")
		signOut(t, b)

		r := servertest.NewRP(t, s, false, "email")
		a := r.Request(map[string]string{"vtr": `["P0.Cm"]`})
		p := b.Get(a.URL)
		require.Contains(t, p.Body, "to continue to Test Health Service")
		status, ans, _ := passkeyLogin(t, s, b, p, d)
		require.Equal(t, http.StatusOK, status, ans)
		require.True(t, strings.HasPrefix(ans["redirect"], "/authorize/continue?id="), ans["redirect"])
		p = b.Get(ans["redirect"])
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		tok, _, claims := r.Exchange(r.Returned(p, a).Get("code"), a)
		require.Equal(t, "P0.Cm", claims["vot"])
		require.Equal(t, "rp.passkey@example.org", r.UserInfo(tok)["email"])
		require.Equal(t, 1, audited(t, s, "passkey.login", "success"))

		// With the password first, the journey asks for the passkey.
		signOut(t, b)
		a = r.Request(map[string]string{"vtr": `["P0.Cm"]`})
		p = b.Submit(b.Get(a.URL), "/login", map[string]string{"email": "rp.passkey@example.org", "password": pw})
		require.Equal(t, "Use your passkey", p.H1(), p.Errors())
		status, ans, _ = passkeyLogin(t, s, b, p, d)
		require.Equal(t, http.StatusOK, status, ans)
		p = b.Get(ans["redirect"])
		_, _, claims = r.Exchange(r.Returned(p, a).Get("code"), a)
		require.Equal(t, "P0.Cm", claims["vot"], "consent was given: straight back")

		// A signature counter going backwards blocks the passkey.
		signOut(t, b)
		d.cred.Counter = 0
		status, ans, _ = passkeyLogin(t, s, b, b.Get("/login"), d)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "credential_blocked", ans["error"])
		require.Equal(t, 1, audited(t, s, "passkey.clone_detected", "failure"))
		d.cred.Counter = 100
		status, ans, _ = passkeyLogin(t, s, b, b.Get("/login"), d)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "credential_blocked", ans["error"])
	})
}

// Companion-app devices are listed in settings, and can be renamed and
// removed there by their owner only.
func TestSettingsDevices(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "devices@example.org", pw, phone)
		other := s.NewBrowser(t)
		s.CreateAccount(t, other, "not.mine@example.org", pw, otherPhone)
		var accountID string
		require.NoError(t, s.DB.Get(&accountID, s.DB.Rebind(`SELECT id FROM accounts WHERE email = ?`), "devices@example.org"))
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		dev, err := s.Devices.Register(context.Background(), device.Device{AccountID: accountID, Name: "Sam's phone", Platform: device.PlatformAndroid, PublicKey: der})
		require.NoError(t, err)

		p := b.Get("/account/security")
		require.Contains(t, p.Body, "Sam&#39;s phone")
		require.Contains(t, p.Body, "Android")
		require.NotContains(t, other.Get("/account/security").Body, "Sam&#39;s phone")

		// Another account cannot touch it.
		ocsrf := csrfOf(t, other.Get("/account/security"))
		got := other.Post("/account/security/devices/rename", url.Values{"csrf_token": {ocsrf}, "id": {dev.ID}, "name": {"Mine"}})
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.Equal(t, []string{"We could not find that device. It may have been removed."}, got.Errors())
		got = other.Post("/account/security/devices/remove", url.Values{"csrf_token": {ocsrf}, "id": {dev.ID}})
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.NoError(t, s.Devices.CheckActive(context.Background(), dev.ID))

		rp := b.Get("/account/security/devices/rename?id=" + url.QueryEscape(dev.ID))
		require.Equal(t, "Change the name", rp.H1())
		bad := b.Submit(rp, "/account/security/devices/rename", map[string]string{"name": strings.Repeat("n", 65)})
		require.Equal(t, []string{"The name must be 64 characters or fewer"}, bad.Errors())
		p = b.Submit(rp, "/account/security/devices/rename", map[string]string{"name": "Work phone"})
		require.Contains(t, p.Body, "Work phone")
		require.Contains(t, p.Body, "The device has been renamed.")
		p = b.Submit(p, "/account/security/devices/remove", map[string]string{"id": dev.ID})
		require.Contains(t, p.Body, "You have not set up the companion app on any device.")
		require.ErrorIs(t, s.Devices.CheckActive(context.Background(), dev.ID), device.ErrRemoved)
		require.Equal(t, 1, audited(t, s, "device.removed", "success"))

		// The script is served from the assets, as the CSP wants.
		js := b.Get("/assets/js/passkey.js")
		require.Equal(t, http.StatusOK, js.Status)
		require.Contains(t, js.Body, "parseRequestOptionsFromJSON")
	})
}

// A remembered browser proves Cd to a relying party: password only, no code
// texted, and vot P0.Cp.Cd.
func TestRememberedBrowserThroughAuthorize(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "rp-remember@example.org", pw, phone)
		signOut(t, b)
		logInRemembering(t, s, b, "rp-remember@example.org", phone)
		signOut(t, b)

		r := servertest.NewRP(t, s, false, "email")
		before := s.CodeFor(t, "+447700900123", "login_code")
		a := r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
		p := b.Get(a.URL)
		require.Equal(t, "Log in", p.H1())
		p = b.Submit(p, "/login", map[string]string{"email": "rp-remember@example.org", "password": pw})
		require.Equal(t, "Share your details with Test Health Service", p.H1(), p.Errors())
		require.Equal(t, before, s.CodeFor(t, "+447700900123", "login_code"), "no code was texted")
		q := r.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, _, claims := r.Exchange(q.Get("code"), a)
		require.Equal(t, "P0.Cp.Cd", claims["vot"])
	})
}
