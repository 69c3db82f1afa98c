package settings

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/web"
)

// PhoneMatch forgets whether the mobile number matched one in PDS, so the
// next login's PDS check works it out for the new number (identity).
type PhoneMatch interface {
	ResetPhoneMatch(ctx context.Context, accountID string) error
}

// Sharing is what the person shares with relying parties (oidc).
type Sharing interface {
	SharedWith(ctx context.Context, accountID string) ([]oidc.SharedService, error)
	StopSharing(ctx context.Context, accountID, clientID string) (bool, error)
}

// Closer deletes an account and everything kept about it (closure).
type Closer interface {
	Delete(ctx context.Context, a audit.Actor, accountID string) error
}

// Paths of the pages that change the account's details.
const (
	PasswordPath    = "/account/password"
	EmailPath       = "/account/email"
	EmailVerifyPath = "/account/email/verify"
	PhonePath       = "/account/phone"
	PhoneCodePath   = "/account/phone/code"
	PhoneCancelPath = "/account/phone/cancel"
	LandlinePath    = "/account/landline"
	ServicesPath    = "/account/services"
	DeletePath      = "/account/delete"
)

// RegisterDetails mounts the pages that change the account's details,
// list the services it shares with, and delete it.
func (h *Handlers) RegisterDetails(p web.Pages) {
	p.Get(PasswordPath, h.passwordPage)
	p.Post(PasswordPath, h.passwordSubmit)
	p.Get(EmailPath, h.emailPage)
	p.Post(EmailPath, h.emailSubmit)
	p.Get(EmailVerifyPath, h.emailVerifyPage)
	p.Post(EmailVerifyPath, h.emailVerifySubmit)
	p.Get(PhonePath, h.phonePage)
	p.Post(PhonePath, h.phoneSubmit)
	p.Get(PhoneCodePath, h.phoneCodePage)
	p.Post(PhoneCodePath, h.phoneCodeSubmit)
	p.Post(PhoneCodePath+"/resend", h.phoneCodeResend)
	p.Get(PhoneCancelPath, h.phoneCancelPage)
	p.Post(PhoneCancelPath, h.phoneCancelSubmit)
	p.Get(LandlinePath, h.landlinePage)
	p.Post(LandlinePath, h.landlineSubmit)
	p.Get(ServicesPath, h.servicesPage)
	p.Post(ServicesPath+"/stop", h.stopSharing)
	p.Get(DeletePath, h.deletePage)
	p.Post(DeletePath, h.deleteSubmit)
}

// accountNotice is the session key of the one-time notice the account
// page shows after a change made on these pages.
const accountNotice = account.NoticeKey

func (h *Handlers) show(c fiber.Ctx, page string, v web.View) error {
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return h.d.Renderer.Render(c, status, page, v)
}

func (h *Handlers) doneTo(c fiber.Ctx, msg, to string) error {
	web.Sess(c).Put(accountNotice, msg)
	return redirectTo(c, to)
}

func (h *Handlers) linkInvalid(c fiber.Ctx, again string) error {
	return h.d.Renderer.Render(c, http.StatusGone, "link_invalid", web.View{Title: "This link has expired or has already been used", Data: again})
}

// ---- password ----

func passwordView() web.View {
	return web.View{Title: "Change your password", BackLink: "/account"}
}

func (h *Handlers) passwordPage(c fiber.Ctx) error {
	if _, ok, err := h.signedIn(c, false); !ok {
		return err
	}
	return h.show(c, "settings_password", passwordView())
}

