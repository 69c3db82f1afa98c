package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/migrations"
)

// Errors of VerifyRequestJWT. The HTTP layer maps each onto a stable JSON
// error code (and answers 401); the wrapped message says what was wrong.
var (
	ErrTokenMalformed = errors.New("device token is malformed")
	ErrTokenSignature = errors.New("device token signature is not valid")
	ErrTokenExpired   = errors.New("device token has expired or is not yet valid")
	ErrTokenReplayed  = errors.New("device token has already been used")
	ErrTokenAudience  = errors.New("device token was made for another URL")
	ErrDeviceUnknown  = errors.New("device token names an unknown device")
	ErrDeviceRemoved  = errors.New("device token names a removed device")
)

// Limits of device request JWTs.
const (
	MaxRequestJWTSize = 4096             // bytes of the compact JWS
	MaxJWTLifetime    = 60 * time.Second // exp - iat
	JWTClockSkew      = 30 * time.Second // how far iat may be ahead of our clock
	MaxJTILength      = 128              // bytes
)

// purgeEvery is how often VerifyRequestJWT purges lapsed rows, per Store.
const purgeEvery = time.Minute

// touchEvery is how stale last_seen_at may get before a verified request
// updates it.
const touchEvery = time.Minute

// VerifyRequestJWT authenticates an API call of the companion app. raw is a
// compact JWS signed with ES256 by the device key; its claims must be
// iss = the device id, aud = audience (the URL of the request, compared
// exactly, as the only audience), iat not more than JWTClockSkew in the
// future, exp after now and at most MaxJWTLifetime after iat, and a jti of
// at most MaxJTILength bytes, never seen before for this device (it is
// recorded until exp). The device must exist and not be removed. On success
// it returns the device and records that it was seen.
//
// Errors wrap one of ErrTokenMalformed, ErrTokenSignature, ErrTokenExpired,
// ErrTokenReplayed, ErrTokenAudience, ErrDeviceUnknown or ErrDeviceRemoved,
// or are database errors. With ErrDeviceRemoved the removed device is
// returned too, so that the caller can name it in an audit event.
func (s *Store) VerifyRequestJWT(ctx context.Context, raw, audience string) (Device, error) {
	if audience == "" {
		return Device{}, fmt.Errorf("%w: no audience to check against", ErrTokenAudience)
	}
	if len(raw) == 0 || len(raw) > MaxRequestJWTSize {
		return Device{}, fmt.Errorf("%w: size must be 1 to %d bytes", ErrTokenMalformed, MaxRequestJWTSize)
	}
	tok, c, err := parseRequestJWT(raw)
	if err != nil {
		return Device{}, err
	}

	d, err := s.Get(ctx, c.Issuer)
	switch {
	case errors.Is(err, ErrNotFound):
		return Device{}, fmt.Errorf("%w: %q", ErrDeviceUnknown, c.Issuer)
	case errors.Is(err, ErrRemoved):
		return d, fmt.Errorf("%w: %q", ErrDeviceRemoved, c.Issuer)
	case err != nil:
		return Device{}, err
	}
	key, err := d.Key()
	if err != nil {
		return Device{}, fmt.Errorf("device %s key: %w", d.ID, err)
	}
	var verified jwt.Claims
	if err := tok.Claims(key, &verified); err != nil {
		return Device{}, fmt.Errorf("%w: %v", ErrTokenSignature, err)
	}
	c = verified

	now := s.nowUTC()
	exp, err := checkRequestClaims(c, audience, now)
	if err != nil {
		return Device{}, err
	}

	s.maybePurge(ctx, now)
	fresh, err := s.useJTI(ctx, d.ID, c.ID, exp, now)
	if err != nil {
		return Device{}, err
	}
	if !fresh {
		return Device{}, fmt.Errorf("%w: jti %q", ErrTokenReplayed, c.ID)
	}
	if d.LastSeenAt.Before(now.Add(-touchEvery)) {
		// The device may have been removed since Get: Touch then says so.
		if err := s.Touch(ctx, d.ID); errors.Is(err, ErrRemoved) {
			return Device{}, fmt.Errorf("%w: %q", ErrDeviceRemoved, d.ID)
		} else if err != nil {
			return Device{}, err
		}
		d.LastSeenAt = now
	}
	return d, nil
}

