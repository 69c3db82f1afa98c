package account

import (
	"context"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/web"
)

// ResetHook is told when a password reset completes, so that what the old
// password let in (remembered browsers) is forgotten too.
type ResetHook interface {
	PasswordReset(ctx context.Context, a audit.Actor, accountID string) error
}

// resetState is the password-reset journey's state: the link has been used
// (AccountID), then the phone code (CodeOK), then a new password is set.
type resetState struct {
	AccountID string `json:"account_id"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
	CodeOK    bool   `json:"code_ok,omitempty"`
}

const resetKey = "reset"

func loadReset(c fiber.Ctx) (resetState, bool) {
	var st resetState
	ok := web.Sess(c).Get(resetKey, &st) && st.AccountID != ""
	return st, ok
}

func (h *Handlers) forgotPage(c fiber.Ctx) error {
	return h.page(c, "forgot_password", web.View{Title: "Reset your password", BackLink: "/login"})
}

func (h *Handlers) forgotSubmit(c fiber.Ctx) error {
	raw := c.FormValue("email")
	v := web.View{Title: "Reset your password", BackLink: "/login", Values: map[string]string{"email": raw}}
	email, err := ParseEmail(raw)
	if err != nil {
		v.Errors.Add("email", "Enter an email address in the correct format, like name@example.com")
		return h.page(c, "forgot_password", v)
	}
	err = h.svc.RequestReset(c.Context(), web.Actor(c), email)
	if msg, ok := emailError(err); ok {
		v.Errors.Add("email", msg)
		return h.page(c, "forgot_password", v)
	}
	if err != nil {
		return err
	}
	return h.page(c, "reset_sent", web.View{Title: "Check your email", Data: email})
}

func (h *Handlers) resetLinkInvalid(c fiber.Ctx) error {
	return h.r.Render(c, http.StatusGone, "link_invalid", web.View{Title: "This link has expired or has already been used", Data: "/forgot-password"})
}

func (h *Handlers) resetVerifyPage(c fiber.Ctx) error {
	token := c.Query("token")
	if err := h.svc.CheckResetLink(c.Context(), token); err != nil {
		if errors.Is(err, ErrLinkInvalid) {
			return h.resetLinkInvalid(c)
		}
		return err
	}
	return h.page(c, "reset_verify", web.View{Title: "Reset your password", Data: token})
}

func (h *Handlers) resetVerifySubmit(c fiber.Ctx) error {
	acct, err := h.svc.UseResetLink(c.Context(), web.Actor(c), c.FormValue("token"))
	if errors.Is(err, ErrLinkInvalid) {
		return h.resetLinkInvalid(c)
	}
	if err != nil {
		return err
	}
	st := resetState{AccountID: acct.ID, Email: acct.Email, Phone: acct.PhoneNumber()}
	web.Sess(c).Renew()
	web.Sess(c).Put(resetKey, st)
	if st.Phone == "" {
		// No phone was ever confirmed: the email link alone is the proof, as
		// it was all the account had.
		st.CodeOK = true
		web.Sess(c).Put(resetKey, st)
		return redirect(c, "/reset-password/new")
	}
	return h.codes.Send(c, h.resetCode, CodeTarget{AccountID: acct.ID, Phone: st.Phone})
}

// resetCodeFlow is the password reset's use of the security-code page.
func (h *Handlers) resetCodeFlow() *CodeFlow {
	return &CodeFlow{
		Purpose: PurposeReset, Path: "/reset-password/code", Restart: "/reset-password/new",
		Target: func(c fiber.Ctx) (CodeTarget, bool) {
			st, ok := loadReset(c)
			return CodeTarget{AccountID: st.AccountID, Phone: st.Phone}, ok && !st.CodeOK
		},
		Proved: func(c fiber.Ctx, t CodeTarget) error {
			st, _ := loadReset(c)
			st.CodeOK = true
			web.Sess(c).Put(resetKey, st)
			return redirect(c, "/reset-password/new")
		},
		Stop: func(c fiber.Ctx) { web.Sess(c).Delete(resetKey) },
	}
}

func (h *Handlers) resetNewPage(c fiber.Ctx) error {
	st, ok := loadReset(c)
	if !ok {
		return redirect(c, "/forgot-password")
	}
	if !st.CodeOK {
		return redirect(c, "/reset-password/code")
	}
	return h.page(c, "reset_new", web.View{Title: "Create a new password"})
}

func (h *Handlers) resetNewSubmit(c fiber.Ctx) error {
	st, ok := loadReset(c)
	if !ok {
		return redirect(c, "/forgot-password")
	}
	if !st.CodeOK {
		return redirect(c, "/reset-password/code")
	}
	v := web.View{Title: "Create a new password"}
	hash, problem, err := h.newPassword(c, st.Email, "Enter a new password")
	if err != nil {
		return err
	}
	if problem != "" {
		v.Errors.Add("password", problem)
		return h.page(c, "reset_new", v)
	}
	if err := h.svc.SetNewPassword(c.Context(), web.Actor(c), st.AccountID, hash); err != nil {
		return err
	}
	s := web.Sess(c)
	if _, err := h.sessions.EndAccountSessions(c.Context(), st.AccountID, h.sessions.HashOf(s)); err != nil {
		return err
	}
	if h.onReset != nil {
		if err := h.onReset.PasswordReset(c.Context(), web.Actor(c), st.AccountID); err != nil {
			return err
		}
	}
	s.Delete(resetKey)
	return h.page(c, "reset_done", web.View{Title: "Your password has been changed"})
}
