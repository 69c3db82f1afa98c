package fido_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *fido.Config)
		ok   bool
	}{
		{"valid", func(c *fido.Config) {}, true},
		{"valid with an app origin", func(c *fido.Config) {
			c.RPOrigins = append(c.RPOrigins, "android:apk-key-hash:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
		}, true},
		{"valid direct attestation", func(c *fido.Config) { c.Attestation = fido.AttestationDirect }, true},
		{"no RP ID", func(c *fido.Config) { c.RPID = "" }, false},
		{"RP ID with a scheme", func(c *fido.Config) { c.RPID = "https://idp.test" }, false},
		{"no display name", func(c *fido.Config) { c.RPDisplayName = " " }, false},
		{"no origin", func(c *fido.Config) { c.RPOrigins = nil }, false},
		{"origin with a path", func(c *fido.Config) { c.RPOrigins = []string{"https://idp.test/login"} }, false},
		{"only an app origin", func(c *fido.Config) {
			c.RPOrigins = []string{"android:apk-key-hash:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}
		}, false},
		{"unknown attestation", func(c *fido.Config) { c.Attestation = "always" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.edit(&cfg)
			_, err := fido.New(nil, cfg, nil, time.Now)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, fido.ErrInvalid)
		})
	}
}

func TestRegisterThenLogIn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()

		id, options, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		o := publicKeyOptions(t, options)
		sel := o["authenticatorSelection"].(map[string]any)
		require.Equal(t, "required", sel["residentKey"])
		require.Equal(t, true, sel["requireResidentKey"])
		require.Equal(t, "required", sel["userVerification"])
		require.NotContains(t, sel, "authenticatorAttachment")
		require.Equal(t, "none", o["attestation"])
		require.Empty(t, o["excludeCredentials"])
		handle := o["user"].(map[string]any)["id"].(string)
		require.NotContains(t, handle, "acct-a")
		raw, err := base64.RawURLEncoding.DecodeString(handle)
		require.NoError(t, err)
		require.Len(t, raw, 32)
		require.Equal(t, rpID, o["rp"].(map[string]any)["id"])

		before := f.clock.Now()
		cred, err := f.svc.FinishRegistration(ctx, "acct-a", id, p.attest(t, rp, options), "  My laptop ", "")
		require.NoError(t, err)
		p.enrolled(t, options)
		require.Equal(t, p.cred.ID, cred.ID)
		require.Equal(t, "acct-a", cred.AccountID)
		require.Equal(t, fido.KindPasskey, cred.Kind)
		require.Equal(t, "My laptop", cred.Name)
		require.Empty(t, cred.DeviceID)
		require.True(t, cred.UserVerified)
		require.Equal(t, uuid.UUID(p.auth.Aaguid), cred.AAGUID)
		require.Equal(t, "packed", cred.AttestationFormat)
		require.Equal(t, []string{"internal"}, cred.Transports)
		require.False(t, cred.CreatedAt.Before(before.Truncate(time.Microsecond)))
		require.Nil(t, cred.LastUsedAt)

		// The stored credential reads back the same.
		list, err := f.svc.ListCredentials(ctx, "acct-a")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, cred, list[0])

		// A second registration excludes the first credential and keeps
		// the same user handle.
		_, options2, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		o2 := publicKeyOptions(t, options2)
		require.Equal(t, handle, o2["user"].(map[string]any)["id"])
		excluded := o2["excludeCredentials"].([]any)
		require.Len(t, excluded, 1)
		require.Equal(t, base64.RawURLEncoding.EncodeToString(p.cred.ID), excluded[0].(map[string]any)["id"])

		// Discoverable login.
		used, err := f.login(t, p)
		require.NoError(t, err)
		require.Equal(t, "acct-a", used.AccountID)
		require.Equal(t, p.cred.ID, used.ID)
		require.EqualValues(t, 1, used.SignCount)
		require.NotNil(t, used.LastUsedAt)

		// Login for a known account (step-up).
		lid, loptions, err := f.svc.BeginLogin(ctx, "acct-a")
		require.NoError(t, err)
		allowed := publicKeyOptions(t, loptions)["allowCredentials"].([]any)
		require.Len(t, allowed, 1)
		require.Equal(t, "required", publicKeyOptions(t, loptions)["userVerification"])
		used, err = f.svc.FinishLogin(ctx, "acct-a", lid, p.assert(t, rp, loptions))
		require.NoError(t, err)
		require.EqualValues(t, 2, used.SignCount)

		// The counter is persisted.
		list, err = f.svc.ListCredentials(ctx, "acct-a")
		require.NoError(t, err)
		require.EqualValues(t, 2, list[0].SignCount)
		require.False(t, list[0].Blocked())

		// A step-up ceremony belongs to its account.
		lid, loptions, err = f.svc.BeginLogin(ctx, "acct-a")
		require.NoError(t, err)
		_, err = f.svc.FinishLogin(ctx, "acct-b", lid, p.assert(t, rp, loptions))
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
		_, _, err = f.svc.BeginLogin(ctx, "acct-b")
		require.ErrorIs(t, err, fido.ErrUnknownCredential, "an account without credentials")
	})
}

