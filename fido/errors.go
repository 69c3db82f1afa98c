package fido

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
)

// Sentinel errors. Every failure of a Finish or Verify call caused by what
// the browser or app sent wraps exactly one of them (errors.Is), with a
// message saying what was wrong; other errors are database failures.
var (
	// ErrInvalid is a caller's mistake: unknown kind, bad name, short
	// challenge, device id missing or unexpected, bad configuration.
	ErrInvalid = errors.New("invalid FIDO request")
	// ErrMalformed: the WebAuthn JSON could not be parsed.
	ErrMalformed = errors.New("the WebAuthn response is malformed")
	// ErrOrigin: the response was made for an origin not configured.
	ErrOrigin = errors.New("the WebAuthn response comes from an origin that is not allowed")
	// ErrRPID: the authenticator data is for another relying party id.
	ErrRPID = errors.New("the WebAuthn response is for another relying party")
	// ErrChallengeMismatch: the response answers another challenge than
	// the ceremony's.
	ErrChallengeMismatch = errors.New("the WebAuthn response answers another challenge")
	// ErrCeremonyNotFound: no such ceremony, or it has already been used.
	ErrCeremonyNotFound = errors.New("the WebAuthn ceremony is unknown or has already been used")
	// ErrCeremonyExpired: the ceremony's timeout has passed.
	ErrCeremonyExpired = errors.New("the WebAuthn ceremony has expired")
	// ErrUserVerification: the authenticator did not verify the person
	// (fingerprint, face or PIN).
	ErrUserVerification = errors.New("the authenticator did not verify the user")
	// ErrUnknownCredential: the credential is not registered (or not for
	// this account, or has been removed).
	ErrUnknownCredential = errors.New("the credential is not registered")
	// ErrCredentialBlocked: the credential was blocked earlier (its counter
	// went backwards).
	ErrCredentialBlocked = errors.New("the credential is blocked")
	// ErrCloneDetected: the signature counter went backwards in this use;
	// the credential is now blocked. The caller raises an audit event.
	ErrCloneDetected = errors.New("the credential's signature counter went backwards: it may have been cloned, and is now blocked")
	// ErrAAGUIDNotAllowed: the authenticator model is not in the allow-list.
	ErrAAGUIDNotAllowed = errors.New("this type of authenticator is not allowed")
	// ErrBackupEligibleRefused: synced (backup-eligible) credentials are
	// refused by configuration.
	ErrBackupEligibleRefused = errors.New("synced (backup-eligible) passkeys are not allowed")
	// ErrDeviceRemoved: the credential belongs to a companion-app device
	// that has been removed.
	ErrDeviceRemoved = errors.New("the credential's device has been removed")
	// ErrCredentialExists: the credential is already registered.
	ErrCredentialExists = errors.New("the credential is already registered")
	// ErrSignature: the assertion or attestation signature is not valid.
	ErrSignature = errors.New("the WebAuthn signature is not valid")
	// ErrVerification: any other way the response failed verification.
	ErrVerification = errors.New("the WebAuthn response did not verify")
)

// mapProtocolError turns an error of go-webauthn's verification into one
// of the sentinels, keeping the library's explanation in the message.
// Most conditions are checked before the library runs (see precheck), so
// that their sentinel does not depend on the library's wording; this
// mapping is the second line.
func mapProtocolError(err error) error {
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		return fmt.Errorf("%w: %s", ErrUnknownCredential, unknown.Error())
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: %v", ErrVerification, err)
	}
	detail := pe.Details
	if pe.DevInfo != "" {
		detail += " (" + pe.DevInfo + ")"
	}
	var sentinel error
	switch {
	case pe.Details == "Session has Expired":
		sentinel = ErrCeremonyExpired
	case pe.Details == "Error validating challenge":
		sentinel = ErrChallengeMismatch
	case strings.HasPrefix(pe.Details, "Error validating origin"),
		strings.HasPrefix(pe.Details, "Error validating top origin"),
		strings.HasPrefix(pe.Details, "Error validating topOrigin"),
		strings.HasPrefix(pe.Details, "Error validating cross origin"):
		sentinel = ErrOrigin
	case strings.HasPrefix(pe.DevInfo, "RP Hash mismatch"):
		sentinel = ErrRPID
	case strings.HasPrefix(pe.DevInfo, "User verification required"):
		sentinel = ErrUserVerification
	case pe.Type == protocol.ErrAssertionSignature.Type:
		sentinel = ErrSignature
	case pe.Type == protocol.ErrParsingData.Type, strings.HasPrefix(pe.Details, "Parse error"):
		sentinel = ErrMalformed
	default:
		sentinel = ErrVerification
	}
	return fmt.Errorf("%w: %s", sentinel, detail)
}
