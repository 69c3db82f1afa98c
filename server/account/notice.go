package account

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/sending"
	"github.com/idlink/idlink/server/web"
)

// Kinds of security notices: each is a GOV.UK Notify template (README).
const (
	NoticePasswordChanged   notify.Kind = "password_changed"       // email: the password was changed
	NoticeEmailChanged      notify.Kind = "email_changed"          // email to the old address
	NoticePhoneChanged      notify.Kind = "phone_changed"          // email: the mobile number was changed
	NoticePhoneChangedOld   notify.Kind = "phone_changed_old"      // text to the old number, with the cancel link
	NoticePhoneCancelled    notify.Kind = "phone_change_cancelled" // email: a change of number was undone
	NoticeLandline          notify.Kind = "landline_changed"       // email: the landline was added, changed or removed
	NoticePasskeyAdded      notify.Kind = "passkey_added"          // email: a passkey was added
	NoticeBrowserRemembered notify.Kind = "browser_remembered"     // email: a browser was remembered
	NoticeDeviceEnrolled    notify.Kind = "device_enrolled"        // email: a companion-app device was enrolled
	NoticeAccountDeleted    notify.Kind = "account_deleted"        // email: the account was deleted
	NoticeClosureWarning    notify.Kind = "account_closure_warning"
	NoticeAccountClosed     notify.Kind = "account_closed"
)

// noticeText is what every security notice says: what happened, when,
// from which browser, and what to do if it was not the person.
func (s *Service) noticeText(a audit.Actor, what, ifNotYou string) string {
	if ifNotYou == "" {
		ifNotYou = "reset your password now at " + s.cfg.Issuer + "/forgot-password, then check your security settings"
	}
	return fmt.Sprintf("%s on %s (UK time), from %s.\n\nIf this was not you, %s.",
		what, s.noticeTime(), web.DescribeBrowser(a.UserAgent), ifNotYou)
}

func (s *Service) noticeTime() string { return web.UKTime(s.st.now()) }

// SendNotice emails the account's owner a security notice: what happened
// (what, a sentence without a full stop, such as "Your idlink password was
// changed"), when and from which browser. A notice that cannot be sent
// (provider failure, too many emails) is audited by sendEmail and does not
// undo the change it reports; only an audit failure is returned.
func (s *Service) SendNotice(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, what string) error {
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("security notice: %w", err)
	}
	return s.noticeTo(ctx, a, accountID, acct.Email, kind, s.noticeText(a, what, ""), s.cfg.Issuer+"/account/security")
}

// noticeTo emails text to an address; see SendNotice for failures.
func (s *Service) noticeTo(ctx context.Context, a audit.Actor, accountID, to string, kind notify.Kind, text, link string) error {
	err := s.sendEmail(ctx, a, accountID, to, kind, text, link, false)
	if err != nil && !errors.Is(err, ErrSendFailed) && !errors.Is(err, ErrTooManyEmails) {
		return err
	}
	return nil
}

// textNotice texts a notice to a phone number the account has verified,
// within the sending budgets. A refusal or a provider failure is audited
// and does not undo the change.
func (s *Service) textNotice(ctx context.Context, a audit.Actor, accountID, phone string, kind notify.Kind, text, link string) error {
	client, _ := netip.ParseAddr(a.IP)
	if err := s.sender.SendText(ctx, sending.Text{Purpose: sending.Login, AccountID: accountID, Client: client,
		Message: notify.Message{Channel: notify.SMS, To: phone, Kind: kind, Text: text, Link: link}}); err != nil {
		return s.record(ctx, a, "sms.send_failed", audit.Failure, accountID, map[string]any{"kind": kind, "error": err.Error()})
	}
	return nil
}
