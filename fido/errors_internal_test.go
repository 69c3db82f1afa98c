package fido

import (
	"errors"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/stretchr/testify/require"
)

// The mapping of go-webauthn's errors, for the conditions that precheck
// does not already catch (or in case its checks and the library's drift).
func TestMapProtocolError(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want error
	}{
		{"expired session", protocol.ErrBadRequest.WithDetails("Session has Expired"), ErrCeremonyExpired},
		{"challenge", protocol.ErrVerification.WithDetails("Error validating challenge"), ErrChallengeMismatch},
		{"origin", protocol.ErrVerification.WithDetails("Error validating origin").WithInfo("Expected Values: [a], Received: b"), ErrOrigin},
		{"top origin", protocol.ErrVerification.WithDetails("Error validating top origin"), ErrOrigin},
		{"rp id", protocol.ErrVerification.WithInfo("RP Hash mismatch. Expected 00 and Received 01"), ErrRPID},
		{"user verification", protocol.ErrVerification.WithInfo("User verification required but flag not set by authenticator"), ErrUserVerification},
		{"signature", protocol.ErrAssertionSignature.WithDetails("Error validating the assertion signature"), ErrSignature},
		{"parse", protocol.ErrParsingData.WithDetails("Error unmarshalling auth data"), ErrMalformed},
		{"parse request", protocol.ErrBadRequest.WithDetails("Parse error for Assertion"), ErrMalformed},
		{"unknown credential", &protocol.ErrorUnknownCredential{Err: protocol.ErrBadRequest.WithDetails("not owned")}, ErrUnknownCredential},
		{"backup flags", protocol.ErrBadRequest.WithDetails("Backup Eligible flag inconsistency detected during login validation"), ErrVerification},
		{"attestation", protocol.ErrInvalidAttestation.WithDetails("bad packed signature"), ErrVerification},
		{"not a protocol error", errors.New("cbor: unexpected EOF"), ErrVerification},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mapProtocolError(tc.in)
			require.ErrorIs(t, got, tc.want)
		})
	}
}
