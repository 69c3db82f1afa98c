package browser_test

import (
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/servertest"
)

// axe-core (npm axe-core 4.14.1, MPL-2.0, see testdata/axe.LICENSE),
// refreshed with `make axe`.
//
//go:embed testdata/axe.min.js
var axeSource string

// chrome starts a headless Chromium for the test, or skips.
func chrome(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("IDLINK_REQUIRE_BROWSER") == "1" {
			t.Fatal("IDLINK_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)")
		}
		t.Skip("browser tests skipped: no chromium on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start chromium")
	return ctx
}

// page drives one tab and checks every page it lands on.
type page struct {
	t    *testing.T
	ctx  context.Context
	s    *servertest.Server
	base string // the URL the browser uses for the server ("" = s.URL)
}

// expect waits for the page whose h1 is want, then runs axe-core on it.
func (p *page) expect(want string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		// A page marked stale by fill is the one being left: wait for the next.
		h, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`window.__idlinkStale ? "" : ((document.querySelector("h1") || {}).textContent || "")`))
		if err == nil {
			got = strings.Join(strings.Fields(h), " ")
			if got == want {
				p.axe()
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	loc, _ := chromedp.Run(p.ctx, chromedp.Location())
	p.t.Fatalf("expected the page %q, still on %q at %s", want, got, loc)
}

// axe runs axe-core and fails on serious or critical violations.
func (p *page) axe() {
	p.t.Helper()
	violations, err := seriousViolations(p.ctx)
	require.NoError(p.t, err, "run axe-core")
	loc, _ := chromedp.Run(p.ctx, chromedp.Location())
	require.Empty(p.t, violations, "accessibility problems on %s", loc)
}

// seriousViolations runs axe-core on the tab's page and lists its serious
// and critical violations.
func seriousViolations(ctx context.Context) ([]string, error) {
	// Injected and run in one evaluation, so a navigation cannot fall
	// between the two.
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](axeSource+";\n"+`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
		 .map(v => v.impact + " " + v.id + ": " + v.help + " — " + v.nodes.map(n => n.target.join(" ")).join(", ")))`, chromedp.EvalAwaitPromise))
	return violations, err
}

// The accessibility check must be able to fail: a page with an unlabelled
// field and an image without alternative text is refused.
func TestAxeFindsProblems(t *testing.T) {
	ctx := chrome(t)
	bad := `data:text/html,<!DOCTYPE html><html lang="en"><title>bad</title><main><img src="x.png"><input type="text"></main></html>`
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(bad)))
	violations, err := seriousViolations(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, violations)
}

func (p *page) open(path string) {
	p.t.Helper()
	if !strings.HasPrefix(path, "http") {
		base := p.base
		if base == "" {
			base = p.s.URL
		}
		path = base + path
	}
	require.NoError(p.t, chromedp.Do(p.ctx, chromedp.Navigate(path)))
}

// fill types into the named field of the form posting to action and
// presses its submit button.
func (p *page) fill(action string, fields map[string]string) {
	p.t.Helper()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Evaluate[chromedp.Void](`window.__idlinkStale = true`)}
	for name, v := range fields {
		sel := fmt.Sprintf(`form[action=%q] [name=%q]`, action, name)
		if name == "terms" || name == "remember" {
			steps = append(steps, chromedp.Click(sel))
			continue
		}
		// Clear what the page kept from an earlier, refused submission.
		steps = append(steps, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel)), chromedp.SendKeys(sel, v))
	}
	steps = append(steps, chromedp.Click(fmt.Sprintf(`form[action=%q] button[type=submit]`, action)))
	require.NoError(p.t, chromedp.Do(p.ctx, steps...), "fill %s", action)
}

