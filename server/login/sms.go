package login

import (
	"context"
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// smsFactor proves Cd with a 6-digit code texted to the account's phone.
type smsFactor struct{ j *Journey }

const smsName = "sms"

func (f *smsFactor) Name() string             { return smsName }
func (f *smsFactor) Proves() trust.Credential { return trust.Cd }

func (f *smsFactor) Available(_ context.Context, acct account.Account) bool {
	return acct.PhoneNumber() != ""
}

func (f *smsFactor) Begin(c fiber.Ctx, acct account.Account) error {
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

func (f *smsFactor) Register(p web.Pages) {
	p.Get("/login/code", f.page)
	p.Post("/login/code", f.submit)
	p.Post("/login/code/resend", f.resend)
}

func (f *smsFactor) view(acct account.Account) web.View {
	return web.View{Title: "Enter the security code", BackLink: "/login",
		Data: codeData{SentTo: account.MaskPhone(acct.PhoneNumber()), Action: "/login/code", Resend: "/login/code/resend", Remember: f.j.remember != nil}}
}

// codeData is what the shared code page shows.
type codeData struct {
	SentTo, Action, Resend string
	Remember               bool
}

func (f *smsFactor) page(c fiber.Ctx) error {
	acct, ok := f.j.AccountInProgress(c, smsName)
	if !ok {
		return redirect(c, "/login")
	}
	v := f.view(acct)
	v.Notice = takeNotice(c)
	return f.j.r.Render(c, http.StatusOK, "code", v)
}

func (f *smsFactor) submit(c fiber.Ctx) error {
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
	if f.j.remember != nil && c.FormValue("remember") == "yes" {
		if err := f.j.remember.rememberBrowser(c, acct); err != nil {
			return err
		}
	}
	return f.j.Proved(c, trust.Cd)
}

func (f *smsFactor) resend(c fiber.Ctx) error {
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
