package companion_test

// Issue 11, finding 8: the app's enrolment grant is short, single use and
// always confirmed; recovery steps revoke what an attacker may hold.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// refresh presents a refresh token and returns the status and answer.
func (e *env) refresh(clientID, token string) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.PostForm(e.s.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}})
	require.NoError(e.t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// refreshingRP is a public relying party that gets refresh tokens.
func (e *env) refreshingRP() *testRP {
	e.t.Helper()
	redirect := "http://127.0.0.1:9/callback"
	c, err := e.s.OIDC.Clients().Create(context.Background(), idp.Client{Name: "Test Health Service", RedirectURIs: []string{redirect},
		Scopes: []string{"openid"}, VTR: idp.NHSProfileVectors(), Public: true, RefreshTokens: true})
	require.NoError(e.t, err)
	return &testRP{e: e, client: c, redirect: redirect}
}

// tokens runs r's authorization on b (with fidoAuthResponse, when given)
// and exchanges the code.
func (r *testRP) tokens(b *servertest.Browser, fidoAuthResponse, vtr string) map[string]any {
	r.e.t.Helper()
	q, verifier := r.authorize(b, fidoAuthResponse, vtr)
	return r.e.postToken(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {r.redirect},
		"client_id": {r.client.ID}, "code_verifier": {verifier}})
}

func TestEnrolmentGrant(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startWithClock(t, dbURL, webauthnEnv)

		// No refresh token ever carries device_enrolment.
		set := e.appTokenSet(e.b, "openid device_enrolment", `["P0.Cp.Cd"]`, nil)
		require.NotContains(t, set, "refresh_token")
		require.Contains(t, e.appTokenSet(e.b, "openid", `["P0.Cp.Cd"]`, nil), "refresh_token", "the app's other grants still refresh")

		// Every enrolment asks for a login made for it and for the
		// person's confirmation, even on a signed-in browser that agreed
		// before.
		for range 2 {
			verifier := secrets.NewID() + secrets.NewID()
			sum := sha256.Sum256([]byte(verifier))
			q := url.Values{"response_type": {"code"}, "client_id": {idp.CompanionClientID}, "redirect_uri": {idp.CompanionRedirectURI},
				"scope": {"openid device_enrolment"}, "state": {"s"}, "nonce": {"n"}, "vtr": {`["P0.Cp.Cd"]`},
				"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
			p := e.b.Get("/authorize?" + q.Encode())
			require.Equal(t, "Log in", p.H1(), "the signed-in session is not enough")
			p = e.logInWithCode(e.b, p)
			require.Equal(t, "Set up the app on this phone", p.H1(), "never silent")
			require.True(t, p.HasForm("/authorize/consent"))
			q.Set("prompt", "none")
			p = e.b.Get("/authorize?" + q.Encode())
			loc, err := url.Parse(p.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, "interaction_required", loc.Query().Get("error"))
		}

		// The enrolment emails the person and shows in their activity.
		ph := newPhone(t)
		e.enrol(ph)
		alert := e.s.Latest(t, email, "device_enrolled")
		require.Contains(t, alert.Text, "A phone app was set up on Test phone")
		require.Contains(t, e.b.Get("/account").Body, "Phone app registered")

		// A token from a login more than five minutes old enrols nothing,
		// even while it is valid.
		verifier := secrets.NewID() + secrets.NewID()
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"response_type": {"code"}, "client_id": {idp.CompanionClientID}, "redirect_uri": {idp.CompanionRedirectURI},
			"scope": {"openid device_enrolment"}, "state": {"s"}, "nonce": {"n"}, "vtr": {`["P0.Cp.Cd"]`},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		p := e.logInWithCode(e.b, e.b.Get("/authorize?"+q.Encode()))
		require.Equal(t, "Set up the app on this phone", p.H1())
		e.clk.Add(4 * time.Minute) // the person reads the page for a while
		p = e.b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		loc, err := url.Parse(p.Header.Get("Location"))
		require.NoError(t, err)
		tok := e.postToken(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {idp.CompanionRedirectURI},
			"client_id": {idp.CompanionClientID}, "code_verifier": {verifier}})["access_token"].(string)
		e.clk.Add(2 * time.Minute)
		status, out := e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer "+tok, map[string]any{})
		require.Equal(t, http.StatusForbidden, status, out)
		require.Equal(t, "login_expired", out["error"])
	})
}

