// Package companion serves the companion app's JSON API (documented in
// docs/api/companion.yaml):
//
//   - enrolment: the app, holding an access token with the
//     device_enrolment scope from a normal OIDC login (password and code),
//     begins a WebAuthn registration for the phone's platform
//     authenticator and registers itself as a device with its FIDO
//     credential, its device key and an optional push token;
//   - device calls, authenticated by a short ES256 JWT signed with the
//     device key (header "Authorization: DeviceJWT <jwt>"): who am I, the
//     push token, unregistering;
//   - POST /fido/authenticate/begin, the start of a biometric login, whose
//     assertion then goes to /authorize as fido_auth_response.
//
// Every error is JSON {"error": "<stable code>", "error_description":
// "..."}; the codes are the Code* constants.
package companion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Paths of the API.
const (
	PathEnrolmentBegin = "/app/v1/enrolment/begin"
	PathDevices        = "/app/v1/devices"
	PathDevice         = "/app/v1/device"
	PathPushToken      = "/app/v1/device/push-token"
	PathFIDOBegin      = oidc.FIDOAuthenticationPath
)

// DeviceJWTScheme is the Authorization scheme of device-key–signed calls.
const DeviceJWTScheme = "DeviceJWT"

// Limits.
const (
	// MaxSmallBody bounds the bodies of calls that carry a few fields.
	MaxSmallBody = 8 << 10
	// MaxEnrolmentBody bounds POST /app/v1/devices (it carries the
	// attestation).
	MaxEnrolmentBody = fido.MaxResponseSize + 16<<10
	// BeginPerIPPerMinute bounds POST /fido/authenticate/begin per client IP.
	BeginPerIPPerMinute = 30
	// EnrolmentLoginMaxAge is how old the login behind an enrolment
	// token may be: enrolling a device needs a login made for it.
	EnrolmentLoginMaxAge = 5 * time.Minute
)

// Stable error codes of the API.
const (
	CodeInvalidRequest     = "invalid_request"
	CodeTooLarge           = "request_too_large"
	CodeInvalidToken       = "invalid_token"
	CodeInsufficientScope  = "insufficient_scope"
	CodeInsufficientAuth   = "insufficient_authentication"
	CodeLoginExpired       = "login_expired"
	CodeAccountUnavailable = "account_unavailable"
	CodeInvalidDevice      = "invalid_device"
	CodeRateLimited        = "rate_limited"
	CodeServerError        = "server_error"

	// Enrolment (WebAuthn registration) refusals.
	CodeCeremonyNotFound     = "ceremony_not_found"
	CodeCeremonyExpired      = "ceremony_expired"
	CodeCredentialMalformed  = "credential_malformed"
	CodeChallengeMismatch    = "challenge_mismatch"
	CodeOriginNotAllowed     = "origin_not_allowed"
	CodeRPIDMismatch         = "rp_id_mismatch"
	CodeUserNotVerified      = "user_not_verified"
	CodeAuthenticatorRefused = "authenticator_not_allowed"
	CodeCredentialExists     = "credential_exists"
	CodeCredentialRejected   = "credential_rejected"

	// Device JWT refusals (401), one per sentinel of
	// device.VerifyRequestJWT, and a missing header.
	CodeDeviceTokenMissing   = "device_token_missing"
	CodeDeviceTokenMalformed = "device_token_malformed"
	CodeDeviceTokenSignature = "device_token_signature"
	CodeDeviceTokenExpired   = "device_token_expired"
	CodeDeviceTokenReplayed  = "device_token_replayed"
	CodeDeviceTokenAudience  = "device_token_audience"
	CodeDeviceUnknown        = "device_unknown"
	CodeDeviceRemoved        = "device_removed"
)

// Tokens verifies access tokens and revokes grants; *oidc.Server
// implements it.
type Tokens interface {
	VerifyAccessToken(ctx context.Context, raw string) (oidc.AccessToken, error)
	// RevokeGrant revokes a grant, reporting whether this call did (the
	// enrolment token is single use).
	RevokeGrant(ctx context.Context, grantID string) (bool, error)
	// RevokeDevice revokes the grants of logins a device made.
	RevokeDevice(ctx context.Context, deviceID string) (int64, error)
}

