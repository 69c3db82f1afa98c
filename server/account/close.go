package account

import (
	"context"
	"fmt"
	"time"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/web"
)

// NoteLogin records that a login to the account completed: the clock of
// closure for lack of use starts again, and any warning is forgotten.
func (s *Service) NoteLogin(ctx context.Context, accountID string) error {
	if _, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET last_login_at = ?, closure_warned_at = NULL WHERE id = ?`),
		s.st.nowUTC(), accountID); err != nil {
		return fmt.Errorf("note login: %w", err)
	}
	return nil
}

// UnusedToWarn returns up to limit active accounts whose last login (or
// creation, for accounts with none) is before cutoff and that have not
// been warned yet.
func (s *Service) UnusedToWarn(ctx context.Context, cutoff time.Time, limit int) ([]Account, error) {
	var out []Account
	err := s.st.db.SelectContext(ctx, &out, s.st.db.Rebind(`SELECT `+accountCols+` FROM accounts
		WHERE COALESCE(last_login_at, created_at) < ? AND closure_warned_at IS NULL ORDER BY id LIMIT ?`), cutoff.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("find unused accounts: %w", err)
	}
	return out, nil
}

// UnusedToClose returns up to limit accounts whose last login (or
// creation) is before cutoff and that were warned at or before warnedBy.
func (s *Service) UnusedToClose(ctx context.Context, cutoff, warnedBy time.Time, limit int) ([]Account, error) {
	var out []Account
	err := s.st.db.SelectContext(ctx, &out, s.st.db.Rebind(`SELECT `+accountCols+` FROM accounts
		WHERE COALESCE(last_login_at, created_at) < ? AND closure_warned_at IS NOT NULL AND closure_warned_at <= ? ORDER BY id LIMIT ?`),
		cutoff.UTC(), warnedBy.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("find accounts to close: %w", err)
	}
	return out, nil
}

// WarnClosure emails the owner of an unused account that it will be
// closed on closeAt unless they log in, and records the warning. A warning
// that cannot be sent is not recorded, so the next run tries again.
func (s *Service) WarnClosure(ctx context.Context, a audit.Actor, acct Account, closeAt time.Time) error {
	link := s.cfg.Issuer + "/login"
	err := s.sendEmail(ctx, a, acct.ID, acct.Email, NoticeClosureWarning, fmt.Sprintf(
		"You have not logged in to your idlink account for a long time. We will close it and delete your details on %s (UK time). "+
			"To keep it, log in before then at %s.", web.UKDate(closeAt), link), link, false)
	if err != nil {
		return err
	}
	if _, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET closure_warned_at = ? WHERE id = ?`), s.st.nowUTC(), acct.ID); err != nil {
		return fmt.Errorf("record closure warning: %w", err)
	}
	return s.record(ctx, a, "account.closure_warned", audit.Success, acct.ID, map[string]any{"close_at": closeAt.UTC().Format(time.RFC3339)})
}

// DeleteAccount deletes the account's own rows: the account (with its
// reset links and pending changes of address or number), its security
// codes and any unfinished registration for its address. Other
// capabilities forget theirs first (closure does the whole). It returns
// the account as it was, to tell its owner.
func (s *Service) DeleteAccount(ctx context.Context, accountID string) (Account, error) {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return acct, err
	}
	tx, err := s.st.db.BeginTxx(ctx, nil)
	if err != nil {
		return acct, fmt.Errorf("delete account: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, q := range []struct {
		sql string
		arg any
	}{
		{`DELETE FROM security_codes WHERE subject = ? OR subject LIKE ?`, nil},
		{`DELETE FROM signups WHERE email = ?`, acct.Email},
		{`DELETE FROM accounts WHERE id = ?`, accountID},
	} {
		args := []any{q.arg}
		if q.arg == nil {
			args = []any{accountID, accountID + "|%"}
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q.sql), args...); err != nil {
			return acct, fmt.Errorf("delete account: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return acct, fmt.Errorf("delete account: %w", err)
	}
	return acct, nil
}

// SendFarewell emails the owner of a deleted account (whose address is
// passed, the account being gone) what was deleted and what was kept. A
// failure to send is audited and does not undo the deletion.
func (s *Service) SendFarewell(ctx context.Context, a audit.Actor, acct Account, kind notify.Kind, what string) error {
	text := fmt.Sprintf("%s on %s (UK time). Your details, passkeys, devices, remembered browsers and agreements to share with services have been deleted, "+
		"and services can no longer get your details from idlink. Services you used keep what you shared with them before. "+
		"We keep a record of what happened to the account, without your details. You can create a new account at any time at %s/create-account.\n\n"+
		"If you did not ask for this, contact us.", what, s.noticeTime(), s.cfg.Issuer)
	return s.noticeTo(ctx, a, acct.ID, acct.Email, kind, text, "")
}