func (h *Handlers) passwordSubmit(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, true)
	if !ok {
		return err
	}
	v := passwordView()
	current, next := c.FormValue("current_password"), c.FormValue("password")
	// Every problem at once, in the order of the fields.
	if current == "" {
		v.Errors.Add("current-password", "Enter your current password")
	} else {
		err := h.d.Accounts.VerifyPassword(c.Context(), web.Actor(c), acct.ID, current)
		switch {
		case errors.Is(err, account.ErrWrongPassword):
			v.Errors.Add("current-password", "Your current password is not right")
		case errors.Is(err, account.ErrLocked):
			v.Errors.Add("current-password", "You have entered the wrong password too many times. Wait 15 minutes and try again.")
		case err != nil:
			return err
		}
	}
	var hash string
	if next == "" {
		v.Errors.Add("new-password", "Enter a new password")
	} else {
		hash, err = h.d.Accounts.NewPasswordHash(c.Context(), acct.ID, next)
		switch {
		case errors.Is(err, account.ErrSamePassword):
			v.Errors.Add("new-password", "Your new password must be different from your current password")
		case errors.Is(err, password.ErrTooShort), errors.Is(err, password.ErrTooLong),
			errors.Is(err, password.ErrSameAsEmail), errors.Is(err, password.ErrCommon):
			v.Errors.Add("new-password", password.Message(err))
		case err != nil:
			return err
		}
	}
	if len(v.Errors) > 0 {
		return h.show(c, "settings_password", v)
	}
	if err := h.d.Accounts.ChangePassword(c.Context(), web.Actor(c), acct.ID, hash); err != nil {
		return err
	}
	if _, err := h.d.Sessions.EndAccountSessions(c.Context(), acct.ID, h.d.Sessions.HashOf(web.Sess(c))); err != nil {
		return err
	}
	return h.doneTo(c, "Your password has been changed. You have been signed out everywhere else.", "/account")
}

// ---- email address ----

func emailView(acct account.Account) web.View {
	return web.View{Title: "Change your email address", BackLink: "/account", Data: acct.Email}
}

func (h *Handlers) emailPage(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, EmailPath)
	if !ok {
		return err
	}
	return h.show(c, "settings_email", emailView(acct))
}

func (h *Handlers) emailSubmit(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, EmailPath)
	if !ok {
		return err
	}
	raw := c.FormValue("email")
	v := emailView(acct)
	v.Values = map[string]string{"email": raw}
	email, err := account.ParseEmail(raw)
	if raw == "" {
		v.Errors.Add("email", "Enter your new email address")
	} else if err != nil {
		v.Errors.Add("email", "Enter an email address in the correct format, like name@example.com")
	}
	if len(v.Errors) > 0 {
		return h.show(c, "settings_email", v)
	}
	err = h.d.Accounts.StartEmailChange(c.Context(), web.Actor(c), acct.ID, email)
	switch {
	case errors.Is(err, account.ErrSameEmail):
		v.Errors.Add("email", "This is already your email address. Enter a different one")
		return h.show(c, "settings_email", v)
	case errors.Is(err, account.ErrTooManyEmails):
		v.Errors.Add("email", "We have sent too many emails to this address. Wait 15 minutes and try again.")
		return h.show(c, "settings_email", v)
	case errors.Is(err, account.ErrSendFailed):
		v.Errors.Add("email", "We could not send the email. Try again.")
		return h.show(c, "settings_email", v)
	case err != nil:
		return err
	}
	return h.show(c, "settings_email_sent", web.View{Title: "Check your email", BackLink: "/account", Data: email})
}

func (h *Handlers) emailVerifyPage(c fiber.Ctx) error {
	token := c.Query("token")
	if err := h.d.Accounts.CheckEmailChangeLink(c.Context(), token); err != nil {
		if errors.Is(err, account.ErrLinkInvalid) {
			return h.linkInvalid(c, EmailPath)
		}
		return err
	}
	return h.show(c, "settings_email_verify", web.View{Title: "Confirm your new email address", Data: token})
}

func (h *Handlers) emailVerifySubmit(c fiber.Ctx) error {
	acct, err := h.d.Accounts.CompleteEmailChange(c.Context(), web.Actor(c), c.FormValue("token"))
	switch {
	case errors.Is(err, account.ErrLinkInvalid):
		return h.linkInvalid(c, EmailPath)
	case errors.Is(err, account.ErrEmailTaken):
		return h.d.Renderer.ErrorPage(c, http.StatusConflict, "Your email address has not been changed",
			"This email address now belongs to another account. Log in and choose a different address.")
	case err != nil:
		return err
	}
	return h.show(c, "settings_email_done", web.View{Title: "Your email address has been changed", Data: acct.Email})
}

