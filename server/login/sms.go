package login

import (
	"context"
	"net/url"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// SecurityCode is the factor that proves Cd with a 6-digit code texted to
// the account's phone, on the one security-code page (account.CodePages).
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
	j     *Journey
	codes *account.CodePages
	flow  *account.CodeFlow
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
	h := f.pages(j)
	return h.codes.Send(c, h.flow, account.CodeTarget{AccountID: acct.ID, Phone: acct.PhoneNumber()})
}

// Routes implements Factor.
func (f *SecurityCode) Routes(p web.Pages, j *Journey) {
	h := f.pages(j)
	h.codes.Register(p, h.flow)
	p.Post("/login/code/other", h.other)
}

// pages is the code factor's use of the security-code page in j.
func (f *SecurityCode) pages(j *Journey) *smsPages {
	h := &smsPages{SecurityCode: f, j: j, codes: account.NewCodePages(j.accounts, j.r)}
	h.flow = &account.CodeFlow{
		Purpose: account.PurposeLogin, Path: "/login/code", BackLink: "/login", Restart: "/login",
		Target: func(c fiber.Ctx) (account.CodeTarget, bool) {
			acct, ok := j.AccountInProgress(c, smsName)
			return account.CodeTarget{AccountID: acct.ID, Phone: acct.PhoneNumber()}, ok
		},
		Remember: func(fiber.Ctx) bool { return f.remember != nil },
		Proved:   h.proved,
		Stop: func(c fiber.Ctx) {
			web.Sess(c).Delete(stateKey)
			j.metrics.JourneysFinished.WithLabelValues("login", "code_guess_limit").Inc()
		},
		Others: h.others,
		Notice: factorNotice.Take,
	}
	return h
}

func (f *smsPages) proved(c fiber.Ctx, t account.CodeTarget) error {
	if f.remember != nil && c.FormValue("remember") == "yes" {
		acct, err := f.j.accounts.Account(c.Context(), t.AccountID)
		if err != nil {
			return err
		}
		if err := f.remember.rememberBrowser(c, f.j, acct); err != nil {
			return err
		}
	}
	return f.j.Proved(c, trust.Cd)
}

// otherWayLabels are the buttons of the factors that can stand in for a
// code when no text can be sent.
var otherWayLabels = map[string]string{
	approveName: "Approve the login with the idlink app on your phone",
	passkeyName: "Log in with a passkey",
}

// others lists what else this account can use now: its app, its
// passkeys (when they would complete this login), and a remembered
// browser elsewhere.
func (f *smsPages) others(c fiber.Ctx, t account.CodeTarget) []account.OtherWay {
	st, ok := f.j.load(c)
	if !ok {
		return nil
	}
	acct, err := f.j.accounts.Account(c.Context(), t.AccountID)
	if err != nil {
		return nil
	}
	var out []account.OtherWay
	for _, g := range f.j.factors {
		label, ok := otherWayLabels[g.Name()]
		if !ok || !helps(st, g) || !g.Available(c, acct, st.Proven) {
			continue
		}
		out = append(out, account.OtherWay{Label: label, Action: "/login/code/other?factor=" + url.QueryEscape(g.Name())})
	}
	if f.remember != nil {
		if lister, ok := f.remember.store.(interface {
			ListRemembered(ctx context.Context, accountID string) ([]device.RememberedBrowser, error)
		}); ok {
			if bs, err := lister.ListRemembered(c.Context(), acct.ID); err == nil && len(bs) > 0 {
				out = append(out, account.OtherWay{Label: "If you log in on a browser you asked us to remember, you will not need a code there."})
			}
		}
	}
	return out
}

// helps reports whether g proves something a wanted set still misses.
func helps(st state, g Factor) bool {
	for _, want := range st.Want {
		for _, missing := range st.Proven.Missing(want) {
			if g.Proves().Has(missing) {
				return true
			}
		}
	}
	return false
}

// other moves the login from the code to another factor the page
// offered.
func (f *smsPages) other(c fiber.Ctx) error {
	acct, ok := f.j.AccountInProgress(c, smsName)
	if !ok {
		return redirect(c, "/login")
	}
	name := c.Query("factor")
	if _, offered := otherWayLabels[name]; !offered {
		return redirect(c, "/login/code")
	}
	account.ForgetCodeStatus(c, account.PurposeLogin)
	return f.j.switchFactor(c, acct, name)
}
