package device_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
)

const audience = "https://idp.test/api/companion/v1/approvals"

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claims are the claims of a device request JWT; nil pointers are left out.
type claims struct {
	Iss string   `json:"iss,omitempty"`
	Aud any      `json:"aud,omitempty"`
	Iat *float64 `json:"iat,omitempty"`
	Exp *float64 `json:"exp,omitempty"`
	Nbf *float64 `json:"nbf,omitempty"`
	Jti string   `json:"jti,omitempty"`
}

func at(t time.Time) *float64 { f := float64(t.Unix()); return &f }

func validClaims(deviceID string, now time.Time) claims {
	return claims{Iss: deviceID, Aud: audience, Iat: at(now), Exp: at(now.Add(time.Minute)), Jti: secrets.NewID()}
}

func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, c claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	require.NoError(t, err)
	return raw
}

// unsigned builds an alg "none" token.
func unsigned(c claims) string {
	return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"iss":"`+c.Iss+`","aud":"`+audience+`","jti":"`+c.Jti+`"}`)) + "."
}

func TestVerifyRequestJWT(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, clk := newStore(t, db, device.Config{})
		d, key := validDevice(t, "acct")
		d, err := s.Register(ctx, d)
		require.NoError(t, err)
		removed, removedKey := validDevice(t, "acct")
		removed, err = s.Register(ctx, removed)
		require.NoError(t, err)
		require.NoError(t, s.Remove(ctx, "acct", removed.ID))
		otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		require.NoError(t, err)

		now := clk.Now()
		with := func(edit func(c *claims)) string {
			c := validClaims(d.ID, now)
			edit(&c)
			return sign(t, jose.ES256, key, c)
		}
		tests := []struct {
			name string
			raw  string
			aud  string
			want error
		}{
			{"valid", with(func(c *claims) {}), audience, nil},
			{"valid, issued within the allowed skew ahead", with(func(c *claims) {
				c.Iat, c.Exp = at(now.Add(20*time.Second)), at(now.Add(50*time.Second))
			}), audience, nil},
			{"valid, 60 seconds of life", with(func(c *claims) { c.Exp = at(now.Add(60 * time.Second)) }), audience, nil},
			{"audience is another URL", with(func(c *claims) {}), audience + "/other", device.ErrTokenAudience},
			{"audience list with an extra entry", with(func(c *claims) { c.Aud = []string{audience, "https://evil.test"} }), audience, device.ErrTokenAudience},
			{"audience missing", with(func(c *claims) { c.Aud = nil }), audience, device.ErrTokenAudience},
			{"no audience given by the caller", with(func(c *claims) {}), "", device.ErrTokenAudience},
			{"iat missing", with(func(c *claims) { c.Iat = nil }), audience, device.ErrTokenMalformed},
			{"exp missing", with(func(c *claims) { c.Exp = nil }), audience, device.ErrTokenMalformed},
			{"lifetime over 60 seconds", with(func(c *claims) { c.Exp = at(now.Add(61 * time.Second)) }), audience, device.ErrTokenMalformed},
			{"exp before iat", with(func(c *claims) { c.Exp = at(now.Add(-time.Second)) }), audience, device.ErrTokenMalformed},
			{"issued in the future", with(func(c *claims) {
				c.Iat, c.Exp = at(now.Add(31*time.Second)), at(now.Add(60*time.Second))
			}), audience, device.ErrTokenExpired},
			{"not valid yet", with(func(c *claims) { c.Nbf = at(now.Add(time.Minute)) }), audience, device.ErrTokenExpired},
			{"expired", with(func(c *claims) {
				c.Iat, c.Exp = at(now.Add(-time.Minute)), at(now)
			}), audience, device.ErrTokenExpired},
			{"jti missing", with(func(c *claims) { c.Jti = "" }), audience, device.ErrTokenMalformed},
			{"jti of 129 bytes", with(func(c *claims) { c.Jti = strings.Repeat("j", 129) }), audience, device.ErrTokenMalformed},
			{"iss missing", with(func(c *claims) { c.Iss = "" }), audience, device.ErrTokenMalformed},
			{"unknown device", with(func(c *claims) { c.Iss = "no-such-device" }), audience, device.ErrDeviceUnknown},
			{"removed device", sign(t, jose.ES256, removedKey, validClaims(removed.ID, now)), audience, device.ErrDeviceRemoved},
			{"signed by another key", sign(t, jose.ES256, otherKey, validClaims(d.ID, now)), audience, device.ErrTokenSignature},
			{"tampered payload", tamper(with(func(c *claims) {})), audience, device.ErrTokenSignature},
			{"alg none", unsigned(validClaims(d.ID, now)), audience, device.ErrTokenMalformed},
			{"alg HS256", sign(t, jose.HS256, []byte(strings.Repeat("k", 32)), validClaims(d.ID, now)), audience, device.ErrTokenMalformed},
			{"alg ES384", sign(t, jose.ES384, p384, validClaims(d.ID, now)), audience, device.ErrTokenMalformed},
			{"truncated", with(func(c *claims) {})[:40], audience, device.ErrTokenMalformed},
			{"empty", "", audience, device.ErrTokenMalformed},
			{"over 4 KiB", with(func(c *claims) { c.Jti = strings.Repeat("j", 3100) }), audience, device.ErrTokenMalformed},
			{"JSON serialization", `{"payload":"e30","signatures":[]}`, audience, device.ErrTokenMalformed},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.VerifyRequestJWT(ctx, tc.raw, tc.aud)
				if tc.want != nil {
					require.ErrorIs(t, err, tc.want)
					return
				}
				require.NoError(t, err)
				require.Equal(t, d.ID, got.ID)
				require.Equal(t, "acct", got.AccountID)
			})
		}
	})
}

// tamper changes the payload of a compact JWS, keeping its signature.
func tamper(raw string) string {
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"jti":"`, `"jti":"x`, 1))
	parts[1] = b64(payload)
	return strings.Join(parts, ".")
}

