package companion_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/companion"
	"github.com/idlink/idlink/server/login"
	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/servertest"
)

func TestEnrolment(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		ctx := context.Background()

		// No token, a wrong token, a token without the enrolment scope.
		status, out := e.call(http.MethodPost, "/app/v1/enrolment/begin", "", map[string]any{})
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_token", out["error"])
		status, out = e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer not.a.token", map[string]any{})
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_token", out["error"])
		plain := e.appToken("openid")
		status, out = e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer "+plain, map[string]any{})
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "insufficient_scope", out["error"])
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+plain, map[string]any{})
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "insufficient_scope", out["error"])

		tok := e.appToken("openid device_enrolment")
		id, options := e.begin(tok)
		var o struct {
			PublicKey struct {
				AuthenticatorSelection map[string]any `json:"authenticatorSelection"`
			} `json:"publicKey"`
		}
		require.NoError(t, json.Unmarshal([]byte(options), &o))
		require.Equal(t, "platform", o.PublicKey.AuthenticatorSelection["authenticatorAttachment"])
		require.Equal(t, "required", o.PublicKey.AuthenticatorSelection["userVerification"])

		p := newPhone(t)
		attestation := p.attest(t, options)
		// A bad device is refused before the ceremony is used up.
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": attestation, "device_key": p.jwk(t), "name": "Test phone", "platform": "nokia",
		})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_device", out["error"])
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": attestation, "device_key": json.RawMessage(`{"kty":"oct","k":"AAAA"}`), "name": "Test phone", "platform": "ios",
		})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_device", out["error"])
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{"ceremony_id": id, "unknown": 1})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_request", out["error"])

		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": attestation, "device_key": p.jwk(t), "name": "Test phone", "platform": "ios", "push_token": "fcm-1",
		})
		require.Equal(t, http.StatusCreated, status, out)
		p.deviceID = out["device_id"].(string)
		require.NotEmpty(t, p.deviceID)
		require.Equal(t, 1, e.auditCount("companion.device_enrolled", p.deviceID))
		require.Contains(t, e.s.Latest(t, email, "device_enrolled").Text, "A phone app was set up on Test phone")

		acct := deviceAccount(t, e, p.deviceID)
		devs, err := e.s.Devices.ListForAccount(ctx, acct)
		require.NoError(t, err)
		require.Len(t, devs, 1)
		require.Equal(t, "Test phone", devs[0].Name)
		require.Equal(t, "fcm-1", devs[0].PushToken)
		creds, err := e.s.FIDO.ListCredentials(ctx, acct)
		require.NoError(t, err)
		require.Len(t, creds, 1)
		require.Equal(t, fido.KindApp, creds[0].Kind)
		require.Equal(t, p.deviceID, creds[0].DeviceID)
		require.Equal(t, creds[0].ID, devs[0].FIDOCredentialID)

		// The enrolment token is single use: it enrolled one device.
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": attestation, "device_key": p.jwk(t), "name": "Again", "platform": "ios",
		})
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_token", out["error"])
		status, _ = e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer "+tok, map[string]any{})
		require.Equal(t, http.StatusUnauthorized, status)

		// The ceremony is single use.
		tok = e.appToken("openid device_enrolment")
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": attestation, "device_key": p.jwk(t), "name": "Again", "platform": "ios",
		})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "ceremony_not_found", out["error"])

		// A platform authenticator that did not verify the person.
		id, options = e.begin(tok)
		q := newPhone(t)
		q.auth.Options.UserNotVerified = true
		status, out = e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
			"ceremony_id": id, "credential": q.attest(t, options), "device_key": q.jwk(t), "name": "Unverified", "platform": "android",
		})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "user_not_verified", out["error"])
		require.Equal(t, 1, e.auditCount("companion.enrolment_failed", "user_not_verified"))
	})
}

func deviceAccount(t *testing.T, e *env, deviceID string) string {
	d, err := e.s.Devices.Get(context.Background(), deviceID)
	require.NoError(t, err)
	return d.AccountID
}

