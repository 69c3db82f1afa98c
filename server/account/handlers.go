package account

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// SignIn completes a sign-in for an account whose credentials were just
// proven; the login capability implements it and decides where the person
// goes next.
type SignIn interface {
	CompleteSignIn(c fiber.Ctx, accountID string, proven trust.Credentials) error
}

// Activity lists an account's recent audit events for the account page.
type Activity interface {
	ForAccount(ctx context.Context, accountID string, limit int) ([]audit.Event, error)
}

// SessionEnder ends every other session of an account (after a password
// reset).
type SessionEnder interface {
	EndAccountSessions(ctx context.Context, accountID, keepHash string) (int64, error)
	HashOf(s *web.Session) string
}

// Handlers serves the account pages: creating an account, resetting a
// password, and the account page.
type Handlers struct {
	svc      *Service
	r        *web.Renderer
	signIn   SignIn
	activity Activity
	sessions SessionEnder
	onReset  ResetHook // nil: nothing else runs after a reset
	// codes is the one security-code page; signupCode and resetCode are
	// this package's uses of it (login has its own).
	codes                 *CodePages
	signupCode, resetCode *CodeFlow
}

// HandlerDeps are what the account pages are built from.
type HandlerDeps struct {
	Service  *Service
	Renderer *web.Renderer
	// SignIn signs a new account in (the login capability).
	SignIn   SignIn
	Activity Activity
	Sessions SessionEnder
	// OnReset, when set, runs after a password reset (forgetting
	// remembered browsers, revoking grants).
	OnReset ResetHook
}

// NewHandlers returns the account pages.
func NewHandlers(d HandlerDeps) *Handlers {
	h := &Handlers{svc: d.Service, r: d.Renderer, signIn: d.SignIn, activity: d.Activity, sessions: d.Sessions, onReset: d.OnReset,
		codes: NewCodePages(d.Service, d.Renderer)}
	h.signupCode, h.resetCode = h.signupCodeFlow(), h.resetCodeFlow()
	return h
}

// Register mounts the account pages.
func (h *Handlers) Register(p web.Pages) {
	p.Get("/create-account", h.startSignup)
	p.Get("/create-account/email", h.emailPage)
	p.Post("/create-account/email", h.emailSubmit)
	p.Get("/create-account/password", h.passwordPage)
	p.Post("/create-account/password", h.passwordSubmit)
	p.Get("/create-account/terms", h.termsPage)
	p.Post("/create-account/terms", h.termsSubmit)
	p.Get("/create-account/check-email", h.checkEmailPage)
	p.Post("/create-account/resend", h.resendSubmit)
	p.Get("/create-account/verify", h.verifyPage)
	p.Post("/create-account/verify", h.verifySubmit)
	p.Get("/create-account/phone", h.phonePage)
	p.Post("/create-account/phone", h.phoneSubmit)
	h.codes.Register(p, h.signupCode)
	p.Get("/terms", h.terms)

	p.Get("/forgot-password", h.forgotPage)
	p.Post("/forgot-password", h.forgotSubmit)
	p.Get("/reset-password/verify", h.resetVerifyPage)
	p.Post("/reset-password/verify", h.resetVerifySubmit)
	h.codes.Register(p, h.resetCode)
	p.Get("/reset-password/new", h.resetNewPage)
	p.Post("/reset-password/new", h.resetNewSubmit)

	p.Get("/account", h.accountPage)
}

// ---- shared bits ----

func redirect(c fiber.Ctx, to string) error { return c.Redirect().Status(http.StatusSeeOther).To(to) }

func (h *Handlers) page(c fiber.Ctx, name string, v web.View) error {
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return h.r.Render(c, status, name, v)
}

// codeError turns a security-code error into the message a person sees.
func codeError(err error) (string, bool) {
	var wrong *WrongCodeError
	switch {
	case errors.As(err, &wrong):
		if wrong.TriesLeft == 1 {
			return "The security code is not right. You have 1 more try.", true
		}
		return "The security code is not right. Check it and try again.", true
	case errors.Is(err, ErrCodeExpired):
		return "This security code has expired or has been used. Ask for a new code.", true
	}
	return "", false
}

// CodeErrorMessage turns an error from sending or checking a security code
// into the message a person sees, for pages outside the security-code
// page (changing the mobile number).
func CodeErrorMessage(err error) (string, bool) {
	if msg, ok := codeError(err); ok {
		return msg, true
	}
	var send *CodeSendError
	switch {
	case errors.As(err, &send) && send.Limited && !send.RetryAt.IsZero():
		return "You have asked for too many security codes. You can ask again after " + ukTime(send.RetryAt) + ".", true
	case errors.Is(err, ErrTooManyCodes):
		return "You have asked for too many security codes. Wait a while and try again.", true
	case errors.Is(err, ErrSendFailed):
		return "We could not send the security code. Try again.", true
	case errors.Is(err, ErrPhoneCountry):
		return "Enter a UK mobile phone number. We cannot send security codes to this country.", true
	case errors.Is(err, ErrTooManyGuesses):
		return "You have entered too many wrong security codes. Wait an hour and try again.", true
	}
	return "", false
}