// One enrolment token, two enrolments at once: exactly one device.
func TestEnrolmentTokenIsSingleUse(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		tok := e.appToken("openid device_enrolment")
		type attempt struct {
			id, options string
			p           *phone
		}
		var attempts []attempt
		for range 4 {
			id, options := e.begin(tok)
			attempts = append(attempts, attempt{id, options, newPhone(t)})
		}
		var wg sync.WaitGroup
		statuses := make([]int, len(attempts))
		for i, a := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], _ = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
					"ceremony_id": a.id, "credential": a.p.attest(t, a.options), "device_key": a.p.jwk(t), "name": "Phone", "platform": "ios",
				})
			}()
		}
		wg.Wait()
		created := 0
		for _, s := range statuses {
			if s == http.StatusCreated {
				created++
			} else {
				require.Equal(t, http.StatusUnauthorized, s)
			}
		}
		require.Equal(t, 1, created)
		var devices, creds int
		require.NoError(t, e.s.DB.Get(&devices, `SELECT COUNT(*) FROM devices`))
		require.NoError(t, e.s.DB.Get(&creds, `SELECT COUNT(*) FROM fido_credentials`))
		require.Equal(t, 1, devices)
		require.Equal(t, 1, creds, "the refused enrolments' credentials are gone")
	})
}

// Removing a device revokes what its logins hold; signing out of all
// devices and resetting the password revoke every grant of the account,
// relying parties' refresh tokens included, and a reset removes the app.
func TestRecoveryRevokesGrants(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		r := e.refreshingRP()
		ph := newPhone(t)
		e.enrol(ph)

		byPassword := r.tokens(e.b, "", `["P0.Cp.Cd"]`)
		byPhone := r.tokens(e.stoppingBrowser(), e.fidoResponse(ph), `["P0.Cm"]`)
		status, out := e.refresh(r.client.ID, byPhone["refresh_token"].(string))
		require.Equal(t, http.StatusOK, status, out)
		phoneNext := out["refresh_token"].(string)

		// Removing the phone revokes the grants its logins made.
		settings := e.b.Get("/account/security")
		require.Equal(t, "Security settings", settings.H1())
		p := e.b.Submit(settings, "/account/security/devices/remove", map[string]string{"id": ph.deviceID})
		require.Equal(t, "Security settings", p.H1(), p.Errors())
		status, out = e.refresh(r.client.ID, phoneNext)
		require.Equal(t, http.StatusBadRequest, status, out)
		require.Equal(t, "invalid_grant", out["error"])
		status, out = e.refresh(r.client.ID, byPassword["refresh_token"].(string))
		require.Equal(t, http.StatusOK, status, out, "the password login's grant is not the phone's")
		next := out["refresh_token"].(string)

		// Signing out of all devices revokes every grant.
		p = e.b.Submit(e.b.Get("/account/security"), "/account/security/sign-out-everywhere", nil)
		require.Contains(t, p.Body, "services you logged in to must ask you to log in again")
		status, out = e.refresh(r.client.ID, next)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", out["error"])

		// A password reset revokes every grant and removes the app.
		q := newPhone(t)
		e.enrol(q)
		again := r.tokens(e.b, "", `["P0.Cp.Cd"]`)
		b := e.s.NewBrowser(t)
		require.Equal(t, "Check your email", b.Submit(b.Get("/forgot-password"), "/forgot-password", map[string]string{"email": email}).H1())
		p = b.Submit(b.Get(e.s.Latest(t, email, "reset_email").Link), "/reset-password/verify", nil)
		p = b.Submit(p, "/reset-password/code", map[string]string{"code": e.s.CodeFor(t, servertest.E164(t, phoneNumber), "reset_code")})
		p = b.Submit(p, "/reset-password/new", map[string]string{"password": "a brand new passphrase"})
		require.Equal(t, "Your password has been changed", p.H1())
		require.Contains(t, p.Body, "set it up again")
		status, out = e.refresh(r.client.ID, again["refresh_token"].(string))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", out["error"])
		status, out = e.call(http.MethodGet, "/app/v1/device", e.deviceAuth(q, "/app/v1/device"), nil)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "device_removed", out["error"])
		denied, _ := r.authorizeDenied(e.stoppingBrowser(), e.fidoResponse(q))
		require.Equal(t, "access_denied", denied, "the old phone no longer logs in")
	})
}

// authorizeDenied runs a biometric login that the server refuses and
// returns the error sent to the relying party.
func (r *testRP) authorizeDenied(b *servertest.Browser, fidoAuthResponse string) (string, string) {
	r.e.t.Helper()
	verifier := secrets.NewID() + secrets.NewID()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {r.client.ID}, "redirect_uri": {r.redirect}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n-1"}, "vtr": {`["P0.Cm"]`}, "fido_auth_response": {fidoAuthResponse},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	p := b.Get("/authorize?" + q.Encode())
	loc, err := url.Parse(p.Header.Get("Location"))
	require.NoError(r.e.t, err)
	require.True(r.e.t, strings.HasPrefix(loc.String(), r.redirect), loc.String())
	return loc.Query().Get("error"), loc.Query().Get("error_description")
}
