package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// Account statuses.
const (
	StatusPendingPhone = "pending_phone" // email verified, mobile number not yet
	StatusActive       = "active"
	StatusBlocked      = "blocked" // may not sign in (set by later capabilities, e.g. a deceased record)
)

// Account is a person's account as stored.
type Account struct {
	ID                string     `db:"id"`
	Email             string     `db:"email"`
	PasswordHash      string     `db:"password_hash"`
	TermsVersion      string     `db:"terms_version"`
	TermsAcceptedAt   time.Time  `db:"terms_accepted_at"`
	EmailVerifiedAt   time.Time  `db:"email_verified_at"`
	Phone             *string    `db:"phone"`
	PhoneVerifiedAt   *time.Time `db:"phone_verified_at"`
	ProofingLevel     string     `db:"proofing_level"`
	Status            string     `db:"status"`
	FailedLogins      int        `db:"failed_logins"`
	LockedUntil       *time.Time `db:"locked_until"`
	PasswordChangedAt time.Time  `db:"password_changed_at"`
	CreatedAt         time.Time  `db:"created_at"`
	UpdatedAt         time.Time  `db:"updated_at"`
	// Landline is an optional UK landline in E.164, never verified.
	Landline *string `db:"landline"`
	// LastLoginAt is when a login last completed (nil: none recorded).
	LastLoginAt *time.Time `db:"last_login_at"`
}

// LandlineNumber returns the landline, or "".
func (a Account) LandlineNumber() string {
	if a.Landline == nil {
		return ""
	}
	return *a.Landline
}

// PhoneNumber returns the verified mobile number, or "".
func (a Account) PhoneNumber() string {
	if a.Phone == nil {
		return ""
	}
	return *a.Phone
}

// Level returns the proofing level as a trust.Level.
func (a Account) Level() trust.Level {
	l, err := trust.ParseLevel(a.ProofingLevel)
	if err != nil {
		return trust.P0
	}
	return l
}

// Sentinel errors of the store.
var (
	ErrNotFound      = errors.New("account not found")
	ErrEmailTaken    = errors.New("an account with this email address already exists")
	ErrLinkInvalid   = errors.New("the link is not valid: it has expired or has been used")
	ErrLocked        = errors.New("account locked after too many wrong passwords")
	ErrBadPassword   = errors.New("email address or password is not right")
	ErrSignupPending = errors.New("the email address has not been verified yet")
)

// MaxFailedLogins is how many wrong passwords lock an account.
const MaxFailedLogins = 5

// LockDuration is how long a locked account stays locked.
const LockDuration = 15 * time.Minute

// store is the account capability's SQL. Nothing outside this package
// reads these tables.
type store struct {
	db  *sqlx.DB
	now func() time.Time
}

func (s *store) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

const accountCols = `id, email, password_hash, terms_version, terms_accepted_at, email_verified_at, phone,
	phone_verified_at, proofing_level, status, failed_logins, locked_until, password_changed_at, created_at, updated_at,
	landline, last_login_at`

func (s *store) byEmail(ctx context.Context, email string) (Account, error) {
	var a Account
	err := s.db.GetContext(ctx, &a, s.db.Rebind(`SELECT `+accountCols+` FROM accounts WHERE email = ?`), NormalizeEmail(email))
	if migrations.IsNoRows(err) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("find account by email: %w", err)
	}
	return a, nil
}

func (s *store) byID(ctx context.Context, id string) (Account, error) {
	var a Account
	err := s.db.GetContext(ctx, &a, s.db.Rebind(`SELECT `+accountCols+` FROM accounts WHERE id = ?`), id)
	if migrations.IsNoRows(err) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("find account: %w", err)
	}
	return a, nil
}

// signup is a registration waiting for its email link to be followed.
type signup struct {
	ID              string     `db:"id"`
	Email           string     `db:"email"`
	PasswordHash    string     `db:"password_hash"`
	TermsVersion    string     `db:"terms_version"`
	TermsAcceptedAt time.Time  `db:"terms_accepted_at"`
	TokenHash       string     `db:"token_hash"`
	ExpiresAt       time.Time  `db:"expires_at"`
	UsedAt          *time.Time `db:"used_at"`
	CreatedAt       time.Time  `db:"created_at"`
}

func (s *store) createSignup(ctx context.Context, su signup) error {
	_, err := s.db.NamedExecContext(ctx, `INSERT INTO signups (id, email, password_hash, terms_version, terms_accepted_at, token_hash, expires_at, created_at)
		VALUES (:id, :email, :password_hash, :terms_version, :terms_accepted_at, :token_hash, :expires_at, :created_at)`, su)
	if err != nil {
		return fmt.Errorf("create signup: %w", err)
	}
	return nil
}