// emailError turns an error from sending email into a message.
func emailError(err error) (string, bool) {
	switch {
	case errors.Is(err, ErrTooManyEmails):
		var l *EmailLimitError
		if errors.As(err, &l) && !l.RetryAt.IsZero() {
			return "We have sent too many emails to this address. You can try again after " + ukTime(l.RetryAt) + ".", true
		}
		return "We have sent too many emails to this address. Wait a while and try again.", true
	case errors.Is(err, ErrSendFailed):
		return "We could not send the email. Try again.", true
	}
	return "", false
}

func validCode(raw string) (string, bool) {
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(raw))
	if len(code) != CodeLength {
		return code, false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return code, false
		}
	}
	return code, true
}

// ---- account page ----

func (h *Handlers) accountPage(c fiber.Ctx) error {
	s := web.Sess(c)
	id := web.SignedInAccount(s)
	if id == "" {
		return redirect(c, "/login")
	}
	acct, err := h.svc.Account(c.Context(), id)
	if errors.Is(err, ErrNotFound) {
		s.Destroy()
		return redirect(c, "/login")
	}
	if err != nil {
		return err
	}
	events, err := h.activity.ForAccount(c.Context(), acct.ID, 10)
	if err != nil {
		return err
	}
	var notice string
	if s.Get(NoticeKey, &notice) {
		s.Delete(NoticeKey)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.page(c, "account", web.View{Title: "Your account", Notice: notice, Data: accountView{Account: acct, Events: events}})
}

// NoticeKey is the session key of a one-time notice for the account page,
// left by the pages that change the account's details.
const NoticeKey = "account_notice"

type accountView struct {
	Account Account
	Events  []audit.Event
}

// LevelWords says in words how well the person has proved who they are.
// The level codes (P0, P5, P9) are for relying parties' developers
// (docs/relying-parties.md), never shown to the person.
func (v accountView) LevelWords() string {
	switch v.Account.ProofingLevel {
	case "P9":
		return "You have fully proved who you are"
	case "P5":
		return "Your details match your NHS record, but you have not fully proved who you are"
	}
	return "You have not proved who you are yet"
}

// From says where an event came from: the browser, in words.
func (accountView) From(ev audit.Event) string {
	if ev.UserAgent == "" {
		return ""
	}
	return "from " + web.DescribeBrowser(ev.UserAgent)
}

// Describe says what an audit event means, in plain English, and whether
// it worked. Events with no words of their own say only that something
// changed, never the internal name.
func (accountView) Describe(ev audit.Event) string {
	if d, ok := eventWords[ev.Type]; ok {
		if ev.Outcome == audit.Failure && d[1] != "" {
			return d[1]
		}
		return d[0]
	}
	if ev.Outcome == audit.Failure {
		return "Something on your account did not work"
	}
	return "Your account was updated"
}

var eventWords = map[string][2]string{
	"login.password":           {"Password entered", "Wrong password entered"},
	"login.completed":          {"Logged in", "Login did not complete"},
	"code.sent":                {"Security code sent", "Security code could not be sent"},
	"code.verified":            {"Security code entered", ""},
	"code.wrong":               {"Wrong security code entered", "Wrong security code entered"},
	"code.expired":             {"Expired security code entered", "Expired security code entered"},
	"code.rate_limited":        {"Too many security codes requested", "Too many security codes requested"},
	"code.send_failed":         {"Security code could not be sent", "Security code could not be sent"},
	"email.send_failed":        {"An email to you could not be sent", "An email to you could not be sent"},
	"email.rate_limited":       {"Too many emails requested", "Too many emails requested"},
	"sms.send_failed":          {"A text message to you could not be sent", "A text message to you could not be sent"},
	"account.locked":           {"Account locked for 15 minutes after 5 wrong passwords", ""},
	"account.level_raised":     {"You proved who you are to a higher level", ""},
	"account.blocked":          {"Your account was stopped from logging in", ""},
	"signup.email_verified":    {"Email address confirmed", ""},
	"signup.completed":         {"Account created", ""},
	"reset.requested":          {"Password reset requested", ""},
	"reset.link_used":          {"Password reset link used", ""},
	"reset.completed":          {"Password changed by resetting it", ""},
	"session.signed_out":       {"Signed out", ""},
	"code.guess_limit_reached": {"Logins with a security code stopped after too many wrong codes", "Logins with a security code stopped after too many wrong codes"},

	"password.changed": {"Password changed", ""},
	"password.confirm": {"Current password entered", "Wrong current password entered"},
	// The same words either way: whether an address has an account is
	// told only to that address (as sign-up does).
	"email.change_requested": {"Change of email address requested", "Change of email address requested"},
	"email.changed":          {"Email address changed", "Email address not changed: the address is in use"},
	"phone.changed":          {"Mobile phone number changed", ""},
	"phone.change_cancelled": {"Change of mobile phone number undone", ""},
	"landline.added":         {"Landline number added", ""},
	"landline.changed":       {"Landline number changed", ""},
	"landline.removed":       {"Landline number removed", ""},
	"sharing.stopped":        {"Stopped sharing details with a service", ""},
	"account.closure_warned": {"Told the account will be closed if not used", ""},

	"account.signed_out_everywhere":    {"Signed out of all devices", ""},
	"remembered_browser.added":         {"Browser remembered", ""},
	"remembered_browser.used":          {"Logged in on a remembered browser", ""},
	"remembered_browser.forgotten":     {"Remembered browser removed", ""},
	"remembered_browser.forgotten_all": {"All remembered browsers forgotten", ""},
	"passkey.added":                    {"Passkey added", "Passkey could not be added"},
	"passkey.renamed":                  {"Passkey renamed", ""},
	"passkey.removed":                  {"Passkey removed", ""},
	"passkey.login":                    {"Logged in with a passkey", "Passkey login refused"},
	"passkey.clone_detected":           {"Passkey blocked: it may have been copied", "Passkey blocked: it may have been copied"},
	"device.renamed":                   {"Phone app renamed", ""},
	"device.removed":                   {"Phone app removed", ""},
	"oidc.grants_revoked":              {"Services you had logged in to must ask you to log in again", ""},
	"companion.device_enrolled":        {"Phone app registered", "Phone app registration failed"},
	"companion.device_unregistered":    {"Phone app unregistered", ""},
	"authorize.code_issued":            {"Logged in to a service", ""},
	"authorize.consent_given":          {"Agreed to share details with a service", ""},
	"authorize.consent_declined":       {"Declined to share details with a service", "Declined to share details with a service"},
	"authorize.fido_login":             {"Logged in with the phone app's fingerprint or face", ""},
	"authorize.fido_rejected":          {"Phone app login refused", "Phone app login refused"},

	"identity.pds_match":       {"Your details were matched with your NHS record", "Your details could not be matched with an NHS record"},
	"identity.gp_verified":     {"Your GP surgery details were checked", "Your GP surgery details could not be checked"},
	"identity.photo_submitted": {"Photo ID sent for checking", "Photo ID could not be sent"},
	"identity.login_check":     {"Your NHS record was checked when you logged in", "Your NHS record could not be checked when you logged in"},
	"push.requested":           {"Your phone was asked to approve a login", "Your phone could not be asked to approve a login"},
	"push.approved":            {"A login was approved on your phone", "A login approval on your phone did not work"},
	"push.denied":              {"A login was refused on your phone", "A login was refused on your phone"},
	"push.reported":            {"A login was reported as not you on your phone", "A login was reported as not you on your phone"},
}

// ParseCode reads a 6-digit security code as typed: spaces and hyphens are
// ignored; anything else makes it invalid.
func ParseCode(raw string) (string, bool) { return validCode(raw) }

func (h *Handlers) terms(c fiber.Ctx) error {
	return h.page(c, "terms", web.View{Title: "Terms of use", Data: h.svc.cfg.TermsVersion})
}

// newPassword checks a new password typed into a form and hashes it. When
// the password is not acceptable it returns the message for the field.
func (h *Handlers) newPassword(c fiber.Ctx, email, ifEmpty string) (hash, problem string, err error) {
	pw := c.FormValue("password")
	if pw == "" {
		return "", ifEmpty, nil
	}
	hash, err = h.svc.CheckNewPassword(c.Context(), email, pw)
	if msg, ok := passwordMessage(err); ok {
		return "", msg, nil
	}
	return hash, "", err
}

// passwordMessage is the sentence for a password policy error.
func passwordMessage(err error) (string, bool) {
	if errors.Is(err, password.ErrTooShort) || errors.Is(err, password.ErrTooLong) ||
		errors.Is(err, password.ErrSameAsEmail) || errors.Is(err, password.ErrCommon) {
		return password.Message(err), true
	}
	return "", false
}
