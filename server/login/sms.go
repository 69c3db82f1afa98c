package login

import (
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// SecurityCode is the factor that proves Cd with a 6-digit code texted to
// the account's phone.
type SecurityCode struct {
	remember *RememberedBrowser // nil: no "remember this browser" box
}

// NewSecurityCode returns the texted-code factor; with remember, its page
// offers to remember the browser (then remember proves Cd next time).
func NewSecurityCode(remember *RememberedBrowser) *SecurityCode {
	return &SecurityCode{remember: remember}
}

// smsPages are the code factor's pages for one journey.
type smsPages struct {
	*SecurityCode
	j *Journey
}

const smsName = "sms"

// Name implements Factor.
func (f *SecurityCode) Name() string { return smsName }

// Proves implements Factor: Cd.
func (f *SecurityCode) Proves() trust.Credentials { return trust.Credentials{trust.Cd} }

// Available implements Factor: the account has a mobile number.
func (f *SecurityCode) Available(_ fiber.Ctx, acct account.Account, _ trust.Credentials) bool {
	return acct.PhoneNumber() != ""
}

// Begin implements Factor: texts a code and shows its page.
func (f *SecurityCode) Begin(c fiber.Ctx, j *Journey, acct account.Account) error {
	return smsPages{f, j}.begin(c, acct)
}

func (f smsPages) begin(c fiber.Ctx, acct account.Account) error {
	err := f.j.accounts.SendCode(c.Context(), web.Actor(c), account.PurposeLogin, acct.ID, acct.PhoneNumber(), acct.ID)
	if msg, ok := account.CodeErrorMessage(err); ok {
		v := f.view(acct)
		v.Errors.Add("code", msg)
		return f.j.r.Render(c, http.StatusUnprocessableEntity, "code", v)
	}
	if err != nil {
		return err
	}
	return redirect(c, "/login/code")
}

// Routes implements Factor.
func (f *SecurityCode) Routes(p web.Pages, j *Journey) {
	h := smsPages{f, j}
	p.Get("/login/code", h.page)
	p.Post("/login/code", h.submit)
	p.Post("/login/code/resend", h.resend)
}

func (f smsPages) view(acct account.Account) web.View {
	return web.View{Title: "Enter the security code", BackLink: "/login",
		Data: codeData{SentTo: account.MaskPhone(acct.PhoneNumber()), Action: "/login/code", Resend: "/login/code/resend", Remember: f.remember != nil}}
}

// codeData is what the shared code page shows.
type codeData struct {
	SentTo, Action, Resend string
	Remember               bool
}

func (f smsPages) page(c fiber.Ctx) error {
	acct, ok := f.j.AccountInProgress(c, smsName)
	if !ok {
		return redirect(c, "/login")
	}
	v := f.view(acct)
	v.Notice = factorNotice.Take(c)
	return f.j.r.Render(c, http.StatusOK, "code", v)
}

func (f smsPages) submit(c fiber.Ctx) error {
	acct, ok := f.j.AccountInProgress(c, smsName)
	if !ok {
		return redirect(c, "/login")
	}
	v := f.view(acct)
	code, valid := account.ParseCode(c.FormValue("code"))
	if !valid {
		v.Errors.Add("code", "Enter the 6-digit security code")
		return f.j.r.Render(c, http.StatusUnprocessableEntity, "code", v)
	}
	// The code is used when the session that records what it proved is
	// saved, in the same transaction: a login that cannot be saved leaves
	// the code usable for the next try.
	use, err := f.j.accounts.CheckCode(c.Context(), web.Actor(c), account.PurposeLogin, acct.ID, code, acct.ID)
	if msg, ok := account.CodeErrorMessage(err); ok {
		v.Errors.Add("code", msg)
		return f.j.r.Render(c, http.StatusUnprocessableEntity, "code", v)
	}
	if err != nil {
		return err
	}
	web.Sess(c).InSave(use)
	if f.remember != nil && c.FormValue("remember") == "yes" {
		if err := f.remember.rememberBrowser(c, f.j, acct); err != nil {
			return err
		}
	}
	return f.j.Proved(c, trust.Cd)
}

func (f smsPages) resend(c fiber.Ctx) error {
	acct, ok := f.j.AccountInProgress(c, smsName)
	if !ok {
		return redirect(c, "/login")
	}
	v := f.view(acct)
	err := f.j.accounts.SendCode(c.Context(), web.Actor(c), account.PurposeLogin, acct.ID, acct.PhoneNumber(), acct.ID)
	if msg, ok := account.CodeErrorMessage(err); ok {
		v.Errors.Add("code", msg)
		return f.j.r.Render(c, http.StatusUnprocessableEntity, "code", v)
	}
	if err != nil {
		return err
	}
	v.Notice = "We have sent a new security code. Codes sent earlier no longer work."
	return f.j.r.Render(c, http.StatusOK, "code", v)
}
