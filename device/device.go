// Package device keeps what a person has registered as "a device they hold"
// and the rules that let such a device vouch for them:
//
//   - remembered browsers: a long-lived random cookie token, stored as a
//     keyed hash and bound to one account, which together with the password
//     proves the Cd credential component instead of a security code;
//   - companion-app devices: a phone application enrolled with a device key
//     (P-256) that signs short JWTs authenticating its API calls, a FIDO
//     credential (kept by package fido) and an optional push token.
//
// The package knows nothing of HTTP: the server's handlers call it with
// values they have already read from requests, and map its sentinel errors
// onto pages or JSON error codes.
package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/names"
	"github.com/idlink/idlink/server/secrets"
)

// Sentinel errors of the device store. Validation failures wrap ErrInvalid
// with a message naming the field.
var (
	ErrNotFound = errors.New("device not found")
	ErrRemoved  = errors.New("device has been removed")
	ErrInvalid  = errors.New("invalid device data")
)

// Platforms a companion-app device may declare.
const (
	PlatformAndroid = "android"
	PlatformIOS     = "ios"
	PlatformOther   = "other"
)

// Limits on what a device may register.
const (
	MaxNameLength             = 64   // characters, after trimming spaces
	MaxPushTokenLength        = 4096 // bytes
	MaxFIDOCredentialIDLength = 1023 // bytes, the WebAuthn maximum
)

// DefaultRememberIdle is how long a remembered browser stays remembered
// without being used.
const DefaultRememberIdle = 183 * 24 * time.Hour // about six months

// Config holds the device rules that configuration may change.
type Config struct {
	// RememberIdle is how long a remembered browser may go unused before it
	// is forgotten. Zero means DefaultRememberIdle.
	RememberIdle time.Duration
}

// Store keeps remembered browsers and companion-app devices, and verifies
// the JWTs devices sign. It is safe for concurrent use.
type Store struct {
	db   *sqlx.DB
	keys *secrets.Keyring
	cfg  Config
	now  func() time.Time

	lastPurge atomic.Int64 // unix nanoseconds of the last opportunistic purge
}

// New returns a Store over a migrated database. keys hashes remembered
// browser tokens; now is the clock (time.Now in production).
func New(db *sqlx.DB, keys *secrets.Keyring, cfg Config, now func() time.Time) *Store {
	if cfg.RememberIdle <= 0 {
		cfg.RememberIdle = DefaultRememberIdle
	}
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, keys: keys, cfg: cfg, now: now}
}

// nowUTC returns the clock in UTC, at the precision both databases keep.
func (s *Store) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Device is a registered companion-app device.
type Device struct {
	ID        string `db:"id"`
	AccountID string `db:"account_id"`
	// Name is the person's name for the device ("Sam's phone").
	Name string `db:"name"`
	// Platform is one of PlatformAndroid, PlatformIOS, PlatformOther.
	Platform string `db:"platform"`
	// PublicKey is the device key, a P-256 ECDSA public key as SPKI
	// (PKIX) DER. It verifies the JWTs that authenticate the app's calls.
	PublicKey []byte `db:"public_key"`
	// FIDOCredentialID is the id of the device's FIDO credential (package
	// fido), or nil.
	FIDOCredentialID []byte `db:"fido_credential_id"`
	// PushToken is the FCM registration token, or "" when the app has none.
	PushToken  string     `db:"push_token"`
	CreatedAt  time.Time  `db:"created_at"`
	LastSeenAt time.Time  `db:"last_seen_at"`
	RemovedAt  *time.Time `db:"removed_at"`
}

// Removed reports whether the device has been removed.
func (d Device) Removed() bool { return d.RemovedAt != nil }

// Key returns the device key as an ECDSA public key.
func (d Device) Key() (*ecdsa.PublicKey, error) { return parseP256(d.PublicKey) }

