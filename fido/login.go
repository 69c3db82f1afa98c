package fido

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// BeginDiscoverableLogin starts a login where the account is not known yet
// ("Log in with a passkey", conditional UI, the app's biometric login):
// the authenticator picks a discoverable credential and the account is
// learnt from it. It returns the ceremony id and the request options as
// JSON ({"publicKey": {...}}). It is BeginAssertion(ctx, "", nil).
func (s *Service) BeginDiscoverableLogin(ctx context.Context) (ceremonyID string, options []byte, err error) {
	return s.BeginAssertion(ctx, "", nil)
}

// BeginLogin starts a login for a known account (step-up): only the
// account's credentials that are not blocked are allowed. An account with
// none gives ErrUnknownCredential. It is BeginAssertion(ctx, accountID, nil).
func (s *Service) BeginLogin(ctx context.Context, accountID string) (ceremonyID string, options []byte, err error) {
	if accountID == "" {
		return "", nil, fmt.Errorf("%w: account id is required", ErrInvalid)
	}
	return s.BeginAssertion(ctx, accountID, nil)
}

// BeginAssertion starts an assertion ceremony with user verification
// required. With accountID "" it is discoverable (any registered
// credential); otherwise only the account's usable credentials are allowed.
// challenge is normally nil (a random 32-byte challenge is made); a caller
// may give its own, derived from what the person approves (at least 16
// bytes, unique: a challenge already waiting in another ceremony gives
// ErrInvalid), so that the assertion signs that context. The ceremony is
// finished with FinishDiscoverableLogin, FinishLogin or
// FinishLoginByChallenge.
func (s *Service) BeginAssertion(ctx context.Context, accountID string, challenge []byte) (ceremonyID string, options []byte, err error) {
	opts := []webauthn.LoginOption{webauthn.WithUserVerification(protocol.VerificationRequired)}
	if challenge != nil {
		if len(challenge) < protocol.MinimumChallengeLength || len(challenge) > 1024 {
			return "", nil, fmt.Errorf("%w: a challenge must be %d to 1024 bytes", ErrInvalid, protocol.MinimumChallengeLength)
		}
		opts = append(opts, webauthn.WithChallenge(bytes.Clone(challenge)))
	}
	kind := ceremonyDiscoverable
	var user *webUser
	if accountID != "" {
		kind = ceremonyLogin
		handle, err := s.existingHandle(ctx, accountID)
		if err != nil {
			return "", nil, err
		}
		all, err := s.ListCredentials(ctx, accountID)
		if err != nil {
			return "", nil, err
		}
		var usable []Credential
		for _, c := range all {
			if !c.Blocked() {
				usable = append(usable, c)
			}
		}
		if len(usable) == 0 {
			return "", nil, fmt.Errorf("%w: the account has no usable credential", ErrUnknownCredential)
		}
		user = &webUser{handle: handle, creds: webauthnCreds(usable)}
	}
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
	)
	if user == nil {
		assertion, session, err = s.wa.BeginDiscoverableLogin(opts...)
	} else {
		assertion, session, err = s.wa.BeginLogin(user, opts...)
	}
	if err != nil {
		return "", nil, fmt.Errorf("begin login: %w", err)
	}
	options, err = json.Marshal(assertion)
	if err != nil {
		return "", nil, fmt.Errorf("encode request options: %w", err)
	}
	ceremonyID, err = s.saveCeremony(ctx, kind, "", accountID, session)
	if err != nil {
		return "", nil, err
	}
	return ceremonyID, options, nil
}

// FinishDiscoverableLogin verifies the answer (body, the JSON of the
// PublicKeyCredential) to a discoverable ceremony and returns the
// credential used, whose AccountID is the person who logged in at Cm. The
// ceremony is used up, whatever the outcome.
//
// Refusals wrap one of the sentinels: ErrCeremonyNotFound,
// ErrCeremonyExpired, ErrMalformed, ErrChallengeMismatch, ErrOrigin,
// ErrRPID, ErrUserVerification, ErrUnknownCredential, ErrCredentialBlocked,
// ErrDeviceRemoved, ErrCloneDetected, ErrSignature, ErrVerification.
// When the refusal comes after the credential was identified (blocked,
// clone detected, device removed, bad signature...), the returned
// Credential names it for the audit event; it is never a login.
func (s *Service) FinishDiscoverableLogin(ctx context.Context, ceremonyID string, body []byte) (Credential, error) {
	_, session, err := s.takeCeremony(ctx, `id = ? AND kind = ?`, ceremonyID, ceremonyDiscoverable)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return Credential{}, err
	}
	return s.verify(ctx, session, "", parsed)
}

// FinishLogin verifies the answer to a ceremony begun with BeginLogin for
// accountID (step-up) and returns the credential used. Errors are those of
// FinishDiscoverableLogin; a credential of another account is
// ErrUnknownCredential.
func (s *Service) FinishLogin(ctx context.Context, accountID, ceremonyID string, body []byte) (Credential, error) {
	_, session, err := s.takeCeremony(ctx, `id = ? AND kind = ? AND account_id = ?`, ceremonyID, ceremonyLogin, accountID)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return Credential{}, err
	}
	return s.verify(ctx, session, accountID, parsed)
}