// Enrolments is told of every device enrolled, to email the person.
type Enrolments interface {
	DeviceEnrolled(ctx context.Context, a audit.Actor, d device.Device) error
}

// Devices is what the API needs of the device store; *device.Store
// implements it.
type Devices interface {
	Register(ctx context.Context, d device.Device) (device.Device, error)
	VerifyRequestJWT(ctx context.Context, raw, audience string) (device.Device, error)
	UpdatePushToken(ctx context.Context, id, token string) error
	Remove(ctx context.Context, accountID, id string) error
}

// FIDO is what the API needs of the WebAuthn service; *fido.Service
// implements it.
type FIDO interface {
	BeginRegistration(ctx context.Context, user fido.User, kind string) (ceremonyID string, options []byte, err error)
	FinishRegistration(ctx context.Context, accountID, ceremonyID string, body []byte, name, deviceID string) (fido.Credential, error)
	RemoveCredential(ctx context.Context, accountID string, id []byte) error
	BeginDiscoverableLogin(ctx context.Context) (ceremonyID string, options []byte, err error)
}

// Config configures the API.
type Config struct {
	// Issuer is the server's base URL; device JWT audiences are the
	// issuer followed by the request path.
	Issuer string
}

// Deps are the API's collaborators.
type Deps struct {
	Tokens  Tokens
	People  oidc.People
	Devices Devices
	FIDO    FIDO
	Limiter *ratelimit.Limiter
	Audit   *audit.Log
	Logger  *slog.Logger
	// Approvals and Stream serve push approvals (the stream and the
	// approval calls); without them those routes are not mounted.
	Approvals Approvals
	Stream    Stream
	// Notices, when set, emails the person that a device was enrolled.
	Notices Notices
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Notices sends a person security notices (account).
type Notices interface {
	SendNotice(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, what string) error
}

// API serves the companion app. Create it with New, mount it with
// Register.
type API struct {
	issuer string
	d      Deps
	// writePool lends socket write buffers only while a socket writes.
	writePool sync.Pool
}

// New returns the API.
func New(cfg Config, d Deps) (*API, error) {
	if cfg.Issuer == "" || d.Tokens == nil || d.People == nil || d.Devices == nil || d.FIDO == nil || d.Limiter == nil || d.Audit == nil {
		return nil, errors.New("companion: issuer, tokens, people, devices, fido, limiter and audit are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &API{issuer: strings.TrimSuffix(cfg.Issuer, "/"), d: d}, nil
}

// Register mounts the API's routes on r (the application root).
func (a *API) Register(r fiber.Router) {
	r.Post(PathEnrolmentBegin, a.noStore, a.handleEnrolmentBegin)
	r.Post(PathDevices, a.noStore, a.handleEnrol)
	r.Get(PathDevice, a.noStore, a.deviceAuth, a.handleWhoAmI)
	r.Put(PathPushToken, a.noStore, a.deviceAuth, a.handlePushToken)
	r.Delete(PathDevice, a.noStore, a.deviceAuth, a.handleUnregister)
	r.Post(PathFIDOBegin, a.noStore, a.handleFIDOBegin)
	a.registerApprovals(r)
}

func (a *API) noStore(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// apiError is an error answered as JSON.
type apiError struct {
	status      int
	code        string
	description string
}

func (e *apiError) Error() string { return e.code + ": " + e.description }

func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, description: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every error.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// reply answers err: an *apiError as itself, anything else as a logged
// server_error.
func (a *API) reply(c fiber.Ctx, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		a.d.Logger.Error("companion api", "request_id", web.RequestID(c), "path", c.Path(), "err", err)
		ae = fail(http.StatusInternalServerError, CodeServerError, "the server could not complete the request")
	}
	switch ae.status {
	case http.StatusUnauthorized:
		if strings.HasPrefix(ae.code, "device_") {
			c.Set(fiber.HeaderWWWAuthenticate, DeviceJWTScheme+` error="`+ae.code+`"`)
		} else {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="`+ae.code+`"`)
		}
	case http.StatusForbidden:
		if ae.code == CodeInsufficientScope {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="insufficient_scope", scope="`+oidc.ScopeDeviceEnrolment+`"`)
		}
	}
	return c.Status(ae.status).JSON(errorBody{Error: ae.code, Description: ae.description})
}

func (a *API) record(c fiber.Ctx, typ string, outcome audit.Outcome, accountID string, detail map[string]any) {
	if err := a.d.Audit.Record(c.Context(), web.Actor(c), typ, outcome, accountID, detail); err != nil {
		a.d.Logger.Error("companion audit", "type", typ, "err", err)
	}
}

// decodeJSON reads a JSON object body of at most limit bytes into v,
// refusing unknown members and trailing data.
func decodeJSON(c fiber.Ctx, limit int, v any) error {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return fail(http.StatusUnsupportedMediaType, CodeInvalidRequest, "the body must be application/json")
	}
	body := c.Body()
	if len(body) > limit {
		return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, CodeInvalidRequest, "the body is not the expected JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(http.StatusBadRequest, CodeInvalidRequest, "unexpected data after the JSON object")
	}
	return nil
}

// enrolment is who may enrol a device: the verified access token.
type enrolment struct {
	token  oidc.AccessToken
	person oidc.Person
}

// authorizeEnrolment checks the Bearer access token: valid (not used to
// enrol a device already), carrying the device_enrolment scope, from a
// login made for it in the last EnrolmentLoginMaxAge with a password and
// a second factor (a code, or an approval from a device the person
// holds), for an account that may sign in.
func (a *API) authorizeEnrolment(c fiber.Ctx) (enrolment, error) {
	scheme, raw, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	raw = strings.TrimSpace(raw)
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return enrolment{}, fail(http.StatusUnauthorized, CodeInvalidToken, "an access token is required: Authorization: Bearer <access token>")
	}
	tok, err := a.d.Tokens.VerifyAccessToken(c.Context(), raw)
	if errors.Is(err, oidc.ErrInvalidToken) {
		return enrolment{}, fail(http.StatusUnauthorized, CodeInvalidToken, "%s", strings.TrimPrefix(err.Error(), oidc.ErrInvalidToken.Error()+": "))
	}
	if err != nil {
		return enrolment{}, err
	}
	if !tok.HasScope(oidc.ScopeDeviceEnrolment) {
		return enrolment{}, fail(http.StatusForbidden, CodeInsufficientScope, "the access token lacks the %s scope", oidc.ScopeDeviceEnrolment)
	}
	strong := tok.Credentials.Has(trust.Cp) && (tok.Credentials.Has(trust.Cd) || tok.Credentials.Has(trust.Cm))
	if !strong {
		return enrolment{}, fail(http.StatusForbidden, CodeInsufficientAuth, "enrolling a device needs a login with a password and a security code")
	}
	if a.d.Now().Sub(tok.AuthTime) > EnrolmentLoginMaxAge {
		return enrolment{}, fail(http.StatusForbidden, CodeLoginExpired, "the login behind this token was more than %d minutes ago: log in again to set up the app", int(EnrolmentLoginMaxAge/time.Minute))
	}
	p, err := a.d.People.Person(c.Context(), tok.AccountID)
	if errors.Is(err, oidc.ErrNoPerson) || (err == nil && p.Blocked) {
		return enrolment{}, fail(http.StatusForbidden, CodeAccountUnavailable, "the account cannot be used")
	}
	if err != nil {
		return enrolment{}, fmt.Errorf("look up the enrolling person: %w", err)
	}
	return enrolment{token: tok, person: p}, nil
}