const deviceCols = `id, account_id, name, platform, public_key, fido_credential_id, push_token, created_at, last_seen_at, removed_at`

// Validate checks a device before registration: account, name, platform,
// P-256 key, push token and FIDO credential id. It lets a caller check the
// person's input before starting work that Register would otherwise undo.
func (d Device) Validate() error {
	if d.AccountID == "" {
		return fmt.Errorf("%w: account id is missing", ErrInvalid)
	}
	if _, err := cleanName(d.Name); err != nil {
		return err
	}
	switch d.Platform {
	case PlatformAndroid, PlatformIOS, PlatformOther:
	default:
		return fmt.Errorf("%w: platform must be android, ios or other", ErrInvalid)
	}
	if _, err := parseP256(d.PublicKey); err != nil {
		return err
	}
	if err := checkPushToken(d.PushToken); err != nil {
		return err
	}
	if len(d.FIDOCredentialID) > MaxFIDOCredentialIDLength {
		return fmt.Errorf("%w: fido credential id longer than %d bytes", ErrInvalid, MaxFIDOCredentialIDLength)
	}
	return nil
}

// cleanName trims a device name and checks it is 1 to MaxNameLength
// printable characters.
func cleanName(name string) (string, error) {
	name, err := names.Clean(name, MaxNameLength)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return name, nil
}

func checkPushToken(tok string) error {
	if len(tok) > MaxPushTokenLength {
		return fmt.Errorf("%w: push token longer than %d bytes", ErrInvalid, MaxPushTokenLength)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return fmt.Errorf("%w: push token contains characters that are not allowed", ErrInvalid)
		}
	}
	return nil
}

// parseP256 reads SPKI DER and accepts only a P-256 ECDSA key.
func parseP256(der []byte) (*ecdsa.PublicKey, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: public key is missing", ErrInvalid)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not SPKI DER: %v", ErrInvalid, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: public key must be an ECDSA P-256 key", ErrInvalid)
	}
	return ec, nil
}

// nullBytes stores an empty byte slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Register stores a new companion-app device for d.AccountID after
// validating it (see Validate). d.ID may be set by the caller (to link a
// FIDO credential to the device before the device exists); it is generated
// otherwise. CreatedAt and LastSeenAt are set to now. It returns the stored
// device.
func (s *Store) Register(ctx context.Context, d Device) (Device, error) {
	if err := d.Validate(); err != nil {
		return Device{}, err
	}
	d.Name, _ = cleanName(d.Name)
	k, _ := parseP256(d.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return Device{}, fmt.Errorf("encode device key: %w", err)
	}
	d.PublicKey = der
	if d.ID == "" {
		d.ID = secrets.NewID()
	} else if len(d.ID) > 64 || strings.IndexFunc(d.ID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return Device{}, fmt.Errorf("%w: device id must be at most 64 printable ASCII characters", ErrInvalid)
	}
	if len(d.FIDOCredentialID) == 0 {
		d.FIDOCredentialID = nil
	}
	now := s.nowUTC()
	d.CreatedAt, d.LastSeenAt, d.RemovedAt = now, now, nil
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO devices (`+deviceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`),
		d.ID, d.AccountID, d.Name, d.Platform, d.PublicKey, nullBytes(d.FIDOCredentialID), d.PushToken, now, now)
	if migrations.IsUniqueViolation(err) {
		return Device{}, fmt.Errorf("%w: device id or fido credential id already registered", ErrInvalid)
	}
	if err != nil {
		return Device{}, fmt.Errorf("register device: %w", err)
	}
	return d, nil
}

// Get returns a device by id. A removed device is returned together with
// ErrRemoved (so that callers may name it in an audit event); an unknown id
// gives ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Device, error) {
	var d Device
	err := s.db.GetContext(ctx, &d, s.db.Rebind(`SELECT `+deviceCols+` FROM devices WHERE id = ?`), id)
	if migrations.IsNoRows(err) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("get device: %w", err)
	}
	d.CreatedAt, d.LastSeenAt = d.CreatedAt.UTC(), d.LastSeenAt.UTC()
	if d.RemovedAt != nil {
		t := d.RemovedAt.UTC()
		d.RemovedAt = &t
		return d, ErrRemoved
	}
	return d, nil
}

