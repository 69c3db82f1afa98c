package browser_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/servertest"
)

// newTab opens a tab in a browser context of its own (its own cookies and
// virtual authenticator): another person at another computer.
func newTab(t *testing.T, parent context.Context, s *servertest.Server, base string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	virtualAuthenticator(t, ctx)
	return &page{t: t, ctx: ctx, s: s, base: base}
}

// addPasskey adds a passkey from the security settings of the signed-in
// tab, then signs out.
func (p *page) addPasskeyAndSignOut() {
	p.t.Helper()
	p.open("/account/security")
	p.expect("Security settings")
	require.NoError(p.t, chromedp.Do(p.bounded(), chromedp.WaitVisible("#passkey-add-button"),
		chromedp.SendKeys("#passkey-name", "Work passkey"), chromedp.Click("#passkey-add-button")))
	p.waitFor("Your passkey has been added")
	p.open("/account")
	p.expect("Your account")
	p.fill("/sign-out", nil)
	p.expect("You have signed out")
}

// backOfficeLogin opens a back-office page and logs in with the passkey.
func (p *page) backOfficeLogin(path, landing string) {
	p.t.Helper()
	p.open(path)
	p.expect("Log in to the back office")
	p.click("#admin-login")
	p.passkeyLogin(landing)
	p.expect(landing)
}

// TestBackOfficeInChromium: an admin adds a support member; the support
// member finds a locked-out person and unlocks them, and the person logs
// in; the admin exports an audit search. Every page passes axe-core.
func TestBackOfficeInChromium(t *testing.T) {
	root := chrome(t)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	base := "http://localhost:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	const pw = "correct horse battery"
	const (
		adminEmail, adminPhone   = "admin@example.org", "07700 900471"
		deskEmail, deskPhone     = "desk@example.org", "07700 900472"
		personEmail, personPhone = "locked.out@example.org", "07700 900473"
	)
	ctx := context.Background()

	// The first admin is made with the CLI (idlink staff set).
	admin := newTab(t, root, s, base)
	admin.signUp(adminEmail, pw, adminPhone)
	admin.addPasskeyAndSignOut()
	require.NoError(t, s.Identity.SetStaff(ctx, audit.Actor{RequestID: "browser-test"}, s.AccountID(t, adminEmail), identity.RoleAdmin))

	desk := newTab(t, root, s, base)
	desk.signUp(deskEmail, pw, deskPhone)
	desk.addPasskeyAndSignOut()

	// ---- the admin adds the support member ----
	admin.backOfficeLogin("/admin/staff", "Staff")
	admin.fill("/admin/staff", map[string]string{"email": deskEmail}) // no role: refused
	admin.expect("Staff")
	admin.waitFor("Choose at least one role")
	require.NoError(t, chromedp.Do(admin.bounded(), chromedp.Click("#role_support")))
	admin.fill("/admin/staff", map[string]string{"email": deskEmail})
	admin.expect("Staff")
	admin.waitFor(deskEmail + " is now staff: Support.")

	// ---- a person locks themself out ----
	person := newTab(t, root, s, base)
	person.signUp(personEmail, pw, personPhone)
	person.fill("/sign-out", nil)
	person.expect("You have signed out")
	for range 5 {
		person.open("/login")
		person.expect("Log in")
		person.fill("/login", map[string]string{"email": personEmail, "password": "not my password"})
		person.expect("Log in")
	}

	// ---- the support member finds them and unlocks ----
	desk.backOfficeLogin("/admin/support", "Find a person")
	desk.fill("/admin/support", map[string]string{"q": personEmail})
	desk.expect("Find a person")
	desk.click("#support-results a")
	desk.expect(personEmail)
	lock, err := chromedp.Run(desk.ctx, chromedp.Text("#person-lock"))
	require.NoError(t, err)
	require.Contains(t, lock, "Locked after too many wrong passwords")
	personID := s.AccountID(t, personEmail)
	desk.fill(fmt.Sprintf("/admin/support/%s/unlock", personID), nil)
	desk.expect(personEmail)
	desk.waitFor("The account is unlocked.")

	// ---- the person logs in ----
	person.open("/login")
	person.expect("Log in")
	person.fill("/login", map[string]string{"email": personEmail, "password": pw})
	person.expect("Enter the security code")
	person.fill("/login/code", map[string]string{"code": s.Latest(t, idE164(t, personPhone), "login_code").Code})
	person.expect("Your account")

	// ---- the admin exports an audit search ----
	admin.open("/admin/audit")
	admin.expect("Audit trail")
	admin.fill("/admin/audit", map[string]string{"type": "support.", "staff": deskEmail})
	admin.expect("Audit trail")
	admin.waitFor("support.unlock")
	csv, err := chromedp.Run(admin.ctx, chromedp.Evaluate[string](`fetch(document.getElementById("audit-csv").href).then(r => r.text().then(body => r.headers.get("content-type") + "\n" + body))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(csv, "text/csv"), csv)
	require.Contains(t, csv, "support.unlock")
	require.Contains(t, csv, personID)
	require.Equal(t, 1, s.AuditCount(t, "audit.exported", "", `"staff":"`+s.AccountID(t, adminEmail)+`"`))
}
