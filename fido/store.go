package fido

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/names"
	"github.com/idlink/idlink/server/secrets"
)

// Ceremony kinds (fido_ceremonies.kind).
const (
	ceremonyRegistration = "registration"
	ceremonyLogin        = "login"        // bound to an account
	ceremonyDiscoverable = "discoverable" // the account is learnt from the credential
)

// purgeGrace is how long an expired ceremony is kept, so that a late
// Finish is told "expired" rather than "unknown".
const purgeGrace = time.Hour

// userHandleSize is the length of the random WebAuthn user handle.
const userHandleSize = 32

// credentialRow is a fido_credentials row.
type credentialRow struct {
	ID                []byte     `db:"id"`
	AccountID         string     `db:"account_id"`
	Kind              string     `db:"kind"`
	DeviceID          *string    `db:"device_id"`
	Name              string     `db:"name"`
	PublicKey         []byte     `db:"public_key"`
	AttestationType   string     `db:"attestation_type"`
	AttestationFormat string     `db:"attestation_format"`
	AAGUID            []byte     `db:"aaguid"`
	SignCount         int64      `db:"sign_count"`
	CloneWarning      bool       `db:"clone_warning"`
	BackupEligible    bool       `db:"backup_eligible"`
	BackupState       bool       `db:"backup_state"`
	Transports        string     `db:"transports"`
	UserVerified      bool       `db:"user_verified"`
	CreatedAt         time.Time  `db:"created_at"`
	LastUsedAt        *time.Time `db:"last_used_at"`
	BlockedAt         *time.Time `db:"blocked_at"`
}

const credentialCols = `id, account_id, kind, device_id, name, public_key, attestation_type, attestation_format, aaguid,
	sign_count, clone_warning, backup_eligible, backup_state, transports, user_verified, created_at, last_used_at, blocked_at`

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (r credentialRow) credential() (Credential, error) {
	c := Credential{
		ID: r.ID, AccountID: r.AccountID, Kind: r.Kind, Name: r.Name, PublicKey: r.PublicKey,
		AttestationType: r.AttestationType, AttestationFormat: r.AttestationFormat,
		SignCount: uint32(r.SignCount), CloneWarning: r.CloneWarning,
		BackupEligible: r.BackupEligible, BackupState: r.BackupState, UserVerified: r.UserVerified,
		CreatedAt: r.CreatedAt.UTC(), LastUsedAt: utcPtr(r.LastUsedAt), BlockedAt: utcPtr(r.BlockedAt),
	}
	if r.DeviceID != nil {
		c.DeviceID = *r.DeviceID
	}
	if len(r.AAGUID) == 16 {
		copy(c.AAGUID[:], r.AAGUID)
	}
	if err := json.Unmarshal([]byte(r.Transports), &c.Transports); err != nil {
		return Credential{}, fmt.Errorf("credential transports: %w", err)
	}
	return c, nil
}

// credential returns a stored credential by id, or ErrUnknownCredential.
func (s *Service) credential(ctx context.Context, id []byte) (Credential, error) {
	var r credentialRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+credentialCols+` FROM fido_credentials WHERE id = ?`), id)
	if migrations.IsNoRows(err) {
		return Credential{}, ErrUnknownCredential
	}
	if err != nil {
		return Credential{}, fmt.Errorf("get credential: %w", err)
	}
	return r.credential()
}

// ListCredentials returns the account's credentials of both kinds, blocked
// ones included (see Credential.Blocked), oldest first. Settings pages show
// the passkeys (Kind == KindPasskey); app credentials appear with their
// device.
func (s *Service) ListCredentials(ctx context.Context, accountID string) ([]Credential, error) {
	var rows []credentialRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+credentialCols+` FROM fido_credentials
		WHERE account_id = ? ORDER BY created_at, id`), accountID)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out := make([]Credential, 0, len(rows))
	for _, r := range rows {
		c, err := r.credential()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// RenameCredential renames one of the account's credentials. The name is
// trimmed and must be 1 to MaxNameLength characters (ErrInvalid).
func (s *Service) RenameCredential(ctx context.Context, accountID string, id []byte, name string) error {
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE fido_credentials SET name = ? WHERE id = ? AND account_id = ?`), name, id, accountID)
	if err != nil {
		return fmt.Errorf("rename credential: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("rename credential: %w", err)
	} else if n == 0 {
		return ErrUnknownCredential
	}
	return nil
}

// RemoveCredential deletes one of the account's credentials: it never
// verifies again (ErrUnknownCredential). It returns ErrUnknownCredential
// when the account has no such credential.
func (s *Service) RemoveCredential(ctx context.Context, accountID string, id []byte) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM fido_credentials WHERE id = ? AND account_id = ?`), id, accountID)
	if err != nil {
		return fmt.Errorf("remove credential: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("remove credential: %w", err)
	} else if n == 0 {
		return ErrUnknownCredential
	}
	return nil
}