// CheckActive returns nil when the device exists and has not been removed,
// ErrNotFound or ErrRemoved otherwise. Package fido uses it to refuse the
// FIDO credential of a removed device.
func (s *Store) CheckActive(ctx context.Context, id string) error {
	_, err := s.Get(ctx, id)
	return err
}

// ListForAccount returns the account's devices that have not been removed,
// oldest first.
func (s *Store) ListForAccount(ctx context.Context, accountID string) ([]Device, error) {
	var ds []Device
	err := s.db.SelectContext(ctx, &ds, s.db.Rebind(`SELECT `+deviceCols+` FROM devices
		WHERE account_id = ? AND removed_at IS NULL ORDER BY created_at, id`), accountID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	for i := range ds {
		ds[i].CreatedAt, ds[i].LastSeenAt = ds[i].CreatedAt.UTC(), ds[i].LastSeenAt.UTC()
	}
	return ds, nil
}

// update runs an UPDATE on one live device, restricted to accountID's
// devices when accountID is not empty, and turns "no row" into ErrNotFound
// or ErrRemoved.
func (s *Store) update(ctx context.Context, what, accountID, id, set string, args ...any) error {
	q := `UPDATE devices SET ` + set + ` WHERE id = ? AND removed_at IS NULL`
	args = append(args, id)
	if accountID != "" {
		q += ` AND account_id = ?`
		args = append(args, accountID)
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n == 1 {
		return nil
	}
	d, err := s.Get(ctx, id)
	switch {
	case errors.Is(err, ErrRemoved) && (accountID == "" || d.AccountID == accountID):
		return ErrRemoved
	case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRemoved):
		return ErrNotFound // another account's device is not found for this one
	default:
		return err
	}
}

// Rename changes the name of one of the account's devices.
func (s *Store) Rename(ctx context.Context, accountID, id, name string) error {
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	if accountID == "" {
		return fmt.Errorf("%w: account id is missing", ErrInvalid)
	}
	return s.update(ctx, "rename device", accountID, id, `name = ?`, name)
}

// Remove removes one of the account's devices: from now on its JWTs are
// refused, CheckActive fails and it is no longer listed. Its push token is
// dropped. Removing an already removed device gives ErrRemoved.
func (s *Store) Remove(ctx context.Context, accountID, id string) error {
	if accountID == "" {
		return fmt.Errorf("%w: account id is missing", ErrInvalid)
	}
	return s.update(ctx, "remove device", accountID, id, `removed_at = ?, push_token = ''`, s.nowUTC())
}

// UpdatePushToken replaces the device's push token (the app calls it when
// FCM gives it a new one); "" clears it.
func (s *Store) UpdatePushToken(ctx context.Context, id, token string) error {
	if err := checkPushToken(token); err != nil {
		return err
	}
	return s.update(ctx, "update push token", "", id, `push_token = ?`, token)
}

// ClearPushToken forgets the device's push token if it is still dead, the
// token FCM reported as unregistered: a newer token the app sent meanwhile
// is kept. It is not an error when the token has already changed.
func (s *Store) ClearPushToken(ctx context.Context, id, dead string) error {
	if dead == "" {
		return nil
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE devices SET push_token = '' WHERE id = ? AND push_token = ?`), id, dead)
	if err != nil {
		return fmt.Errorf("clear push token: %w", err)
	}
	return nil
}

// Touch records that the device was seen now.
func (s *Store) Touch(ctx context.Context, id string) error {
	return s.update(ctx, "touch device", "", id, `last_seen_at = ?`, s.nowUTC())
}