// ---- landline ----

func landlineView(acct account.Account) web.View {
	return web.View{Title: "Your landline number", BackLink: "/account",
		Values: map[string]string{"landline": web.NationalPhone(acct.LandlineNumber())}, Data: acct.LandlineNumber() != ""}
}

func (h *Handlers) landlinePage(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, LandlinePath)
	if !ok {
		return err
	}
	return h.show(c, "settings_landline", landlineView(acct))
}

func (h *Handlers) landlineSubmit(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, LandlinePath)
	if !ok {
		return err
	}
	raw := c.FormValue("landline")
	var e164 string
	if c.FormValue("action") != "remove" {
		v := landlineView(acct)
		v.Values = map[string]string{"landline": raw}
		if raw == "" {
			v.Errors.Add("landline", "Enter a UK landline number, like 0161 496 0000")
		} else if e164, err = account.ParseLandline(raw); err != nil {
			v.Errors.Add("landline", "Enter a UK landline number, like 0161 496 0000. For a mobile number, change your mobile phone number instead")
		}
		if len(v.Errors) > 0 {
			return h.show(c, "settings_landline", v)
		}
	}
	if err := h.d.Accounts.SetLandline(c.Context(), web.Actor(c), acct.ID, e164); err != nil {
		return err
	}
	msg := "Your landline number has been saved."
	if e164 == "" {
		msg = "Your landline number has been removed."
	}
	return h.doneTo(c, msg, "/account")
}

// ---- services ----

func (h *Handlers) servicesPage(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, false)
	if !ok {
		return err
	}
	return h.renderServices(c, acct, nil)
}

func (h *Handlers) renderServices(c fiber.Ctx, acct account.Account, errs web.Errors) error {
	shared, err := h.d.Sharing.SharedWith(c.Context(), acct.ID)
	if err != nil {
		return err
	}
	notice := settingsNotice.Take(c)
	return h.show(c, "settings_services", web.View{Title: "Services you have shared details with", BackLink: "/account",
		Errors: errs, Notice: notice, Data: shared})
}

func (h *Handlers) stopSharing(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, true)
	if !ok {
		return err
	}
	clientID := c.FormValue("client_id")
	stopped, err := h.d.Sharing.StopSharing(c.Context(), acct.ID, clientID)
	if err != nil {
		return err
	}
	if !stopped {
		var errs web.Errors
		errs.Add("services", "We could not find that service. You may have stopped sharing with it already.")
		return h.renderServices(c, acct, errs)
	}
	if err := h.record(c, "sharing.stopped", audit.Success, acct.ID, map[string]any{"client_id": clientID}); err != nil {
		return err
	}
	settingsNotice.Set(c, "You have stopped sharing your details with the service. It will ask you again if you use it.")
	return redirectTo(c, ServicesPath)
}

// ---- deleting the account ----

func (h *Handlers) deletePage(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, DeletePath)
	if !ok {
		return err
	}
	return h.show(c, "settings_delete", web.View{Title: "Delete your account", BackLink: "/account", Data: acct.Email})
}

func (h *Handlers) deleteSubmit(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, DeletePath)
	if !ok {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		v := web.View{Title: "Delete your account", BackLink: "/account", Data: acct.Email}
		v.Errors.Add("confirm", "Select that you understand your account will be deleted")
		return h.show(c, "settings_delete", v)
	}
	if err := h.d.Closer.Delete(c.Context(), web.Actor(c), acct.ID); err != nil {
		return err
	}
	web.Sess(c).Destroy()
	h.clearRemembered(c)
	return h.show(c, "settings_deleted", web.View{Title: "Your account has been deleted"})
}

func (h *Handlers) clearRemembered(c fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: login.RememberCookie, Value: "", Path: "/", HTTPOnly: true, Secure: h.d.Secure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
}
