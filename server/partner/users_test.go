package partner_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/servertest"
)

func TestUsersEndpoint(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		ctx := context.Background()
		janeID := provenJane(t, s)
		sub, err := s.OIDC.SubjectFor(ctx, janeID)
		require.NoError(t, err)

		partnerRP := servertest.NewRP(t, s, false, oidc.ScopeUsersEndpoint)
		tok := mustClientToken(t, s, partnerRP)
		jane := map[string]any{"sub": sub, "account_status": "active", "identity_proofing_level": "P5"}

		for _, tc := range []struct {
			name   string
			query  string
			status int
			users  []any
			code   string
		}{
			{"by NHS number", "nhs_number=9000000009", http.StatusOK, []any{jane}, ""},
			{"by NHS number with spaces", "nhs_number=900+000+0009", http.StatusOK, []any{jane}, ""},
			{"by email", "email=Jane.Smith@example.org", http.StatusOK, []any{jane}, ""},
			{"by both", "nhs_number=9000000009&email=jane.smith@example.org", http.StatusOK, []any{jane}, ""},
			{"both of different people", "nhs_number=9000000009&email=someone@example.org", http.StatusOK, []any{}, ""},
			{"unknown NHS number", "nhs_number=9990000018", http.StatusOK, []any{}, ""},
			{"unknown email", "email=nobody@example.org", http.StatusOK, []any{}, ""},
			{"no search", "", http.StatusBadRequest, nil, partner.CodeInvalidRequest},
			{"bad check digit", "nhs_number=9000000008", http.StatusBadRequest, nil, partner.CodeInvalidNHSNumber},
			{"not an email", "email=jane", http.StatusBadRequest, nil, partner.CodeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, h, body := call(t, s, http.MethodGet, partner.PathUsers+"?"+tc.query, tok, nil)
				require.Equal(t, tc.status, status, body)
				require.Equal(t, "no-store", h.Get("Cache-Control"))
				if tc.code != "" {
					require.Equal(t, tc.code, body["error"])
					return
				}
				require.Equal(t, tc.users, body["users"])
			})
		}
		require.Equal(t, 1, s.AuditCount(t, "partner.users_lookup", janeID, partnerRP.Client.ID, "nhs_number_and_email"))
	})
}

func TestUsersEndpointRefusals(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		provenJane(t, s)
		const path = partner.PathUsers + "?nhs_number=9000000009"

		// A relying party without a partner scope gets no client token.
		plain := servertest.NewRP(t, s, false, "profile")
		status, body := clientToken(t, s, plain, "")
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "unauthorized_client", body["error"])

		// A partner asking for a scope it is not approved for.
		provisioner := servertest.NewRP(t, s, false, oidc.ScopeAccountProvisioning)
		status, body = clientToken(t, s, provisioner, oidc.ScopeUsersEndpoint)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_scope", body["error"])

		// A provisioning partner's token does not open the users endpoint.
		provTok := mustClientToken(t, s, provisioner)
		status, h, body := call(t, s, http.MethodGet, path, provTok, nil)
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, partner.CodeInsufficientScope, body["error"])
		require.Contains(t, h.Get("WWW-Authenticate"), "insufficient_scope")

		// A partner token is not a person's: /userinfo refuses it.
		req, err := http.NewRequest(http.MethodGet, s.URL+"/userinfo", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+provTok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

		// No token, a forged one.
		for _, tok := range []string{"", "not-a-token", provTok[:len(provTok)-4] + "AAAA"} {
			status, h, body = call(t, s, http.MethodGet, path, tok, nil)
			require.Equal(t, http.StatusUnauthorized, status)
			require.Equal(t, partner.CodeInvalidToken, body["error"])
			require.Contains(t, h.Get("WWW-Authenticate"), "invalid_token")
		}

		// A client whose approval was withdrawn after its token was issued.
		users := servertest.NewRP(t, s, false, oidc.ScopeUsersEndpoint)
		tok := mustClientToken(t, s, users)
		c := *users.Client
		c.Scopes = []string{oidc.ScopeOpenID}
		_, err = s.OIDC.Clients().Update(context.Background(), c)
		require.NoError(t, err)
		status, _, body = call(t, s, http.MethodGet, path, tok, nil)
		require.Equal(t, http.StatusForbidden, status, body)

		// A replayed client assertion is refused.
		users2 := servertest.NewRP(t, s, false, oidc.ScopeUsersEndpoint)
		form := url.Values{
			"grant_type": {"client_credentials"}, "client_assertion": {users2.Assertion()},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		}
		for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
			resp, err := http.PostForm(s.URL+"/token", form)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, want, resp.StatusCode, "request %d", i)
		}
		require.Equal(t, 2, s.AuditCount(t, "partner.refused", "", `"reason":"invalid_token"`))
		require.Equal(t, 1, s.AuditCount(t, "partner.refused", "", `"reason":"no_token"`))
		require.Equal(t, 2, s.AuditCount(t, "partner.refused", "", `"reason":"insufficient_scope"`))
	})
}

func TestUsersEndpointRateLimit(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		rp := servertest.NewRP(t, s, false, oidc.ScopeUsersEndpoint)
		tok := mustClientToken(t, s, rp)
		app := newAPI(t, s, partner.Config{UsersPerMinute: 2}, time.Now)
		var statuses []int
		for range 3 {
			status, body := appCall(t, app, http.MethodGet, partner.PathUsers+"?nhs_number=9000000009", tok, nil)
			statuses = append(statuses, status)
			if status == http.StatusTooManyRequests {
				require.Equal(t, partner.CodeRateLimited, body["error"])
				require.Equal(t, "60", body["retry_after"])
			}
		}
		require.Equal(t, []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests}, statuses)
	})
}
