package fido_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
)

// FuzzFinishDiscoverableLogin feeds arbitrary assertion bodies (as
// fido_auth_response decodes to) to a fresh discoverable ceremony. It must
// never panic, and every refusal must be one of the sentinels. The
// ceremonies use a fixed challenge so that mutations of the valid seed
// reach the signature and counter checks.
func FuzzFinishDiscoverableLogin(f *testing.F) {
	db := dbtest.SQLite(f)
	ctx := context.Background()
	fx := newFixture(f, db, baseConfig(), nil)
	p := newPhone()
	fx.register(f, p, "acct-a", "passkey", "", "")
	sum := sha256.Sum256([]byte("fuzz challenge"))
	challenge := sum[:]

	valid := p.assert(f, rp, requestOptions(challenge))
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, 0x00})

	sentinels := []error{fido.ErrMalformed, fido.ErrOrigin, fido.ErrRPID, fido.ErrChallengeMismatch,
		fido.ErrCeremonyNotFound, fido.ErrCeremonyExpired, fido.ErrUserVerification, fido.ErrUnknownCredential,
		fido.ErrCredentialBlocked, fido.ErrCloneDetected, fido.ErrDeviceRemoved, fido.ErrSignature, fido.ErrVerification}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, _, err := fx.svc.BeginAssertion(ctx, "", challenge)
		require.NoError(t, err)
		got, err := fx.svc.FinishDiscoverableLogin(ctx, id, body)
		if err == nil {
			require.Equal(t, "acct-a", got.AccountID)
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error is none of the sentinels: %v", err)
	})
}