func TestDeviceCalls(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		ctx := context.Background()
		p := newPhone(t)
		e.enrol(p)

		status, out := e.call(http.MethodGet, "/app/v1/device", e.deviceAuth(p, "/app/v1/device"), nil)
		require.Equal(t, http.StatusOK, status, out)
		require.Equal(t, p.deviceID, out["device_id"])
		require.Equal(t, "ios", out["platform"])
		require.Equal(t, false, out["has_push_token"])

		now := time.Now()
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		aud := e.s.URL + "/app/v1/device"
		replayed := e.deviceAuth(p, "/app/v1/device")
		status, _ = e.call(http.MethodGet, "/app/v1/device", replayed, nil)
		require.Equal(t, http.StatusOK, status)
		for _, tc := range []struct {
			name, authorization, code string
		}{
			{"missing", "", "device_token_missing"},
			{"bearer instead", "Bearer x", "device_token_missing"},
			{"garbage", "DeviceJWT not-a-jwt", "device_token_malformed"},
			{"wrong signature", "DeviceJWT " + p.deviceJWT(t, other, aud, now, now.Add(30*time.Second)), "device_token_signature"},
			{"replay", replayed, "device_token_replayed"},
			{"expired", "DeviceJWT " + p.deviceJWT(t, p.key, aud, now.Add(-2*time.Minute), now.Add(-90*time.Second)), "device_token_expired"},
			{"another URL", "DeviceJWT " + p.deviceJWT(t, p.key, e.s.URL+"/app/v1/devices", now, now.Add(30*time.Second)), "device_token_audience"},
			{"unknown device", "DeviceJWT " + (&phone{deviceID: "nope"}).deviceJWT(t, p.key, aud, now, now.Add(30*time.Second)), "device_unknown"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, out := e.call(http.MethodGet, "/app/v1/device", tc.authorization, nil)
				require.Equal(t, http.StatusUnauthorized, status)
				require.Equal(t, tc.code, out["error"])
			})
		}
		require.Positive(t, e.auditCount("companion.device_auth_failed", "device_token_replayed"))

		// Push token: set, refused when invalid, cleared.
		status, out = e.call(http.MethodPut, "/app/v1/device/push-token", e.deviceAuth(p, "/app/v1/device/push-token"), map[string]any{"push_token": "fcm-new"})
		require.Equal(t, http.StatusNoContent, status, out)
		d, err := e.s.Devices.Get(ctx, p.deviceID)
		require.NoError(t, err)
		require.Equal(t, "fcm-new", d.PushToken)
		status, out = e.call(http.MethodPut, "/app/v1/device/push-token", e.deviceAuth(p, "/app/v1/device/push-token"), map[string]any{"push_token": "has space"})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_device", out["error"])
		status, out = e.call(http.MethodPut, "/app/v1/device/push-token", e.deviceAuth(p, "/app/v1/device/push-token"), map[string]any{})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_request", out["error"])
		status, _ = e.call(http.MethodPut, "/app/v1/device/push-token", e.deviceAuth(p, "/app/v1/device/push-token"), map[string]any{"push_token": ""})
		require.Equal(t, http.StatusNoContent, status)
		d, err = e.s.Devices.Get(ctx, p.deviceID)
		require.NoError(t, err)
		require.Empty(t, d.PushToken)

		// The app unregisters itself: its calls stop at once.
		status, _ = e.call(http.MethodDelete, "/app/v1/device", e.deviceAuth(p, "/app/v1/device"), nil)
		require.Equal(t, http.StatusNoContent, status)
		status, out = e.call(http.MethodGet, "/app/v1/device", e.deviceAuth(p, "/app/v1/device"), nil)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "device_removed", out["error"])
		creds, err := e.s.FIDO.ListCredentials(ctx, d.AccountID)
		require.NoError(t, err)
		require.Empty(t, creds, "the app credential goes with the device")
	})
}

