package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/secrets"
)

// Lifetimes of the links sent when contact details change.
const (
	EmailChangeLinkLifetime = 24 * time.Hour
	// PhoneCancelLifetime is NHS login's rule: the link that undoes a
	// change of mobile number works for 24 hours.
	PhoneCancelLifetime = 24 * time.Hour
)

// PurposePhoneChange is the code texted to a new mobile number.
const PurposePhoneChange Purpose = "phone_change"

// Errors of changing account details.
var (
	ErrWrongPassword = errors.New("the current password is not right")
	ErrSameEmail     = errors.New("this is already the account's email address")
	ErrSamePhone     = errors.New("this is already the account's mobile number")
	ErrSamePassword  = errors.New("the new password is the current password")
	ErrLandline      = errors.New("not a valid UK landline number")
)

// ---- password ----

// VerifyPassword checks an account's current password, typed to confirm a
// change. It takes one of the account's password attempts first, so it
// locks the account like a wrong login does (ErrLocked); a wrong password
// is ErrWrongPassword.
func (s *Service) VerifyPassword(ctx context.Context, a audit.Actor, accountID, pw string) error {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return err
	}
	attempt, err := s.st.reservePasswordAttempt(ctx, accountID)
	if errors.Is(err, ErrLocked) {
		return errors.Join(ErrLocked, s.record(ctx, a, "password.confirm", audit.Failure, accountID, map[string]any{"reason": "locked"}))
	}
	if err != nil {
		return err
	}
	ok, _, err := s.hasher.Verify(ctx, acct.PasswordHash, pw)
	if err != nil {
		return fmt.Errorf("check password: %w", err)
	}
	if !ok {
		if attempt == MaxFailedLogins {
			s.metrics.Lockouts.Inc()
			if err := s.record(ctx, a, "account.locked", audit.Success, accountID, map[string]any{"minutes": int(LockDuration.Minutes())}); err != nil {
				return err
			}
		}
		if err := s.record(ctx, a, "password.confirm", audit.Failure, accountID, map[string]any{"reason": "wrong_password", "attempt": attempt}); err != nil {
			return err
		}
		if attempt >= MaxFailedLogins {
			return ErrLocked
		}
		return ErrWrongPassword
	}
	return s.st.passwordOK(ctx, accountID, "")
}

// NewPasswordHash applies the sign-up password policy to a new password
// for an existing account and hashes it; it refuses the current password
// (ErrSamePassword). Policy failures are password.Err* errors.
func (s *Service) NewPasswordHash(ctx context.Context, accountID, pw string) (string, error) {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return "", err
	}
	if err := password.Check(pw, acct.Email); err != nil {
		return "", err
	}
	if same, _, err := s.hasher.Verify(ctx, acct.PasswordHash, pw); err != nil {
		return "", fmt.Errorf("compare passwords: %w", err)
	} else if same {
		return "", ErrSamePassword
	}
	h, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// ChangePassword stores a new password (hashed by NewPasswordHash) for a
// signed-in person who confirmed the current one, and emails a notice.
// Ending the account's other sessions is the caller's job (it owns them).
func (s *Service) ChangePassword(ctx context.Context, a audit.Actor, accountID, hash string) error {
	if err := s.st.setPassword(ctx, accountID, hash); err != nil {
		return err
	}
	if err := s.record(ctx, a, "password.changed", audit.Success, accountID, nil); err != nil {
		return err
	}
	return s.SendNotice(ctx, a, accountID, NoticePasswordChanged, "Your idlink password was changed and you were signed out everywhere else")
}

// ---- email address ----

// StartEmailChange emails a link (single use, 24 hours) to a new address;
// the account changes only when it is followed. An address that already
// belongs to another account gets an email saying so instead, and the
// caller cannot tell the two apart: the page says no more than sign-up
// does. The account's own address is ErrSameEmail.
func (s *Service) StartEmailChange(ctx context.Context, a audit.Actor, accountID, newEmail string) error {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return err
	}
	newEmail = NormalizeEmail(newEmail)
	if newEmail == acct.Email {
		return ErrSameEmail
	}
	if _, err := s.st.byEmail(ctx, newEmail); err == nil {
		link := s.cfg.Issuer + "/login"
		if err := s.sendEmail(ctx, a, accountID, newEmail, "email_change_taken", fmt.Sprintf(
			"Someone asked to use this email address for an idlink account, but it already belongs to an idlink account, so nothing has changed. "+
				"You can log in at %s. If this was not you, you do not need to do anything.", link), link, false); err != nil {
			return err
		}
		return s.record(ctx, a, "email.change_requested", audit.Failure, accountID, map[string]any{"reason": "email_taken"})
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	token := secrets.NewToken()
	now := s.st.nowUTC()
	if err := s.st.createEmailChange(ctx, emailChange{ID: secrets.NewID(), AccountID: accountID, NewEmail: newEmail,
		TokenHash: s.tokenMAC("email-change", token), ExpiresAt: now.Add(EmailChangeLinkLifetime), CreatedAt: now}); err != nil {
		return err
	}
	link := s.link("/account/email/verify", token)
	if err := s.sendEmail(ctx, a, accountID, newEmail, "email_change_verify", fmt.Sprintf(
		"Confirm this email address for your idlink account: %s\n\nThe link works once and expires in 24 hours. Until you follow it, your account keeps its current address. "+
			"If you did not ask for this, ignore this email.", link), link, false); err != nil {
		return err
	}
	return s.record(ctx, a, "email.change_requested", audit.Success, accountID, nil)
}

