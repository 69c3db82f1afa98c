package browser_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/servertest"
)

// TestClaimJourneyInChromium: a partner provisions a patient over the API;
// the patient claims the account from the emailed link in a real browser,
// through the error states, with axe-core on every page.
func TestClaimJourneyInChromium(t *testing.T) {
	ctx := chrome(t)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	rp := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)

	resp, err := http.PostForm(s.URL+"/token", url.Values{
		"grant_type": {"client_credentials"}, "client_assertion": {rp.Assertion()},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
	})
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	body, err := json.Marshal(map[string]string{
		"ods_code": "Y90003", "nhs_number": "9990000344", "given_name": "Olivia", "family_name": "Taylor",
		"birth_date": "1970-07-07", "mobile_number": "07700 900130", "email": "olivia.taylor@example.org",
	})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL+partner.PathProvisioning, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	p := &page{t: t, ctx: ctx, s: s}
	p.open(s.Latest(t, "olivia.taylor@example.org", partner.KindProvisioningClaim).Link)
	p.expect("Claim your account")
	p.fill(partner.PathClaim+"/start", nil)
	p.expect("Enter the security code")
	p.fill(partner.PathClaim+"/code", map[string]string{"code": "000000"})
	p.expect("Enter the security code")
	p.fill(partner.PathClaim+"/code", map[string]string{"code": s.CodeFor(t, "+447700900130", "login_code")})
	p.expect("Create a password")
	p.fill(partner.PathClaim+"/password", map[string]string{"password": "password"})
	p.expect("Create a password")
	p.fill(partner.PathClaim+"/password", map[string]string{"password": "purple kettle orbit 42"})
	p.expect("Accept the terms of use")
	p.fill(partner.PathClaim+"/terms", nil)
	p.expect("Accept the terms of use")
	p.fill(partner.PathClaim+"/terms", map[string]string{"terms": "accept"})
	p.expect("Your account is ready")
}
