package backoffice

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/web"
)

// This file is the support desk (role support): find a person by email,
// mobile or NHS number, see their account in plain words, and act on it.
// The pages never show codes, links, tokens, passwords, photo ID evidence
// or linkage keys: only names, dates and states. Every action is audited
// (support.<action>, naming the staff member) and emailed to the person.

// People is what the support desk asks of accounts; *account.Service
// implements it.
type People interface {
	Accounts
	AccountsByPhone(ctx context.Context, phone string) ([]account.Account, error)
	ParsePhone(raw string) (string, error)
	Unlock(ctx context.Context, a audit.Actor, by, accountID string) error
	Block(ctx context.Context, a audit.Actor, accountID, reason string) error
	Unblock(ctx context.Context, a audit.Actor, by, accountID, reason string) error
	SendSupportNotice(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, what string) error
	PendingSignups(ctx context.Context, email string) ([]account.PendingSignup, error)
	PendingSignup(ctx context.Context, id string) (account.PendingSignup, error)
	ResendSignup(ctx context.Context, a audit.Actor, signupID, email string) error
}

// Proofs finds a person by NHS number; *identity.Service implements it.
type Proofs interface {
	AccountByNHSNumber(ctx context.Context, raw string) (string, error)
}

// Devices lists and removes app devices and remembered browsers;
// *device.Store implements it.
type Devices interface {
	ListForAccount(ctx context.Context, accountID string) ([]device.Device, error)
	Remove(ctx context.Context, accountID, id string) error
	ListRemembered(ctx context.Context, accountID string) ([]device.RememberedBrowser, error)
	ForgetAllRemembered(ctx context.Context, accountID string) (int64, error)
}

// Passkeys lists and removes FIDO credentials; *fido.Service implements it.
type Passkeys interface {
	ListCredentials(ctx context.Context, accountID string) ([]fido.Credential, error)
	RemoveCredential(ctx context.Context, accountID string, id []byte) error
}

// Approvals reads and lifts a pause of phone approvals; *push.Service
// implements it.
type Approvals interface {
	Paused(ctx context.Context, accountID string) (time.Time, bool, error)
	Unpause(ctx context.Context, accountID string) (bool, error)
}

// Sessions ends a person's sessions; *web.Sessions implements it.
type Sessions interface {
	EndAccountSessions(ctx context.Context, accountID, keepHash string) (int64, error)
}

// Grants are what relying parties hold for a person; *oidc.Server
// implements it.
type Grants interface {
	SharedWith(ctx context.Context, accountID string) ([]oidc.SharedService, error)
	RevokeAccount(ctx context.Context, accountID string) (int64, error)
}

// Activity reads and writes audit events; *audit.Log implements it.
type Activity interface {
	ForAccount(ctx context.Context, accountID string, limit int) ([]audit.Event, error)
	Record(ctx context.Context, a audit.Actor, typ string, outcome audit.Outcome, accountID string, detail map[string]any) error
}

