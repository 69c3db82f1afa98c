package oidc

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
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
	kind := fido.Classify(err)
	return string(kind), kind.Unusable()
}

// fidoProof verifies fido_auth_response and returns what it proves: Cm
// for the credential's account (with what this browser had already proven
// for the same account). A refusal is audited and returned for the
// redirect; a server failure is returned as an authzError of server_error
// after logging. Signing in is the login capability's (SignIn).
func (a *Authorize) fidoProof(c fiber.Ctx, client *Client, raw string) (login.Proof, *authzError) {
	ctx, act := c.Context(), web.Actor(c)
	body, err := DecodeFIDOAuthResponse(raw)
	if err != nil {
		a.s.record(ctx, act, "authorize.fido_rejected", audit.Failure, "", map[string]any{"client_id": client.ID, "reason": "malformed", "error": err.Error()})
		return login.Proof{}, authzErr(codeInvalidRequest, "%s", err.Error())
	}
	cred, err := a.fido.FinishLoginByChallenge(ctx, body)
	if err != nil {
		reason, denied := fidoRefusal(err)
		if reason == "" {
			a.s.log.Error("fido_auth_response", "request_id", act.RequestID, "err", err)
			return login.Proof{}, authzErr(codeServerError, "the server could not check fido_auth_response")
		}
		detail := map[string]any{"client_id": client.ID, "reason": reason, "error": err.Error()}
		if cred.DeviceID != "" {
			detail["device_id"] = cred.DeviceID
		}
		a.s.record(ctx, act, "authorize.fido_rejected", audit.Failure, cred.AccountID, detail)
		if denied {
			return login.Proof{}, authzErr("access_denied", "the credential of fido_auth_response may no longer be used")
		}
		return login.Proof{}, authzErr(codeInvalidRequest, "fido_auth_response is not valid")
	}
	creds := trust.Credentials{trust.Cm}
	if cur, ok := a.login.CurrentIncludingAsserted(c); ok && cur.AccountID == cred.AccountID && !cur.Asserted {
		creds = cur.Credentials.With(trust.Cm)
	}
	detail := map[string]any{"client_id": client.ID, "kind": cred.Kind}
	if cred.DeviceID != "" {
		detail["device_id"] = cred.DeviceID
	}
	a.s.record(ctx, act, "authorize.fido_login", audit.Success, cred.AccountID, detail)
	return login.Proof{AccountID: cred.AccountID, Method: login.MethodFIDOAuthResponse, Credentials: creds,
		DeviceID: cred.DeviceID, Detail: detail}, nil
}