// FinishLoginByChallenge verifies an assertion whose ceremony the caller
// cannot name: the companion app's fido_auth_response on /authorize carries
// only the assertion. The ceremony (discoverable, or bound to an account)
// is found by the challenge the assertion signed, and used up. Errors are
// those of FinishDiscoverableLogin.
func (s *Service) FinishLoginByChallenge(ctx context.Context, body []byte) (Credential, error) {
	parsed, err := parseAssertion(body)
	if err != nil {
		return Credential{}, err
	}
	ch := parsed.Response.CollectedClientData.Challenge
	if ch == "" {
		return Credential{}, fmt.Errorf("%w: no challenge in clientDataJSON", ErrMalformed)
	}
	c, session, err := s.takeCeremony(ctx, `challenge = ? AND kind IN (?, ?)`, ch, ceremonyDiscoverable, ceremonyLogin)
	if err != nil {
		return Credential{}, err
	}
	accountID := ""
	if c.Kind == ceremonyLogin && c.AccountID != nil {
		accountID = *c.AccountID
	}
	return s.verify(ctx, session, accountID, parsed)
}

// Expected says what VerifyAssertion checks an assertion against.
type Expected struct {
	// Challenge is the challenge the assertion must sign (at least 16
	// bytes). The caller derived it and must make sure it is used once
	// only (for example by consuming the approval it belongs to first):
	// VerifyAssertion keeps no ceremony state.
	Challenge []byte
	// AccountID, when not empty, is the account the credential must
	// belong to.
	AccountID string
	// CredentialID, when not empty, is the credential that must have made
	// the assertion (for example the approving device's app credential).
	CredentialID []byte
}

// VerifyAssertion verifies an assertion body against a challenge the
// caller derived itself, with the same checks as the Finish calls (origin,
// relying party, user verification, registered and not blocked credential,
// active device, signature, sign counter) and the same errors, but without
// a stored ceremony. It is meant for push approvals, whose challenge binds
// the approval. A replay must be stopped by the caller before calling: a
// replayed assertion with a non-zero counter would otherwise block the
// credential as a clone.
func (s *Service) VerifyAssertion(ctx context.Context, want Expected, body []byte) (Credential, error) {
	if len(want.Challenge) < protocol.MinimumChallengeLength {
		return Credential{}, fmt.Errorf("%w: a challenge must be at least %d bytes", ErrInvalid, protocol.MinimumChallengeLength)
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return Credential{}, err
	}
	session := webauthn.SessionData{
		Challenge:        base64.RawURLEncoding.EncodeToString(want.Challenge),
		RelyingPartyID:   s.cfg.RPID,
		UserVerification: protocol.VerificationRequired,
	}
	if len(want.CredentialID) > 0 {
		session.AllowedCredentialIDs = [][]byte{want.CredentialID}
		if !bytes.Equal(parsed.RawID, want.CredentialID) {
			return Credential{}, fmt.Errorf("%w: the assertion was made with another credential", ErrUnknownCredential)
		}
	}
	if want.AccountID != "" {
		handle, err := s.existingHandle(ctx, want.AccountID)
		if err != nil {
			return Credential{}, err
		}
		session.UserID = handle
	}
	return s.verify(ctx, session, want.AccountID, parsed)
}

// parseAssertion parses an assertion body, refusing oversized input.
func parseAssertion(body []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxResponseSize)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return parsed, nil
}

// verify is the assertion check shared by every way in: accountID "" means
// a discoverable ceremony (session.UserID empty), otherwise the credential
// must be that account's.
func (s *Service) verify(ctx context.Context, session webauthn.SessionData, accountID string, parsed *protocol.ParsedCredentialAssertionData) (Credential, error) {
	resp := parsed.Response
	if err := s.precheck(resp.CollectedClientData, session.Challenge, resp.AuthenticatorData.RPIDHash, resp.AuthenticatorData.Flags.UserVerified()); err != nil {
		return Credential{}, err
	}
	cred, err := s.credential(ctx, parsed.RawID)
	if err != nil {
		return Credential{}, err
	}
	if accountID != "" && cred.AccountID != accountID {
		return Credential{}, fmt.Errorf("%w: not a credential of this account", ErrUnknownCredential)
	}
	if cred.Blocked() {
		return cred, ErrCredentialBlocked
	}
	if cred.DeviceID != "" && s.devices != nil {
		if err := s.devices.CheckActive(ctx, cred.DeviceID); err != nil {
			return cred, fmt.Errorf("%w: device %s: %w", ErrDeviceRemoved, cred.DeviceID, err)
		}
	}
	handle, err := s.existingHandle(ctx, cred.AccountID)
	if err != nil {
		return cred, err
	}
	if len(resp.UserHandle) > 0 && !bytes.Equal(resp.UserHandle, handle) {
		return cred, fmt.Errorf("%w: the user handle does not match the credential's account", ErrUnknownCredential)
	}

	user := &webUser{handle: handle}
	var wc *webauthn.Credential
	if accountID == "" {
		if len(resp.UserHandle) == 0 {
			return cred, fmt.Errorf("%w: a discoverable assertion must carry the user handle", ErrMalformed)
		}
		user.creds = []webauthn.Credential{cred.webauthn()}
		_, wc, err = s.wa.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return user, nil }, session, parsed)
	} else {
		all, lerr := s.ListCredentials(ctx, accountID)
		if lerr != nil {
			return cred, lerr
		}
		user.creds = webauthnCreds(all)
		wc, err = s.wa.ValidateLogin(user, session, parsed)
	}
	if err != nil {
		return cred, mapProtocolError(err)
	}
	return s.recordUse(ctx, cred, wc, resp.AuthenticatorData.Counter)
}
