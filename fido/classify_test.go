package fido_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/fido"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err      error
		want     fido.Kind
		unusable bool
	}{
		{nil, fido.KindNone, false},
		{errors.New("database down"), fido.KindNone, false},
		{fido.ErrInvalid, fido.KindInvalid, false},
		{fido.ErrMalformed, fido.KindMalformed, false},
		{fido.ErrOrigin, fido.KindOrigin, false},
		{fido.ErrRPID, fido.KindRPID, false},
		{fido.ErrChallengeMismatch, fido.KindChallengeMismatch, false},
		{fido.ErrCeremonyNotFound, fido.KindCeremonyNotFound, false},
		{fido.ErrCeremonyExpired, fido.KindCeremonyExpired, false},
		{fido.ErrUserVerification, fido.KindUserVerification, false},
		{fido.ErrUnknownCredential, fido.KindUnknownCredential, false},
		{fido.ErrCredentialBlocked, fido.KindCredentialBlocked, true},
		{fido.ErrCloneDetected, fido.KindCloneDetected, true},
		{fido.ErrAAGUIDNotAllowed, fido.KindAAGUIDNotAllowed, false},
		{fido.ErrBackupEligibleRefused, fido.KindBackupEligibleRefused, false},
		{fido.ErrDeviceRemoved, fido.KindDeviceRemoved, true},
		{fido.ErrCredentialExists, fido.KindCredentialExists, false},
		{fido.ErrSignature, fido.KindSignature, false},
		{fido.ErrVerification, fido.KindVerification, false},
		// Wrapped, as the Finish calls return them.
		{fmt.Errorf("%w: stored counter 5, received 3", fido.ErrCloneDetected), fido.KindCloneDetected, true},
		{fmt.Errorf("%w: device d: %w", fido.ErrDeviceRemoved, errors.New("gone")), fido.KindDeviceRemoved, true},
		{fmt.Errorf("push: %w", fmt.Errorf("%w: bad", fido.ErrSignature)), fido.KindSignature, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			got := fido.Classify(tc.err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want != fido.KindNone, got.Refused())
			require.Equal(t, tc.unusable, got.Unusable())
		})
	}
}