// SupportDeps are what the support desk uses.
type SupportDeps struct {
	People    People
	Proofs    Proofs
	Devices   Devices
	Passkeys  Passkeys
	Approvals Approvals
	Sessions  Sessions
	Grants    Grants
	Activity  Activity
	// DeviceRemoved tells the replica holding a removed device's socket
	// to close it (push.Service.DeviceRemoved).
	DeviceRemoved func(ctx context.Context, deviceID string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Support desk paths and limits.
const (
	// SupportPath is the search; a person's page is SupportPath/:id.
	SupportPath = "/admin/support"
	// MaxReason is the longest reason for blocking or unblocking, in bytes.
	MaxReason = 500
	// ActivityShown is how many recent events a person's page shows.
	ActivityShown = 20
	// NoticeSupportAction is the kind of the email telling a person what
	// the support desk did to their account.
	NoticeSupportAction notify.Kind = "support_action"
)

func supportPersonPath(id string) string { return SupportPath + "/" + id }

// ---- search ----

// supportResult is one account found.
type supportResult struct {
	ID, Email, Level, Status string
}

// supportSearchData is what backoffice_support.html shows.
type supportSearchData struct {
	Searched bool
	Results  []supportResult
	// Signups are registrations for the address searched that wait for
	// their email link (no account yet).
	Signups []account.PendingSignup
}

func (b *BackOffice) supportSearch(c fiber.Ctx) error {
	_, ok, err := b.d.Gate.Require(c, SupportPath, identity.RoleSupport)
	if !ok {
		return err
	}
	q := strings.TrimSpace(c.Query("q"))
	v := web.View{Title: "Find a person", Values: map[string]string{"q": q}, Data: supportSearchData{}, Notice: notice.Take(c)}
	if c.Query("search") == "" {
		return b.d.Renderer.Render(c, http.StatusOK, "backoffice_support", v)
	}
	if q == "" {
		v.Errors.Add("q", "Enter an email address, a mobile number or an NHS number")
		return b.d.Renderer.Render(c, http.StatusUnprocessableEntity, "backoffice_support", v)
	}
	accts, msg, err := b.find(c.Context(), q)
	if err != nil {
		return err
	}
	if msg != "" {
		v.Errors.Add("q", msg)
		return b.d.Renderer.Render(c, http.StatusUnprocessableEntity, "backoffice_support", v)
	}
	data := supportSearchData{Searched: true}
	if strings.Contains(q, "@") && len(accts) == 0 {
		if data.Signups, err = b.s.People.PendingSignups(c.Context(), q); err != nil {
			return err
		}
	}
	for _, a := range accts {
		data.Results = append(data.Results, supportResult{ID: a.ID, Email: a.Email, Level: a.Level().String(), Status: statusWords(a.Status)})
	}
	v.Data = data
	return b.d.Renderer.Render(c, http.StatusOK, "backoffice_support", v)
}

// find reads q as an email address (it has an @), an NHS number (ten
// digits) or a mobile number. msg says why q could not be searched for.
func (b *BackOffice) find(ctx context.Context, q string) ([]account.Account, string, error) {
	one := func(a account.Account, err error) ([]account.Account, string, error) {
		if errors.Is(err, account.ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		return []account.Account{a}, "", nil
	}
	if strings.Contains(q, "@") {
		return one(b.s.People.AccountByEmail(ctx, q))
	}
	digits := strings.NewReplacer(" ", "", "-", "").Replace(q)
	if len(digits) == 10 && strings.Trim(digits, "0123456789") == "" {
		id, err := b.s.Proofs.AccountByNHSNumber(ctx, digits)
		switch {
		case errors.Is(err, identity.ErrInvalid):
			return nil, "Enter a valid NHS number: this one fails its check digit", nil
		case errors.Is(err, identity.ErrNotFound):
			return nil, "", nil
		case err != nil:
			return nil, "", err
		}
		return one(b.s.People.Account(ctx, id))
	}
	phone, err := b.s.People.ParsePhone(q)
	if err != nil {
		return nil, "Enter an email address, a UK mobile number or a 10-digit NHS number", nil
	}
	accts, err := b.s.People.AccountsByPhone(ctx, phone)
	return accts, "", err
}

func statusWords(s string) string {
	switch s {
	case account.StatusActive:
		return "Active"
	case account.StatusBlocked:
		return "Blocked: cannot log in"
	case account.StatusPendingPhone:
		return "Not finished: no mobile number yet"
	}
	return s
}

var levelWords = map[string]string{
	"P0": "P0: identity not proven",
	"P5": "P5: matched to an NHS record (details only)",
	"P9": "P9: identity proven",
}

// ---- a person ----

// supportItem is a passkey, app device or remembered browser.
type supportItem struct {
	ID, Name string
	Added    time.Time
	LastUsed *time.Time
}

// supportEvent is a line of recent activity, in words.
type supportEvent struct {
	At   time.Time
	What string
	From string
}

// supportPersonData is what backoffice_person.html shows.
type supportPersonData struct {
	ID, Email, Phone, Level, Status string
	Blocked                         bool
	LockedUntil                     *time.Time
	WrongPasswords                  int
	PausedUntil                     *time.Time
	Passkeys, Apps, Browsers        []supportItem
	Services                        []oidc.SharedService
	Activity                        []supportEvent
	ReasonMax                       int
}

// person returns the account the page is about, or answers 404.
func (b *BackOffice) person(c fiber.Ctx) (account.Account, bool, error) {
	a, err := b.s.People.Account(c.Context(), c.Params("id"))
	if errors.Is(err, account.ErrNotFound) {
		return account.Account{}, false, b.d.Renderer.ErrorPage(c, http.StatusNotFound, "Person not found",
			"There is no account at this address. It may have been deleted. Search again.")
	}
	if err != nil {
		return account.Account{}, false, err
	}
	return a, true, nil
}

func (b *BackOffice) personData(ctx context.Context, a account.Account) (*supportPersonData, error) {
	now := b.s.Now().UTC()
	d := &supportPersonData{ID: a.ID, Email: a.Email, Phone: a.PhoneNumber(), Level: levelWords[a.Level().String()],
		Status: statusWords(a.Status), Blocked: a.Status == account.StatusBlocked, WrongPasswords: a.FailedLogins, ReasonMax: MaxReason}
	if d.Level == "" {
		d.Level = a.Level().String()
	}
	if a.LockedUntil != nil && a.LockedUntil.After(now) {
		d.LockedUntil = a.LockedUntil
	}
	if until, paused, err := b.s.Approvals.Paused(ctx, a.ID); err != nil {
		return nil, err
	} else if paused {
		d.PausedUntil = &until
	}
	creds, err := b.s.Passkeys.ListCredentials(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	for _, cr := range creds {
		if cr.Kind == fido.KindPasskey {
			d.Passkeys = append(d.Passkeys, supportItem{ID: base64.RawURLEncoding.EncodeToString(cr.ID), Name: cr.Name, Added: cr.CreatedAt, LastUsed: cr.LastUsedAt})
		}
	}
	devs, err := b.s.Devices.ListForAccount(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	for _, dv := range devs {
		d.Apps = append(d.Apps, supportItem{ID: dv.ID, Name: dv.Name, Added: dv.CreatedAt, LastUsed: &dv.LastSeenAt})
	}
	rbs, err := b.s.Devices.ListRemembered(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	for _, rb := range rbs {
		d.Browsers = append(d.Browsers, supportItem{ID: rb.ID, Name: rb.Label, Added: rb.CreatedAt, LastUsed: &rb.LastUsedAt})
	}
	if d.Services, err = b.s.Grants.SharedWith(ctx, a.ID); err != nil {
		return nil, err
	}
	evs, err := b.s.Activity.ForAccount(ctx, a.ID, ActivityShown)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		se := supportEvent{At: ev.At, What: account.DescribeEvent(ev)}
		if ev.UserAgent != "" {
			se.From = web.DescribeBrowser(ev.UserAgent)
		}
		d.Activity = append(d.Activity, se)
	}
	return d, nil
}

func (b *BackOffice) renderPerson(c fiber.Ctx, a account.Account, v web.View) error {
	d, err := b.personData(c.Context(), a)
	if err != nil {
		return err
	}
	v.Title, v.BackLink, v.Data = a.Email, SupportPath, d
	if v.Values == nil {
		v.Values = map[string]string{}
	}
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return b.d.Renderer.Render(c, status, "backoffice_person", v)
}

func (b *BackOffice) personPage(c fiber.Ctx) error {
	_, ok, err := b.d.Gate.Require(c, supportPersonPath(c.Params("id")), identity.RoleSupport)
	if !ok {
		return err
	}
	a, ok, err := b.person(c)
	if !ok {
		return err
	}
	return b.renderPerson(c, a, web.View{Notice: notice.Take(c)})
}

// ---- actions ----

// supportAction is one thing the support desk does to an account: it
// changes the account and returns the sentence emailed to the person
// ("" when there was nothing to do, with done saying so to the staff
// member), or adds errors to v.
type supportAction func(c fiber.Ctx, m identity.Staff, a account.Account, v *web.View) (email, done string, err error)

// act runs an action behind the access check, then audits it, emails the
// person and goes back to their page.
func (b *BackOffice) act(name string, fn supportAction) fiber.Handler {
	return func(c fiber.Ctx) error {
		m, ok, err := b.d.Gate.Require(c, supportPersonPath(c.Params("id")), identity.RoleSupport)
		if !ok {
			return err
		}
		a, ok, err := b.person(c)
		if !ok {
			return err
		}
		var v web.View
		v.Values = map[string]string{}
		email, done, err := fn(c, m, a, &v)
		if err != nil {
			return err
		}
		if len(v.Errors) > 0 {
			return b.renderPerson(c, a, v)
		}
		actor := web.Actor(c)
		detail := map[string]any{"staff": m.AccountID}
		if r := v.Values["reason"]; r != "" {
			detail["reason"] = r
		}
		if err := b.s.Activity.Record(c.Context(), actor, "support."+name, audit.Success, a.ID, detail); err != nil {
			return err
		}
		if email != "" {
			if err := b.s.People.SendSupportNotice(c.Context(), actor, a.ID, NoticeSupportAction, email); err != nil {
				return err
			}
		}
		notice.Set(c, done)
		return seeOther(c, supportPersonPath(a.ID))
	}
}

// reason reads and checks the reason field.
func reason(c fiber.Ctx, v *web.View, what string) string {
	r := strings.TrimSpace(strings.ReplaceAll(c.FormValue("reason"), "\r\n", "\n"))
	v.Values["reason"] = r
	switch {
	case r == "":
		v.Errors.Add("reason", "Enter the reason for "+what)
	case len(r) > MaxReason || !utf8.ValidString(r):
		v.Errors.Add("reason", fmt.Sprintf("The reason must be %d characters or fewer", MaxReason))
	}
	return r
}

func (b *BackOffice) unlock(c fiber.Ctx, m identity.Staff, a account.Account, _ *web.View) (string, string, error) {
	if err := b.s.People.Unlock(c.Context(), web.Actor(c), m.AccountID, a.ID); err != nil {
		return "", "", err
	}
	return "Our support team unlocked your idlink account, so you can log in again with your password",
		"The account is unlocked. The person can log in with their password now.", nil
}

func (b *BackOffice) unpause(c fiber.Ctx, _ identity.Staff, a account.Account, _ *web.View) (string, string, error) {
	lifted, err := b.s.Approvals.Unpause(c.Context(), a.ID)
	if err != nil || !lifted {
		return "", "Approvals were not paused. Nothing was changed.", err
	}
	return "Our support team turned login approvals in the idlink app back on for your account",
		"Approvals are on again: the app can be asked to approve logins.", nil
}

func (b *BackOffice) endSessions(c fiber.Ctx, _ identity.Staff, a account.Account, _ *web.View) (string, string, error) {
	n, err := b.s.Sessions.EndAccountSessions(c.Context(), a.ID, "")
	if err != nil {
		return "", "", err
	}
	if _, err := b.s.Devices.ForgetAllRemembered(c.Context(), a.ID); err != nil {
		return "", "", err
	}
	return "Our support team logged your idlink account out everywhere. Log in again to continue",
		fmt.Sprintf("Logged out everywhere (%d sessions ended) and remembered browsers forgotten.", n), nil
}

func (b *BackOffice) block(c fiber.Ctx, _ identity.Staff, a account.Account, v *web.View) (string, string, error) {
	r := reason(c, v, "blocking the account")
	if a.Status == account.StatusBlocked {
		v.Errors.Add("reason", "The account is already blocked")
	}
	if len(v.Errors) > 0 {
		return "", "", nil
	}
	ctx := c.Context()
	if err := b.s.People.Block(ctx, web.Actor(c), a.ID, "support: "+r); err != nil {
		return "", "", err
	}
	if _, err := b.s.Sessions.EndAccountSessions(ctx, a.ID, ""); err != nil {
		return "", "", err
	}
	if _, err := b.s.Grants.RevokeAccount(ctx, a.ID); err != nil {
		return "", "", err
	}
	return "Our support team blocked your idlink account: it cannot be used to log in. Contact us if you did not expect this",
		"The account is blocked. It cannot log in, and services' access to it has been withdrawn.", nil
}

func (b *BackOffice) unblock(c fiber.Ctx, m identity.Staff, a account.Account, v *web.View) (string, string, error) {
	r := reason(c, v, "unblocking the account")
	if a.Status != account.StatusBlocked {
		v.Errors.Add("reason", "The account is not blocked")
	}
	if len(v.Errors) > 0 {
		return "", "", nil
	}
	if err := b.s.People.Unblock(c.Context(), web.Actor(c), m.AccountID, a.ID, r); err != nil {
		return "", "", err
	}
	return "Our support team unblocked your idlink account: you can log in again",
		"The account is unblocked. The person can log in again.", nil
}

func (b *BackOffice) removePasskey(c fiber.Ctx, _ identity.Staff, a account.Account, v *web.View) (string, string, error) {
	id, decodeErr := base64.RawURLEncoding.DecodeString(c.FormValue("id"))
	var err error
	if decodeErr == nil && len(id) > 0 {
		err = b.s.Passkeys.RemoveCredential(c.Context(), a.ID, id)
	}
	if decodeErr != nil || len(id) == 0 || errors.Is(err, fido.ErrUnknownCredential) {
		v.Errors.Add("passkeys", "That passkey was not found. It may have been removed already")
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return "Our support team removed a passkey from your idlink account. It can no longer be used to log in",
		"The passkey is removed.", nil
}

func (b *BackOffice) removeDevice(c fiber.Ctx, _ identity.Staff, a account.Account, v *web.View) (string, string, error) {
	id := c.FormValue("id")
	err := b.s.Devices.Remove(c.Context(), a.ID, id)
	if id == "" || errors.Is(err, device.ErrNotFound) || errors.Is(err, device.ErrRemoved) || errors.Is(err, device.ErrInvalid) {
		v.Errors.Add("apps", "That device was not found. It may have been removed already")
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if b.s.DeviceRemoved != nil {
		b.s.DeviceRemoved(c.Context(), id)
	}
	return "Our support team removed a device with the idlink app from your account. It can no longer be used to log in or approve anything",
		"The device is removed.", nil
}

// resendSignup sends a registration's verification email again, with a
// new link (the old one stops working). The email itself tells the person.
func (b *BackOffice) resendSignup(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, SupportPath, identity.RoleSupport)
	if !ok {
		return err
	}
	p, err := b.s.People.PendingSignup(c.Context(), c.Params("id"))
	if errors.Is(err, account.ErrNotFound) {
		return b.d.Renderer.ErrorPage(c, http.StatusNotFound, "Registration not found",
			"This registration has been finished or replaced. Search again.")
	}
	if err != nil {
		return err
	}
	actor := web.Actor(c)
	if err := b.s.People.ResendSignup(c.Context(), actor, p.ID, p.Email); err != nil {
		return fmt.Errorf("resend verification email: %w", err)
	}
	if err := b.s.Activity.Record(c.Context(), actor, "support.resend_verification", audit.Success, "",
		map[string]any{"staff": m.AccountID, "signup": p.ID}); err != nil {
		return err
	}
	notice.Set(c, "The verification email is sent again to "+p.Email+", with a new link. Earlier links no longer work.")
	return seeOther(c, SupportPath+"?search=1&q="+url.QueryEscape(p.Email))
}
