package account

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// signupState is the signup journey's server-side state: what has been
// given so far, so no step can be skipped by typing a URL.
type signupState struct {
	Email        string `json:"email,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	SignupID     string `json:"signup_id,omitempty"`
	Sent         bool   `json:"sent,omitempty"`
	AccountID    string `json:"account_id,omitempty"`
	Phone        string `json:"phone,omitempty"`
	// PasswordHere records that the password was typed in this browser
	// session, so completing the signup here also proves Cp.
	PasswordHere bool `json:"password_here,omitempty"`
	// PasswordProven records that the registration's password was typed
	// at the login page to resume it.
	PasswordProven bool `json:"password_proven,omitempty"`
}

const signupKey = "signup"

func loadSignup(c fiber.Ctx) signupState {
	var st signupState
	web.Sess(c).Get(signupKey, &st)
	return st
}

func saveSignup(c fiber.Ctx, st signupState) { web.Sess(c).Put(signupKey, st) }

// where sends the person to the furthest step their state allows.
func where(st signupState) string {
	switch {
	case st.AccountID != "" && st.Phone != "":
		return "/create-account/code"
	case st.AccountID != "":
		return "/create-account/phone"
	case st.Sent:
		return "/create-account/check-email"
	case st.PasswordHash != "":
		return "/create-account/terms"
	case st.Email != "":
		return "/create-account/password"
	}
	return "/create-account/email"
}

// finished reports whether the browser is signed in: the pages of a
// finished journey (Back after creating an account) send the person to
// their account instead of asking again.
func finished(c fiber.Ctx) bool {
	s := web.Sess(c)
	var auth json.RawMessage
	return s.AccountID() != "" && s.Get(web.SignedInKey, &auth)
}

func (h *Handlers) startSignup(c fiber.Ctx) error {
	if finished(c) {
		return redirect(c, "/account")
	}
	web.Sess(c).Delete(signupKey)
	return redirect(c, "/create-account/email")
}

func (h *Handlers) emailPage(c fiber.Ctx) error {
	if finished(c) {
		return redirect(c, "/account")
	}
	st := loadSignup(c)
	if st.AccountID != "" {
		return redirect(c, where(st))
	}
	return h.page(c, "signup_email", web.View{Title: "What is your email address?", BackLink: "/",
		Values: map[string]string{"email": st.Email}})
}

func (h *Handlers) emailSubmit(c fiber.Ctx) error {
	st := loadSignup(c)
	if st.AccountID != "" {
		return redirect(c, where(st))
	}
	raw := c.FormValue("email")
	v := web.View{Title: "What is your email address?", BackLink: "/", Values: map[string]string{"email": raw}}
	email, err := ParseEmail(raw)
	if err != nil {
		if raw == "" {
			v.Errors.Add("email", "Enter your email address")
		} else {
			v.Errors.Add("email", "Enter an email address in the correct format, like name@example.com")
		}
		return h.page(c, "signup_email", v)
	}
	// A new address starts the journey again from here.
	saveSignup(c, signupState{Email: email})
	return redirect(c, "/create-account/password")
}

func (h *Handlers) passwordPage(c fiber.Ctx) error {
	if finished(c) {
		return redirect(c, "/account")
	}
	st := loadSignup(c)
	if st.Email == "" || st.AccountID != "" {
		return redirect(c, where(st))
	}
	return h.page(c, "signup_password", web.View{Title: "Create a password", BackLink: "/create-account/email"})
}

func (h *Handlers) passwordSubmit(c fiber.Ctx) error {
	st := loadSignup(c)
	if st.Email == "" || st.AccountID != "" {
		return redirect(c, where(st))
	}
	v := web.View{Title: "Create a password", BackLink: "/create-account/email"}
	hash, problem, err := h.newPassword(c, st.Email, "Enter a password")
	if err != nil {
		return err
	}
	if problem != "" {
		v.Errors.Add("password", problem)
		return h.page(c, "signup_password", v)
	}
	st.PasswordHash, st.Sent, st.SignupID = hash, false, ""
	saveSignup(c, st)
	return redirect(c, "/create-account/terms")
}

func (h *Handlers) termsPage(c fiber.Ctx) error {
	if finished(c) {
		return redirect(c, "/account")
	}
	st := loadSignup(c)
	if st.PasswordHash == "" || st.AccountID != "" {
		return redirect(c, where(st))
	}
	return h.page(c, "signup_terms", web.View{Title: "Accept the terms of use", BackLink: "/create-account/password", Data: h.svc.cfg.TermsVersion})
}

func (h *Handlers) termsSubmit(c fiber.Ctx) error {
	st := loadSignup(c)
	if st.PasswordHash == "" || st.AccountID != "" {
		return redirect(c, where(st))
	}
	v := web.View{Title: "Accept the terms of use", BackLink: "/create-account/password", Data: h.svc.cfg.TermsVersion}
	if c.FormValue("terms") != "accept" {
		v.Errors.Add("terms", "Select that you accept the terms of use to continue")
		return h.page(c, "signup_terms", v)
	}
	if st.Sent { // a refresh or a second tab: do not register twice
		return redirect(c, "/create-account/check-email")
	}
	id, err := h.svc.StartSignup(c.Context(), web.Actor(c), st.Email, st.PasswordHash)
	if msg, ok := emailError(err); ok {
		st.SignupID = id
		saveSignup(c, st)
		v.Errors.Add("terms", msg)
		return h.page(c, "signup_terms", v)
	}
	if err != nil {
		return err
	}
	st.SignupID, st.Sent = id, true
	saveSignup(c, st)
	return redirect(c, "/create-account/check-email")
}

func (h *Handlers) checkEmailPage(c fiber.Ctx) error {
	st := loadSignup(c)
	if !st.Sent || st.AccountID != "" {
		return redirect(c, where(st))
	}
	return h.page(c, "signup_check_email", web.View{Title: "Check your email", Data: st.Email})
}

func (h *Handlers) resendSubmit(c fiber.Ctx) error {
	st := loadSignup(c)
	if !st.Sent || st.AccountID != "" {
		return redirect(c, where(st))
	}
	v := web.View{Title: "Check your email", Data: st.Email}
	err := h.svc.ResendSignup(c.Context(), web.Actor(c), st.SignupID, st.Email)
	if errors.Is(err, ErrLinkInvalid) {
		// The registration was completed or purged meanwhile: start again.
		web.Sess(c).Delete(signupKey)
		return h.r.ErrorPage(c, http.StatusConflict, "You need to start again", "This registration can no longer be completed. Create your account again, or log in if you already finished it.")
	}
	if msg, ok := emailError(err); ok {
		v.Errors.Add("resend", msg)
		return h.page(c, "signup_check_email", v)
	}
	if err != nil {
		return err
	}
	v.Notice = "We have sent the email again. Links in earlier emails no longer work."
	return h.page(c, "signup_check_email", v)
}

// ResumePending shows the "check your email" page to someone who logged in
// with the password of a registration whose link they have not followed.
func ResumePending(c fiber.Ctx, signupID, email string) error {
	saveSignup(c, signupState{Email: email, SignupID: signupID, Sent: true, PasswordProven: true})
	return redirect(c, "/create-account/check-email")
}

// ResumePhone continues an account that has a verified email address but
// no mobile number yet; the person has just typed their password.
func ResumePhone(c fiber.Ctx, accountID string) error {
	web.Sess(c).Renew()
	saveSignup(c, signupState{AccountID: accountID, PasswordHere: true})
	return redirect(c, "/create-account/phone")
}

func (h *Handlers) verifyPage(c fiber.Ctx) error {
	token := c.Query("token")
	if err := h.svc.CheckSignupLink(c.Context(), token); err != nil {
		if errors.Is(err, ErrLinkInvalid) {
			return h.r.Render(c, http.StatusGone, "link_invalid", web.View{Title: "This link has expired or has already been used", Data: "/create-account"})
		}
		return err
	}
	return h.page(c, "signup_verify", web.View{Title: "Confirm your email address", Data: token})
}

func (h *Handlers) verifySubmit(c fiber.Ctx) error {
	token := c.FormValue("token")
	acct, signupID, err := h.svc.CompleteSignupLink(c.Context(), web.Actor(c), token)
	switch {
	case errors.Is(err, ErrLinkInvalid):
		return h.r.Render(c, http.StatusGone, "link_invalid", web.View{Title: "This link has expired or has already been used", Data: "/create-account"})
	case errors.Is(err, ErrEmailTaken):
		return h.r.Render(c, http.StatusConflict, "error", web.View{Title: "You already have an account",
			Data: "An account with this email address already exists. Log in, or reset your password if you have forgotten it."})
	case err != nil:
		return err
	}
	prev := loadSignup(c)
	web.Sess(c).Renew()
	saveSignup(c, signupState{AccountID: acct.ID, PasswordHere: prev.SignupID == signupID && (prev.PasswordHash != "" || prev.PasswordProven)})
	return redirect(c, "/create-account/phone")
}

func (h *Handlers) phonePage(c fiber.Ctx) error {
	st := loadSignup(c)
	if st.AccountID == "" {
		return redirect(c, where(st))
	}
	return h.page(c, "signup_phone", web.View{Title: "Enter your mobile phone number", Values: map[string]string{"phone": st.Phone}})
}

func (h *Handlers) phoneSubmit(c fiber.Ctx) error {
	st := loadSignup(c)
	if st.AccountID == "" {
		return redirect(c, where(st))
	}
	raw := c.FormValue("phone")
	v := web.View{Title: "Enter your mobile phone number", Values: map[string]string{"phone": raw}}
	phone, err := h.svc.ParsePhone(raw)
	if err != nil {
		switch {
		case raw == "":
			v.Errors.Add("phone", "Enter your mobile phone number")
		case errors.Is(err, ErrPhoneCountry):
			v.Errors.Add("phone", "Enter a UK mobile phone number. We cannot send security codes to this country.")
		default:
			v.Errors.Add("phone", "Enter a mobile phone number, like 07700 900 982")
		}
		return h.page(c, "signup_phone", v)
	}
	st.Phone = phone
	saveSignup(c, st)
	return h.codes.Send(c, h.signupCode, CodeTarget{AccountID: st.AccountID, Phone: phone, Subject: SignupSubject(st.AccountID, phone)})
}

// signupCodeFlow is the sign-up's use of the security-code page.
func (h *Handlers) signupCodeFlow() *CodeFlow {
	return &CodeFlow{
		Purpose: PurposeSignup, Path: "/create-account/code", BackLink: "/create-account/phone", Restart: "/create-account/phone",
		Target: func(c fiber.Ctx) (CodeTarget, bool) {
			st := loadSignup(c)
			return CodeTarget{AccountID: st.AccountID, Phone: st.Phone, Subject: SignupSubject(st.AccountID, st.Phone)},
				st.AccountID != "" && st.Phone != ""
		},
		Proved: func(c fiber.Ctx, t CodeTarget) error {
			st := loadSignup(c)
			if err := h.svc.ConfirmSignupPhone(c.Context(), web.Actor(c), t.AccountID, t.Phone); err != nil {
				return err
			}
			web.Sess(c).Delete(signupKey)
			proven := trust.Credentials{trust.Cd}
			if st.PasswordHere {
				proven = proven.With(trust.Cp)
			}
			return h.signIn.CompleteSignIn(c, t.AccountID, proven)
		},
	}
}