func (s *Service) insertCredential(ctx context.Context, c Credential) error {
	transports, err := json.Marshal(c.Transports)
	if err != nil {
		return fmt.Errorf("encode transports: %w", err)
	}
	if c.Transports == nil {
		transports = []byte("[]")
	}
	var deviceID any
	if c.DeviceID != "" {
		deviceID = c.DeviceID
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO fido_credentials (`+credentialCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`),
		c.ID, c.AccountID, c.Kind, deviceID, c.Name, c.PublicKey, c.AttestationType, c.AttestationFormat, c.AAGUID[:],
		int64(c.SignCount), c.CloneWarning, c.BackupEligible, c.BackupState, string(transports), c.UserVerified, c.CreatedAt)
	if migrations.IsUniqueViolation(err) {
		return ErrCredentialExists
	}
	if err != nil {
		return fmt.Errorf("store credential: %w", err)
	}
	return nil
}

// recordUse stores what a verified assertion changed: the sign counter, the
// backup flags and the time of use. The update only applies while the
// credential is not blocked and the counter still moves forward (or both
// are zero, as with many synced passkeys); otherwise the credential is
// blocked with ErrCloneDetected, or ErrCredentialBlocked if another use
// blocked it meanwhile.
func (s *Service) recordUse(ctx context.Context, c Credential, wc *webauthn.Credential, received uint32) (Credential, error) {
	now := s.nowUTC()
	if wc.Authenticator.CloneWarning {
		return s.block(ctx, c, now, received)
	}
	cond := `sign_count < ?`
	if received == 0 {
		cond = `sign_count = ?`
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE fido_credentials
		SET sign_count = ?, backup_eligible = ?, backup_state = ?, last_used_at = ?
		WHERE id = ? AND blocked_at IS NULL AND `+cond),
		int64(received), wc.Flags.BackupEligible, wc.Flags.BackupState, now, c.ID, int64(received))
	if err != nil {
		return c, fmt.Errorf("record credential use: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return c, fmt.Errorf("record credential use: %w", err)
	} else if n == 1 {
		c.SignCount, c.BackupEligible, c.BackupState, c.LastUsedAt = received, wc.Flags.BackupEligible, wc.Flags.BackupState, &now
		return c, nil
	}
	cur, err := s.credential(ctx, c.ID)
	switch {
	case err != nil:
		return c, err // ErrUnknownCredential when removed meanwhile
	case cur.Blocked():
		return cur, ErrCredentialBlocked
	default:
		return s.block(ctx, cur, now, received)
	}
}

// block marks a credential blocked after its counter went backwards.
func (s *Service) block(ctx context.Context, c Credential, now time.Time, received uint32) (Credential, error) {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE fido_credentials SET blocked_at = ?, clone_warning = ?
		WHERE id = ? AND blocked_at IS NULL`), now, true, c.ID)
	if err != nil {
		return c, fmt.Errorf("block credential: %w", err)
	}
	c.CloneWarning, c.BlockedAt = true, &now
	return c, fmt.Errorf("%w: stored counter %d, received %d", ErrCloneDetected, c.SignCount, received)
}

