package fido

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// BeginRegistration starts registering a credential of kind (KindPasskey
// or KindApp) for user. It returns the ceremony id, which the caller keeps
// (in the session, or returns to the app) for FinishRegistration, and the
// creation options as JSON ({"publicKey": {...}}) for the browser or app.
// The options require a resident (discoverable) key and user verification,
// ask for the configured attestation ("none" by default), and exclude the
// account's existing credentials. App credentials also ask for the
// platform authenticator.
func (s *Service) BeginRegistration(ctx context.Context, user User, kind string) (ceremonyID string, options []byte, err error) {
	if kind != KindPasskey && kind != KindApp {
		return "", nil, fmt.Errorf("%w: credential kind must be %q or %q", ErrInvalid, KindPasskey, KindApp)
	}
	if user.AccountID == "" || user.Name == "" {
		return "", nil, fmt.Errorf("%w: user account id and name are required", ErrInvalid)
	}
	if user.DisplayName == "" {
		user.DisplayName = user.Name
	}
	handle, err := s.userHandle(ctx, user.AccountID)
	if err != nil {
		return "", nil, err
	}
	existing, err := s.ListCredentials(ctx, user.AccountID)
	if err != nil {
		return "", nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, len(existing))
	for i, c := range existing {
		wc := c.webauthn()
		exclude[i] = wc.Descriptor()
	}
	selection := s.wa.Config.AuthenticatorSelection
	if kind == KindApp {
		selection.AuthenticatorAttachment = protocol.Platform
	}
	wu := &webUser{handle: handle, name: user.Name, displayName: user.DisplayName}
	creation, session, err := s.wa.BeginRegistration(wu,
		webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(selection),
		webauthn.WithConveyancePreference(s.wa.Config.AttestationPreference))
	if err != nil {
		return "", nil, fmt.Errorf("begin registration: %w", err)
	}
	options, err = json.Marshal(creation)
	if err != nil {
		return "", nil, fmt.Errorf("encode creation options: %w", err)
	}
	ceremonyID, err = s.saveCeremony(ctx, ceremonyRegistration, kind, user.AccountID, session)
	if err != nil {
		return "", nil, err
	}
	return ceremonyID, options, nil
}

// FinishRegistration verifies the browser's or app's answer (body, the
// JSON of the PublicKeyCredential) to the registration ceremony ceremonyID,
// which must have been begun for accountID, and stores the credential.
// name is the person's name for it (trimmed; "" gives a default). deviceID
// is the companion-app device of a KindApp credential (required then, and
// refused for passkeys): the caller chooses the device id before the
// device is registered with package device.
//
// The ceremony is used up by the call, whatever its outcome. Refusals wrap
// ErrCeremonyNotFound, ErrCeremonyExpired, ErrMalformed,
// ErrChallengeMismatch, ErrOrigin, ErrRPID, ErrUserVerification,
// ErrAAGUIDNotAllowed, ErrBackupEligibleRefused, ErrCredentialExists,
// ErrSignature or ErrVerification; ErrInvalid means the caller's arguments
// were wrong.
func (s *Service) FinishRegistration(ctx context.Context, accountID, ceremonyID string, body []byte, name, deviceID string) (Credential, error) {
	if strings.TrimSpace(name) != "" {
		var err error
		if name, err = cleanName(name); err != nil {
			return Credential{}, err
		}
	}
	if accountID == "" {
		return Credential{}, fmt.Errorf("%w: account id is required", ErrInvalid)
	}
	c, session, err := s.takeCeremony(ctx, `id = ? AND kind = ? AND account_id = ?`, ceremonyID, ceremonyRegistration, accountID)
	if err != nil {
		return Credential{}, err
	}
	switch {
	case c.CredentialKind == KindApp && deviceID == "":
		return Credential{}, fmt.Errorf("%w: an app credential needs its device id", ErrInvalid)
	case c.CredentialKind == KindPasskey && deviceID != "":
		return Credential{}, fmt.Errorf("%w: a passkey belongs to no device", ErrInvalid)
	}
	if strings.TrimSpace(name) == "" {
		name = "Passkey"
		if c.CredentialKind == KindApp {
			name = "Companion app"
		}
	}
	if len(body) > MaxResponseSize {
		return Credential{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxResponseSize)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	authData := parsed.Response.AttestationObject.AuthData
	if err := s.precheck(parsed.Response.CollectedClientData, session.Challenge, authData.RPIDHash, authData.Flags.UserVerified()); err != nil {
		return Credential{}, err
	}
	handle, err := s.existingHandle(ctx, accountID)
	if err != nil {
		return Credential{}, err
	}
	if !bytes.Equal(handle, session.UserID) {
		return Credential{}, fmt.Errorf("%w: the ceremony was begun for another user handle", ErrCeremonyNotFound)
	}
	wc, err := s.wa.CreateCredential(&webUser{handle: handle}, session, parsed)
	if err != nil {
		return Credential{}, mapProtocolError(err)
	}
	aaguid := aaguidOf(wc.Authenticator.AAGUID)
	if len(s.cfg.AAGUIDAllowList) > 0 && !slices.Contains(s.cfg.AAGUIDAllowList, aaguid) {
		return Credential{}, fmt.Errorf("%w: AAGUID %s", ErrAAGUIDNotAllowed, aaguid)
	}
	if s.cfg.RefuseBackupEligible && wc.Flags.BackupEligible {
		return Credential{}, ErrBackupEligibleRefused
	}
	transports := make([]string, len(wc.Transport))
	for i, t := range wc.Transport {
		transports[i] = string(t)
	}
	cred := Credential{
		ID: wc.ID, AccountID: accountID, Kind: c.CredentialKind, DeviceID: deviceID, Name: name,
		PublicKey: wc.PublicKey, AttestationType: wc.AttestationType, AttestationFormat: wc.AttestationFormat,
		AAGUID: aaguid, SignCount: wc.Authenticator.SignCount, CloneWarning: wc.Authenticator.CloneWarning,
		BackupEligible: wc.Flags.BackupEligible, BackupState: wc.Flags.BackupState,
		Transports: transports, UserVerified: wc.Flags.UserVerified, CreatedAt: s.nowUTC(),
	}
	if err := s.insertCredential(ctx, cred); err != nil {
		return Credential{}, err
	}
	return cred, nil
}

// precheck checks, before go-webauthn runs, the conditions whose failure
// callers tell apart: challenge, origin, relying party id and user
// verification, in the order of the WebAuthn verification steps.
func (s *Service) precheck(cd protocol.CollectedClientData, challenge string, rpIDHash []byte, userVerified bool) error {
	if subtle.ConstantTimeCompare([]byte(cd.Challenge), []byte(challenge)) != 1 {
		return ErrChallengeMismatch
	}
	if !protocol.IsOriginInHaystack(cd.Origin, s.origins) && !protocol.IsOpaqueOriginInHaystack(cd.Origin, s.opaque) {
		return fmt.Errorf("%w: %q", ErrOrigin, cd.Origin)
	}
	if subtle.ConstantTimeCompare(rpIDHash, s.rpIDHash[:]) != 1 {
		return fmt.Errorf("%w: expected %q", ErrRPID, s.cfg.RPID)
	}
	if !userVerified {
		return ErrUserVerification
	}
	return nil
}