// renewSignupToken gives a pending signup a new link (the old one stops
// working) and a fresh expiry.
func (s *store) renewSignupToken(ctx context.Context, id, tokenHash string, expires time.Time) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE signups SET token_hash = ?, expires_at = ? WHERE id = ? AND used_at IS NULL`), tokenHash, expires, id)
	if err != nil {
		return fmt.Errorf("renew signup link: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrLinkInvalid
	}
	return nil
}

func (s *store) signupByToken(ctx context.Context, tokenHash string) (signup, error) {
	var su signup
	err := s.db.GetContext(ctx, &su, s.db.Rebind(`SELECT * FROM signups WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`), tokenHash, s.nowUTC())
	if migrations.IsNoRows(err) {
		return su, ErrLinkInvalid
	}
	if err != nil {
		return su, fmt.Errorf("find signup: %w", err)
	}
	return su, nil
}

// pendingSignups returns the unexpired, unused signups for an email
// address, newest first.
func (s *store) pendingSignups(ctx context.Context, email string) ([]signup, error) {
	var sus []signup
	err := s.db.SelectContext(ctx, &sus, s.db.Rebind(`SELECT * FROM signups WHERE email = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 5`),
		NormalizeEmail(email), s.nowUTC())
	if err != nil {
		return nil, fmt.Errorf("find pending signups: %w", err)
	}
	return sus, nil
}

// completeSignup consumes a signup link and creates the account, in one
// transaction: the link works once, and if an account with the address
// appeared meanwhile nothing changes. Registrations racing for one address
// take their address's signups in one order first (PostgreSQL; SQLite's
// transactions run one at a time), so the first to get there creates the
// account and the others then find their signup superseded and get
// ErrEmailTaken, instead of two transactions deadlocking.
func (s *store) completeSignup(ctx context.Context, tokenHash string) (Account, signup, error) {
	var (
		a  Account
		su signup
	)
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return a, su, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	now := s.nowUTC()
	var email string
	err = tx.GetContext(ctx, &email, tx.Rebind(`SELECT email FROM signups WHERE token_hash = ?`), tokenHash)
	if migrations.IsNoRows(err) {
		return a, su, ErrLinkInvalid
	}
	if err != nil {
		return a, su, fmt.Errorf("find signup: %w", err)
	}
	if migrations.DialectOf(s.db) == migrations.Postgres {
		var ids []string
		if err := tx.SelectContext(ctx, &ids, tx.Rebind(`SELECT id FROM signups WHERE email = ? ORDER BY id FOR UPDATE`), email); err != nil {
			return a, su, fmt.Errorf("lock signups: %w", err)
		}
	}
	err = tx.GetContext(ctx, &su, tx.Rebind(`UPDATE signups SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING id, email, password_hash, terms_version, terms_accepted_at, token_hash, expires_at, used_at, created_at`), now, tokenHash, now)
	if migrations.IsNoRows(err) {
		// Used, expired, or superseded by another registration of the
		// address that has just created the account.
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM accounts WHERE email = ?`), email); err != nil {
			return a, su, fmt.Errorf("find account: %w", err)
		}
		if n > 0 {
			return a, su, ErrEmailTaken
		}
		return a, su, ErrLinkInvalid
	}
	if err != nil {
		return a, su, fmt.Errorf("consume signup link: %w", err)
	}
	a = Account{
		ID: secrets.NewID(), Email: su.Email, PasswordHash: su.PasswordHash,
		TermsVersion: su.TermsVersion, TermsAcceptedAt: su.TermsAcceptedAt, EmailVerifiedAt: now,
		ProofingLevel: trust.P0.String(), Status: StatusPendingPhone,
		PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	_, err = tx.NamedExecContext(ctx, `INSERT INTO accounts (id, email, password_hash, terms_version, terms_accepted_at, email_verified_at,
		proofing_level, status, password_changed_at, created_at, updated_at) VALUES (:id, :email, :password_hash, :terms_version,
		:terms_accepted_at, :email_verified_at, :proofing_level, :status, :password_changed_at, :created_at, :updated_at)`, a)
	if migrations.IsUniqueViolation(err) {
		return a, su, ErrEmailTaken
	}
	if err != nil {
		return a, su, fmt.Errorf("create account: %w", err)
	}
	// Other registrations for the same address can no longer complete;
	// they stay (used) until purged, so that their links say the account
	// exists rather than that they never did.
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE signups SET used_at = ? WHERE email = ? AND id <> ? AND used_at IS NULL`), now, su.Email, su.ID); err != nil {
		return a, su, fmt.Errorf("close other signups: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return a, su, fmt.Errorf("commit signup: %w", err)
	}
	return a, su, nil
}

func (s *store) setPhone(ctx context.Context, id, phone string) error {
	now := s.nowUTC()
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE accounts SET phone = ?, phone_verified_at = ?, updated_at = ?,
		status = CASE WHEN status = ? THEN ? ELSE status END WHERE id = ?`), phone, now, now, StatusPendingPhone, StatusActive, id)
	if err != nil {
		return fmt.Errorf("set phone: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// reservePasswordAttempt takes one of the account's password attempts
// before the (slow) hash check. It is a single atomic statement, so however
// many requests race, at most MaxFailedLogins checks run until a success
// resets the count or the lock expires. The attempt that takes the last try
// locks the account provisionally, so a crash between reservation and
// result cannot leave it locked for ever; a right password lifts the lock.
// It returns the attempt's number, or ErrLocked when no attempt is left.
func (s *store) reservePasswordAttempt(ctx context.Context, id string) (int, error) {
	now := s.nowUTC()
	until := now.Add(LockDuration)
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`UPDATE accounts SET
			failed_logins = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN 1 ELSE failed_logins + 1 END,
			locked_until  = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN NULL
			                     WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END
		WHERE id = ? AND (failed_logins < ? OR (locked_until IS NOT NULL AND locked_until <= ?))
		RETURNING failed_logins`), now, now, MaxFailedLogins, until, id, MaxFailedLogins, now)
	if migrations.IsNoRows(err) {
		return 0, ErrLocked
	}
	if err != nil {
		return 0, fmt.Errorf("reserve password attempt: %w", err)
	}
	return n, nil
}