// TestAccountJourneysInChromium creates an account and logs in through
// the pages in a real browser, checking accessibility on every page,
// including the error states.
func TestAccountJourneysInChromium(t *testing.T) {
	ctx := chrome(t)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	p := &page{t: t, ctx: ctx, s: s}
	const email, pw, phone = "browser@example.org", "correct horse battery", "07700 900456"

	p.open("/")
	p.expect("Log in to health services with idlink")
	p.open("/create-account")
	p.expect("What is your email address?")
	p.fill("/create-account/email", map[string]string{"email": "not an email"})
	p.expect("What is your email address?") // with its error summary
	errs, err := chromedp.Run(ctx, chromedp.Text(".nhsuk-error-summary"))
	require.NoError(t, err)
	require.Contains(t, errs, "Enter an email address in the correct format")
	p.fill("/create-account/email", map[string]string{"email": email})
	p.expect("Create a password")
	p.fill("/create-account/password", map[string]string{"password": pw})
	p.expect("Accept the terms of use")
	p.fill("/create-account/terms", map[string]string{"terms": "accept"})
	p.expect("Check your email")

	p.open(s.Latest(t, email, "signup_verify_email").Link)
	p.expect("Confirm your email address")
	p.fill("/create-account/verify", nil)
	p.expect("Enter your mobile phone number")
	p.fill("/create-account/phone", map[string]string{"phone": phone})
	p.expect("Enter the security code")
	e164, err := account.ParsePhone(phone, true)
	require.NoError(t, err)
	p.fill("/create-account/code", map[string]string{"code": s.Latest(t, e164, "signup_code").Code})
	p.expect("Your account")

	p.fill("/sign-out", nil)
	p.expect("You have signed out")
	p.open("/login")
	p.expect("Log in")
	p.fill("/login", map[string]string{"email": email, "password": "wrong password"})
	p.expect("Log in")
	p.open("/login")
	p.fill("/login", map[string]string{"email": email, "password": pw})
	p.expect("Enter the security code")
	p.fill("/login/code", map[string]string{"code": s.Latest(t, e164, "login_code").Code})
	p.expect("Your account")

	p.open("/forgot-password")
	p.expect("Reset your password")
	p.open("/terms")
	p.expect("Terms of use")
	p.open("/no-such-page")
	p.expect("Page not found")
}

// virtualAuthenticator gives the tab a platform authenticator with user
// verification (a fingerprint that always matches) through the DevTools
// WebAuthn domain.
func virtualAuthenticator(t *testing.T, ctx context.Context) {
	t.Helper()
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		return chromedp.Void{}, err
	})
	require.NoError(t, err, "virtual authenticator")
}

// waitFor waits until the page's text contains want.
func (p *page) waitFor(want string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.textContent : ""`))
		if strings.Contains(body, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.getElementById("passkey-error-message") || {}).textContent || ""`))
	p.t.Fatalf("the page never said %q (passkey message %q)", want, msg)
}

// TestPasskeyJourneyInChromium: create an account, add a passkey from
// settings, sign out, and sign in with the passkey (autofill) through a
// relying party's OIDC request for P0.Cm: the ID token says vot P0.Cm.
func TestPasskeyJourneyInChromium(t *testing.T) {
	ctx := chrome(t)
	virtualAuthenticator(t, ctx)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	// WebAuthn needs a domain: the browser opens the server as localhost.
	base := "http://localhost:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	p := &page{t: t, ctx: ctx, s: s, base: base}
	const email, pw, phone = "passkey@example.org", "correct horse battery", "07700 900457"
	p.signUp(email, pw, phone)

	p.open("/account/security")
	p.expect("Security settings")
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible("#passkey-add-button"),
		chromedp.SendKeys("#passkey-name", "Chromium passkey"), chromedp.Click("#passkey-add-button")))
	p.waitFor("Your passkey has been added")
	p.axe()

	p.open("/account")
	p.expect("Your account")
	p.fill("/sign-out", nil)
	p.expect("You have signed out")

	rp := servertest.NewRP(t, s, false, "email")
	a := rp.Request(map[string]string{"vtr": `["P0.Cm"]`})
	p.open(base + a.URL[strings.Index(a.URL, "/authorize"):])
	// The login page offers passkeys by autofill; the virtual
	// authenticator answers at once, with user verification.
	p.expect("Share your details with Test Health Service")
	p.fill("/authorize/consent", nil) // the first form: "Agree and continue"
	var loc string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.HasPrefix(loc, rp.CallbackURL()) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		time.Sleep(50 * time.Millisecond)
	}
	require.True(t, strings.HasPrefix(loc, rp.CallbackURL()), "back at the relying party, not %s", loc)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	require.Equal(t, a.State, u.Query().Get("state"))
	_, _, claims := rp.Exchange(u.Query().Get("code"), a)
	require.Equal(t, "P0.Cm", claims["vot"])
}