// parseRequestJWT parses a device request JWT without verifying it, and
// returns its claims for finding the device (iss names it).
func parseRequestJWT(raw string) (*jwt.JSONWebToken, jwt.Claims, error) {
	var c jwt.Claims
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, c, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if len(tok.Headers) != 1 {
		return nil, c, fmt.Errorf("%w: exactly one signature expected", ErrTokenMalformed)
	}
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return nil, c, fmt.Errorf("%w: claims: %v", ErrTokenMalformed, err)
	}
	if c.Issuer == "" {
		return nil, c, fmt.Errorf("%w: iss is missing", ErrTokenMalformed)
	}
	if len(c.Issuer) > 64 {
		return nil, c, fmt.Errorf("%w: iss is too long", ErrTokenMalformed)
	}
	return tok, c, nil
}

// checkRequestClaims checks the verified claims of a request JWT: the
// audience, the required iat, exp and jti, the lifetime and the time now.
// It returns the expiry.
func checkRequestClaims(c jwt.Claims, audience string, now time.Time) (time.Time, error) {
	if len(c.Audience) != 1 || c.Audience[0] != audience {
		return time.Time{}, fmt.Errorf("%w: aud must be exactly %q", ErrTokenAudience, audience)
	}
	if c.IssuedAt == nil {
		return time.Time{}, fmt.Errorf("%w: iat is missing", ErrTokenMalformed)
	}
	if c.Expiry == nil {
		return time.Time{}, fmt.Errorf("%w: exp is missing", ErrTokenMalformed)
	}
	if c.ID == "" {
		return time.Time{}, fmt.Errorf("%w: jti is missing", ErrTokenMalformed)
	}
	if len(c.ID) > MaxJTILength {
		return time.Time{}, fmt.Errorf("%w: jti longer than %d bytes", ErrTokenMalformed, MaxJTILength)
	}
	iat, exp := c.IssuedAt.Time().UTC(), c.Expiry.Time().UTC()
	if life := exp.Sub(iat); !exp.After(iat) || life > MaxJWTLifetime {
		return time.Time{}, fmt.Errorf("%w: exp must be after iat and at most %s after it", ErrTokenMalformed, MaxJWTLifetime)
	}
	if iat.After(now.Add(JWTClockSkew)) {
		return time.Time{}, fmt.Errorf("%w: issued in the future", ErrTokenExpired)
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(JWTClockSkew)) {
		return time.Time{}, fmt.Errorf("%w: not valid before %s", ErrTokenExpired, c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	if !now.Before(exp) {
		return time.Time{}, fmt.Errorf("%w: expired at %s", ErrTokenExpired, exp.Format(time.RFC3339))
	}
	return exp, nil
}

// useJTI records jti as used by the device until exp, atomically: it
// reports false when the jti is already recorded and has not lapsed.
func (s *Store) useJTI(ctx context.Context, deviceID, jti string, exp, now time.Time) (bool, error) {
	var got string
	err := s.db.GetContext(ctx, &got, s.db.Rebind(`INSERT INTO device_jtis (device_id, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (device_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE device_jtis.expires_at < ?
		RETURNING jti`), deviceID, jti, exp.Truncate(time.Microsecond), now)
	if err == nil {
		return true, nil
	}
	if migrations.IsNoRows(err) {
		return false, nil
	}
	return false, fmt.Errorf("record device jti: %w", err)
}

// maybePurge deletes lapsed jtis at most once per purgeEvery. A failure is
// left for the next purge: lapsed rows only take space.
func (s *Store) maybePurge(ctx context.Context, now time.Time) {
	last := s.lastPurge.Load()
	if now.UnixNano()-last < int64(purgeEvery) || !s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_, _ = s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM device_jtis WHERE expires_at < ?`), now)
}

// PublicKeyFromJWK converts a device key sent as a JWK (kty EC, crv P-256,
// public part only) into the SPKI DER that Device.PublicKey holds.
func PublicKeyFromJWK(raw []byte) ([]byte, error) {
	var k jose.JSONWebKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%w: public key is not a JWK: %v", ErrInvalid, err)
	}
	if !k.IsPublic() {
		return nil, fmt.Errorf("%w: the JWK must hold a public key only", ErrInvalid)
	}
	ec, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: public key must be an ECDSA P-256 key", ErrInvalid)
	}
	der, err := x509.MarshalPKIXPublicKey(ec)
	if err != nil {
		return nil, fmt.Errorf("%w: encode public key: %v", ErrInvalid, err)
	}
	return der, nil
}
