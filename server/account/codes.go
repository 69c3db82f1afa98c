package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
)

// Purpose says what a security code is for; a code is only ever accepted
// for the purpose and subject it was sent for.
type Purpose string

// Purposes of security codes.
const (
	PurposeSignup Purpose = "signup_phone" // proving the mobile number while creating an account
	PurposeLogin  Purpose = "login"        // the second factor of a login
	PurposeReset  Purpose = "reset"        // proving the phone while resetting a password
)

// Limits on security codes. How many may be sent is the sending
// budgets' (package sending); how many wrong codes an account may have
// across resends is Config.CodeGuesses.
const (
	CodeLength      = 6
	CodeLifetime    = 5 * time.Minute
	CodeMaxAttempts = 5 // wrong tries that void a code
)

// Errors of security codes.
var (
	ErrTooManyCodes = errors.New("too many security codes requested")
	ErrCodeWrong    = errors.New("the security code is not right")
	ErrCodeExpired  = errors.New("the security code has expired or has been used too many times")
	ErrSendFailed   = errors.New("the message could not be sent")
)

type codeRow struct {
	ID        string    `db:"id"`
	CodeHash  string    `db:"code_hash"`
	Attempts  int       `db:"attempts"`
	ExpiresAt time.Time `db:"expires_at"`
}

// storeCode stores code, which the provider has accepted, as the live
// code for (purpose, subject), voiding any earlier one.
func (s *store) storeCode(ctx context.Context, keys codeHasher, id, code string, purpose Purpose, subject, phone string) error {
	now := s.nowUTC()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE security_codes SET used_at = ? WHERE purpose = ? AND subject = ? AND used_at IS NULL`),
		now, string(purpose), subject); err != nil {
		return fmt.Errorf("void earlier codes: %w", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO security_codes (id, purpose, subject, phone, code_hash, attempts, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?)`), id, string(purpose), subject, phone, keys.codeMAC(id, code), now.Add(CodeLifetime), now); err != nil {
		return fmt.Errorf("store code: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit code: %w", err)
	}
	return nil
}

// liveCode reports whether (purpose, subject) has a code that can still
// be entered.
func (s *store) liveCode(ctx context.Context, purpose Purpose, subject string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM security_codes
		WHERE purpose = ? AND subject = ? AND used_at IS NULL AND attempts < ? AND expires_at > ?`),
		string(purpose), subject, CodeMaxAttempts, s.nowUTC())
	if err != nil {
		return false, fmt.Errorf("find live code: %w", err)
	}
	return n > 0, nil
}

// checkCode checks a submitted code against the live code for (purpose,
// subject) without using it. Each check takes one of the code's attempts
// atomically before comparing, so concurrent guesses cannot exceed
// CodeMaxAttempts. It returns the code's id when it is right, or the
// number of tries left with ErrCodeWrong.
func (s *store) checkCode(ctx context.Context, keys codeHasher, purpose Purpose, subject, code string) (string, int, error) {
	now := s.nowUTC()
	var row codeRow
	err := s.db.GetContext(ctx, &row, s.db.Rebind(`UPDATE security_codes SET attempts = attempts + 1
		WHERE id = (SELECT id FROM security_codes WHERE purpose = ? AND subject = ? AND used_at IS NULL ORDER BY created_at DESC LIMIT 1)
		  AND used_at IS NULL AND attempts < ? AND expires_at > ?
		RETURNING id, code_hash, attempts, expires_at`), string(purpose), subject, CodeMaxAttempts, now)
	if migrations.IsNoRows(err) {
		return "", 0, ErrCodeExpired
	}
	if err != nil {
		return "", 0, fmt.Errorf("check code: %w", err)
	}
	if !secrets.Equal(keys.codeMAC(row.ID, code), row.CodeHash) {
		return "", CodeMaxAttempts - row.Attempts, ErrCodeWrong
	}
	return row.ID, 0, nil
}

// useCode marks a right code used, on e (the caller's transaction): it is
// used by exactly one request, the one whose update wins.
func (s *store) useCode(ctx context.Context, e sqlx.ExecerContext, id string) error {
	res, err := e.ExecContext(ctx, s.db.Rebind(`UPDATE security_codes SET used_at = ? WHERE id = ? AND used_at IS NULL`), s.nowUTC(), id)
	if err != nil {
		return fmt.Errorf("use code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrCodeExpired // another request used it first
	}
	return nil
}

// purgeCodes deletes codes that expired more than a day ago.
func (s *store) purgeCodes(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM security_codes WHERE expires_at <= ?`), s.nowUTC().Add(-24*time.Hour))
	if err != nil {
		return 0, fmt.Errorf("purge codes: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// codeHasher keys the hash of a code to its row, so equal codes do not
// produce equal hashes.
type codeHasher interface{ codeMAC(id, code string) string }
