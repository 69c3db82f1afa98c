package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// signInToRP walks a relying party's login for a signed-in browser (with
// consent when asked) and returns the token response.
func signInToRP(t *testing.T, r *servertest.RP, b *servertest.Browser) *oauth2.Token {
	t.Helper()
	a := r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
	p := b.Get(a.URL)
	if p.HasForm("/authorize/consent") {
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
	}
	q := r.Returned(p, a)
	tok, _, _ := r.Exchange(q.Get("code"), a)
	return tok
}

func TestServicesSharedAndStopSharing(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := servertest.NewRP(t, s, false, "email", "phone", "landline")
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "share@example.org", pw, phone)

		p := b.Get("/account/services")
		require.Equal(t, "Services you have shared details with", p.H1())
		require.Equal(t, "You have not shared your details with any service.", p.Text("services"))

		// The consent page's promise is kept: the account lists the service.
		a := r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "scope": "openid email phone landline"})
		consent := b.Get(a.URL)
		require.Contains(t, consent.Text("maincontent"), "You can see what you have shared, and stop sharing, on your account page")
		q := r.Returned(b.Submit(consent, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		tok, _, claims := r.Exchange(q.Get("code"), a)
		require.Nil(t, claims["landline_number"], "no landline given yet")

		p = b.Get("/account/services")
		list := p.Text("services")
		require.Contains(t, list, "Test Health Service")
		require.Contains(t, list, "your email address")
		require.Contains(t, list, "your mobile phone number")
		require.NotContains(t, list, "Not used yet", "first and last used are known")

		// A landline is released through the landline scope, never verified.
		lp := b.Get("/account/landline")
		b.Submit(lp, "/account/landline", map[string]string{"landline": "0161 496 0000"})
		tok2 := signInToRP(t, r, b)
		info, err := r.Provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok2))
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, info.Claims(&got))
		require.Equal(t, "+441614960000", got["landline_number"])
		require.Equal(t, false, got["landline_number_verified"])

		// Stop sharing: consent withdrawn, refresh tokens refused.
		status, out := idRefresh(t, r, tok.RefreshToken)
		require.Equal(t, http.StatusOK, status, out)
		refresh, _ := out["refresh_token"].(string)
		p = b.Get("/account/services")
		stop := b.Submit(p, "/account/services/stop", map[string]string{"client_id": r.Client.ID})
		require.Equal(t, "You have not shared your details with any service.", stop.Text("services"))
		require.Contains(t, stop.Body, "You have stopped sharing your details with the service")
		status, out = idRefresh(t, r, refresh)
		require.Equal(t, http.StatusBadRequest, status, out)
		require.Equal(t, "invalid_grant", out["error"])
		status, out = idRefresh(t, r, tok2.RefreshToken)
		require.Equal(t, http.StatusBadRequest, status, out)

		// An unknown service is reported on the page.
		bad := b.Submit(p, "/account/services/stop", map[string]string{"client_id": "nope"})
		require.Equal(t, http.StatusUnprocessableEntity, bad.Status)
		require.Len(t, bad.Errors(), 1)

		// The next visit asks for consent again.
		a = r.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
		require.True(t, b.Get(a.URL).HasForm("/authorize/consent"))
		require.Equal(t, 1, audited(t, s, "sharing.stopped", "success"))
	})
}

func TestDeleteAccount(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		r := servertest.NewRP(t, s, false, "email")
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "leaving@example.org", pw, phone)
		signOut(t, b)
		logInRemembering(t, s, b, "leaving@example.org", phone)
		d := newPasskeyDevice()
		addPasskey(t, s, b, d, "Laptop")
		tok := signInToRP(t, r, b)
		var accountID, sub string
		require.NoError(t, s.DB.Get(&accountID, s.DB.Rebind(`SELECT id FROM accounts WHERE email = ?`), "leaving@example.org"))
		require.NoError(t, s.DB.Get(&sub, s.DB.Rebind(`SELECT subject FROM oidc_subjects WHERE account_id = ?`), accountID))

		p := b.Get("/account/delete")
		require.Equal(t, "Delete your account", p.H1())
		require.Contains(t, p.Body, "Services you have used keep what you shared with them before")
		got := b.Submit(p, "/account/delete", nil)
		require.Equal(t, []string{"Select that you understand your account will be deleted"}, got.Errors())
		require.Contains(t, got.Body, `href="#confirm"`)

		// A stale login must be confirmed first; nothing is deleted.
		clk.Add(16 * time.Minute)
		got = b.Submit(p, "/account/delete", map[string]string{"confirm": "yes"})
		require.Equal(t, "Log in", got.H1())
		require.Equal(t, 1, rows(t, s, `SELECT COUNT(*) FROM accounts WHERE id = ?`, accountID), "not deleted on a stale login")
		// Password again; this remembered browser is the second factor.
		got = b.Submit(got, "/login", map[string]string{"email": "leaving@example.org", "password": pw})
		require.Equal(t, "Delete your account", got.H1(), "back to what they were doing")
		done := b.Submit(got, "/account/delete", map[string]string{"confirm": "yes"})
		require.Equal(t, "Your account has been deleted", done.H1())
		require.Contains(t, s.Latest(t, "leaving@example.org", "account_deleted").Text, "deleted")

		// Nothing personal is left; the audit record stays without details.
		for _, q := range []string{
			`SELECT COUNT(*) FROM accounts WHERE id = ?`,
			`SELECT COUNT(*) FROM sessions WHERE account_id = ?`,
			`SELECT COUNT(*) FROM remembered_browsers WHERE account_id = ?`,
			`SELECT COUNT(*) FROM fido_credentials WHERE account_id = ?`,
			`SELECT COUNT(*) FROM oidc_consents WHERE account_id = ?`,
			`SELECT COUNT(*) FROM oidc_grants WHERE account_id = ?`,
			`SELECT COUNT(*) FROM audit_events WHERE account_id = ? AND (ip <> '' OR user_agent <> '' OR detail <> '')`,
		} {
			require.Equal(t, 0, rows(t, s, q, accountID), q)
		}
		require.Positive(t, rows(t, s, `SELECT COUNT(*) FROM audit_events WHERE account_id = ? AND type = 'account.deleted'`, accountID))
		require.Equal(t, 1, rows(t, s, `SELECT COUNT(*) FROM oidc_subjects WHERE subject = ?`, sub), "the sub stays taken")
		// (Its refresh token went with the grants; the relying party's own
		// clock is 16 minutes behind the server's here, so it is not asked.)
		require.Equal(t, 0, rows(t, s, `SELECT COUNT(*) FROM oidc_refresh_tokens WHERE client_id = ?`, r.Client.ID))
		require.NotEmpty(t, tok.RefreshToken)
		require.Equal(t, "Log in", b.Get("/account").H1())
		require.Equal(t, []string{"Enter a correct email address and password"}, passwordOnly(t, s.NewBrowser(t), "leaving@example.org").Errors())

		// The address can make a new account, with a new sub.
		nb := s.NewBrowser(t)
		require.Equal(t, "Your account", s.CreateAccount(t, nb, "leaving@example.org", pw, otherPhone).H1())
		var newID string
		require.NoError(t, s.DB.Get(&newID, s.DB.Rebind(`SELECT id FROM accounts WHERE email = ?`), "leaving@example.org"))
		require.NotEqual(t, accountID, newID)
		newSub, err := s.OIDC.SubjectFor(context.Background(), newID)
		require.NoError(t, err)
		require.NotEqual(t, sub, newSub)
	})
}

func rows(t *testing.T, s *servertest.Server, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.DB.Get(&n, s.DB.Rebind(q), args...))
	return n
}
