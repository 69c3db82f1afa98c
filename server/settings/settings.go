// Package settings is the person's security settings page
// (/account/security): the browsers they asked to remember, their
// passkeys, their companion-app devices, and "sign out of all devices".
// It also adds passkeys (the WebAuthn registration ceremony, driven by
// /assets/js/passkey.js through two JSON endpoints) and forgets remembered
// browsers when a password is reset.
//
// Every change needs a session whose login proved a second factor (Cd or
// Cm); each change is an audit event. Bad input (an empty or too long
// name, an unknown id, another account's id) is shown on the page and
// changes nothing.
package settings

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Sentinel errors of the settings pages.
var (
	// ErrNotAllowed: the session has not proven a second factor.
	ErrNotAllowed = errors.New("settings: a second factor is needed for this change")
)

// Sessions ends an account's other sessions.
type Sessions interface {
	EndAccountSessions(ctx context.Context, accountID, keepHash string) (int64, error)
	HashOf(s *web.Session) string
}

// Deps are what the settings pages use.
type Deps struct {
	Login    *login.Journey
	Accounts *account.Service
	Devices  *device.Store
	FIDO     *fido.Service
	Sessions Sessions
	Renderer *web.Renderer
	Audit    *audit.Log
	// Secure marks cookies Secure (the issuer is https).
	Secure bool
	// DeviceRemoved, when set, is told of each removed companion-app
	// device (push approvals close its sockets on every replica).
	DeviceRemoved func(ctx context.Context, deviceID string)
	// RecentLogin is how recent a login must be for changes to contact
	// details, ways in and deleting the account (IDLINK_RECENT_LOGIN).
	RecentLogin time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// PhoneMatch is told when the mobile number changes, so the next PDS
	// check recomputes phone_number_pds_matched.
	PhoneMatch PhoneMatch
	// Sharing lists and withdraws what the person shares with services.
	Sharing Sharing
	// Closer deletes accounts.
	Closer Closer
	// Grants revokes what was issued to relying parties (*oidc.Server):
	// every grant of the account when it signs out everywhere or resets
	// its password, a device's grants when the device is removed.
	Grants Grants
}

// Grants revokes OIDC grants; *oidc.Server implements it.
type Grants interface {
	RevokeAccount(ctx context.Context, accountID string) (int64, error)
	RevokeDevice(ctx context.Context, deviceID string) (int64, error)
}

// Handlers serves the settings pages. It is safe for concurrent use.
type Handlers struct {
	d Deps
}

// New returns the settings pages.
func New(d Deps) *Handlers {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handlers{d: d}
}

func (h *Handlers) now() time.Time { return h.d.Now() }

// Paths of the settings pages.
const (
	PagePath = "/account/security"
)

// Register mounts the settings pages and the passkey registration
// endpoints.
func (h *Handlers) Register(p web.Pages) {
	p.Get(PagePath, h.page)
	p.Post(PagePath+"/browsers/remove", h.removeBrowser)
	p.Get(PagePath+"/passkeys/rename", h.renamePasskeyPage)
	p.Post(PagePath+"/passkeys/rename", h.renamePasskey)
	p.Post(PagePath+"/passkeys/remove", h.removePasskey)
	p.Get(PagePath+"/devices/rename", h.renameDevicePage)
	p.Post(PagePath+"/devices/rename", h.renameDevice)
	p.Post(PagePath+"/devices/remove", h.removeDevice)
	p.Post(PagePath+"/sign-out-everywhere", h.signOutEverywhere)
	p.Get(PagePath+"/confirm", h.confirmPage)
	login.PostJSON(p, "/account/passkeys/begin", h.passkeyBegin)
	login.PostJSON(p, "/account/passkeys/finish", h.passkeyFinish)
}

