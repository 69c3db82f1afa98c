package companion_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// TestBiometricLoginNeverSwitchesSilently: a browser signed in as one
// person that opens an /authorize link carrying another person's
// fido_auth_response (a login CSRF) is asked before anything changes; a
// cancel keeps the first person and tells the relying party
// access_denied, a switch signs the other in through login.SignIn.
func TestBiometricLoginNeverSwitchesSilently(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		victim := start(t, dbURL) // app.user, signed in on victim.b
		victimID := victim.s.AccountID(t, email)

		// The attacker's own account and phone, on the same server.
		const attackerEmail = "attacker@example.org"
		ab := victim.s.NewBrowser(t)
		victim.s.CreateAccount(t, ab, attackerEmail, pw, "07700 900654")
		ab.Client.CheckRedirect = stopAtRedirectURIs
		attacker := &env{t: t, s: victim.s, b: ab}
		ap := newPhone(t)
		// Enrolment needs a login made for it: the attacker's own.
		tok := attacker.appTokenWith(ab, "openid device_enrolment", `["P0.Cp.Cd"]`, func(p *servertest.Page) *servertest.Page {
			return victim.s.LogIn(t, ab, p, attackerEmail, pw, "07700 900654")
		})
		cid, options := attacker.begin(tok)
		status, out := attacker.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": cid, "credential": ap.attest(t, options), "device_key": ap.jwk(t), "name": "Attacker's phone", "platform": "ios",
		})
		require.Equal(t, http.StatusCreated, status, out)
		ap.deviceID = out["device_id"].(string)
		ap.auth.AddCredential(ap.cred)
		attackerID := victim.s.AccountID(t, attackerEmail)
		r := victim.newRP()

		ask := func() (*servertest.Page, string) {
			t.Helper()
			verifier := secrets.NewID() + secrets.NewID()
			sum := sha256.Sum256([]byte(verifier))
			q := url.Values{"response_type": {"code"}, "client_id": {r.client.ID}, "redirect_uri": {r.redirect}, "scope": {"openid"},
				"state": {"st"}, "nonce": {"n"}, "vtr": {`["P0.Cm"]`}, "fido_auth_response": {attacker.fidoResponse(ap)},
				"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
			p := victim.b.Get("/authorize?" + q.Encode())
			require.Equal(t, http.StatusOK, p.Status)
			require.Equal(t, "You are already logged in", p.H1())
			require.Contains(t, p.Body, email)
			require.Contains(t, p.Body, attackerEmail)
			return p, verifier
		}
		returned := func(p *servertest.Page) url.Values {
			t.Helper()
			require.Equal(t, http.StatusSeeOther, p.Status, "page %q", p.H1())
			loc, err := url.Parse(p.Header.Get("Location"))
			require.NoError(t, err)
			return loc.Query()
		}

		p, _ := ask()
		require.Contains(t, victim.b.Get("/account").Body, email, "nothing changed while asking")
		q := returned(victim.b.Submit(p, "/authorize/switch", map[string]string{"decision": "cancel"}))
		require.Equal(t, "access_denied", q.Get("error"))
		acct := victim.b.Get("/account")
		require.Contains(t, acct.Body, email)
		require.NotContains(t, acct.Body, attackerEmail)
		require.Equal(t, 0, victim.s.SignIns(t, attackerID, login.MethodFIDOAuthResponse))

		p, verifier := ask()
		p = victim.b.Submit(p, "/authorize/switch", map[string]string{"decision": "switch"})
		if p.HasForm("/authorize/consent") {
			p = victim.b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		}
		q = returned(p)
		require.NotEmpty(t, q.Get("code"), q)
		claims := r.claims(q.Get("code"), verifier)
		require.Equal(t, "P0.Cm", claims["vot"])
		require.Equal(t, 1, victim.s.AuditCount(t, "authorize.code_issued", attackerID, r.client.ID), "the code is the attacker's")
		require.Equal(t, 0, victim.s.AuditCount(t, "authorize.code_issued", victimID, r.client.ID))
		require.Equal(t, 1, victim.s.SignIns(t, attackerID, login.MethodFIDOAuthResponse))
		require.Equal(t, 1, victim.s.AuditCount(t, "login.completed", attackerID, victimID), "the event names the account replaced")
		require.Contains(t, victim.b.Get("/account").Body, attackerEmail, "the person chose to switch")
	})
}