// CheckEmailChangeLink reports whether a link to confirm a new address is
// still good, without using it (mail scanners follow links).
func (s *Service) CheckEmailChangeLink(ctx context.Context, token string) error {
	_, err := s.st.emailChangeByToken(ctx, s.tokenMAC("email-change", token))
	return err
}

// CompleteEmailChange uses a link to confirm a new address: the account's
// address changes, and the old address is told. An address taken by
// another account since the link was sent gives ErrEmailTaken.
func (s *Service) CompleteEmailChange(ctx context.Context, a audit.Actor, token string) (Account, error) {
	acct, old, err := s.st.completeEmailChange(ctx, s.tokenMAC("email-change", token))
	switch {
	case errors.Is(err, ErrLinkInvalid):
		return acct, errors.Join(err, s.record(ctx, a, "email.change_link_invalid", audit.Failure, "", nil))
	case errors.Is(err, ErrEmailTaken):
		return acct, errors.Join(err, s.record(ctx, a, "email.changed", audit.Failure, acct.ID, map[string]any{"reason": "email_taken"}))
	case err != nil:
		return acct, err
	}
	if err := s.record(ctx, a, "email.changed", audit.Success, acct.ID, nil); err != nil {
		return acct, err
	}
	text := s.noticeText(a, "The email address of your idlink account was changed from this address to "+maskEmail(acct.Email),
		"contact us at once: someone else may have your password. Reset it at "+s.cfg.Issuer+"/forgot-password using your new address if you can")
	return acct, s.noticeTo(ctx, a, acct.ID, old, NoticeEmailChanged, text, s.cfg.Issuer+"/forgot-password")
}

// maskEmail hides most of an address's local part ("j***@example.org"),
// for the notice sent to the old address.
func maskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return "a new address"
	}
	return local[:1] + "***@" + domain
}

// ---- mobile number ----

func phoneChangeSubject(accountID, phone string) string { return accountID + "|" + phone }

// SendPhoneChangeCode texts a security code to a new mobile number. The
// code proves that number only, for this account.
func (s *Service) SendPhoneChangeCode(ctx context.Context, a audit.Actor, accountID, newPhone string) error {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return err
	}
	if acct.PhoneNumber() == newPhone {
		return ErrSamePhone
	}
	return s.SendCode(ctx, a, PurposePhoneChange, phoneChangeSubject(accountID, newPhone), newPhone, accountID)
}

// CompletePhoneChange checks the code texted to newPhone and, when it is
// right, makes it the account's mobile number. The old number is texted a
// link that undoes the change for 24 hours, and the owner is emailed.
// Forgetting remembered browsers is the caller's job.
func (s *Service) CompletePhoneChange(ctx context.Context, a audit.Actor, accountID, newPhone, code string) error {
	if err := s.VerifyCode(ctx, a, PurposePhoneChange, phoneChangeSubject(accountID, newPhone), code, accountID); err != nil {
		return err
	}
	token := secrets.NewToken()
	old, err := s.st.changePhone(ctx, accountID, newPhone, s.tokenMAC("phone-cancel", token), PhoneCancelLifetime)
	if err != nil {
		return err
	}
	if err := s.record(ctx, a, "phone.changed", audit.Success, accountID, nil); err != nil {
		return err
	}
	if old != "" {
		link := s.link("/account/phone/cancel", token)
		if err := s.textNotice(ctx, a, accountID, old, NoticePhoneChangedOld, fmt.Sprintf(
			"The mobile number of your idlink account was changed from this number. If this was not you, undo it within 24 hours: %s", link), link); err != nil {
			return err
		}
	}
	return s.SendNotice(ctx, a, accountID, NoticePhoneChanged,
		"The mobile number of your idlink account was changed to "+MaskPhone(newPhone))
}

