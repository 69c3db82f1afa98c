package companion_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// TestBiometricLoginRunsThePDSCheck: the companion app's login at
// /authorize (fido_auth_response) runs the same per-login PDS check as
// the login journey, so a person marked deceased is refused there too.
func TestBiometricLoginRunsThePDSCheck(t *testing.T) {
	e := start(t, dbtest.SQLiteURL(t))
	ctx := context.Background()
	p := newPhone(t)
	e.enrol(p)
	r := e.newRP()
	acct := deviceAccount(t, e, p.deviceID)
	_, err := e.s.Identity.MatchPDS(ctx, audit.Actor{}, acct, identity.Details{BirthDate: "2010-10-22", FamilyName: "Smith", GivenName: "Jane", Postcode: "LS1 6AE"})
	require.NoError(t, err)

	q, verifier := r.authorize(e.stoppingBrowser(), e.fidoResponse(p), `["P0.Cm"]`)
	require.Equal(t, "P0.Cm", r.claims(q.Get("code"), verifier)["vot"])

	require.NoError(t, e.s.PDSSandbox.MarkDeceased(nhsnumber.MustParse("9000000009"), time.Now()))
	q, _ = r.authorize(e.stoppingBrowser(), e.fidoResponse(p), `["P0.Cm"]`)
	require.Equal(t, "access_denied", q.Get("error"))
	require.Equal(t, 1, e.auditCount("authorize.fido_rejected", "account_blocked"))
}