// releasePasswordAttempt gives back one reserved attempt whose check could
// not finish, lifting the provisional lock when the attempt was the one
// that set it. A count already cleared by a right password stays cleared.
func (s *store) releasePasswordAttempt(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE accounts SET
			locked_until  = CASE WHEN failed_logins - 1 < ? THEN NULL ELSE locked_until END,
			failed_logins = failed_logins - 1
		WHERE id = ? AND failed_logins > 0`), MaxFailedLogins, id)
	if err != nil {
		return fmt.Errorf("release password attempt: %w", err)
	}
	return nil
}

// passwordOK clears the failure count after a right password, and stores a
// rehashed password when the hashing parameters have changed.
func (s *store) passwordOK(ctx context.Context, id, newHash string) error {
	q := `UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?`
	args := []any{id}
	if newHash != "" {
		q = `UPDATE accounts SET failed_logins = 0, locked_until = NULL, password_hash = ? WHERE id = ?`
		args = []any{newHash, id}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
		return fmt.Errorf("clear failed logins: %w", err)
	}
	return nil
}

func (s *store) setPassword(ctx context.Context, id, hash string) error {
	now := s.nowUTC()
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE accounts SET password_hash = ?, password_changed_at = ?, updated_at = ?,
		failed_logins = 0, locked_until = NULL WHERE id = ?`), hash, now, now, id)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// reset is a password-reset link.
type reset struct {
	ID        string     `db:"id"`
	AccountID string     `db:"account_id"`
	TokenHash string     `db:"token_hash"`
	ExpiresAt time.Time  `db:"expires_at"`
	UsedAt    *time.Time `db:"used_at"`
	CreatedAt time.Time  `db:"created_at"`
}

func (s *store) createReset(ctx context.Context, r reset) error {
	// A new link replaces any earlier unused one.
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM password_resets WHERE account_id = ? AND used_at IS NULL`), r.AccountID); err != nil {
		return fmt.Errorf("clear earlier reset links: %w", err)
	}
	_, err := s.db.NamedExecContext(ctx, `INSERT INTO password_resets (id, account_id, token_hash, expires_at, created_at)
		VALUES (:id, :account_id, :token_hash, :expires_at, :created_at)`, r)
	if err != nil {
		return fmt.Errorf("create reset link: %w", err)
	}
	return nil
}

func (s *store) resetByToken(ctx context.Context, tokenHash string) (reset, error) {
	var r reset
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT * FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`), tokenHash, s.nowUTC())
	if migrations.IsNoRows(err) {
		return r, ErrLinkInvalid
	}
	if err != nil {
		return r, fmt.Errorf("find reset link: %w", err)
	}
	return r, nil
}

func (s *store) consumeReset(ctx context.Context, tokenHash string) (reset, error) {
	var r reset
	now := s.nowUTC()
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING id, account_id, token_hash, expires_at, used_at, created_at`), now, tokenHash, now)
	if migrations.IsNoRows(err) {
		return r, ErrLinkInvalid
	}
	if err != nil {
		return r, fmt.Errorf("consume reset link: %w", err)
	}
	return r, nil
}
