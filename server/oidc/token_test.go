package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/trust"
)

func TestAuthorizationCodeFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_grants WHERE code_hash = ?`, code), "codes are stored hashed")
		resp, body := e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		require.Equal(t, "no-cache", resp.Header.Get("Pragma"))
		require.Equal(t, "bearer", body["token_type"])
		require.EqualValues(t, 300, body["expires_in"])
		require.Equal(t, "openid profile email phone", body["scope"])
		require.NotEmpty(t, body["refresh_token"])

		now := e.clock.Now().Unix()
		h, id := e.verifyToken(body["id_token"].(string))
		require.Equal(t, "RS512", h.Algorithm)
		require.Equal(t, "JWT", h.ExtraHeaders["typ"])
		require.NotEmpty(t, h.KeyID)
		sub := id["sub"].(string)
		require.Len(t, sub, 26)
		require.NotEqual(t, testAccount, sub)
		require.Equal(t, testIssuer, id["iss"])
		require.Equal(t, e.rp.ID, id["aud"], "aud is the client_id as a string")
		require.EqualValues(t, now, id["iat"])
		require.EqualValues(t, now+3600, id["exp"])
		require.EqualValues(t, g.AuthTime.Unix(), id["auth_time"])
		require.Equal(t, g.Nonce, id["nonce"])
		require.Equal(t, "P9.Cp.Cd", id["vot"])
		require.Equal(t, "https://id.example.test/trustmark/id.example.test", id["vtm"])
		require.NotEmpty(t, id["jti"])
		require.Equal(t, "9000000009", id["nhs_number"])
		require.Equal(t, "Smith", id["family_name"])
		require.Equal(t, "2010-10-22", id["birthdate"])
		require.Equal(t, "P9", id["identity_proofing_level"])
		// NHS login's ID token carries the profile claims only; email and
		// phone come from /userinfo.
		for _, k := range []string{"email", "email_verified", "phone_number", "phone_number_verified", "phone_number_pds_matched", "given_name"} {
			require.NotContains(t, id, k)
		}
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_id_tokens WHERE jti = ? AND client_id = ? AND account_id = ?`,
			id["jti"], e.rp.ID, testAccount))

		h, at := e.verifyToken(body["access_token"].(string))
		require.Equal(t, "RS512", h.Algorithm)
		require.Equal(t, sub, at["sub"])
		require.Equal(t, e.rp.ID, at["aud"])
		require.Equal(t, e.rp.ID, at["client_id"])
		require.EqualValues(t, now+300, at["exp"])
		require.Equal(t, "openid profile email phone", at["scope"])
		require.Equal(t, "P9.Cp.Cd", at["vot"])
		require.Equal(t, id["vtm"], at["vtm"])
		require.Equal(t, "9000000009", at["nhs_number"])
		require.EqualValues(t, g.AuthTime.Unix(), at["auth_time"])
		require.NotEmpty(t, at["grant_id"])
		require.NotEqual(t, id["jti"], at["jti"])
		require.NotContains(t, at, "email", "the access token carries no profile claims beyond nhs_number")

		// The subject is stable for the account and differs between accounts.
		again := e.login(nil)
		_, id2 := e.verifyToken(again["id_token"].(string))
		require.Equal(t, sub, id2["sub"])
		e.people.set("acct-2", fullPerson())
		other := e.login(func(g *Grant) { g.AccountID = "acct-2" })
		_, id3 := e.verifyToken(other["id_token"].(string))
		require.NotEqual(t, sub, id3["sub"])
	})
}

func TestTokenRequestErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tests := []struct {
			name   string
			form   func() url.Values
			status int
			code   string
			desc   string
		}{
			{"missing grant_type", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Del("grant_type")
				return f
			}, 400, "invalid_request", "grant_type"},
			{"password grant", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Set("grant_type", "password")
				return f
			}, 400, "unsupported_grant_type", ""},
			{"client_credentials grant", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Set("grant_type", "client_credentials")
				return f
			}, 400, "unsupported_grant_type", ""},
			{"repeated parameter", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Add("code", "y")
				return f
			}, 400, "invalid_request", "repeated"},
			{"missing code", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Del("code")
				return f
			}, 400, "invalid_request", "code is required"},
			{"missing redirect_uri", func() url.Values {
				f := e.exchangeForm("x", "")
				f.Del("redirect_uri")
				return f
			}, 400, "invalid_request", "redirect_uri is required"},
			{"unknown code", func() url.Values { return e.exchangeForm("nope", "") }, 400, "invalid_grant", "unknown"},
			{"oversized code", func() url.Values { return e.exchangeForm(strings.Repeat("c", 300), "") }, 400, "invalid_grant", ""},
			{"wrong redirect_uri", func() url.Values {
				g, v := e.grant(nil)
				f := e.exchangeForm(e.issue(g), v)
				f.Set("redirect_uri", "https://rp.example.test/other")
				return f
			}, 400, "invalid_grant", "redirect_uri"},
			{"redirect_uri with a query", func() url.Values {
				g, v := e.grant(nil)
				f := e.exchangeForm(e.issue(g), v)
				f.Set("redirect_uri", rpRedirect+"?x=1")
				return f
			}, 400, "invalid_grant", "redirect_uri"},
			{"wrong code_verifier", func() url.Values {
				g, _ := e.grant(nil)
				other, _ := newVerifier()
				return e.exchangeForm(e.issue(g), other)
			}, 400, "invalid_grant", "code_verifier does not match"},
			{"missing code_verifier", func() url.Values {
				g, _ := e.grant(nil)
				return e.exchangeForm(e.issue(g), "")
			}, 400, "invalid_grant", "code_verifier is required"},
			{"code_verifier without challenge", func() url.Values {
				g, v := e.grant(func(g *Grant) { g.CodeChallenge, g.CodeChallengeMethod = "", "" })
				return e.exchangeForm(e.issue(g), v)
			}, 400, "invalid_grant", "no code_challenge"},
			{"malformed code_verifier", func() url.Values {
				g, _ := e.grant(nil)
				return e.exchangeForm(e.issue(g), "short")
			}, 400, "invalid_request", "code_verifier"},
			{"expired code", func() url.Values {
				g, v := e.grant(nil)
				code := e.issue(g)
				e.clock.Advance(DefaultCodeLifetime)
				return e.exchangeForm(code, v)
			}, 400, "invalid_grant", "expired"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := e.postForm("/token", tc.form())
				require.Equal(t, tc.status, resp.StatusCode, "body: %v", body)
				require.Equal(t, tc.code, body["error"])
				require.Contains(t, body["error_description"], tc.desc)
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			})
		}
	})
}

func TestTokenRequestEncoding(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		post := func(ct, body string, hdr map[string]string) map[string]any {
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", ct)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp := e.do(req)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			return jsonBody(t, resp)
		}
		f := e.exchangeForm("x", "").Encode()
		require.Equal(t, "invalid_request", post("application/json", `{"grant_type":"authorization_code"}`, nil)["error"])
		require.Equal(t, "invalid_request", post("", f, nil)["error"])
		require.Equal(t, "invalid_request", post("application/x-www-form-urlencoded", f, map[string]string{"Content-Encoding": "gzip"})["error"])
		big := f + "&pad=" + strings.Repeat("p", maxFormBody)
		require.Contains(t, post("application/x-www-form-urlencoded", big, nil)["error_description"], "larger than")
		// Parameters in the query string are not read.
		req := httptest.NewRequest(http.MethodPost, "/token?grant_type=authorization_code", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := e.do(req)
		require.Equal(t, "grant_type is required", jsonBody(t, resp)["error_description"])
	})
}

// A token request that fails the redirect_uri or PKCE check does not use
// the code up: only a successful exchange does.
func TestFailedBindingKeepsCode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		wrong, _ := newVerifier()
		resp, body := e.postForm("/token", e.exchangeForm(code, wrong))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		f := e.exchangeForm(code, verifier)
		f.Set("redirect_uri", "https://rp.example.test/other")
		_, body = e.postForm("/token", f)
		require.Equal(t, "invalid_grant", body["error"])
		resp, body = e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	})
}

func TestCodeOfAnotherClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		// app1 (public) presents rp1's code.
		f := url.Values{"grant_type": {GrantTypeAuthorizationCode}, "client_id": {e.app1.ID}, "code": {code},
			"redirect_uri": {rpRedirect}, "code_verifier": {verifier}}
		resp, body := e.postForm("/token", f)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "another client")
		// The rightful client still redeems it.
		resp, body = e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	})
}

func TestCodeReplayRevokesIssuedTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		resp, first := e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _ = e.userinfo(first["access_token"].(string))
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, body := e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "already used")

		resp, _ = e.userinfo(first["access_token"].(string))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "access tokens of the first use are revoked")
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
		resp, body = e.postForm("/token", e.refreshForm(first["refresh_token"].(string)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"], "the refresh-token family is revoked")
		n, err := e.srv.audit.Count(context.Background(), testAccount, "oidc.code_replay", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestConcurrentCodeRedemption(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		const n = 50
		forms := make([]url.Values, n)
		for i := range forms {
			forms[i] = e.exchangeForm(code, verifier)
		}
		statuses := make([]int, n)
		bodies := make([]map[string]any, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(forms[i].Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := e.app.Test(req, fiberTestConfig())
				if err != nil {
					statuses[i] = -1
					return
				}
				defer resp.Body.Close()
				statuses[i] = resp.StatusCode
				_ = json.NewDecoder(resp.Body).Decode(&bodies[i])
			})
		}
		wg.Wait()
		ok := 0
		var winner map[string]any
		for i, st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
				winner = bodies[i]
			case http.StatusBadRequest:
				require.Equal(t, "invalid_grant", bodies[i]["error"])
			default:
				t.Fatalf("request %d: status %d %v", i, st, bodies[i])
			}
		}
		require.Equal(t, 1, ok, "exactly one redemption succeeds")
		resp, _ := e.userinfo(winner["access_token"].(string))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the replays revoked what the winner got")
	})
}