func TestVerifyRequestJWTReplayAndLapse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, clk := newStore(t, db, device.Config{})
		d, key := validDevice(t, "acct")
		d, err := s.Register(ctx, d)
		require.NoError(t, err)

		c := validClaims(d.ID, clk.Now())
		raw := sign(t, jose.ES256, key, c)
		_, err = s.VerifyRequestJWT(ctx, raw, audience)
		require.NoError(t, err)
		_, err = s.VerifyRequestJWT(ctx, raw, audience)
		require.ErrorIs(t, err, device.ErrTokenReplayed)

		// A new token reusing the jti before the first expires is a replay.
		c2 := c
		c2.Iat, c2.Exp = at(clk.Now().Add(time.Second)), at(clk.Now().Add(30*time.Second))
		_, err = s.VerifyRequestJWT(ctx, sign(t, jose.ES256, key, c2), audience)
		require.ErrorIs(t, err, device.ErrTokenReplayed)

		// Another device may use the same jti.
		d2, key2 := validDevice(t, "acct")
		d2, err = s.Register(ctx, d2)
		require.NoError(t, err)
		c3 := validClaims(d2.ID, clk.Now())
		c3.Jti = c.Jti
		_, err = s.VerifyRequestJWT(ctx, sign(t, jose.ES256, key2, c3), audience)
		require.NoError(t, err)

		// Once the first token has expired its jti lapses and is purged.
		clk.Add(2 * time.Minute)
		_, err = s.VerifyRequestJWT(ctx, raw, audience)
		require.ErrorIs(t, err, device.ErrTokenExpired)
		require.NoError(t, s.Purge(ctx))
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT COUNT(*) FROM device_jtis`))
		require.Zero(t, n)

		// The device was seen: last_seen_at moved with the clock.
		got, err := s.Get(ctx, d.ID)
		require.NoError(t, err)
		require.True(t, got.LastSeenAt.Equal(d.LastSeenAt), "seen within the first minute: no write")
		c4 := validClaims(d.ID, clk.Now())
		_, err = s.VerifyRequestJWT(ctx, sign(t, jose.ES256, key, c4), audience)
		require.NoError(t, err)
		got, err = s.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, clk.Now(), got.LastSeenAt)

		// Removal takes effect at once.
		require.NoError(t, s.Remove(ctx, "acct", d.ID))
		_, err = s.VerifyRequestJWT(ctx, sign(t, jose.ES256, key, validClaims(d.ID, clk.Now())), audience)
		require.ErrorIs(t, err, device.ErrDeviceRemoved)
	})
}

func TestVerifyRequestJWTConcurrentReplay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s, clk := newStore(t, db, device.Config{})
		d, key := validDevice(t, "acct")
		d, err := s.Register(ctx, d)
		require.NoError(t, err)
		raw := sign(t, jose.ES256, key, validClaims(d.ID, clk.Now()))

		const n = 50
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.VerifyRequestJWT(ctx, raw, audience)
			}()
		}
		close(start)
		wg.Wait()
		accepted := 0
		for _, err := range errs {
			if err == nil {
				accepted++
				continue
			}
			require.ErrorIs(t, err, device.ErrTokenReplayed)
		}
		require.Equal(t, 1, accepted, "exactly one of the replays is accepted")
	})
}

func FuzzVerifyRequestJWT(f *testing.F) {
	db := dbtest.SQLite(f)
	ctx := context.Background()
	s, clk := newStore(f, db, device.Config{})
	d, key := validDevice(f, "acct")
	d, err := s.Register(ctx, d)
	require.NoError(f, err)
	now := clk.Now()
	valid := sign(f, jose.ES256, key, validClaims(d.ID, now))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(f, err)

	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(unsigned(validClaims(d.ID, now)))
	f.Add(sign(f, jose.HS256, []byte(strings.Repeat("k", 32)), validClaims(d.ID, now)))
	f.Add(sign(f, jose.ES384, p384, validClaims(d.ID, now)))
	f.Add(tamper(valid))
	f.Add(strings.Repeat("A", 5000))
	f.Add("..")
	f.Add("")

	sentinels := []error{device.ErrTokenMalformed, device.ErrTokenSignature, device.ErrTokenExpired,
		device.ErrTokenReplayed, device.ErrTokenAudience, device.ErrDeviceUnknown, device.ErrDeviceRemoved}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := s.VerifyRequestJWT(ctx, raw, audience)
		if err == nil {
			require.Equal(t, d.ID, got.ID)
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