// enrolmentBeginResponse is the answer of POST /app/v1/enrolment/begin.
type enrolmentBeginResponse struct {
	CeremonyID string          `json:"ceremony_id"`
	Options    json.RawMessage `json:"options"`
}

func (a *API) handleEnrolmentBegin(c fiber.Ctx) error {
	e, err := a.authorizeEnrolment(c)
	if err != nil {
		return a.reply(c, err)
	}
	id, options, err := a.d.FIDO.BeginRegistration(c.Context(), fido.User{AccountID: e.token.AccountID, Name: e.person.Email}, fido.KindApp)
	if err != nil {
		return a.reply(c, fmt.Errorf("begin app registration: %w", err))
	}
	a.record(c, "companion.enrolment_begun", audit.Success, e.token.AccountID, map[string]any{"client_id": e.token.ClientID})
	return c.JSON(enrolmentBeginResponse{CeremonyID: id, Options: options})
}

// enrolRequest is the body of POST /app/v1/devices.
type enrolRequest struct {
	CeremonyID string          `json:"ceremony_id"`
	Credential json.RawMessage `json:"credential"`
	DeviceKey  json.RawMessage `json:"device_key"`
	PushToken  string          `json:"push_token"`
	Name       string          `json:"name"`
	Platform   string          `json:"platform"`
}

