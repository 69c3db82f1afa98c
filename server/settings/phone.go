package settings

import (
	"errors"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/web"
)

// phoneKey keeps the new mobile number between its page and the code page.
const phoneKey = "phone_change"

func phoneView() web.View {
	return web.View{Title: "Enter your new mobile phone number", BackLink: "/account"}
}

func (h *Handlers) phonePage(c fiber.Ctx) error {
	if _, ok, err := h.recentLogin(c, PhonePath); !ok {
		return err
	}
	return h.show(c, "settings_phone", phoneView())
}

func phoneCodeView(newPhone string) web.View {
	return web.View{Title: "Enter the security code", BackLink: PhonePath,
		Data: account.CodePageData{SentTo: account.MaskPhone(newPhone), Action: PhoneCodePath, Resend: PhoneCodePath + "/resend", Sent: true}}
}

// codeProblem adds the message for a security-code error to v, or returns
// false when err is not one a person can act on.
func codeProblem(v *web.View, err error) bool {
	switch {
	case errors.Is(err, account.ErrSamePhone):
		v.Errors.Add("phone", "This is already your mobile phone number. Enter a different one")
		return true
	}
	if msg, ok := account.CodeErrorMessage(err); ok {
		v.Errors.Add("code", msg)
		return true
	}
	return false
}

func (h *Handlers) phoneSubmit(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PhonePath)
	if !ok {
		return err
	}
	raw := c.FormValue("phone")
	v := phoneView()
	v.Values = map[string]string{"phone": raw}
	newPhone, err := h.d.Accounts.ParsePhone(raw)
	if raw == "" {
		v.Errors.Add("phone", "Enter your new mobile phone number")
	} else if err != nil {
		v.Errors.Add("phone", "Enter a mobile phone number, like 07700 900 982 or +44 7700 900 982")
	}
	if len(v.Errors) > 0 {
		return h.show(c, "settings_phone", v)
	}
	err = h.d.Accounts.SendPhoneChangeCode(c.Context(), web.Actor(c), acct.ID, newPhone)
	if errors.Is(err, account.ErrSamePhone) {
		v.Errors.Add("phone", "This is already your mobile phone number. Enter a different one")
		return h.show(c, "settings_phone", v)
	}
	if msg, ok := account.CodeErrorMessage(err); ok {
		v.Errors.Add("phone", msg)
		return h.show(c, "settings_phone", v)
	}
	if err != nil {
		return err
	}
	web.Sess(c).Put(phoneKey, newPhone)
	return redirectTo(c, PhoneCodePath)
}

func (h *Handlers) pendingPhone(c fiber.Ctx) string {
	var p string
	web.Sess(c).Get(phoneKey, &p)
	return p
}

func (h *Handlers) phoneCodePage(c fiber.Ctx) error {
	if _, ok, err := h.recentLogin(c, PhonePath); !ok {
		return err
	}
	newPhone := h.pendingPhone(c)
	if newPhone == "" {
		return redirectTo(c, PhonePath)
	}
	return h.show(c, "code", phoneCodeView(newPhone))
}

func (h *Handlers) phoneCodeSubmit(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PhonePath)
	if !ok {
		return err
	}
	newPhone := h.pendingPhone(c)
	if newPhone == "" {
		return redirectTo(c, PhonePath)
	}
	v := phoneCodeView(newPhone)
	code, valid := account.ParseCode(c.FormValue("code"))
	if !valid {
		v.Errors.Add("code", "Enter the 6-digit security code")
		return h.show(c, "code", v)
	}
	err = h.d.Accounts.CompletePhoneChange(c.Context(), web.Actor(c), acct.ID, newPhone, code)
	if codeProblem(&v, err) {
		return h.show(c, "code", v)
	}
	if err != nil {
		return err
	}
	web.Sess(c).Delete(phoneKey)
	// A remembered browser skipped the code sent to the old number: it
	// must prove the new one.
	n, err := h.d.Devices.ForgetAllRemembered(c.Context(), acct.ID)
	if err != nil {
		return err
	}
	h.clearRemembered(c)
	if err := h.record(c, "remembered_browser.forgotten_all", audit.Success, acct.ID, map[string]any{"reason": "phone_changed", "count": n}); err != nil {
		return err
	}
	if h.d.PhoneMatch != nil {
		if err := h.d.PhoneMatch.ResetPhoneMatch(c.Context(), acct.ID); err != nil {
			return err
		}
	}
	return h.doneTo(c, "Your mobile phone number has been changed. We have sent a message to your old number.", "/account")
}

func (h *Handlers) phoneCodeResend(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PhonePath)
	if !ok {
		return err
	}
	newPhone := h.pendingPhone(c)
	if newPhone == "" {
		return redirectTo(c, PhonePath)
	}
	v := phoneCodeView(newPhone)
	err = h.d.Accounts.SendPhoneChangeCode(c.Context(), web.Actor(c), acct.ID, newPhone)
	if codeProblem(&v, err) {
		return h.show(c, "code", v)
	}
	if err != nil {
		return err
	}
	v.Notice = "We have sent a new security code. Codes sent earlier no longer work."
	return h.show(c, "code", v)
}

// ---- the link sent to the old number ----

func (h *Handlers) phoneCancelPage(c fiber.Ctx) error {
	token := c.Query("token")
	if err := h.d.Accounts.CheckPhoneCancelLink(c.Context(), token); err != nil {
		if errors.Is(err, account.ErrLinkInvalid) {
			return h.linkInvalid(c, "/login")
		}
		return err
	}
	return h.show(c, "settings_phone_cancel", web.View{Title: "Undo the change of mobile phone number", Data: token})
}

func (h *Handlers) phoneCancelSubmit(c fiber.Ctx) error {
	acct, err := h.d.Accounts.CancelPhoneChange(c.Context(), web.Actor(c), c.FormValue("token"))
	if errors.Is(err, account.ErrLinkInvalid) {
		return h.linkInvalid(c, "/login")
	}
	if err != nil {
		return err
	}
	// Whoever changed the number may be signed in: end every session and
	// forget every remembered browser.
	if _, err := h.d.Sessions.EndAccountSessions(c.Context(), acct.ID, ""); err != nil {
		return err
	}
	n, err := h.d.Devices.ForgetAllRemembered(c.Context(), acct.ID)
	if err != nil {
		return err
	}
	if err := h.record(c, "remembered_browser.forgotten_all", audit.Success, acct.ID, map[string]any{"reason": "phone_change_cancelled", "count": n}); err != nil {
		return err
	}
	if h.d.PhoneMatch != nil {
		if err := h.d.PhoneMatch.ResetPhoneMatch(c.Context(), acct.ID); err != nil {
			return err
		}
	}
	web.Sess(c).Destroy()
	return h.show(c, "settings_phone_cancelled", web.View{Title: "The change of mobile phone number has been undone"})
}
