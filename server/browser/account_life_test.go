package browser_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// narrow waits for the page whose h1 is want, runs axe-core on it, and
// checks that nothing scrolls sideways.
func (p *page) narrow(want string) {
	p.t.Helper()
	p.expect(want)
	w, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
	require.NoError(p.t, err)
	require.LessOrEqual(p.t, w[0], w[1], "the page %q scrolls sideways: %d px wide in a %d px window", want, w[0], w[1])
}

// TestAccountLifeInChromium walks the account's own life on a phone-sized
// window (390 px): change email, change phone and undo it, change
// password, the services shared and stopping, and deleting the account,
// with axe-core clean and no sideways scrolling on every page.
func TestAccountLifeInChromium(t *testing.T) {
	ctx := chrome(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)))
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	p := &page{t: t, ctx: ctx, s: s}
	const email, pw, phone, newPhone = "life@example.org", "correct horse battery", "07700 900461", "07700 900462"
	p.signUp(email, pw, phone)
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	require.NoError(t, err)
	require.Equal(t, 390, w)
	p.narrow("Your account")
	p.open("/account/security")
	p.narrow("Security settings")

	// Email: an error, then a new address confirmed from its link.
	p.open("/account/email")
	p.narrow("Change your email address")
	p.fill("/account/email", map[string]string{"email": "not an email"})
	p.narrow("Change your email address")
	p.fill("/account/email", map[string]string{"email": "life.new@example.org"})
	p.narrow("Check your email")
	link := s.Latest(t, "life.new@example.org", "email_change_verify").Link
	p.open(link[strings.Index(link, "/account/email/verify"):])
	p.narrow("Confirm your new email address")
	p.fill("/account/email/verify", nil)
	p.narrow("Your email address has been changed")

	// Mobile number: a code to the new number, then the old number's link
	// undoes it (and signs everyone out).
	p.open("/account/phone")
	p.narrow("Enter your new mobile phone number")
	p.fill("/account/phone", map[string]string{"phone": newPhone})
	p.narrow("Enter the security code")
	p.fill("/account/phone/code", map[string]string{"code": "000000"})
	p.narrow("Enter the security code")
	p.fill("/account/phone/code", map[string]string{"code": s.Latest(t, idE164(t, newPhone), "phone_change_code").Code})
	p.narrow("Your account")
	cancel := s.Latest(t, idE164(t, phone), "phone_changed_old").Link
	p.open(cancel[strings.Index(cancel, "/account/phone/cancel"):])
	p.narrow("Undo the change of mobile phone number")
	p.fill("/account/phone/cancel", nil)
	p.narrow("The change of mobile phone number has been undone")
	p.open("/login")
	p.narrow("Log in")
	p.fill("/login", map[string]string{"email": "life.new@example.org", "password": pw})
	p.narrow("Enter the security code")
	p.fill("/login/code", map[string]string{"code": s.Latest(t, idE164(t, phone), "login_code").Code})
	p.narrow("Your account")

	// Password: every error at once, then the change.
	p.open("/account/password")
	p.narrow("Change your password")
	p.fill("/account/password", map[string]string{"current_password": "wrong one", "password": "short"})
	p.narrow("Change your password")
	errs, err := chromedp.Run(ctx, chromedp.Text(".nhsuk-error-summary"))
	require.NoError(t, err)
	require.Contains(t, errs, "Your current password is not right")
	require.Contains(t, errs, "at least 8 characters")
	p.fill("/account/password", map[string]string{"current_password": pw, "password": "a brand new passphrase"})
	p.narrow("Your account")

	// Services: share with a relying party, list it, stop sharing.
	rp := servertest.NewRP(t, s, false, "email", "phone")
	p.authorize(rp, `["P0.Cp.Cd"]`)
	p.open("/account/services")
	p.narrow("Services you have shared details with")
	p.click(`form[action="/account/services/stop"] button[type=submit]`)
	p.narrow("Services you have shared details with")
	p.waitFor("You have not shared your details with any service.")

	// Delete: the confirmation is required, then the account is gone.
	p.open("/account/delete")
	p.narrow("Delete your account")
	p.click(`form[action="/account/delete"] button[type=submit]`)
	p.narrow("Delete your account")
	require.NoError(t, chromedp.Do(p.bounded(), chromedp.Click("#confirm")))
	p.click(`form[action="/account/delete"] button[type=submit]`)
	p.narrow("Your account has been deleted")
	_, err = s.Accounts.AccountByEmail(t.Context(), "life.new@example.org")
	require.Error(t, err)
}
