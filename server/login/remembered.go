package login

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// RememberCookie is the long-lived cookie holding a remembered browser's
// token.
const RememberCookie = "idlink_remember"

// Remembered is what the remembered-browser factor needs from the device
// store (device.Store satisfies it).
type Remembered interface {
	Remember(ctx context.Context, accountID, userAgentLabel string) (string, error)
	CheckRemembered(ctx context.Context, accountID, token string) (bool, error)
}

// RememberConfig says how long a remembered browser's cookie lives and
// whether it is marked Secure (the issuer is https).
type RememberConfig struct {
	Lifetime time.Duration
	Secure   bool
}

// RememberedBrowser is the factor that proves Cd with the
// remembered-browser cookie, after the password: the cookie alone never
// signs anyone in. Put it before the texted code so that a remembered
// browser is not sent one.
type RememberedBrowser struct {
	store Remembered
	cfg   RememberConfig
}

// NewRememberedBrowser returns the remembered-browser factor over store.
func NewRememberedBrowser(store Remembered, cfg RememberConfig) *RememberedBrowser {
	return &RememberedBrowser{store: store, cfg: cfg}
}

const rememberName = "remembered_browser"

// Name implements Factor.
func (f *RememberedBrowser) Name() string { return rememberName }

// Proves implements Factor: Cd.
func (f *RememberedBrowser) Proves() trust.Credentials { return trust.Credentials{trust.Cd} }

// Routes implements Factor: the factor has no page of its own.
func (f *RememberedBrowser) Routes(web.Pages, *Journey) {}

// Available implements Factor: the browser's cookie matches the account,
// checked only once the password has been proven.
func (f *RememberedBrowser) Available(c fiber.Ctx, acct account.Account, proven trust.Credentials) bool {
	if !proven.Has(trust.Cp) {
		return false
	}
	token := c.Cookies(RememberCookie)
	if token == "" {
		return false
	}
	ok, err := f.store.CheckRemembered(c.Context(), acct.ID, token)
	if err != nil {
		// The code is the fallback: a database hiccup here must not stop
		// the login, and the next step will report a persistent failure.
		return false
	}
	return ok
}

// Begin implements Factor. It runs right after Available confirmed the
// cookie in the same request: the browser is remembered, so Cd is proven.
func (f *RememberedBrowser) Begin(c fiber.Ctx, j *Journey, acct account.Account) error {
	if err := j.audit.Record(c.Context(), web.Actor(c), "remembered_browser.used", audit.Success, acct.ID, nil); err != nil {
		return err
	}
	return j.Proved(c, trust.Cd)
}

// rememberBrowser remembers this browser for acct and sets its cookie.
func (f *RememberedBrowser) rememberBrowser(c fiber.Ctx, j *Journey, acct account.Account) error {
	ua := string(c.Request().Header.UserAgent())
	label := BrowserLabel(ua)
	token, err := f.store.Remember(c.Context(), acct.ID, label)
	if err != nil {
		return fmt.Errorf("remember browser: %w", err)
	}
	c.Cookie(&fiber.Cookie{
		Name:     RememberCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(f.cfg.Lifetime / time.Second),
		HTTPOnly: true,
		Secure:   f.cfg.Secure,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
	if err := j.audit.Record(c.Context(), web.Actor(c), "remembered_browser.added", audit.Success, acct.ID, map[string]any{"label": label}); err != nil {
		return err
	}
	return j.accounts.SendNotice(c.Context(), web.Actor(c), acct.ID, account.NoticeBrowserRemembered,
		"A browser ("+label+") was remembered for your idlink account: it will not be asked for a security code")
}

// BrowserLabel describes a browser from its User-Agent, such as "Firefox
// on Windows", for the settings page.
func BrowserLabel(ua string) string {
	browser := "Unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"}, {"Firefox/", "Firefox"},
		{"FxiOS/", "Firefox"}, {"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"CrOS", "ChromeOS"},
		{"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}