func TestStepUpRefusesAnotherAccountsCredential(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		a, b := newPhone(), newPhone()
		f.register(t, a, "acct-a", fido.KindPasskey, "", "")
		f.register(t, b, "acct-b", fido.KindPasskey, "", "")

		// b answers a's step-up with its own credential.
		id, options, err := f.svc.BeginLogin(ctx, "acct-a")
		require.NoError(t, err)
		_, err = f.svc.FinishLogin(ctx, "acct-a", id, b.assert(t, rp, options))
		require.ErrorIs(t, err, fido.ErrUnknownCredential)

		// A discoverable assertion whose user handle is another account's.
		id, options, err = f.svc.BeginDiscoverableLogin(ctx)
		require.NoError(t, err)
		b.auth.Options.UserHandle, a.auth.Options.UserHandle = a.auth.Options.UserHandle, b.auth.Options.UserHandle
		_, err = f.svc.FinishDiscoverableLogin(ctx, id, b.assert(t, rp, options))
		require.ErrorIs(t, err, fido.ErrUnknownCredential)
	})
}

func TestAssertionRefusals(t *testing.T) {
	evilOrigin := virtualwebauthn.RelyingParty{ID: rpID, Name: "idlink", Origin: "https://evil.test"}
	evilRPID := virtualwebauthn.RelyingParty{ID: "evil.test", Name: "idlink", Origin: rpOrigin}
	tests := []struct {
		name string
		// answer makes the body for the ceremony's options.
		answer func(t *testing.T, f *fixture, p *phone, options []byte) []byte
		want   error
	}{
		{"valid", func(t *testing.T, f *fixture, p *phone, o []byte) []byte { return p.assert(t, rp, o) }, nil},
		{"wrong origin", func(t *testing.T, f *fixture, p *phone, o []byte) []byte { return p.assert(t, evilOrigin, o) }, fido.ErrOrigin},
		{"wrong RP ID", func(t *testing.T, f *fixture, p *phone, o []byte) []byte { return p.assert(t, evilRPID, o) }, fido.ErrRPID},
		{"user not verified", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			p.auth.Options.UserNotVerified = true
			defer func() { p.auth.Options.UserNotVerified = false }()
			return p.assert(t, rp, o)
		}, fido.ErrUserVerification},
		{"unknown credential", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			stranger := newPhone()
			stranger.auth.Options.UserHandle = p.auth.Options.UserHandle
			return stranger.assert(t, rp, o)
		}, fido.ErrUnknownCredential},
		{"answer to another challenge", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			_, other, err := f.svc.BeginDiscoverableLogin(context.Background())
			require.NoError(t, err)
			return p.assert(t, rp, other)
		}, fido.ErrChallengeMismatch},
		{"bad signature", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			impostor := *p
			impostor.cred.Key = virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2).Key
			body := impostor.assert(t, rp, o)
			p.cred.Counter = impostor.cred.Counter
			return body
		}, fido.ErrSignature},
		{"not JSON", func(t *testing.T, f *fixture, p *phone, o []byte) []byte { return []byte("{") }, fido.ErrMalformed},
		{"too large", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			return bytes.Repeat([]byte(" "), fido.MaxResponseSize+1)
		}, fido.ErrMalformed},
		{"no user handle", func(t *testing.T, f *fixture, p *phone, o []byte) []byte {
			h := p.auth.Options.UserHandle
			p.auth.Options.UserHandle = nil
			defer func() { p.auth.Options.UserHandle = h }()
			return p.assert(t, rp, o)
		}, fido.ErrMalformed},
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		f.register(t, p, "acct-a", fido.KindPasskey, "Phone", "")
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				id, options, err := f.svc.BeginDiscoverableLogin(ctx)
				require.NoError(t, err)
				body := tc.answer(t, f, p, options)
				got, err := f.svc.FinishDiscoverableLogin(ctx, id, body)
				if tc.want == nil {
					require.NoError(t, err)
					require.Equal(t, "acct-a", got.AccountID)
				} else {
					require.ErrorIs(t, err, tc.want)
				}
				// Whatever happened, the ceremony is used up.
				_, err = f.svc.FinishDiscoverableLogin(ctx, id, body)
				require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
			})
		}
		// None of the refusals blocked the credential.
		_, err := f.login(t, p)
		require.NoError(t, err)
	})
}

func TestReplayedAssertionRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		f.register(t, p, "acct-a", fido.KindPasskey, "", "")

		id, options, err := f.svc.BeginDiscoverableLogin(ctx)
		require.NoError(t, err)
		body := p.assert(t, rp, options)
		_, err = f.svc.FinishDiscoverableLogin(ctx, id, body)
		require.NoError(t, err)

		// The same answer again: the ceremony is gone.
		_, err = f.svc.FinishDiscoverableLogin(ctx, id, body)
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
		_, err = f.svc.FinishLoginByChallenge(ctx, body)
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
		// Replayed into a fresh ceremony: another challenge.
		id2, _, err := f.svc.BeginDiscoverableLogin(ctx)
		require.NoError(t, err)
		_, err = f.svc.FinishDiscoverableLogin(ctx, id2, body)
		require.ErrorIs(t, err, fido.ErrChallengeMismatch)
		// A ceremony of one kind cannot be finished as another.
		lid, _, err := f.svc.BeginLogin(ctx, "acct-a")
		require.NoError(t, err)
		_, err = f.svc.FinishDiscoverableLogin(ctx, lid, body)
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
		_, err = f.svc.FinishDiscoverableLogin(ctx, "no-such-ceremony", body)
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
	})
}

func TestRegistrationRefusals(t *testing.T) {
	evilOrigin := virtualwebauthn.RelyingParty{ID: rpID, Name: "idlink", Origin: "https://evil.test"}
	evilRPID := virtualwebauthn.RelyingParty{ID: "evil.test", Name: "idlink", Origin: rpOrigin}
	tests := []struct {
		name   string
		cfg    func(c *fido.Config)
		phone  func(p *phone)
		r      virtualwebauthn.RelyingParty
		mangle func(body []byte) []byte
		want   error
	}{
		{name: "valid", r: rp},
		{name: "user not verified", phone: func(p *phone) { p.auth.Options.UserNotVerified = true }, r: rp, want: fido.ErrUserVerification},
		{name: "wrong origin", r: evilOrigin, want: fido.ErrOrigin},
		{name: "wrong RP ID", r: evilRPID, want: fido.ErrRPID},
		{name: "malformed", r: rp, mangle: func([]byte) []byte { return []byte(`{"id":1}`) }, want: fido.ErrMalformed},
		{name: "AAGUID not in the allow-list", r: rp, cfg: func(c *fido.Config) { c.AAGUIDAllowList = []uuid.UUID{uuid.New()} }, want: fido.ErrAAGUIDNotAllowed},
		{name: "zero AAGUID with an allow-list", r: rp, cfg: func(c *fido.Config) { c.AAGUIDAllowList = []uuid.UUID{uuid.New()} },
			phone: func(p *phone) { p.auth.Aaguid = [16]byte{} }, want: fido.ErrAAGUIDNotAllowed},
		{name: "backup-eligible refused", r: rp, cfg: func(c *fido.Config) { c.RefuseBackupEligible = true },
			phone: func(p *phone) { p.auth.Options.BackupEligible = true }, want: fido.ErrBackupEligibleRefused},
		{name: "backup-eligible allowed by default", r: rp, phone: func(p *phone) { p.auth.Options.BackupEligible, p.auth.Options.BackupState = true, true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				ctx := context.Background()
				cfg := baseConfig()
				if tc.cfg != nil {
					tc.cfg(&cfg)
				}
				f := newFixture(t, db, cfg, nil)
				p := newPhone()
				if tc.phone != nil {
					tc.phone(p)
				}
				id, options, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
				require.NoError(t, err)
				body := p.attest(t, tc.r, options)
				if tc.mangle != nil {
					body = tc.mangle(body)
				}
				cred, err := f.svc.FinishRegistration(ctx, "acct-a", id, body, "", "")
				list, lerr := f.svc.ListCredentials(ctx, "acct-a")
				require.NoError(t, lerr)
				if tc.want != nil {
					require.ErrorIs(t, err, tc.want)
					require.Empty(t, list, "a refused registration stores nothing")
				} else {
					require.NoError(t, err)
					require.Equal(t, "Passkey", cred.Name)
					require.Equal(t, p.auth.Options.BackupEligible, cred.BackupEligible)
					require.Equal(t, p.auth.Options.BackupState, cred.BackupState)
					require.Len(t, list, 1)
				}
				// Used up either way.
				_, err = f.svc.FinishRegistration(ctx, "acct-a", id, body, "", "")
				require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
			})
		})
	}
}