// CheckPhoneCancelLink reports whether a link that undoes a change of
// mobile number is still good, without using it.
func (s *Service) CheckPhoneCancelLink(ctx context.Context, token string) error {
	_, err := s.st.phoneChangeByToken(ctx, s.tokenMAC("phone-cancel", token))
	return err
}

// CancelPhoneChange uses the link sent to the old number: the old number
// becomes the account's mobile number again. It returns the account, whose
// sessions and remembered browsers the caller ends.
func (s *Service) CancelPhoneChange(ctx context.Context, a audit.Actor, token string) (Account, error) {
	id, err := s.st.cancelPhoneChange(ctx, s.tokenMAC("phone-cancel", token))
	if errors.Is(err, ErrLinkInvalid) {
		return Account{}, errors.Join(err, s.record(ctx, a, "phone.change_cancel_invalid", audit.Failure, "", nil))
	}
	if err != nil {
		return Account{}, err
	}
	acct, err := s.st.byID(ctx, id)
	if err != nil {
		return Account{}, err
	}
	if err := s.record(ctx, a, "phone.change_cancelled", audit.Success, id, nil); err != nil {
		return acct, err
	}
	return acct, s.SendNotice(ctx, a, id, NoticePhoneCancelled,
		"A change of the mobile number of your idlink account was undone from the link sent to your old number, and you were signed out everywhere")
}

// ---- landline ----

// ParseLandline reads a UK landline number as a person types it and
// returns it in E.164. Mobile numbers and numbers outside the UK are
// refused (ErrLandline).
func ParseLandline(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 32 {
		return "", ErrLandline
	}
	n, err := phonenumbers.Parse(raw, "GB")
	if err != nil || !phonenumbers.IsValidNumberForRegion(n, "GB") {
		return "", ErrLandline
	}
	switch phonenumbers.GetNumberType(n) {
	case phonenumbers.FIXED_LINE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.UAN:
		return phonenumbers.Format(n, phonenumbers.E164), nil
	}
	return "", ErrLandline
}

// SetLandline stores (or, with "", removes) the account's landline. It is
// never verified: no call can be made from here.
func (s *Service) SetLandline(ctx context.Context, a audit.Actor, accountID, e164 string) error {
	acct, err := s.st.byID(ctx, accountID)
	if err != nil {
		return err
	}
	if acct.LandlineNumber() == e164 {
		return nil
	}
	var v *string
	if e164 != "" {
		v = &e164
	}
	if _, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(`UPDATE accounts SET landline = ?, updated_at = ? WHERE id = ?`), v, s.st.nowUTC(), accountID); err != nil {
		return fmt.Errorf("set landline: %w", err)
	}
	what, typ := "A landline number was added to your idlink account", "landline.added"
	switch {
	case e164 == "":
		what, typ = "The landline number was removed from your idlink account", "landline.removed"
	case acct.LandlineNumber() != "":
		what, typ = "The landline number of your idlink account was changed", "landline.changed"
	}
	if err := s.record(ctx, a, typ, audit.Success, accountID, nil); err != nil {
		return err
	}
	return s.SendNotice(ctx, a, accountID, NoticeLandline, what)
}

// ---- SQL ----

type emailChange struct {
	ID        string     `db:"id"`
	AccountID string     `db:"account_id"`
	NewEmail  string     `db:"new_email"`
	TokenHash string     `db:"token_hash"`
	ExpiresAt time.Time  `db:"expires_at"`
	UsedAt    *time.Time `db:"used_at"`
	CreatedAt time.Time  `db:"created_at"`
}

