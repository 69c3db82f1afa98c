package fido

import "errors"

// Kind names the sentinel a refusal wraps with a stable string, fit for an
// audit event's reason. Callers turn a Kind into their own answer (an HTTP
// status and message, an API code, an OIDC error); the sorting of errors
// into kinds is done here only, so a new sentinel is added in one place.
type Kind string

// The kinds, one per sentinel. KindNone is no refusal: nil, or a failure
// of the service (a database error).
const (
	KindNone                  Kind = ""
	KindInvalid               Kind = "invalid"
	KindMalformed             Kind = "malformed"
	KindOrigin                Kind = "origin"
	KindRPID                  Kind = "rp_id"
	KindChallengeMismatch     Kind = "challenge_mismatch"
	KindCeremonyNotFound      Kind = "ceremony_not_found"
	KindCeremonyExpired       Kind = "ceremony_expired"
	KindUserVerification      Kind = "user_not_verified"
	KindUnknownCredential     Kind = "unknown_credential"
	KindCredentialBlocked     Kind = "credential_blocked"
	KindCloneDetected         Kind = "clone_detected"
	KindAAGUIDNotAllowed      Kind = "aaguid_not_allowed"
	KindBackupEligibleRefused Kind = "backup_eligible_refused"
	KindDeviceRemoved         Kind = "device_removed"
	KindCredentialExists      Kind = "credential_exists"
	KindSignature             Kind = "signature"
	KindVerification          Kind = "verification"
)

// kinds pairs every sentinel with its kind, most specific first.
var kinds = []struct {
	err  error
	kind Kind
}{
	{ErrCloneDetected, KindCloneDetected},
	{ErrCredentialBlocked, KindCredentialBlocked},
	{ErrDeviceRemoved, KindDeviceRemoved},
	{ErrUnknownCredential, KindUnknownCredential},
	{ErrCeremonyNotFound, KindCeremonyNotFound},
	{ErrCeremonyExpired, KindCeremonyExpired},
	{ErrMalformed, KindMalformed},
	{ErrChallengeMismatch, KindChallengeMismatch},
	{ErrOrigin, KindOrigin},
	{ErrRPID, KindRPID},
	{ErrUserVerification, KindUserVerification},
	{ErrAAGUIDNotAllowed, KindAAGUIDNotAllowed},
	{ErrBackupEligibleRefused, KindBackupEligibleRefused},
	{ErrCredentialExists, KindCredentialExists},
	{ErrSignature, KindSignature},
	{ErrVerification, KindVerification},
	{ErrInvalid, KindInvalid},
}

// Classify returns the kind of refusal err wraps, or KindNone when err is
// nil or not a refusal (a failure of the service, to be logged and
// answered as such).
func Classify(err error) Kind {
	if err == nil {
		return KindNone
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return KindNone
}

// Refused reports whether the kind is a refusal of what the browser or app
// sent (anything but KindNone).
func (k Kind) Refused() bool { return k != KindNone }

// Unusable reports whether the credential was identified but may no
// longer be used: blocked, seen cloned, or its device removed. A relying
// party is told access_denied rather than invalid_request.
func (k Kind) Unusable() bool {
	return k == KindCredentialBlocked || k == KindCloneDetected || k == KindDeviceRemoved
}
