package settings

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/web"
)

// recentLogin returns the signed-in account when the session's login
// proved a second factor (or a passkey) within Deps.RecentLogin. Otherwise
// it answers the request by asking for the password and a second factor,
// or a passkey, again (whatever the session proved before), with the
// person brought back to returnTo afterwards, and ok is false. Adding or
// removing a way in, changing contact details and deleting the account
// go through it; it reads the auth time the login journey stored and adds
// no login path of its own.
//
// A form posted by a session without a second factor is refused with a
// page, as every settings change is.
func (h *Handlers) recentLogin(c fiber.Ctx, returnTo string) (account.Account, bool, error) {
	a, ok := h.d.Login.Current(c)
	if c.Method() == fiber.MethodPost && (!ok || !strong(a)) {
		return h.signedIn(c, true)
	}
	if !ok || !strong(a) || !h.recent(a) {
		return account.Account{}, false, h.d.Login.Start(c, login.Request{Want: wantStrong(), ReturnTo: returnTo, Force: true})
	}
	acct, err := h.d.Accounts.Account(c.Context(), a.AccountID)
	if errors.Is(err, account.ErrNotFound) {
		web.Sess(c).Destroy()
		return account.Account{}, false, redirectTo(c, "/login")
	}
	if err != nil {
		return account.Account{}, false, fmt.Errorf("settings: %w", err)
	}
	return acct, true, nil
}

// recent reports whether the login is recent enough for changes to ways
// in, contact details and deleting the account.
func (h *Handlers) recent(a login.Auth) bool { return h.now().Sub(a.AuthTime) <= h.d.RecentLogin }

// confirmPage asks for a new login when the last one is not recent, then
// comes back to the security settings (adding a passkey happens in the
// page's script, which cannot itself be sent through a login).
func (h *Handlers) confirmPage(c fiber.Ctx) error {
	if _, ok, err := h.recentLogin(c, PagePath); !ok {
		return err
	}
	return redirectTo(c, PagePath)
}