func TestRefreshTokenRotation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		first := e.login(nil)
		_, id1 := e.verifyToken(first["id_token"].(string))
		r1 := first["refresh_token"].(string)
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_refresh_tokens WHERE token_hash = ?`, r1), "stored hashed")

		e.clock.Advance(10 * time.Minute)
		resp, second := e.postForm("/token", e.refreshForm(r1))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", second)
		r2 := second["refresh_token"].(string)
		require.NotEqual(t, r1, r2)
		require.Equal(t, first["scope"], second["scope"])
		require.NotContains(t, second, "id_token", "NHS login issues ID tokens for authorization_code only")
		_, at2 := e.verifyToken(second["access_token"].(string))
		require.Equal(t, id1["sub"], at2["sub"])
		require.Equal(t, id1["auth_time"], at2["auth_time"], "auth_time is the original login's")
		require.EqualValues(t, e.clock.Now().Unix(), at2["iat"])
		resp, _ = e.userinfo(second["access_token"].(string))
		require.Equal(t, http.StatusOK, resp.StatusCode)

		// Narrower scope.
		resp, third := e.postForm("/token", func() url.Values {
			f := e.refreshForm(r2)
			f.Set("scope", "openid email")
			return f
		}())
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", third)
		require.Equal(t, "openid email", third["scope"])
		_, at3 := e.verifyToken(third["access_token"].(string))
		require.Equal(t, "openid email", at3["scope"])
		require.NotContains(t, at3, "nhs_number", "profile was narrowed away")
		r3 := third["refresh_token"].(string)
		// The family keeps its original scope.
		resp, fourth := e.postForm("/token", e.refreshForm(r3))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "openid profile email phone", fourth["scope"])
		r4 := fourth["refresh_token"].(string)

		// Wider scope than granted.
		resp, body := e.postForm("/token", func() url.Values {
			f := e.refreshForm(r4)
			f.Set("scope", "openid landline")
			return f
		}())
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_scope", body["error"])

		// Reusing an old refresh token revokes the whole family.
		resp, body = e.postForm("/token", e.refreshForm(r1))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "already used")
		resp, body = e.postForm("/token", e.refreshForm(r4))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"], "the latest token of the family is revoked too")
		resp, _ = e.userinfo(fourth["access_token"].(string))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		n, err := e.srv.audit.Count(context.Background(), testAccount, "oidc.refresh_reuse", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestRefreshTokenErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		tokens := e.login(nil)
		r := tokens["refresh_token"].(string)

		resp, body := e.postForm("/token", e.refreshForm(""))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_request", body["error"])
		resp, body = e.postForm("/token", e.refreshForm("unknown"))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		resp, body = e.postForm("/token", e.refreshForm(strings.Repeat("r", 400)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])

		// Another client presenting the token: refused, and not used up.
		f := url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {e.app1.ID}, "refresh_token": {r}}
		resp, body = e.postForm("/token", f)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "another client")

		// Refresh tokens switched off for the client.
		rp, err := e.srv.Clients().Get(ctx, e.rp.ID)
		require.NoError(t, err)
		rp.RefreshTokens = false
		_, err = e.srv.Clients().Update(ctx, *rp)
		require.NoError(t, err)
		resp, body = e.postForm("/token", e.refreshForm(r))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "unauthorized_client", body["error"])
		noRefresh := e.login(nil)
		require.NotContains(t, noRefresh, "refresh_token")
		rp.RefreshTokens = true
		_, err = e.srv.Clients().Update(ctx, *rp)
		require.NoError(t, err)

		// Expired after 30 days.
		e.clock.Advance(DefaultRefreshTokenLifetime)
		resp, body = e.postForm("/token", e.refreshForm(r))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "expired")
	})
}

func TestConcurrentRefresh(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		r := e.login(nil)["refresh_token"].(string)
		const n = 50
		forms := make([]url.Values, n)
		for i := range forms {
			forms[i] = e.refreshForm(r)
		}
		statuses := make([]int, n)
		bodies := make([]map[string]any, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(forms[i].Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := e.app.Test(req, fiberTestConfig())
				if err != nil {
					statuses[i] = -1
					return
				}
				defer resp.Body.Close()
				statuses[i] = resp.StatusCode
				_ = json.NewDecoder(resp.Body).Decode(&bodies[i])
			})
		}
		wg.Wait()
		var fresh []string
		for i, st := range statuses {
			switch st {
			case http.StatusOK:
				fresh = append(fresh, bodies[i]["refresh_token"].(string))
			case http.StatusBadRequest:
				require.Equal(t, "invalid_grant", bodies[i]["error"])
			default:
				t.Fatalf("request %d: status %d %v", i, st, bodies[i])
			}
		}
		require.Len(t, fresh, 1, "exactly one new refresh token")
		resp, body := e.postForm("/token", e.refreshForm(fresh[0]))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"], "the reuse revoked the family, new token included")
	})
}

func TestPublicClientFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		g, verifier := e.grant(func(g *Grant) {
			g.ClientID, g.RedirectURI, g.Scopes = e.app1.ID, appRedirect, []string{ScopeOpenID, ScopeEmail}
		})
		code := e.issue(g)
		f := url.Values{"grant_type": {GrantTypeAuthorizationCode}, "client_id": {e.app1.ID}, "code": {code}, "redirect_uri": {appRedirect}}
		resp, body := e.postForm("/token", f)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"], "PKCE verifier required")

		code = e.issue(g)
		f.Set("code", code)
		f.Set("code_verifier", verifier)
		resp, body = e.postForm("/token", f)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
		require.NotEmpty(t, body["refresh_token"])
		_, id := e.verifyToken(body["id_token"].(string))
		require.Equal(t, e.app1.ID, id["aud"])

		rf := url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {e.app1.ID}, "refresh_token": {body["refresh_token"].(string)}}
		resp, body = e.postForm("/token", rf)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)

		_, err := e.srv.IssueCode(context.Background(), func() Grant {
			g2 := g
			g2.CodeChallenge, g2.CodeChallengeMethod = "", ""
			return g2
		}())
		require.ErrorIs(t, err, ErrInvalidRequest, "public clients must use PKCE")
	})
}

func TestIssueCodeValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		e.people.set("blocked", Person{ProofingLevel: trust.P9, Blocked: true})
		e.people.set("p5", Person{ProofingLevel: trust.P5})
		tests := []struct {
			name    string
			mutate  func(*Grant)
			wantErr error
		}{
			{"unknown client", func(g *Grant) { g.ClientID = "nobody" }, ErrClientNotFound},
			{"unregistered redirect", func(g *Grant) { g.RedirectURI = "https://evil.example/cb" }, ErrInvalidRequest},
			{"no account", func(g *Grant) { g.AccountID = "" }, ErrInvalidRequest},
			{"nonce too long", func(g *Grant) { g.Nonce = strings.Repeat("n", maxNonceLen+1) }, ErrInvalidRequest},
			{"huge nonce", func(g *Grant) { g.Nonce = strings.Repeat("n", 600) }, ErrInvalidRequest},
			{"no vtr", func(g *Grant) { g.VTR = nil }, ErrInvalidRequest},
			{"vot not requested", func(g *Grant) { g.VoT = "P5.Cp.Cd" }, ErrInvalidRequest},
			{"credentials not proven", func(g *Grant) { g.Credentials = trust.Credentials{trust.Cp} }, ErrInvalidRequest},
			{"no auth_time", func(g *Grant) { g.AuthTime = time.Time{} }, ErrInvalidRequest},
			{"auth_time in the future", func(g *Grant) { g.AuthTime = e.clock.Now().Add(time.Hour) }, ErrInvalidRequest},
			{"no openid", func(g *Grant) { g.Scopes = []string{ScopeEmail} }, ErrInvalidScope},
			{"unknown scope", func(g *Grant) { g.Scopes = []string{ScopeOpenID, "offline_access"} }, ErrInvalidScope},
			{"scope above the vot", func(g *Grant) {
				vtr, _ := trust.ParseVTR(`["P0.Cp.Cd"]`)
				g.VTR, g.VoT = vtr, "P0.Cp.Cd"
			}, ErrInvalidScope},
			{"plain PKCE", func(g *Grant) { g.CodeChallengeMethod = "plain" }, ErrInvalidRequest},
			{"malformed challenge", func(g *Grant) { g.CodeChallenge = "abc" }, ErrInvalidRequest},
			{"method without challenge", func(g *Grant) { g.CodeChallenge = "" }, ErrInvalidRequest},
			{"unknown person", func(g *Grant) { g.AccountID = "ghost" }, ErrNoPerson},
			{"blocked person", func(g *Grant) { g.AccountID = "blocked" }, ErrAccountBlocked},
			{"proofing level below vot", func(g *Grant) { g.AccountID = "p5" }, ErrInvalidRequest},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				g, _ := e.grant(tc.mutate)
				_, err := e.srv.IssueCode(context.Background(), g)
				require.ErrorIs(t, err, tc.wantErr)
			})
		}
		// A vector the client has not registered.
		rp, err := e.srv.Clients().Get(context.Background(), e.rp.ID)
		require.NoError(t, err)
		rp.VTR, rp.DefaultVTR = []string{"P9.Cm"}, []string{"P9.Cm"}
		_, err = e.srv.Clients().Update(context.Background(), *rp)
		require.NoError(t, err)
		g, _ := e.grant(nil)
		_, err = e.srv.IssueCode(context.Background(), g)
		require.ErrorIs(t, err, ErrVectorNotAllowed)
	})
}

func TestBlockedAccountGetsNoTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(nil)
		g, verifier := e.grant(nil)
		code := e.issue(g)
		p := fullPerson()
		p.Blocked = true
		e.people.set(testAccount, p)
		resp, body := e.postForm("/token", e.exchangeForm(code, verifier))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		resp, body = e.postForm("/token", e.refreshForm(tokens["refresh_token"].(string)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		resp, _ = e.userinfo(tokens["access_token"].(string))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func TestPurgeAndForgetAccount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		e.login(nil)
		g, _ := e.grant(nil)
		e.issue(g) // never redeemed
		require.Equal(t, 2, count(t, db, `SELECT COUNT(*) FROM oidc_grants`))
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_id_tokens`))
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_jtis`))

		e.clock.Advance(DefaultIDTokenLifetime + time.Second)
		require.NoError(t, e.srv.Purge(ctx))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_id_tokens`))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_jtis`))
		require.Equal(t, 2, count(t, db, `SELECT COUNT(*) FROM oidc_grants`), "grants live as long as their refresh tokens may")
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_refresh_tokens`))

		e.clock.Advance(DefaultCodeLifetime + DefaultRefreshTokenLifetime)
		require.NoError(t, e.srv.Purge(ctx))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_grants`))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_refresh_tokens`))

		tokens := e.login(nil)
		require.NoError(t, e.srv.ForgetAccount(ctx, testAccount))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_grants`))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_refresh_tokens`))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_id_tokens`))
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_subjects`))
		resp, body := e.postForm("/token", e.refreshForm(tokens["refresh_token"].(string)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body["error"])
		resp, _ = e.userinfo(tokens["access_token"].(string))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}