// enrolResponse is the answer of POST /app/v1/devices.
type enrolResponse struct {
	DeviceID string `json:"device_id"`
}

func (a *API) handleEnrol(c fiber.Ctx) error {
	e, err := a.authorizeEnrolment(c)
	if err != nil {
		return a.reply(c, err)
	}
	var req enrolRequest
	if err := decodeJSON(c, MaxEnrolmentBody, &req); err != nil {
		return a.reply(c, err)
	}
	ctx, acct := c.Context(), e.token.AccountID
	if req.CeremonyID == "" || len(req.Credential) == 0 || len(req.DeviceKey) == 0 {
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidRequest, "ceremony_id, credential and device_key are required"))
	}
	key, err := device.PublicKeyFromJWK(req.DeviceKey)
	if err != nil {
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidDevice, "%s", err.Error()))
	}
	d := device.Device{ID: secrets.NewID(), AccountID: acct, Name: req.Name, Platform: req.Platform, PublicKey: key, PushToken: req.PushToken}
	// Check the device before the ceremony is used up by the credential.
	if err := d.Validate(); err != nil {
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidDevice, "%s", err.Error()))
	}
	cred, err := a.d.FIDO.FinishRegistration(ctx, acct, req.CeremonyID, req.Credential, req.Name, d.ID)
	if err != nil {
		code := registrationCode(err)
		if code == "" {
			return a.reply(c, fmt.Errorf("finish app registration: %w", err))
		}
		a.record(c, "companion.enrolment_failed", audit.Failure, acct, map[string]any{"reason": code, "error": err.Error()})
		return a.reply(c, fail(http.StatusBadRequest, code, "%s", err.Error()))
	}
	d.FIDOCredentialID = cred.ID
	// The enrolment token enrols one device: taking its grant is atomic,
	// so of two enrolments racing with one token exactly one goes on.
	if took, err := a.d.Tokens.RevokeGrant(ctx, e.token.GrantID); err != nil || !took {
		if rerr := a.d.FIDO.RemoveCredential(context.WithoutCancel(ctx), acct, cred.ID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the credential of a refused enrolment: %w", rerr))
		}
		if err != nil {
			return a.reply(c, fmt.Errorf("use the enrolment token: %w", err))
		}
		a.record(c, "companion.enrolment_failed", audit.Failure, acct, map[string]any{"reason": "token_used"})
		return a.reply(c, fail(http.StatusUnauthorized, CodeInvalidToken, "this access token has enrolled a device already: log in again to enrol another"))
	}
	if _, err := a.d.Devices.Register(ctx, d); err != nil {
		// Nothing half-done: the credential goes with the device.
		if rerr := a.d.FIDO.RemoveCredential(context.WithoutCancel(ctx), acct, cred.ID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the credential of a failed enrolment: %w", rerr))
		}
		if errors.Is(err, device.ErrInvalid) {
			return a.reply(c, fail(http.StatusBadRequest, CodeInvalidDevice, "%s", err.Error()))
		}
		return a.reply(c, fmt.Errorf("register device: %w", err))
	}
	a.record(c, "companion.device_enrolled", audit.Success, acct, map[string]any{
		"device_id": d.ID, "platform": d.Platform, "client_id": e.token.ClientID, "push_token": d.PushToken != "",
	})
	if a.d.Notices != nil {
		// The device is enrolled; a notice that cannot be sent is audited
		// by the sender and does not undo it.
		if err := a.d.Notices.SendNotice(ctx, web.Actor(c), acct, "device_enrolled",
			"A phone app was set up on "+d.Name+" to log in to your idlink account and approve logins"); err != nil {
			a.d.Logger.Error("device enrolled notice", "error", err)
		}
	}
	return c.Status(http.StatusCreated).JSON(enrolResponse{DeviceID: d.ID})
}

