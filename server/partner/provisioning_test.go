package partner_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/servertest"
	"github.com/idlink/idlink/server/trust"
)

// olivia is a PDS sandbox patient with a mobile number and no account.
func olivia() map[string]any {
	return map[string]any{
		"ods_code": "Y90003", "nhs_number": "9990000344", "given_name": "Olivia", "family_name": "Taylor",
		"birth_date": "1970-07-07", "postcode": "LS1 6AE", "mobile_number": "07700 900130", "email": "olivia.taylor@example.org",
	}
}

func with(base map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range base {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestProvisioning(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		provenJane(t, s)
		rp := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		tok := mustClientToken(t, s, rp)
		require.NoError(t, s.PDSSandbox.MarkDeceased(nhsnumber.MustParse("9990000026"), time.Now()))

		for _, tc := range []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"not JSON", "{", http.StatusBadRequest, partner.CodeInvalidRequest},
			{"unknown field", with(olivia(), "password", "x"), http.StatusBadRequest, partner.CodeInvalidRequest},
			{"two values", `{"ods_code":"Y90003"} {}`, http.StatusBadRequest, partner.CodeInvalidRequest},
			{"no ODS code", with(olivia(), "ods_code", nil), http.StatusBadRequest, partner.CodeInvalidODSCode},
			{"bad ODS code", with(olivia(), "ods_code", "Y9-0003"), http.StatusBadRequest, partner.CodeInvalidODSCode},
			{"bad NHS number", with(olivia(), "nhs_number", "9990000345"), http.StatusBadRequest, partner.CodeInvalidNHSNumber},
			{"no family name", with(olivia(), "family_name", nil), http.StatusBadRequest, partner.CodeInvalidDemographics},
			{"bad birth date", with(olivia(), "birth_date", "07/07/1970"), http.StatusBadRequest, partner.CodeInvalidDemographics},
			{"bad mobile", with(olivia(), "mobile_number", "0113 496 0130"), http.StatusBadRequest, partner.CodeInvalidMobile},
			{"bad email", with(olivia(), "email", "olivia"), http.StatusBadRequest, partner.CodeInvalidEmail},
			{"no PDS match", with(olivia(), "birth_date", "1970-07-08"), http.StatusUnprocessableEntity, partner.CodePDSNoMatch},
			{"NHS number of someone else", with(olivia(), "nhs_number", "9990000018"), http.StatusUnprocessableEntity, partner.CodePDSNoMatch},
			{"deceased", map[string]any{
				"ods_code": "Y90002", "nhs_number": "9990000026", "given_name": "George", "family_name": "Walker",
				"birth_date": "1941-02-04", "mobile_number": "07700 900101", "email": "george@example.org",
			}, http.StatusUnprocessableEntity, partner.CodePDSDeceased},
			{"mobile not in PDS", with(olivia(), "mobile_number", "07700 900131"), http.StatusUnprocessableEntity, partner.CodeMobileMismatch},
			{"email of someone proven", with(olivia(), "email", "jane.smith@example.org"), http.StatusConflict, partner.CodeEmailInUse},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, _, body := call(t, s, http.MethodPost, partner.PathProvisioning, tok, tc.body)
				require.Equal(t, tc.status, status, body)
				require.Equal(t, tc.code, body["error"], body)
			})
		}

		// Eligible: a provisioning id, a Location to read it, the email.
		status, h, body := call(t, s, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusCreated, status, body)
		id, _ := body["provisioning_id"].(string)
		require.NotEmpty(t, id)
		require.Equal(t, partner.StatusPending, body["status"])
		require.Equal(t, "Y90003", body["ods_code"])
		require.Equal(t, s.URL+partner.PathProvisioning+"/"+id, h.Get("Location"))
		mail := s.Latest(t, "olivia.taylor@example.org", partner.KindProvisioningClaim)
		require.True(t, strings.HasPrefix(mail.Link, s.URL+partner.PathClaim+"?token="), mail.Link)
		require.Equal(t, 1, s.AuditCount(t, "partner.provisioned", "", id, rp.Client.ID))

		// One pending request per patient.
		status, _, body = call(t, s, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusConflict, status)
		require.Equal(t, partner.CodeAlreadyProvisioning, body["error"])

		// The partner reads the status; another partner cannot.
		status, _, body = call(t, s, http.MethodGet, partner.PathProvisioning+"/"+id, tok, nil)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, partner.StatusPending, body["status"])
		other := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		status, _, body = call(t, s, http.MethodGet, partner.PathProvisioning+"/"+id, mustClientToken(t, s, other), nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, partner.CodeNotFound, body["error"])

		// A users-endpoint partner cannot provision.
		users := servertest.NewRP(t, s, false, oidc.ScopeUsersEndpoint)
		status, _, body = call(t, s, http.MethodPost, partner.PathProvisioning, mustClientToken(t, s, users), olivia())
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, partner.CodeInsufficientScope, body["error"])

		// A patient who already has a P9 account.
		jane := map[string]any{
			"ods_code": "Y12345", "nhs_number": "9000000009", "given_name": "Jane", "family_name": "Smith",
			"birth_date": "2010-10-22", "mobile_number": "07700 900009", "email": "jane.smith@example.org",
		}
		janeID := s.AccountID(t, "jane.smith@example.org")
		require.NoError(t, s.Accounts.RaiseLevel(context.Background(), audit.Actor{RequestID: "test"}, janeID, trust.P9))
		status, _, body = call(t, s, http.MethodPost, partner.PathProvisioning, tok, jane)
		require.Equal(t, http.StatusConflict, status)
		require.Equal(t, partner.CodeAlreadyP9, body["error"])

		// Size and media type.
		status, _, body = call(t, s, http.MethodPost, partner.PathProvisioning, tok, `{"ods_code":"`+strings.Repeat("A", 20<<10)+`"}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
		require.Equal(t, partner.CodeTooLarge, body["error"])

		require.GreaterOrEqual(t, s.AuditCount(t, "partner.provisioning_refused", "", rp.Client.ID), 15)
	})
}

func TestProvisioningExpiry(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		rp := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		tok := mustClientToken(t, s, rp)
		var mu sync.Mutex
		now := time.Now()
		api := newAPI(t, s, partner.Config{Issuer: s.URL, ProvisioningLifetime: time.Hour}, func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		})
		status, body := appCall(t, api, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusCreated, status, body)
		id := body["provisioning_id"].(string)

		mu.Lock()
		now = now.Add(61 * time.Minute)
		mu.Unlock()
		status, body = appCall(t, api, http.MethodGet, partner.PathProvisioning+"/"+id, tok, nil)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, partner.StatusExpired, body["status"])

		// An expired request no longer blocks a new one.
		status, body = appCall(t, api, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusCreated, status, body)
		require.NotEqual(t, id, body["provisioning_id"])
	})
}

// downSender is an email provider that is down.
type downSender struct{}

func (downSender) Send(context.Context, notify.Message) error {
	return fmt.Errorf("%w: provider answered 500", notify.ErrSendFailed)
}

// TestProvisioningEmailFailure: when the claim email cannot be sent,
// nothing is kept and the partner can try again.
func TestProvisioningEmailFailure(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		rp := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		tok := mustClientToken(t, s, rp)
		down := newAPIWith(t, s, partner.Config{Issuer: s.URL}, time.Now, downSender{})
		status, body := appCall(t, down, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusServiceUnavailable, status, body)
		require.Equal(t, partner.CodeEmailFailed, body["error"])
		require.Equal(t, "60", body["retry_after"])
		require.Equal(t, 1, s.AuditCount(t, "partner.provisioning_email_failed", "", rp.Client.ID))

		status, _, body = call(t, s, http.MethodPost, partner.PathProvisioning, tok, olivia())
		require.Equal(t, http.StatusCreated, status, body)
	})
}
