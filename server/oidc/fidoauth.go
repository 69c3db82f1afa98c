package oidc

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// DecodeFIDOAuthResponse decodes the fido_auth_response parameter: the
// WebAuthn assertion JSON (a PublicKeyCredential) in base64url, with or
// without padding. It refuses what cannot be an assertion before any
// database work: too long, not base64url, not a JSON object.
func DecodeFIDOAuthResponse(raw string) ([]byte, error) {
	if raw == "" || len(raw) > maxParamLen*4 {
		return nil, errors.New("fido_auth_response must be 1 to 8192 characters")
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "="))
	if err != nil {
		return nil, errors.New("fido_auth_response is not base64url")
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, errors.New("fido_auth_response is not a WebAuthn JSON response")
	}
	return body, nil
}

// fidoRefusal names a refused assertion for the audit log (a stable
// reason) and says whether the relying party is told access_denied (the
// credential is known and may not be used) or invalid_request.
func fidoRefusal(err error) (reason string, denied bool) {
	for _, r := range []struct {
		err    error
		reason string
		denied bool
	}{
		{fido.ErrCredentialBlocked, "credential_blocked", true},
		{fido.ErrCloneDetected, "clone_detected", true},
		{fido.ErrDeviceRemoved, "device_removed", true},
		{fido.ErrUnknownCredential, "unknown_credential", false},
		{fido.ErrCeremonyNotFound, "ceremony_not_found", false},
		{fido.ErrCeremonyExpired, "ceremony_expired", false},
		{fido.ErrMalformed, "malformed", false},
		{fido.ErrChallengeMismatch, "challenge_mismatch", false},
		{fido.ErrOrigin, "origin", false},
		{fido.ErrRPID, "rp_id", false},
		{fido.ErrUserVerification, "user_not_verified", false},
		{fido.ErrSignature, "signature", false},
		{fido.ErrVerification, "verification", false},
	} {
		if errors.Is(err, r.err) {
			return r.reason, r.denied
		}
	}
	return "", false
}

// fidoSignIn verifies fido_auth_response and, when it holds, signs the
// browser in at Cm: a renewed session id and a fresh login id. A session
// already signed in to the same account keeps what it had proven. A
// refusal is audited and returned for the redirect; a server failure is
// returned as an authzError of server_error after logging.
func (a *Authorize) fidoSignIn(c fiber.Ctx, client *Client, raw string) *authzError {
	ctx, act := c.Context(), web.Actor(c)
	body, err := DecodeFIDOAuthResponse(raw)
	if err != nil {
		a.s.record(ctx, act, "authorize.fido_rejected", audit.Failure, "", map[string]any{"client_id": client.ID, "reason": "malformed", "error": err.Error()})
		return authzErr(codeInvalidRequest, "%s", err.Error())
	}
	cred, err := a.fido.FinishLoginByChallenge(ctx, body)
	if err != nil {
		reason, denied := fidoRefusal(err)
		if reason == "" {
			a.s.log.Error("fido_auth_response", "request_id", act.RequestID, "err", err)
			return authzErr(codeServerError, "the server could not check fido_auth_response")
		}
		detail := map[string]any{"client_id": client.ID, "reason": reason, "error": err.Error()}
		if cred.DeviceID != "" {
			detail["device_id"] = cred.DeviceID
		}
		a.s.record(ctx, act, "authorize.fido_rejected", audit.Failure, cred.AccountID, detail)
		if denied {
			return authzErr("access_denied", "the credential of fido_auth_response may no longer be used")
		}
		return authzErr(codeInvalidRequest, "fido_auth_response is not valid")
	}
	if a.check != nil {
		// The same check as every other login (identity's PDS check).
		if err := a.check.CheckLogin(ctx, act, cred.AccountID); errors.Is(err, login.ErrAccountBlocked) {
			a.s.record(ctx, act, "authorize.fido_rejected", audit.Failure, cred.AccountID, map[string]any{"client_id": client.ID, "reason": "account_blocked"})
			return authzErr("access_denied", "the account cannot be used to sign in")
		} else if err != nil {
			a.s.log.Error("fido_auth_response login check", "request_id", act.RequestID, "err", err)
			return authzErr(codeServerError, "the server could not complete the login")
		}
	}
	creds := trust.Credentials{trust.Cm}
	if cur, ok := a.login.Current(c); ok && cur.AccountID == cred.AccountID {
		creds = cur.Credentials.With(trust.Cm)
	}
	s := web.Sess(c)
	s.Renew()
	s.SetAccount(cred.AccountID)
	s.Put(web.SignedInKey, login.Auth{AccountID: cred.AccountID, Credentials: creds,
		AuthTime: a.s.now().Truncate(time.Second), LoginID: secrets.NewID(), DeviceID: cred.DeviceID})
	detail := map[string]any{"client_id": client.ID, "kind": cred.Kind, "credentials": creds}
	if cred.DeviceID != "" {
		detail["device_id"] = cred.DeviceID
	}
	a.s.record(ctx, act, "authorize.fido_login", audit.Success, cred.AccountID, detail)
	return nil
}