// registrationCode maps a refusal of FinishRegistration onto an API code,
// or "" for a server failure.
func registrationCode(err error) string {
	return registrationCodes[fido.Classify(err)]
}

// registrationCodes are the API codes of fido's kinds of refusal; a kind
// not listed (or a server failure) has none.
var registrationCodes = map[fido.Kind]string{
	fido.KindCeremonyNotFound:      CodeCeremonyNotFound,
	fido.KindCeremonyExpired:       CodeCeremonyExpired,
	fido.KindMalformed:             CodeCredentialMalformed,
	fido.KindChallengeMismatch:     CodeChallengeMismatch,
	fido.KindOrigin:                CodeOriginNotAllowed,
	fido.KindRPID:                  CodeRPIDMismatch,
	fido.KindUserVerification:      CodeUserNotVerified,
	fido.KindAAGUIDNotAllowed:      CodeAuthenticatorRefused,
	fido.KindBackupEligibleRefused: CodeAuthenticatorRefused,
	fido.KindCredentialExists:      CodeCredentialExists,
	fido.KindSignature:             CodeCredentialRejected,
	fido.KindVerification:          CodeCredentialRejected,
	fido.KindInvalid:               CodeInvalidRequest,
}

// localDevice is where deviceAuth leaves the authenticated device.
const localDevice = "companion.device"

// deviceAudience is the aud a device JWT must carry for this request: the
// issuer followed by the request path (no query), never the Host header.
func (a *API) deviceAudience(c fiber.Ctx) string { return a.issuer + c.Path() }

// deviceTokenCode maps a refusal of device.VerifyRequestJWT onto its code.
func deviceTokenCode(err error) string {
	for _, m := range []struct {
		err  error
		code string
	}{
		{device.ErrTokenMalformed, CodeDeviceTokenMalformed},
		{device.ErrTokenSignature, CodeDeviceTokenSignature},
		{device.ErrTokenExpired, CodeDeviceTokenExpired},
		{device.ErrTokenReplayed, CodeDeviceTokenReplayed},
		{device.ErrTokenAudience, CodeDeviceTokenAudience},
		{device.ErrDeviceUnknown, CodeDeviceUnknown},
		{device.ErrDeviceRemoved, CodeDeviceRemoved},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return ""
}

// deviceAuth authenticates a call with "Authorization: DeviceJWT <jwt>".
func (a *API) deviceAuth(c fiber.Ctx) error {
	scheme, raw, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	raw = strings.TrimSpace(raw)
	if !ok || !strings.EqualFold(scheme, DeviceJWTScheme) || raw == "" {
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceTokenMissing, "this call needs Authorization: %s <JWT signed by the device key>", DeviceJWTScheme))
	}
	d, err := a.d.Devices.VerifyRequestJWT(c.Context(), raw, a.deviceAudience(c))
	if err != nil {
		code := deviceTokenCode(err)
		if code == "" {
			return a.reply(c, fmt.Errorf("verify device token: %w", err))
		}
		detail := map[string]any{"reason": code, "error": err.Error(), "path": c.Path()}
		if d.ID != "" {
			detail["device_id"] = d.ID
		}
		a.record(c, "companion.device_auth_failed", audit.Failure, d.AccountID, detail)
		return a.reply(c, fail(http.StatusUnauthorized, code, "%s", err.Error()))
	}
	c.Locals(localDevice, d)
	return c.Next()
}

func authenticated(c fiber.Ctx) device.Device {
	d, _ := c.Locals(localDevice).(device.Device)
	return d
}