// userHandle returns the account's WebAuthn user handle, creating it on
// first use.
func (s *Service) userHandle(ctx context.Context, accountID string) ([]byte, error) {
	h := make([]byte, userHandleSize)
	_, _ = rand.Read(h) // crypto/rand.Read never fails (Go ≥ 1.24)
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO fido_user_handles (account_id, handle, created_at)
		VALUES (?, ?, ?) ON CONFLICT (account_id) DO NOTHING`), accountID, h, s.nowUTC()); err != nil {
		return nil, fmt.Errorf("create user handle: %w", err)
	}
	return s.existingHandle(ctx, accountID)
}

// existingHandle returns the account's user handle, or ErrUnknownCredential
// when the account has never registered a credential.
func (s *Service) existingHandle(ctx context.Context, accountID string) ([]byte, error) {
	var h []byte
	err := s.db.GetContext(ctx, &h, s.db.Rebind(`SELECT handle FROM fido_user_handles WHERE account_id = ?`), accountID)
	if migrations.IsNoRows(err) {
		return nil, fmt.Errorf("%w: the account has no credential", ErrUnknownCredential)
	}
	if err != nil {
		return nil, fmt.Errorf("get user handle: %w", err)
	}
	return h, nil
}

// ceremony is a fido_ceremonies row.
type ceremony struct {
	ID             string    `db:"id"`
	Challenge      string    `db:"challenge"`
	Kind           string    `db:"kind"`
	CredentialKind string    `db:"credential_kind"`
	AccountID      *string   `db:"account_id"`
	Session        string    `db:"session"`
	CreatedAt      time.Time `db:"created_at"`
	ExpiresAt      time.Time `db:"expires_at"`
}

const ceremonyCols = `id, challenge, kind, credential_kind, account_id, session, created_at, expires_at`

// saveCeremony stores a ceremony's session data and returns its id. It
// also deletes ceremonies that expired a while ago.
func (s *Service) saveCeremony(ctx context.Context, kind, credentialKind, accountID string, session *webauthn.SessionData) (string, error) {
	now := s.nowUTC()
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM fido_ceremonies WHERE expires_at < ?`), now.Add(-purgeGrace)); err != nil {
		return "", fmt.Errorf("purge ceremonies: %w", err)
	}
	data, err := json.Marshal(session)
	if err != nil {
		return "", fmt.Errorf("encode ceremony: %w", err)
	}
	var account any
	if accountID != "" {
		account = accountID
	}
	id := secrets.NewID()
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO fido_ceremonies (`+ceremonyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		id, session.Challenge, kind, credentialKind, account, string(data), now, now.Add(s.cfg.Timeout))
	if migrations.IsUniqueViolation(err) {
		return "", fmt.Errorf("%w: the challenge is already in use by another ceremony", ErrInvalid)
	}
	if err != nil {
		return "", fmt.Errorf("store ceremony: %w", err)
	}
	return id, nil
}

// takeCeremony deletes and returns the ceremony matching where (a
// condition on fido_ceremonies with '?' placeholders), so that it can be
// used once only. It returns ErrCeremonyNotFound or ErrCeremonyExpired.
func (s *Service) takeCeremony(ctx context.Context, where string, args ...any) (ceremony, webauthn.SessionData, error) {
	var c ceremony
	var session webauthn.SessionData
	err := s.db.GetContext(ctx, &c, s.db.Rebind(`DELETE FROM fido_ceremonies WHERE `+where+` RETURNING `+ceremonyCols), args...)
	if migrations.IsNoRows(err) {
		return c, session, ErrCeremonyNotFound
	}
	if err != nil {
		return c, session, fmt.Errorf("take ceremony: %w", err)
	}
	if !s.nowUTC().Before(c.ExpiresAt) {
		return c, session, fmt.Errorf("%w: it expired at %s", ErrCeremonyExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := json.Unmarshal([]byte(c.Session), &session); err != nil {
		return c, session, fmt.Errorf("decode ceremony %s: %w", c.ID, err)
	}
	return c, session, nil
}

// cleanName trims a credential name and checks it is 1 to MaxNameLength
// printable characters.
func cleanName(name string) (string, error) {
	name, err := names.Clean(name, MaxNameLength)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return name, nil
}

// aaguidOf reads a 16-byte AAGUID; anything else is the nil UUID.
func aaguidOf(b []byte) uuid.UUID {
	id, err := uuid.FromBytes(b)
	if err != nil {
		return uuid.Nil
	}
	return id
}
