package device

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
)

// macRemembered is the Keyring.MAC purpose of remembered-browser tokens.
const macRemembered = "remembered-browser"

// MaxLabelLength bounds the stored label of a remembered browser, in
// characters; longer labels are cut.
const MaxLabelLength = 128

// RememberedBrowser is a browser the person asked to remember, as listed in
// their settings. The token itself is never kept.
type RememberedBrowser struct {
	ID         string    `db:"id"`
	AccountID  string    `db:"account_id"`
	Label      string    `db:"label"` // e.g. "Firefox on Windows", from the User-Agent
	CreatedAt  time.Time `db:"created_at"`
	LastUsedAt time.Time `db:"last_used_at"`
}

// rememberCutoff is the last-use time at or before which a remembered
// browser is forgotten.
func (s *Store) rememberCutoff(now time.Time) time.Time { return now.Add(-s.cfg.RememberIdle) }

func cleanLabel(label string) string {
	label = strings.ToValidUTF8(label, "")
	label = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, label)
	label = strings.TrimSpace(label)
	if r := []rune(label); len(r) > MaxLabelLength {
		label = string(r[:MaxLabelLength])
	}
	return label
}

// Remember remembers a browser for accountID and returns the random token
// to put in its long-lived cookie. Only a keyed hash of the token is
// stored. userAgentLabel is a short description shown in settings.
func (s *Store) Remember(ctx context.Context, accountID, userAgentLabel string) (string, error) {
	if accountID == "" {
		return "", fmt.Errorf("%w: account id is missing", ErrInvalid)
	}
	token := secrets.NewToken()
	now := s.nowUTC()
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO remembered_browsers
		(id, account_id, token_hash, label, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)`),
		secrets.NewID(), accountID, s.keys.MAC(macRemembered, token), cleanLabel(userAgentLabel), now, now)
	if err != nil {
		return "", fmt.Errorf("remember browser: %w", err)
	}
	return token, nil
}

// CheckRemembered reports whether token is a remembered-browser token of
// accountID that has been used within the idle lifetime, and records the
// use. A token never identifies an account by itself: the caller knows the
// account from the password step, and another account's token is simply
// not valid. An idle token is forgotten.
func (s *Store) CheckRemembered(ctx context.Context, accountID, token string) (bool, error) {
	if accountID == "" || token == "" || len(token) > 256 {
		return false, nil
	}
	now := s.nowUTC()
	hash := s.keys.MAC(macRemembered, token)
	var id string
	err := s.db.GetContext(ctx, &id, s.db.Rebind(`UPDATE remembered_browsers SET last_used_at = ?
		WHERE token_hash = ? AND account_id = ? AND last_used_at > ? RETURNING id`),
		now, hash, accountID, s.rememberCutoff(now))
	if migrations.IsNoRows(err) {
		// Forget it if it is there but idle; a wrong account's token stays.
		if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM remembered_browsers
			WHERE token_hash = ? AND account_id = ? AND last_used_at <= ?`), hash, accountID, s.rememberCutoff(now)); err != nil {
			return false, fmt.Errorf("forget idle browser: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check remembered browser: %w", err)
	}
	return true, nil
}

// ListRemembered returns the account's remembered browsers that are still
// within their idle lifetime, most recently used first.
func (s *Store) ListRemembered(ctx context.Context, accountID string) ([]RememberedBrowser, error) {
	var out []RememberedBrowser
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, account_id, label, created_at, last_used_at
		FROM remembered_browsers WHERE account_id = ? AND last_used_at > ?
		ORDER BY last_used_at DESC, id`), accountID, s.rememberCutoff(s.nowUTC()))
	if err != nil {
		return nil, fmt.Errorf("list remembered browsers: %w", err)
	}
	for i := range out {
		out[i].CreatedAt, out[i].LastUsedAt = out[i].CreatedAt.UTC(), out[i].LastUsedAt.UTC()
	}
	return out, nil
}

// ForgetRemembered forgets one of the account's remembered browsers (the
// person removed it in settings). It returns ErrNotFound when the account
// has no such browser.
func (s *Store) ForgetRemembered(ctx context.Context, accountID, id string) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM remembered_browsers WHERE id = ? AND account_id = ?`), id, accountID)
	if err != nil {
		return fmt.Errorf("forget remembered browser: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("forget remembered browser: %w", err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ForgetAllRemembered forgets every browser remembered for the account: on
// password reset, phone number change, or "sign out of all devices". It
// returns how many were forgotten.
func (s *Store) ForgetAllRemembered(ctx context.Context, accountID string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM remembered_browsers WHERE account_id = ?`), accountID)
	if err != nil {
		return 0, fmt.Errorf("forget remembered browsers: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget remembered browsers: %w", err)
	}
	return n, nil
}

// Purge deletes what has lapsed: remembered browsers past their idle
// lifetime and device JWT ids past their expiry. VerifyRequestJWT also
// purges now and then; a periodic job may call Purge as well.
func (s *Store) Purge(ctx context.Context) error {
	now := s.nowUTC()
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM remembered_browsers WHERE last_used_at <= ?`), s.rememberCutoff(now)); err != nil {
		return fmt.Errorf("purge remembered browsers: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM device_jtis WHERE expires_at < ?`), now); err != nil {
		return fmt.Errorf("purge device jtis: %w", err)
	}
	return nil
}
