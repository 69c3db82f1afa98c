package login

import (
	"context"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Passkeys is what logging in with a passkey needs from package fido
// (fido.Service satisfies it).
type Passkeys interface {
	BeginDiscoverableLogin(ctx context.Context) (ceremonyID string, options []byte, err error)
	FinishDiscoverableLogin(ctx context.Context, ceremonyID string, body []byte) (fido.Credential, error)
}

// passkeyCeremonyKey is the session key of the pending passkey login
// ceremony's id.
const passkeyCeremonyKey = "passkey_login"

func (j *Journey) passkeyBegin(c fiber.Ctx) error {
	id, options, err := j.passkeys.BeginDiscoverableLogin(c.Context())
	if err != nil {
		return err
	}
	web.Sess(c).Put(passkeyCeremonyKey, id)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(http.StatusOK).Send(options)
}

// passkeyRefusal is how a refused passkey login is answered.
type passkeyRefusal struct {
	status        int
	code, message string
}

// passkeyRefusals answers fido's kinds of refusal; any other refusal is
// verification_failed.
var passkeyRefusals = map[fido.Kind]passkeyRefusal{
	fido.KindCeremonyNotFound:  {http.StatusBadRequest, "ceremony_expired", "This passkey request has expired or has already been used. Try again."},
	fido.KindCeremonyExpired:   {http.StatusBadRequest, "ceremony_expired", "This passkey request has expired. Try again."},
	fido.KindMalformed:         {http.StatusBadRequest, "malformed", "Your browser sent a passkey response we could not read. Try again."},
	fido.KindUserVerification:  {http.StatusUnauthorized, "user_verification_required", "Your device did not check it was you (with a fingerprint, face or PIN). Try again and unlock your passkey."},
	fido.KindCloneDetected:     {http.StatusUnauthorized, "credential_blocked", "This passkey can no longer be used. Log in with your email address and password."},
	fido.KindCredentialBlocked: {http.StatusUnauthorized, "credential_blocked", "This passkey can no longer be used. Log in with your email address and password."},
	fido.KindUnknownCredential: {http.StatusUnauthorized, "unknown_credential", "We do not recognise this passkey. It may have been removed. Log in with your email address and password."},
	fido.KindDeviceRemoved:     {http.StatusUnauthorized, "unknown_credential", "We do not recognise this passkey. It may have been removed. Log in with your email address and password."},
}

func (j *Journey) passkeyFinish(c fiber.Ctx) error {
	s := web.Sess(c)
	var ceremonyID string
	if !s.Get(passkeyCeremonyKey, &ceremonyID) || ceremonyID == "" {
		return JSONError(c, http.StatusBadRequest, "ceremony_expired", "This passkey request has expired or has already been used. Try again.")
	}
	s.Delete(passkeyCeremonyKey)
	body := append([]byte(nil), c.Body()...)
	cred, err := j.passkeys.FinishDiscoverableLogin(c.Context(), ceremonyID, body)
	if err != nil {
		return j.passkeyRefused(c, cred, err)
	}
	next, err := j.SignedInByCredential(c, cred.AccountID, MethodPasskey, trust.Cm)
	if errors.Is(err, ErrAccountBlocked) {
		if err := j.audit.Record(c.Context(), web.Actor(c), "passkey.login", audit.Failure, cred.AccountID, map[string]any{"reason": "account_blocked"}); err != nil {
			return err
		}
		return JSONError(c, http.StatusForbidden, "account_blocked", "You cannot log in with this account. Contact us if you think this is a mistake.")
	}
	if err != nil {
		return err
	}
	if err := j.audit.Record(c.Context(), web.Actor(c), "passkey.login", audit.Success, cred.AccountID, map[string]any{"credential": cred.Name}); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"redirect": next})
}

// passkeyRefused records a refused passkey login and answers it.
func (j *Journey) passkeyRefused(c fiber.Ctx, cred fido.Credential, err error) error {
	kind := fido.Classify(err)
	if !kind.Refused() {
		return err // a database failure
	}
	refusal, known := passkeyRefusals[kind]
	if !known {
		refusal = passkeyRefusal{http.StatusUnauthorized, "verification_failed", "We could not check your passkey. Try again, or log in with your email address and password."}
	}
	detail := map[string]any{"reason": refusal.code, "error": err.Error()}
	if kind == fido.KindCloneDetected {
		if aerr := j.audit.Record(c.Context(), web.Actor(c), "passkey.clone_detected", audit.Failure, cred.AccountID, map[string]any{"credential": cred.Name}); aerr != nil {
			return aerr
		}
	}
	if aerr := j.audit.Record(c.Context(), web.Actor(c), "passkey.login", audit.Failure, cred.AccountID, detail); aerr != nil {
		return aerr
	}
	return JSONError(c, refusal.status, refusal.code, refusal.message)
}

// PasskeyFactor proves Cm after the password, for a relying party that
// asks for a passkey: its page offers the same discoverable passkey login
// as the login page (the journey's Passkeys must be set).
type PasskeyFactor struct {
	creds CredentialLister
}

// NewPasskeyFactor returns the passkey factor, available to accounts with
// a passkey in creds.
func NewPasskeyFactor(creds CredentialLister) *PasskeyFactor { return &PasskeyFactor{creds: creds} }

// CredentialLister lists an account's WebAuthn credentials (fido.Service
// satisfies it).
type CredentialLister interface {
	ListCredentials(ctx context.Context, accountID string) ([]fido.Credential, error)
}

const passkeyName = "passkey"

// Name implements Factor.
func (f *PasskeyFactor) Name() string { return passkeyName }

// Proves implements Factor: Cm.
func (f *PasskeyFactor) Proves() trust.Credentials { return trust.Credentials{trust.Cm} }

// Available implements Factor: the account has a passkey that is not
// blocked.
func (f *PasskeyFactor) Available(c fiber.Ctx, acct account.Account, _ trust.Credentials) bool {
	creds, err := f.creds.ListCredentials(c.Context(), acct.ID)
	if err != nil {
		return false
	}
	for _, c := range creds {
		if c.Kind == fido.KindPasskey && !c.Blocked() {
			return true
		}
	}
	return false
}

// Begin implements Factor: shows the passkey page.
func (f *PasskeyFactor) Begin(c fiber.Ctx, _ *Journey, _ account.Account) error {
	return redirect(c, "/login/passkey")
}

// Routes implements Factor.
func (f *PasskeyFactor) Routes(p web.Pages, j *Journey) {
	p.Get("/login/passkey", func(c fiber.Ctx) error {
		if _, ok := j.AccountInProgress(c, passkeyName); !ok {
			return redirect(c, "/login")
		}
		return j.r.Render(c, http.StatusOK, "passkey_login", web.View{Title: "Use your passkey", BackLink: "/login"})
	})
}
