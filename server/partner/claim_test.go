package partner_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/servertest"
)

const oliviaPassword = "purple kettle orbit 42"

// claim follows the emailed link to the end of the claim journey.
func claim(t *testing.T, s *servertest.Server, b *servertest.Browser, email, mobile, pw string, existing bool) *servertest.Page {
	t.Helper()
	link := s.Latest(t, email, partner.KindProvisioningClaim).Link
	p := b.Get(link)
	require.Equal(t, "Claim your account", p.H1(), p.Errors())
	p = b.Submit(p, partner.PathClaim+"/start", nil)
	require.Equal(t, "Enter the security code", p.H1(), p.Errors())
	p = b.Submit(p, partner.PathClaim+"/code", map[string]string{"code": "000000"})
	require.Equal(t, http.StatusUnprocessableEntity, p.Status)
	p = b.Submit(p, partner.PathClaim+"/code", map[string]string{"code": s.CodeFor(t, mobile, "login_code")})
	want := "Create a password"
	if existing {
		want = "Enter your password"
	}
	require.Equal(t, want, p.H1(), p.Errors())
	p = b.Submit(p, partner.PathClaim+"/password", map[string]string{"password": pw})
	require.Equal(t, "Accept the terms of use", p.H1(), p.Errors())
	p = b.Submit(p, partner.PathClaim+"/terms", nil)
	require.Equal(t, http.StatusUnprocessableEntity, p.Status)
	return b.Submit(p, partner.PathClaim+"/terms", map[string]string{"terms": "accept"})
}

// TestProvisioningEndToEnd: a partner provisions Olivia, she claims the
// account from the email, a relying party gets P9 for her, and the users
// endpoint answers for her.
func TestProvisioningEndToEnd(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		partnerRP := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning, oidc.ScopeUsersEndpoint)
		tok := mustClientToken(t, s, partnerRP)
		status, _, body := call(t, s, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusCreated, status, body)
		id := body["provisioning_id"].(string)

		b := s.NewBrowser(t)
		p := claim(t, s, b, "olivia.taylor@example.org", "+447700900130", oliviaPassword, false)
		require.Equal(t, "Your account is ready", p.H1(), p.Errors())

		// The link is used up.
		link := s.Latest(t, "olivia.taylor@example.org", partner.KindProvisioningClaim).Link
		require.Equal(t, http.StatusGone, s.NewBrowser(t).Get(link).Status)

		status, _, body = call(t, s, http.MethodGet, partner.PathProvisioning+"/"+id, tok, nil)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, partner.StatusClaimed, body["status"])
		require.NotEmpty(t, body["claimed_at"])

		// A relying party asking for P9 gets it after an ordinary login.
		rp := servertest.NewRP(t, s, false, "profile")
		a := rp.Request(map[string]string{"vtr": `["P9.Cp.Cd"]`})
		b2 := s.NewBrowser(t)
		p = s.LogIn(t, b2, b2.Get(a.URL), "olivia.taylor@example.org", oliviaPassword, "07700 900130")
		if p.H1() == "Share your details with Test Health Service" {
			p = b2.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		}
		q := rp.Returned(p, a)
		personTok, _, claims := rp.Exchange(q.Get("code"), a)
		require.Equal(t, "P9", claims["identity_proofing_level"])
		require.Equal(t, "9990000344", claims["nhs_number"])
		require.Equal(t, "P9.Cp.Cd", claims["vot"])

		// The users endpoint answers for her with her sub.
		status, _, body = call(t, s, http.MethodGet, partner.PathUsers+"?nhs_number=9990000344", tok, nil)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, []any{map[string]any{"sub": claims["sub"], "account_status": "active", "identity_proofing_level": "P9"}}, body["users"])

		// A person's access token does not open the partner APIs.
		status, _, body = call(t, s, http.MethodGet, partner.PathUsers+"?nhs_number=9990000344", personTok.AccessToken, nil)
		require.Equal(t, http.StatusUnauthorized, status, body)
		require.Equal(t, partner.CodeInvalidToken, body["error"])

		oliviaID := s.AccountID(t, "olivia.taylor@example.org")
		require.Equal(t, 1, s.AuditCount(t, "partner.claimed", oliviaID, id))
		require.Equal(t, 1, s.AuditCount(t, "identity.provisioned", oliviaID))

		// Deleting her account forgets the request she claimed.
		require.NoError(t, s.Closure.Delete(t.Context(), audit.Actor{RequestID: "test"}, oliviaID))
		status, _, body = call(t, s, http.MethodGet, partner.PathProvisioning+"/"+id, tok, nil)
		require.Equal(t, http.StatusNotFound, status, body)
	})
}

// TestProvisioningRaisesExistingAccount: a person with a P5 account is
// provisioned; the claim raises that account to P9 with its own password.
func TestProvisioningRaisesExistingAccount(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		janeID := provenJane(t, s)
		partnerRP := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		tok := mustClientToken(t, s, partnerRP)
		status, _, body := call(t, s, http.MethodPost, partner.PathProvisioning, tok, map[string]any{
			"ods_code": "Y12345", "nhs_number": "9000000009", "given_name": "Jane", "family_name": "Smith",
			"birth_date": "2010-10-22", "mobile_number": "07700 900009", "email": "jane.smith@example.org",
		})
		require.Equal(t, http.StatusCreated, status, body)

		b := s.NewBrowser(t)
		p := claim(t, s, b, "jane.smith@example.org", "+447700900009", "correct horse battery staple", true)
		require.Equal(t, "Your account is ready", p.H1(), p.Errors())
		acct, err := s.Accounts.Account(t.Context(), janeID)
		require.NoError(t, err)
		require.Equal(t, "P9", acct.Level().String())
	})
}