// deviceView is the answer of GET /app/v1/device.
type deviceView struct {
	DeviceID     string    `json:"device_id"`
	Name         string    `json:"name"`
	Platform     string    `json:"platform"`
	HasPushToken bool      `json:"has_push_token"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeenAt   time.Time `json:"last_seen_at"`
}

func (a *API) handleWhoAmI(c fiber.Ctx) error {
	d := authenticated(c)
	return c.JSON(deviceView{DeviceID: d.ID, Name: d.Name, Platform: d.Platform, HasPushToken: d.PushToken != "",
		CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt})
}

// pushTokenRequest is the body of PUT /app/v1/device/push-token.
type pushTokenRequest struct {
	PushToken *string `json:"push_token"`
}

func (a *API) handlePushToken(c fiber.Ctx) error {
	d := authenticated(c)
	var req pushTokenRequest
	if err := decodeJSON(c, MaxSmallBody, &req); err != nil {
		return a.reply(c, err)
	}
	if req.PushToken == nil {
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidRequest, "push_token is required (\"\" clears it)"))
	}
	err := a.d.Devices.UpdatePushToken(c.Context(), d.ID, *req.PushToken)
	switch {
	case errors.Is(err, device.ErrInvalid):
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidDevice, "%s", err.Error()))
	case errors.Is(err, device.ErrRemoved):
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceRemoved, "the device has been removed"))
	case errors.Is(err, device.ErrNotFound):
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceUnknown, "the device is not registered"))
	case err != nil:
		return a.reply(c, err)
	}
	a.record(c, "companion.push_token_updated", audit.Success, d.AccountID, map[string]any{"device_id": d.ID, "cleared": *req.PushToken == ""})
	return c.SendStatus(http.StatusNoContent)
}

func (a *API) handleUnregister(c fiber.Ctx) error {
	d := authenticated(c)
	ctx := c.Context()
	err := a.d.Devices.Remove(ctx, d.AccountID, d.ID)
	switch {
	case errors.Is(err, device.ErrRemoved):
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceRemoved, "the device has been removed"))
	case errors.Is(err, device.ErrNotFound):
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceUnknown, "the device is not registered"))
	case err != nil:
		return a.reply(c, err)
	}
	// The device is gone, so its credential is refused already; remove it
	// too so that it is no longer listed anywhere.
	if len(d.FIDOCredentialID) > 0 {
		if err := a.d.FIDO.RemoveCredential(ctx, d.AccountID, d.FIDOCredentialID); err != nil && !errors.Is(err, fido.ErrUnknownCredential) {
			a.d.Logger.Error("companion: remove the credential of an unregistered device", "device_id", d.ID, "err", err)
		}
	}
	if _, err := a.d.Tokens.RevokeDevice(ctx, d.ID); err != nil {
		return a.reply(c, fmt.Errorf("revoke the grants of an unregistered device: %w", err))
	}
	if a.d.Approvals != nil {
		a.d.Approvals.DeviceRemoved(ctx, d.ID) // close its sockets on every replica
	}
	a.record(c, "companion.device_unregistered", audit.Success, d.AccountID, map[string]any{"device_id": d.ID})
	return c.SendStatus(http.StatusNoContent)
}

// fidoBeginResponse is the answer of POST /fido/authenticate/begin.
type fidoBeginResponse struct {
	Options json.RawMessage `json:"options"`
}

func (a *API) handleFIDOBegin(c fiber.Ctx) error {
	ok, err := a.d.Limiter.Take(c.Context(), "fido-begin:"+web.ClientIP(c), BeginPerIPPerMinute, time.Minute)
	if err != nil {
		return a.reply(c, fmt.Errorf("rate limit fido begin: %w", err))
	}
	if !ok {
		c.Set(fiber.HeaderRetryAfter, "60")
		return a.reply(c, fail(http.StatusTooManyRequests, CodeRateLimited, "too many biometric logins begun from this address: wait a minute"))
	}
	_, options, err := a.d.FIDO.BeginDiscoverableLogin(c.Context())
	if err != nil {
		return a.reply(c, fmt.Errorf("begin biometric login: %w", err))
	}
	return c.JSON(fidoBeginResponse{Options: options})
}