func TestBiometricLogin(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		ctx := context.Background()
		p := newPhone(t)
		e.enrol(p)
		r := e.newRP()

		// A biometric login in a browser with no session: consent the
		// first time, then straight back with P0.Cm.
		resp := e.fidoResponse(p)
		checks := e.s.PDSChecks(t)
		q, verifier := r.authorize(e.stoppingBrowser(), resp, `["P0.Cm"]`)
		require.NotEmpty(t, q.Get("code"), q)
		require.Equal(t, 1, e.s.SignIns(t, e.s.AccountID(t, email), login.MethodFIDOAuthResponse), "one sign-in through login.SignIn")
		require.Equal(t, checks+1, e.s.PDSChecks(t), "the per-login PDS check ran")
		require.Equal(t, "P0.Cm", r.claims(q.Get("code"), verifier)["vot"])
		require.Equal(t, 1, e.auditCount("authorize.fido_login", p.deviceID))

		q, verifier = r.authorize(e.stoppingBrowser(), e.fidoResponse(p), `["P0.Cp.Cd","P0.Cm"]`)
		require.Equal(t, "P0.Cm", r.claims(q.Get("code"), verifier)["vot"])

		// In a browser already signed in with a password and a code,
		// prompt=login is satisfied by the biometric login, which is newer;
		// what the session proved before is kept.
		q, verifier = r.authorizeWith(e.b, e.fidoResponse(p), `["P0.Cm"]`, url.Values{"prompt": {"login"}})
		require.Equal(t, "P0.Cm", r.claims(q.Get("code"), verifier)["vot"])
		q, verifier = r.authorizeWith(e.b, "", `["P0.Cp.Cd"]`, url.Values{"prompt": {"none"}})
		require.Equal(t, "P0.Cp.Cd", r.claims(q.Get("code"), verifier)["vot"])

		// The same response again: its ceremony is used up.
		q, _ = r.authorize(e.stoppingBrowser(), resp, `["P0.Cm"]`)
		require.Equal(t, "invalid_request", q.Get("error"))
		require.Equal(t, 1, e.auditCount("authorize.fido_rejected", "ceremony_not_found"))

		// Not base64url, not JSON.
		q, _ = r.authorize(e.stoppingBrowser(), "%%%", `["P0.Cm"]`)
		require.Equal(t, "invalid_request", q.Get("error"))
		q, _ = r.authorize(e.stoppingBrowser(), "bm90IGpzb24", `["P0.Cm"]`)
		require.Equal(t, "invalid_request", q.Get("error"))

		// The person was not verified (no fingerprint, face or PIN).
		p.auth.Options.UserNotVerified = true
		q, _ = r.authorize(e.stoppingBrowser(), e.fidoResponse(p), `["P0.Cm"]`)
		p.auth.Options.UserNotVerified = false
		require.Equal(t, "invalid_request", q.Get("error"))
		require.Equal(t, 1, e.auditCount("authorize.fido_rejected", "user_not_verified"))

		// The device is removed (from settings): its credential is refused.
		require.NoError(t, e.s.Devices.Remove(ctx, deviceAccount(t, e, p.deviceID), p.deviceID))
		q, _ = r.authorize(e.stoppingBrowser(), e.fidoResponse(p), `["P0.Cm"]`)
		require.Equal(t, "access_denied", q.Get("error"))
		require.Equal(t, 1, e.auditCount("authorize.fido_rejected", "device_removed"))
	})
}

func TestFIDOBeginRateLimit(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		for range 30 {
			status, out := e.call(http.MethodPost, "/fido/authenticate/begin", "", nil)
			require.Equal(t, http.StatusOK, status, out)
			require.NotNil(t, out["options"])
		}
		status, out := e.call(http.MethodPost, "/fido/authenticate/begin", "", nil)
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, "rate_limited", out["error"])
	})
}

// TestEnrolmentNeedsTwoFactors refuses a token from a login with a
// password only.
func TestEnrolmentNeedsTwoFactors(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		b := e.stoppingBrowser()
		tok := e.appTokenWith(b, "openid device_enrolment", `["P0.Cp"]`, func(p *servertest.Page) *servertest.Page {
			require.Equal(t, "Log in", p.H1())
			return b.Submit(p, "/login", map[string]string{"email": email, "password": pw})
		})
		status, out := e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer "+tok, map[string]any{})
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "insufficient_authentication", out["error"])
	})
}

// failingDevices fails to register any device.
type failingDevices struct{ companion.Devices }

func (failingDevices) Register(context.Context, device.Device) (device.Device, error) {
	return device.Device{}, errors.New("the disk is full")
}

type person struct{}

func (person) Person(context.Context, string) (idp.Person, error) {
	return idp.Person{Email: email}, nil
}

// TestEnrolmentLeavesNothingHalfDone: when the device cannot be stored
// after its credential was, the credential is removed.
func TestEnrolmentLeavesNothingHalfDone(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		api, err := companion.New(companion.Config{Issuer: e.s.URL}, companion.Deps{
			Tokens: e.s.OIDC, People: person{}, Devices: failingDevices{e.s.Devices}, FIDO: e.s.FIDO,
			Limiter: ratelimit.New(e.s.DB, time.Now), Audit: e.s.Audit,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		app := fiber.New()
		api.Register(app)

		tok := e.appToken("openid device_enrolment")
		id, options := e.begin(tok)
		p := newPhone(t)
		body, err := json.Marshal(map[string]any{"ceremony_id": id, "credential": p.attest(t, options), "device_key": p.jwk(t),
			"name": "Test phone", "platform": "android"})
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, "/app/v1/devices", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := app.Test(req, fiber.TestConfig{Timeout: 30 * time.Second})
		require.NoError(t, err)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)

		var acct string
		require.NoError(t, e.s.DB.Get(&acct, e.s.DB.Rebind(`SELECT id FROM accounts WHERE email = ?`), email))
		creds, err := e.s.FIDO.ListCredentials(context.Background(), acct)
		require.NoError(t, err)
		require.Empty(t, creds)
	})
}