// PasswordReset undoes what the old password let in, because whoever
// knew it may have used it: every remembered browser is forgotten, every
// companion-app device is removed (the app is set up again with the new
// password), and every grant of the account is revoked (relying parties'
// refresh tokens included). The account pages call it when a reset
// completes.
func (h *Handlers) PasswordReset(ctx context.Context, a audit.Actor, accountID string) error {
	n, err := h.d.Devices.ForgetAllRemembered(ctx, accountID)
	if err != nil {
		return fmt.Errorf("password reset: %w", err)
	}
	if err := h.d.Audit.Record(ctx, a, "remembered_browser.forgotten_all", audit.Success, accountID,
		map[string]any{"reason": "password_reset", "count": n}); err != nil {
		return err
	}
	devices, err := h.d.Devices.ListForAccount(ctx, accountID)
	if err != nil {
		return fmt.Errorf("password reset: %w", err)
	}
	for _, d := range devices {
		if err := h.removeApp(ctx, a, accountID, d.ID, "password_reset"); err != nil {
			return err
		}
	}
	return h.revokeAll(ctx, a, accountID, "password_reset")
}

// removeApp removes a companion-app device and revokes what it holds: its
// sockets close, and the grants of the logins it made are revoked.
func (h *Handlers) removeApp(ctx context.Context, a audit.Actor, accountID, id, reason string) error {
	err := h.d.Devices.Remove(ctx, accountID, id)
	if err != nil {
		return err
	}
	if h.d.DeviceRemoved != nil {
		h.d.DeviceRemoved(ctx, id)
	}
	var revoked int64
	if h.d.Grants != nil {
		if revoked, err = h.d.Grants.RevokeDevice(ctx, id); err != nil {
			return fmt.Errorf("revoke the grants of a removed device: %w", err)
		}
	}
	return h.d.Audit.Record(ctx, a, "device.removed", audit.Success, accountID, map[string]any{"device": id, "reason": reason, "grants_revoked": revoked})
}

// revokeAll revokes every grant of the account.
func (h *Handlers) revokeAll(ctx context.Context, a audit.Actor, accountID, reason string) error {
	if h.d.Grants == nil {
		return nil
	}
	n, err := h.d.Grants.RevokeAccount(ctx, accountID)
	if err != nil {
		return fmt.Errorf("revoke the account's grants: %w", err)
	}
	return h.d.Audit.Record(ctx, a, "oidc.grants_revoked", audit.Success, accountID, map[string]any{"reason": reason, "grants": n})
}

// strong reports whether the session is signed in by a login that proved
// a second factor.
func strong(a login.Auth) bool {
	return a.Credentials.Has(trust.Cd) || a.Credentials.Has(trust.Cm)
}

// wantStrong is what a login must prove to use the settings.
func wantStrong() []trust.Credentials {
	return []trust.Credentials{{trust.Cd, trust.Cp}, {trust.Cm}}
}

