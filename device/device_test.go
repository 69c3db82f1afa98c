package device_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
)

// clock is an injectable clock that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newStore(t testing.TB, db *sqlx.DB, cfg device.Config) (*device.Store, *clock) {
	t.Helper()
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	clk := newClock()
	return device.New(db, keys, cfg, clk.Now), clk
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	return k, der
}

func validDevice(t testing.TB, accountID string) (device.Device, *ecdsa.PrivateKey) {
	t.Helper()
	k, der := newKey(t)
	return device.Device{AccountID: accountID, Name: "Sam's phone", Platform: device.PlatformAndroid, PublicKey: der, PushToken: "fcm-token-1"}, k
}

func TestRegisterValidation(t *testing.T) {
	_, p256 := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384DER, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)

	base := device.Device{AccountID: "acct", Name: "Phone", Platform: device.PlatformIOS, PublicKey: p256}
	tests := []struct {
		name   string
		edit   func(d *device.Device)
		field  string // "" means valid
		stored string // expected stored name when valid
	}{
		{name: "valid", edit: func(d *device.Device) {}, stored: "Phone"},
		{name: "name trimmed", edit: func(d *device.Device) { d.Name = "  My phone \t" }, stored: "My phone"},
		{name: "name of 64 characters", edit: func(d *device.Device) { d.Name = strings.Repeat("é", 64) }, stored: strings.Repeat("é", 64)},
		{name: "empty name", edit: func(d *device.Device) { d.Name = "   " }, field: "name"},
		{name: "name of 65 characters", edit: func(d *device.Device) { d.Name = strings.Repeat("a", 65) }, field: "name"},
		{name: "name with control character", edit: func(d *device.Device) { d.Name = "a\x00b" }, field: "name"},
		{name: "unknown platform", edit: func(d *device.Device) { d.Platform = "windows" }, field: "platform"},
		{name: "empty platform", edit: func(d *device.Device) { d.Platform = "" }, field: "platform"},
		{name: "missing key", edit: func(d *device.Device) { d.PublicKey = nil }, field: "public key"},
		{name: "garbage key", edit: func(d *device.Device) { d.PublicKey = []byte("not a key") }, field: "public key"},
		{name: "P-384 key", edit: func(d *device.Device) { d.PublicKey = p384DER }, field: "P-256"},
		{name: "RSA key", edit: func(d *device.Device) { d.PublicKey = rsaDER }, field: "P-256"},
		{name: "push token of 4096 bytes", edit: func(d *device.Device) { d.PushToken = strings.Repeat("x", 4096) }, stored: "Phone"},
		{name: "push token of 4097 bytes", edit: func(d *device.Device) { d.PushToken = strings.Repeat("x", 4097) }, field: "push token"},
		{name: "push token with a space", edit: func(d *device.Device) { d.PushToken = "a b" }, field: "push token"},
		{name: "missing account", edit: func(d *device.Device) { d.AccountID = "" }, field: "account"},
		{name: "fido credential id too long", edit: func(d *device.Device) { d.FIDOCredentialID = make([]byte, 1024) }, field: "fido credential id"},
		{name: "bad preset id", edit: func(d *device.Device) { d.ID = "has space" }, field: "device id"},
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		s, _ := newStore(t, db, device.Config{})
		ctx := context.Background()
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				d := base
				tc.edit(&d)
				got, err := s.Register(ctx, d)
				if tc.field != "" {
					require.ErrorIs(t, err, device.ErrInvalid)
					require.Contains(t, err.Error(), tc.field)
					return
				}
				require.NoError(t, err)
				require.NotEmpty(t, got.ID)
				require.Equal(t, tc.stored, got.Name)
				stored, err := s.Get(ctx, got.ID)
				require.NoError(t, err)
				require.Equal(t, got, stored)
			})
		}
	})
}

func TestDeviceLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, clk := newStore(t, db, device.Config{})

		d, _ := validDevice(t, "acct-a")
		d.ID = secrets.NewID() // preset, as app enrolment does
		d.FIDOCredentialID = []byte{1, 2, 3}
		reg, err := s.Register(ctx, d)
		require.NoError(t, err)
		require.Equal(t, d.ID, reg.ID)
		require.Equal(t, clk.Now(), reg.CreatedAt)
		require.Nil(t, reg.RemovedAt)
		require.NoError(t, s.CheckActive(ctx, reg.ID))

		// The same FIDO credential cannot back two devices.
		other, _ := validDevice(t, "acct-a")
		other.FIDOCredentialID = []byte{1, 2, 3}
		_, err = s.Register(ctx, other)
		require.ErrorIs(t, err, device.ErrInvalid)

		second, _ := validDevice(t, "acct-a")
		second.PushToken = ""
		clk.Add(time.Minute)
		second, err = s.Register(ctx, second)
		require.NoError(t, err)
		foreign, _ := validDevice(t, "acct-b")
		foreign, err = s.Register(ctx, foreign)
		require.NoError(t, err)
		theirs, err := s.ListForAccount(ctx, "acct-b")
		require.NoError(t, err)
		require.Len(t, theirs, 1)
		require.Equal(t, foreign.ID, theirs[0].ID)

		list, err := s.ListForAccount(ctx, "acct-a")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, reg.ID, list[0].ID)
		require.Equal(t, second.ID, list[1].ID)
		require.Empty(t, list[1].PushToken)

		// Rename: validated, and only the owner's devices.
		require.NoError(t, s.Rename(ctx, "acct-a", reg.ID, "  Work phone "))
		got, err := s.Get(ctx, reg.ID)
		require.NoError(t, err)
		require.Equal(t, "Work phone", got.Name)
		require.ErrorIs(t, s.Rename(ctx, "acct-a", reg.ID, ""), device.ErrInvalid)
		require.ErrorIs(t, s.Rename(ctx, "acct-b", reg.ID, "Mine now"), device.ErrNotFound)
		require.ErrorIs(t, s.Rename(ctx, "acct-a", "no-such-device", "x"), device.ErrNotFound)

		// Push tokens: update, then a dead-token report for an old token
		// keeps the new one, and the current dead token is cleared.
		require.NoError(t, s.UpdatePushToken(ctx, reg.ID, "fcm-token-2"))
		require.NoError(t, s.ClearPushToken(ctx, reg.ID, "fcm-token-1"))
		got, _ = s.Get(ctx, reg.ID)
		require.Equal(t, "fcm-token-2", got.PushToken)
		require.NoError(t, s.ClearPushToken(ctx, reg.ID, "fcm-token-2"))
		got, _ = s.Get(ctx, reg.ID)
		require.Empty(t, got.PushToken)
		require.ErrorIs(t, s.UpdatePushToken(ctx, reg.ID, strings.Repeat("x", 4097)), device.ErrInvalid)
		require.ErrorIs(t, s.UpdatePushToken(ctx, "no-such-device", "t"), device.ErrNotFound)

		clk.Add(time.Hour)
		require.NoError(t, s.Touch(ctx, reg.ID))
		got, _ = s.Get(ctx, reg.ID)
		require.Equal(t, clk.Now(), got.LastSeenAt)

		// Remove: another account cannot; the owner can, once.
		require.ErrorIs(t, s.Remove(ctx, "acct-b", reg.ID), device.ErrNotFound)
		require.NoError(t, s.Remove(ctx, "acct-a", reg.ID))
		require.ErrorIs(t, s.Remove(ctx, "acct-a", reg.ID), device.ErrRemoved)
		got, err = s.Get(ctx, reg.ID)
		require.ErrorIs(t, err, device.ErrRemoved)
		require.Equal(t, reg.ID, got.ID)
		require.NotNil(t, got.RemovedAt)
		require.Empty(t, got.PushToken)
		require.ErrorIs(t, s.CheckActive(ctx, reg.ID), device.ErrRemoved)
		require.ErrorIs(t, s.CheckActive(ctx, "no-such-device"), device.ErrNotFound)

		// Removed devices are refused everywhere.
		require.ErrorIs(t, s.Rename(ctx, "acct-a", reg.ID, "x"), device.ErrRemoved)
		require.ErrorIs(t, s.UpdatePushToken(ctx, reg.ID, "t"), device.ErrRemoved)
		require.ErrorIs(t, s.Touch(ctx, reg.ID), device.ErrRemoved)
		list, err = s.ListForAccount(ctx, "acct-a")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, second.ID, list[0].ID)

		_, err = s.Get(ctx, "no-such-device")
		require.ErrorIs(t, err, device.ErrNotFound)
	})
}

func TestPublicKeyFromJWK(t *testing.T) {
	k, der := newKey(t)
	point, err := k.PublicKey.Bytes() // 0x04 || X || Y
	require.NoError(t, err)
	scalar, err := k.Bytes()
	require.NoError(t, err)
	xy := `"kty":"EC","crv":"P-256","x":"` + b64(point[1:33]) + `","y":"` + b64(point[33:]) + `"`
	got, err := device.PublicKeyFromJWK([]byte("{" + xy + "}"))
	require.NoError(t, err)
	require.Equal(t, der, got)

	for name, raw := range map[string]string{
		"private part": "{" + xy + `,"d":"` + b64(scalar) + `"}`,
		"not json":     "nope",
		"symmetric":    `{"kty":"oct","k":"c2VjcmV0"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := device.PublicKeyFromJWK([]byte(raw))
			require.ErrorIs(t, err, device.ErrInvalid)
		})
	}
}