func TestAAGUIDAllowListAccepts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		p := newPhone()
		cfg := baseConfig()
		cfg.AAGUIDAllowList = []uuid.UUID{uuid.New(), uuid.UUID(p.auth.Aaguid)}
		f := newFixture(t, db, cfg, nil)
		c := f.register(t, p, "acct-a", fido.KindPasskey, "", "")
		require.Equal(t, uuid.UUID(p.auth.Aaguid), c.AAGUID)
	})
}

func TestRegistrationCeremonyRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()

		_, _, err := f.svc.BeginRegistration(ctx, user("acct-a"), "password")
		require.ErrorIs(t, err, fido.ErrInvalid)
		_, _, err = f.svc.BeginRegistration(ctx, fido.User{Name: "x"}, fido.KindPasskey)
		require.ErrorIs(t, err, fido.ErrInvalid)

		// Another account cannot finish this account's ceremony, and does
		// not use it up.
		id, options, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		body := p.attest(t, rp, options)
		_, err = f.svc.FinishRegistration(ctx, "acct-b", id, body, "", "")
		require.ErrorIs(t, err, fido.ErrCeremonyNotFound)
		// A bad name is refused before the ceremony is touched.
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id, body, string(bytes.Repeat([]byte("n"), 65)), "")
		require.ErrorIs(t, err, fido.ErrInvalid)
		// A passkey belongs to no device.
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id, body, "", "dev-1")
		require.ErrorIs(t, err, fido.ErrInvalid)

		// A response to another ceremony's challenge.
		id2, _, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id2, body, "", "")
		require.ErrorIs(t, err, fido.ErrChallengeMismatch)

		// Registering the same credential twice.
		f.register(t, p, "acct-a", fido.KindPasskey, "", "")
		id3, options3, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
		require.NoError(t, err)
		_, err = f.svc.FinishRegistration(ctx, "acct-a", id3, p.attest(t, rp, options3), "", "")
		require.ErrorIs(t, err, fido.ErrCredentialExists)
	})
}

func TestCeremonyTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		wait    time.Duration
	}{
		{"default two minutes", 0, fido.DefaultTimeout},
		{"configured thirty seconds", 30 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				ctx := context.Background()
				cfg := baseConfig()
				cfg.Timeout = tc.timeout
				f := newFixture(t, db, cfg, nil)
				p := newPhone()

				id, options, err := f.svc.BeginRegistration(ctx, user("acct-a"), fido.KindPasskey)
				require.NoError(t, err)
				require.EqualValues(t, tc.wait.Milliseconds(), publicKeyOptions(t, options)["timeout"])
				f.clock.Add(tc.wait)
				_, err = f.svc.FinishRegistration(ctx, "acct-a", id, p.attest(t, rp, options), "", "")
				require.ErrorIs(t, err, fido.ErrCeremonyExpired)

				f.register(t, p, "acct-a", fido.KindPasskey, "", "")
				id, options, err = f.svc.BeginDiscoverableLogin(ctx)
				require.NoError(t, err)
				f.clock.Add(tc.wait - time.Second)
				body := p.assert(t, rp, options)
				f.clock.Add(time.Second)
				_, err = f.svc.FinishDiscoverableLogin(ctx, id, body)
				require.ErrorIs(t, err, fido.ErrCeremonyExpired)
				// Expired is also used up.
				_, err = f.svc.FinishDiscoverableLogin(ctx, id, body)
				require.ErrorIs(t, err, fido.ErrCeremonyNotFound)

				// Just inside the timeout it works.
				id, options, err = f.svc.BeginDiscoverableLogin(ctx)
				require.NoError(t, err)
				f.clock.Add(tc.wait - time.Second)
				_, err = f.svc.FinishDiscoverableLogin(ctx, id, p.assert(t, rp, options))
				require.NoError(t, err)
			})
		})
	}
}

