package fido_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
)

// TestAppEnrolmentAndBiometricLogin follows the companion app: it enrols a
// platform credential bound to a device, logs in with fido_auth_response
// (found by its challenge), and loses its login once the device is removed.
func TestAppEnrolmentAndBiometricLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		keys, err := secrets.NewKeyring(secrets.NewKey())
		require.NoError(t, err)
		devices := device.New(db, keys, device.Config{}, time.Now)
		f := newFixture(t, db, baseConfig(), devices)
		p := newPhone()

		id, options, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindApp)
		require.NoError(t, err)
		sel := publicKeyOptions(t, options)["authenticatorSelection"].(map[string]any)
		require.Equal(t, "platform", sel["authenticatorAttachment"])
		require.Equal(t, "required", sel["userVerification"])

		// An app credential needs its device id; the refusal uses the
		// ceremony up.
		body := p.attest(t, rp, options)
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id, body, "", "")
		require.ErrorIs(t, err, fido.ErrInvalid)
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id, body, "", "x")
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)

		// Enrolment as the HTTP layer will do it: choose the device id,
		// check the device, create the credential, register the device.
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		d := device.Device{ID: secrets.NewID(), AccountID: "acct-a", Name: "Sam's phone", Platform: device.PlatformAndroid, PublicKey: der}
		require.NoError(t, d.Validate())
		cred := f.register(t, p, "acct-a", fido.KindApp, d.Name, d.ID)
		require.Equal(t, fido.KindApp, cred.Kind)
		require.Equal(t, d.ID, cred.DeviceID)
		d.FIDOCredentialID = cred.ID
		_, err = devices.Register(ctx, d)
		require.NoError(t, err)

		// Biometric login: begin without a session, answer with the
		// assertion only.
		_, options, err = f.svc.BeginDiscoverableLogin(ctx)
		require.NoError(t, err)
		fidoAuthResponse := base64.RawURLEncoding.EncodeToString(p.assert(t, rp, options))
		body, err = base64.RawURLEncoding.DecodeString(fidoAuthResponse)
		require.NoError(t, err)
		used, err := f.svc.FinishLoginByChallenge(ctx, body)
		require.NoError(t, err)
		require.Equal(t, "acct-a", used.AccountID)
		require.Equal(t, fido.KindApp, used.Kind)
		require.Equal(t, d.ID, used.DeviceID)
		_, err = f.svc.FinishLoginByChallenge(ctx, body)
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound, "single use")
		_, err = f.svc.FinishLoginByChallenge(ctx, []byte("not json"))
		require.ErrorIs(t, err, fido.ErrMalformed)

		// A registration ceremony is not found by its challenge.
		_, regOptions, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		regChallenge, err := base64.RawURLEncoding.DecodeString(publicKeyOptions(t, regOptions)["challenge"].(string))
		require.NoError(t, err)
		_, err = f.svc.FinishLoginByChallenge(ctx, p.assert(t, rp, requestOptions(regChallenge)))
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)

		// Removing the device stops its biometric login at once.
		require.NoError(t, devices.Remove(ctx, "acct-a", d.ID))
		_, options, err = f.svc.BeginDiscoverableLogin(ctx)
		require.NoError(t, err)
		got, err := f.svc.FinishLoginByChallenge(ctx, p.assert(t, rp, options))
		require.ErrorIs(t, err, fido.ErrDeviceRemoved)
		require.ErrorIs(t, err, device.ErrRemoved)
		require.Equal(t, d.ID, got.DeviceID)
	})
}

// requestOptions builds request options JSON for a given challenge, as a
// caller that derived its own challenge would send them.
func requestOptions(challenge []byte) []byte {
	return []byte(`{"publicKey":{"challenge":"` + base64.RawURLEncoding.EncodeToString(challenge) + `","rpId":"` + rpID + `"}}`)
}

// TestCallerDerivedChallenge covers what push approvals need: a challenge
// derived from the approval, verified through a ceremony or statelessly.
func TestCallerDerivedChallenge(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		cred := f.register(t, p, "acct-a", fido.KindApp, "", "dev-1")
		other := newPhone()
		otherCred := f.register(t, other, "acct-a", fido.KindPasskey, "", "")
		stranger := newPhone()
		f.register(t, stranger, "acct-b", fido.KindPasskey, "", "")

		derive := func(approval string) []byte { h := sha256.Sum256([]byte("approval:" + approval)); return h[:] }

		// Through a ceremony bound to the account.
		ch := derive("approval-1")
		_, options, err := f.svc.BeginAssertion(ctx, "acct-a", ch)
		require.NoError(t, err)
		o := publicKeyOptions(t, options)
		require.Equal(t, base64.RawURLEncoding.EncodeToString(ch), o["challenge"])
		require.Len(t, o["allowCredentials"].([]any), 2)
		_, _, err = f.svc.BeginAssertion(ctx, "acct-a", ch)
		require.ErrorIs(t, err, fido.ErrInvalid, "a challenge waits in one ceremony at a time")
		used, err := f.svc.FinishLoginByChallenge(ctx, p.assert(t, rp, options))
		require.NoError(t, err)
		require.Equal(t, cred.ID, used.ID)

		// Another account's credential cannot answer an account-bound one.
		_, options, err = f.svc.BeginAssertion(ctx, "acct-a", derive("approval-2"))
		require.NoError(t, err)
		_, err = f.svc.FinishLoginByChallenge(ctx, stranger.assert(t, rp, options))
		require.ErrorIs(t, err, fido.ErrUnknownCredential)

		_, _, err = f.svc.BeginAssertion(ctx, "acct-a", []byte("short"))
		require.ErrorIs(t, err, fido.ErrInvalid)

		// Statelessly.
		ch = derive("approval-3")
		want := fido.Expected{Challenge: ch, AccountID: "acct-a", CredentialID: cred.ID}
		used, err = f.svc.VerifyAssertion(ctx, want, p.assert(t, rp, requestOptions(ch)))
		require.NoError(t, err)
		require.Equal(t, cred.ID, used.ID)
		require.EqualValues(t, 2, used.SignCount)

		tests := []struct {
			name string
			want fido.Expected
			body func() []byte
			err  error
		}{
			{"another challenge", want, func() []byte { return p.assert(t, rp, requestOptions(derive("other"))) }, fido.ErrChallengeMismatch},
			{"another credential of the account", want, func() []byte { return other.assert(t, rp, requestOptions(ch)) }, fido.ErrUnknownCredential},
			{"another account's credential", fido.Expected{Challenge: ch, AccountID: "acct-a"}, func() []byte { return stranger.assert(t, rp, requestOptions(ch)) }, fido.ErrUnknownCredential},
			{"short challenge", fido.Expected{Challenge: []byte("x")}, func() []byte { return p.assert(t, rp, requestOptions(ch)) }, fido.ErrInvalid},
			{"user not verified", want, func() []byte {
				p.auth.Options.UserNotVerified = true
				defer func() { p.auth.Options.UserNotVerified = false }()
				return p.assert(t, rp, requestOptions(ch))
			}, fido.ErrUserVerification},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.VerifyAssertion(ctx, tc.want, tc.body())
				require.ErrorIs(t, err, tc.err)
			})
		}

		// Without an account, any registered credential may answer.
		ch = derive("approval-4")
		used, err = f.svc.VerifyAssertion(ctx, fido.Expected{Challenge: ch}, other.assert(t, rp, requestOptions(ch)))
		require.NoError(t, err)
		require.Equal(t, otherCred.ID, used.ID)
	})
}
