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

// smsFactor proves Cd with a 6-digit code texted to the account's phone,
// on the one security-code page (account.CodePages).
type smsFactor struct {
	j     *Journey
	codes *account.CodePages
	flow  *account.CodeFlow
}

const smsName = "sms"

func newSMSFactor(j *Journey) *smsFactor {
	f := &smsFactor{j: j, codes: account.NewCodePages(j.accounts, j.r)}
	f.flow = &account.CodeFlow{
		Purpose: account.PurposeLogin, Path: "/login/code", BackLink: "/login", Restart: "/login",
		Target: func(c fiber.Ctx) (account.CodeTarget, bool) {
			acct, ok := j.AccountInProgress(c, smsName)
			return account.CodeTarget{AccountID: acct.ID, Phone: acct.PhoneNumber()}, ok
		},
		Remember: func(fiber.Ctx) bool { return j.remember != nil },
		Proved:   f.proved,
		Stop: func(c fiber.Ctx) {
			web.Sess(c).Delete(stateKey)
			j.metrics.JourneysFinished.WithLabelValues("login", "code_guess_limit").Inc()
		},
		Others: f.others,
		Notice: takeNotice,
	}
	return f
}

func (f *smsFactor) Name() string             { return smsName }
func (f *smsFactor) Proves() trust.Credential { return trust.Cd }

func (f *smsFactor) Available(_ context.Context, acct account.Account) bool {
	return acct.PhoneNumber() != ""
}

func (f *smsFactor) Begin(c fiber.Ctx, acct account.Account) error {
	return f.codes.Send(c, f.flow, account.CodeTarget{AccountID: acct.ID, Phone: acct.PhoneNumber()})
}

func (f *smsFactor) Register(p web.Pages) {
	f.codes.Register(p, f.flow)
	p.Post("/login/code/other", f.other)
}

func (f *smsFactor) proved(c fiber.Ctx, t account.CodeTarget) error {
	if f.j.remember != nil && c.FormValue("remember") == "yes" {
		acct, err := f.j.accounts.Account(c.Context(), t.AccountID)
		if err != nil {
			return err
		}
		if err := f.j.remember.rememberBrowser(c, acct); err != nil {
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
func (f *smsFactor) others(c fiber.Ctx, t account.CodeTarget) []account.OtherWay {
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
		if !ok || !f.helps(st, g) || !f.j.available(c, g, st, acct) {
			continue
		}
		out = append(out, account.OtherWay{Label: label, Action: "/login/code/other?factor=" + url.QueryEscape(g.Name())})
	}
	if f.j.remember != nil {
		if lister, ok := f.j.remember.store.(interface {
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
func (f *smsFactor) helps(st state, g Factor) bool {
	for _, want := range st.Want {
		for _, missing := range st.Proven.Missing(want) {
			if proves(g, missing) {
				return true
			}
		}
	}
	return false
}

// other moves the login from the code to another factor the page
// offered.
func (f *smsFactor) other(c fiber.Ctx) error {
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