func TestCounterGoingBackwardsBlocks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		f.register(t, p, "acct-a", fido.KindPasskey, "", "")
		other := newPhone()
		f.register(t, other, "acct-a", fido.KindPasskey, "", "")

		p.cred.Counter = 9 // the next assertion signs 10
		used, err := f.login(t, p)
		require.NoError(t, err)
		require.EqualValues(t, 10, used.SignCount)

		// A clone answers with an older counter.
		p.cred.Counter = 4
		got, err := f.login(t, p)
		require.ErrorIs(t, err, fido.ErrCloneDetected)
		require.Equal(t, p.cred.ID, got.ID, "the credential is named for the audit event")
		require.Equal(t, "acct-a", got.AccountID)

		list, err := f.svc.ListCredentials(ctx, "acct-a")
		require.NoError(t, err)
		require.Len(t, list, 2)
		if !bytes.Equal(list[0].ID, p.cred.ID) {
			list[0], list[1] = list[1], list[0]
		}
		require.True(t, list[0].Blocked())
		require.True(t, list[0].CloneWarning)
		require.EqualValues(t, 10, list[0].SignCount)
		require.False(t, list[1].Blocked())

		// Later logins with it are refused, even with a higher counter.
		p.cred.Counter = 100
		_, err = f.login(t, p)
		require.ErrorIs(t, err, fido.ErrCredentialBlocked)
		// Step-up no longer offers it.
		_, options, err := f.svc.BeginLogin(ctx, "acct-a")
		require.NoError(t, err)
		allowed := publicKeyOptions(t, options)["allowCredentials"].([]any)
		require.Len(t, allowed, 1)
		require.Equal(t, base64.RawURLEncoding.EncodeToString(other.cred.ID), allowed[0].(map[string]any)["id"])
		// The other credential still works.
		_, err = f.login(t, other)
		require.NoError(t, err)
	})
}

func TestEqualNonZeroCounterBlocks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		f.register(t, p, "acct-a", fido.KindPasskey, "", "")
		_, err := f.login(t, p) // counter 1
		require.NoError(t, err)
		p.cred.Counter = 0 // signs 1 again
		_, err = f.login(t, p)
		require.ErrorIs(t, err, fido.ErrCloneDetected)
	})
}

// Synced passkeys often always report a zero counter: that is no clone.
func TestZeroCounterIsAccepted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		p.auth.Options.BackupEligible = true
		f.register(t, p, "acct-a", fido.KindPasskey, "", "")
		for range 3 {
			p.cred.Counter = 0xFFFFFFFF // the bump wraps it to zero
			used, err := f.login(t, p)
			require.NoError(t, err)
			require.Zero(t, used.SignCount)
		}
		// The backup state may change between uses and is kept.
		p.auth.Options.BackupState = true
		p.cred.Counter = 0xFFFFFFFF
		used, err := f.login(t, p)
		require.NoError(t, err)
		require.True(t, used.BackupEligible)
		require.True(t, used.BackupState)
		list, err := f.svc.ListCredentials(context.Background(), "acct-a")
		require.NoError(t, err)
		require.True(t, list[0].BackupState)
	})
}

func TestManageCredentials(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db, baseConfig(), nil)
		p := newPhone()
		c := f.register(t, p, "acct-a", fido.KindPasskey, "Laptop", "")

		require.NoError(t, f.svc.RenameCredential(ctx, "acct-a", c.ID, " Work laptop "))
		require.ErrorIs(t, f.svc.RenameCredential(ctx, "acct-a", c.ID, "\t"), fido.ErrInvalid)
		require.ErrorIs(t, f.svc.RenameCredential(ctx, "acct-b", c.ID, "Mine"), fido.ErrUnknownCredential)
		list, err := f.svc.ListCredentials(ctx, "acct-a")
		require.NoError(t, err)
		require.Equal(t, "Work laptop", list[0].Name)

		require.ErrorIs(t, f.svc.RemoveCredential(ctx, "acct-b", c.ID), fido.ErrUnknownCredential)
		require.NoError(t, f.svc.RemoveCredential(ctx, "acct-a", c.ID))
		require.ErrorIs(t, f.svc.RemoveCredential(ctx, "acct-a", c.ID), fido.ErrUnknownCredential)
		list, err = f.svc.ListCredentials(ctx, "acct-a")
		require.NoError(t, err)
		require.Empty(t, list)

		// A removed credential never verifies.
		_, err = f.login(t, p)
		require.ErrorIs(t, err, fido.ErrUnknownCredential)
	})
}