// signedIn returns the signed-in account when the session proved a second
// factor. Otherwise it answers the request (a login, or a 403 page) and
// ok is false.
func (h *Handlers) signedIn(c fiber.Ctx, forChange bool) (account.Account, bool, error) {
	a, ok := h.d.Login.Current(c)
	if !ok || !strong(a) {
		if forChange {
			return account.Account{}, false, h.d.Renderer.ErrorPage(c, http.StatusForbidden, "You need to log in again",
				"To change your security settings, log in with your password and a security code, or with a passkey.")
		}
		return account.Account{}, false, h.d.Login.Start(c, login.Request{Want: wantStrong(), ReturnTo: PagePath})
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

func redirectTo(c fiber.Ctx, to string) error { return c.Redirect().Status(http.StatusSeeOther).To(to) }

// settingsNotice is a one-time confirmation to show on the settings page.
const settingsNotice = web.Notice("settings_notice")

// pageData is what settings_security.html shows.
type pageData struct {
	Browsers []device.RememberedBrowser
	Passkeys []passkeyRow
	Devices  []device.Device
	// NameMax is the longest passkey name allowed.
	NameMax int
	// Stale: the login is not recent enough to add a passkey; the page
	// links to a new login instead.
	Stale bool
}

type passkeyRow struct {
	ID         string // base64url of the credential id
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	Blocked    bool
}

func encodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func (h *Handlers) view(c fiber.Ctx, acct account.Account) (web.View, error) {
	ctx := c.Context()
	browsers, err := h.d.Devices.ListRemembered(ctx, acct.ID)
	if err != nil {
		return web.View{}, err
	}
	creds, err := h.d.FIDO.ListCredentials(ctx, acct.ID)
	if err != nil {
		return web.View{}, err
	}
	var passkeys []passkeyRow
	for _, cr := range creds {
		if cr.Kind != fido.KindPasskey {
			continue
		}
		passkeys = append(passkeys, passkeyRow{ID: encodeID(cr.ID), Name: cr.Name, CreatedAt: cr.CreatedAt, LastUsedAt: cr.LastUsedAt, Blocked: cr.Blocked()})
	}
	devices, err := h.d.Devices.ListForAccount(ctx, acct.ID)
	if err != nil {
		return web.View{}, err
	}
	return web.View{Title: "Security settings", BackLink: "/account",
		Data: pageData{Browsers: browsers, Passkeys: passkeys, Devices: devices, NameMax: fido.MaxNameLength, Stale: h.stale(c)}}, nil
}

// render shows the settings page, with errors (422) or a notice.
func (h *Handlers) render(c fiber.Ctx, acct account.Account, errs web.Errors, notice string) error {
	v, err := h.view(c, acct)
	if err != nil {
		return err
	}
	v.Errors, v.Notice = errs, notice
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return h.d.Renderer.Render(c, status, "settings_security", v)
}

func (h *Handlers) page(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, false)
	if !ok {
		return err
	}
	return h.render(c, acct, nil, settingsNotice.Take(c))
}

// refuse shows the settings page with one error and changes nothing.
func (h *Handlers) refuse(c fiber.Ctx, acct account.Account, field, msg string) error {
	var errs web.Errors
	errs.Add(field, msg)
	return h.render(c, acct, errs, "")
}

func (h *Handlers) record(c fiber.Ctx, typ string, outcome audit.Outcome, accountID string, detail map[string]any) error {
	return h.d.Audit.Record(c.Context(), web.Actor(c), typ, outcome, accountID, detail)
}

func (h *Handlers) removeBrowser(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PagePath)
	if !ok {
		return err
	}
	id := c.FormValue("id")
	err = h.d.Devices.ForgetRemembered(c.Context(), acct.ID, id)
	if errors.Is(err, device.ErrNotFound) || id == "" {
		return h.refuse(c, acct, "browsers", "We could not find that remembered browser. It may have been removed already.")
	}
	if err != nil {
		return err
	}
	if err := h.record(c, "remembered_browser.forgotten", audit.Success, acct.ID, map[string]any{"id": id}); err != nil {
		return err
	}
	settingsNotice.Set(c, "The browser has been removed. It will need a security code next time.")
	return redirectTo(c, PagePath)
}

func (h *Handlers) signOutEverywhere(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, true)
	if !ok {
		return err
	}
	s := web.Sess(c)
	ended, err := h.d.Sessions.EndAccountSessions(c.Context(), acct.ID, h.d.Sessions.HashOf(s))
	if err != nil {
		return err
	}
	forgotten, err := h.d.Devices.ForgetAllRemembered(c.Context(), acct.ID)
	if err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{Name: login.RememberCookie, Value: "", Path: "/", HTTPOnly: true, Secure: h.d.Secure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
	if err := h.revokeAll(c.Context(), web.Actor(c), acct.ID, "signed_out_everywhere"); err != nil {
		return err
	}
	if err := h.record(c, "account.signed_out_everywhere", audit.Success, acct.ID,
		map[string]any{"sessions": ended, "remembered_browsers": forgotten}); err != nil {
		return err
	}
	settingsNotice.Set(c, "You have been signed out on every other device, no browser is remembered any more, and services you logged in to must ask you to log in again.")
	return redirectTo(c, PagePath)
}

// stale reports whether the session's login is too old for changes to the
// ways in.
func (h *Handlers) stale(c fiber.Ctx) bool {
	a, ok := h.d.Login.Current(c)
	return !ok || !h.recent(a)
}