// createEmailChange stores a pending change; it replaces any earlier
// unused one, whose link stops working.
func (s *store) createEmailChange(ctx context.Context, ec emailChange) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM email_changes WHERE account_id = ? AND used_at IS NULL`), ec.AccountID); err != nil {
		return fmt.Errorf("clear earlier email changes: %w", err)
	}
	if _, err := tx.NamedExecContext(ctx, `INSERT INTO email_changes (id, account_id, new_email, token_hash, expires_at, created_at)
		VALUES (:id, :account_id, :new_email, :token_hash, :expires_at, :created_at)`, ec); err != nil {
		return fmt.Errorf("create email change: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit email change: %w", err)
	}
	return nil
}

func (s *store) emailChangeByToken(ctx context.Context, tokenHash string) (emailChange, error) {
	var ec emailChange
	err := s.db.GetContext(ctx, &ec, s.db.Rebind(`SELECT id, account_id, new_email, token_hash, expires_at, used_at, created_at
		FROM email_changes WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`), tokenHash, s.nowUTC())
	if migrations.IsNoRows(err) {
		return ec, ErrLinkInvalid
	}
	if err != nil {
		return ec, fmt.Errorf("find email change: %w", err)
	}
	return ec, nil
}

// completeEmailChange uses the link and changes the address in one
// transaction: the link works once, and an address taken meanwhile
// changes nothing. It returns the account (with its new address) and the
// old address.
func (s *store) completeEmailChange(ctx context.Context, tokenHash string) (Account, string, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Account{}, "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := s.nowUTC()
	var ec emailChange
	err = tx.GetContext(ctx, &ec, tx.Rebind(`UPDATE email_changes SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING id, account_id, new_email, token_hash, expires_at, used_at, created_at`), now, tokenHash, now)
	if migrations.IsNoRows(err) {
		return Account{}, "", ErrLinkInvalid
	}
	if err != nil {
		return Account{}, "", fmt.Errorf("use email change link: %w", err)
	}
	var old string
	if err := tx.GetContext(ctx, &old, tx.Rebind(`SELECT email FROM accounts WHERE id = ?`), ec.AccountID); err != nil {
		if migrations.IsNoRows(err) {
			return Account{}, "", ErrLinkInvalid
		}
		return Account{}, "", fmt.Errorf("read old email: %w", err)
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE accounts SET email = ?, email_verified_at = ?, updated_at = ? WHERE id = ?`), ec.NewEmail, now, now, ec.AccountID)
	if migrations.IsUniqueViolation(err) {
		return Account{ID: ec.AccountID}, "", ErrEmailTaken
	}
	if err != nil {
		return Account{}, "", fmt.Errorf("change email: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Account{}, "", fmt.Errorf("commit email change: %w", err)
	}
	acct, err := s.byID(ctx, ec.AccountID)
	return acct, old, err
}

// changePhone makes newPhone the account's number and records the change
// with its cancel link; it returns the old number.
func (s *store) changePhone(ctx context.Context, accountID, newPhone, cancelHash string, lifetime time.Duration) (string, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := s.nowUTC()
	var old *string
	if err := tx.GetContext(ctx, &old, tx.Rebind(`SELECT phone FROM accounts WHERE id = ?`), accountID); err != nil {
		if migrations.IsNoRows(err) {
			return "", ErrNotFound
		}
		return "", fmt.Errorf("read phone: %w", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE accounts SET phone = ?, phone_verified_at = ?, updated_at = ? WHERE id = ?`),
		newPhone, now, now, accountID); err != nil {
		return "", fmt.Errorf("change phone: %w", err)
	}
	if old != nil && *old != "" {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO phone_changes (id, account_id, old_phone, new_phone, cancel_token_hash, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), secrets.NewID(), accountID, *old, newPhone, cancelHash, now.Add(lifetime), now); err != nil {
			return "", fmt.Errorf("record phone change: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit phone change: %w", err)
	}
	if old == nil {
		return "", nil
	}
	return *old, nil
}

func (s *store) phoneChangeByToken(ctx context.Context, tokenHash string) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, s.db.Rebind(`SELECT account_id FROM phone_changes WHERE cancel_token_hash = ? AND cancelled_at IS NULL AND expires_at > ?`),
		tokenHash, s.nowUTC())
	if migrations.IsNoRows(err) {
		return "", ErrLinkInvalid
	}
	if err != nil {
		return "", fmt.Errorf("find phone change: %w", err)
	}
	return id, nil
}

// cancelPhoneChange uses a cancel link once and puts the old number back.
func (s *store) cancelPhoneChange(ctx context.Context, tokenHash string) (string, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := s.nowUTC()
	var row struct {
		AccountID string `db:"account_id"`
		OldPhone  string `db:"old_phone"`
	}
	err = tx.GetContext(ctx, &row, tx.Rebind(`UPDATE phone_changes SET cancelled_at = ? WHERE cancel_token_hash = ? AND cancelled_at IS NULL AND expires_at > ?
		RETURNING account_id, old_phone`), now, tokenHash, now)
	if migrations.IsNoRows(err) {
		return "", ErrLinkInvalid
	}
	if err != nil {
		return "", fmt.Errorf("use phone cancel link: %w", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE accounts SET phone = ?, phone_verified_at = ?, updated_at = ? WHERE id = ?`),
		row.OldPhone, now, now, row.AccountID); err != nil {
		return "", fmt.Errorf("restore phone: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit phone cancel: %w", err)
	}
	return row.AccountID, nil
}
