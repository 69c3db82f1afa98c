// Package login is the login journey: a server-side state machine that
// takes a person from "who are you?" to a session that has proven the
// credentials a relying party asked for (password, then a second factor).
//
// Second factors plug in as Factors: each proves one credential component
// (the texted security code and a remembered browser prove Cd; a passkey
// proves Cm; later a phone approval). The journey asks only for what is
// still missing, so adding a factor never changes this code. A passkey may
// also sign someone in with no password at all (SignedInByCredential): a
// plain login wants {Cp, Cd} or {Cm}.
package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Auth is what a signed-in session has proven.
type Auth struct {
	AccountID   string            `json:"account_id"`
	Credentials trust.Credentials `json:"credentials"`
	AuthTime    time.Time         `json:"auth_time"`
	// LoginID is random per completed login, so a caller can tell a new
	// login from the one it saw before (prompt=login).
	LoginID string `json:"login_id"`
	// Method names the way in (see SignIn).
	Method string `json:"method,omitempty"`
	// Asserted marks a login carried in from another relying party.
	Asserted bool `json:"asserted,omitempty"`
	// DeviceID names the companion-app device whose credential made the
	// login, if one did (fido_auth_response): grants issued from it are
	// revoked when the device is removed.
	DeviceID string `json:"device_id,omitempty"`
}

// Request asks the journey to sign someone in.
type Request struct {
	// Want lists acceptable credential sets; the journey ends when the
	// session has proven any one of them. Empty means password and a
	// second factor ({Cp, Cd}) or a passkey ({Cm}).
	Want []trust.Credentials
	// ReturnTo is the local path to send the browser to when done.
	ReturnTo string
	// Force asks for every credential again even if the session already
	// proved it (prompt=login).
	Force bool
	// AllowRegistration shows the create-account link (default true).
	HideRegistration bool
	// ClientName names the service the person is logging in to, if any.
	ClientName string
}

// state is the journey's server-side state between pages.
type state struct {
	AccountID  string              `json:"account_id,omitempty"`
	Proven     trust.Credentials   `json:"proven,omitempty"`
	Want       []trust.Credentials `json:"want"`
	ReturnTo   string              `json:"return_to"`
	HideSignup bool                `json:"hide_signup,omitempty"`
	ClientName string              `json:"client_name,omitempty"`
	Factor     string              `json:"factor,omitempty"` // the factor whose page is current
	// Methods are the ways this journey has proven credentials so far
	// ("password", then a factor's name), for the sign-in's audit event.
	Methods []string `json:"methods,omitempty"`
}

// used records that method proved something in this journey.
func (st *state) used(method string) {
	if method != "" && !slices.Contains(st.Methods, method) {
		st.Methods = append(st.Methods, method)
	}
}

const (
	stateKey = "login"
	authKey  = web.SignedInKey
)

// Factor is a way to prove credential components after the password (or
// instead of it, for Cm). Implementations own their pages.
type Factor interface {
	// Name identifies the factor in state and audit events.
	Name() string
	// Proves lists the credential components a success proves.
	Proves() trust.Credentials
	// Available reports whether the factor can be used for acct now, in
	// this request, by a login that has proven proven so far.
	Available(c fiber.Ctx, acct account.Account, proven trust.Credentials) bool
	// Begin starts the factor for j (sends a code, asks the phone) and
	// sends the browser to its page.
	Begin(c fiber.Ctx, j *Journey, acct account.Account) error
	// Routes mounts the factor's pages for j.
	Routes(p web.Pages, j *Journey)
}

// Deps are what the journey is built from.
type Deps struct {
	Accounts *account.Service
	Renderer *web.Renderer
	Audit    *audit.Log
	Metrics  *metrics.Metrics
	// Check runs on every sign-in (identity's PDS check); nil runs none.
	Check LoginCheck
	// Passkeys enables "Log in with a passkey" on the login page; nil
	// leaves it out.
	Passkeys Passkeys
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Journey runs logins. It is safe for concurrent use.
type Journey struct {
	accounts *account.Service
	r        *web.Renderer
	audit    *audit.Log
	metrics  *metrics.Metrics
	check    LoginCheck
	passkeys Passkeys
	// factors are tried in this order for each missing credential.
	factors []Factor
	now     func() time.Time
}

// New returns the login journey with its second factors in order of
// preference: for each credential still missing, the first available
// factor that proves it is used (so a remembered browser goes before a
// phone approval, and both before a texted code).
func New(d Deps, factors ...Factor) *Journey {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Journey{accounts: d.Accounts, r: d.Renderer, audit: d.Audit, metrics: d.Metrics, check: d.Check,
		passkeys: d.Passkeys, factors: factors, now: d.Now}
}

// Register mounts the login pages.
func (j *Journey) Register(p web.Pages) {
	p.Get("/login", j.passwordPage)
	p.Post("/login", j.passwordSubmit)
	p.Post("/sign-out", j.signOut)
	p.Get("/login/continue", j.continuePage)
	if j.passkeys != nil {
		PostJSON(p, "/login/passkey/begin", j.passkeyBegin)
		PostJSON(p, "/login/passkey/finish", j.passkeyFinish)
	}
	for _, f := range j.factors {
		f.Routes(p, j)
	}
}

// Start begins a login for req and sends the browser to its first step.
// A session that is already signed in keeps what it proved (unless
// req.Force), so only what is missing is asked for.
func (j *Journey) Start(c fiber.Ctx, req Request) error {
	st := state{Want: req.Want, ReturnTo: returnOrAccount(req.ReturnTo), HideSignup: req.HideRegistration, ClientName: req.ClientName}
	if len(st.Want) == 0 {
		st.Want = defaultWant()
	}
	if a, ok := j.Current(c); ok && !req.Force {
		st.AccountID, st.Proven = a.AccountID, a.Credentials
		st.used(a.Method)
	}
	web.Sess(c).Put(stateKey, st)
	j.countStarted(c)
	return j.next(c, st)
}

// countStarted counts a started login once its state is saved: a request
// that fails before then started nothing.
func (j *Journey) countStarted(c fiber.Ctx) {
	web.Sess(c).AfterSave(func() { j.metrics.JourneysStarted.WithLabelValues("login").Inc() })
}

func (j *Journey) load(c fiber.Ctx) (state, bool) {
	var st state
	ok := web.Sess(c).Get(stateKey, &st)
	return st, ok
}

// next moves the journey on: done when a wanted set is proven, else the
// first step that can make progress towards one.
func (j *Journey) next(c fiber.Ctx, st state) error {
	for _, want := range st.Want {
		if len(st.Proven.Missing(want)) == 0 {
			return j.complete(c, st)
		}
	}
	if st.AccountID == "" {
		return redirect(c, "/login")
	}
	acct, err := j.accounts.Account(c.Context(), st.AccountID)
	if err != nil {
		return fmt.Errorf("login journey: %w", err)
	}
	for _, want := range st.Want {
		for _, missing := range st.Proven.Missing(want) {
			if missing == trust.Cp {
				return redirect(c, "/login")
			}
			for _, f := range j.factors {
				if f.Proves().Has(missing) && f.Available(c, acct, st.Proven) {
					st.Factor = f.Name()
					web.Sess(c).Put(stateKey, st)
					return f.Begin(c, j, acct)
				}
			}
		}
	}
	return j.r.ErrorPage(c, http.StatusForbidden, "You cannot log in to this service yet",
		"This service needs a way of proving who you are that is not set up on your account.")
}

// Proved records that the current factor proved cred and moves on. Factors
// call it from their handlers.
func (j *Journey) Proved(c fiber.Ctx, cred trust.Credential) error {
	st, ok := j.load(c)
	if !ok || st.AccountID == "" {
		return redirect(c, "/login")
	}
	st.Proven = st.Proven.With(cred)
	st.used(st.Factor)
	st.Factor = ""
	web.Sess(c).Put(stateKey, st)
	return j.next(c, st)
}

// ProvedAll records that the current factor proved every one of creds
// (a phone approval proves Cd and Cm) and moves on.
func (j *Journey) ProvedAll(c fiber.Ctx, creds ...trust.Credential) error {
	st, ok := j.load(c)
	if !ok || st.AccountID == "" {
		return redirect(c, "/login")
	}
	for _, cred := range creds {
		st.Proven = st.Proven.With(cred)
	}
	st.used(st.Factor)
	st.Factor = ""
	web.Sess(c).Put(stateKey, st)
	return j.next(c, st)
}

// switchFactor moves the journey from the current factor to the factor
// named name (a phone approval falling back to a texted code).
func (j *Journey) switchFactor(c fiber.Ctx, acct account.Account, name string) error {
	st, ok := j.load(c)
	if !ok || st.AccountID != acct.ID {
		return redirect(c, "/login")
	}
	for _, f := range j.factors {
		if f.Name() == name && f.Available(c, acct, st.Proven) {
			st.Factor = name
			web.Sess(c).Put(stateKey, st)
			return f.Begin(c, j, acct)
		}
	}
	return j.r.ErrorPage(c, http.StatusForbidden, "You cannot log in to this service yet",
		"This service needs a way of proving who you are that is not set up on your account.")
}

// factorNotice is a notice a factor leaves for the next page (why the
// texted code is asked for instead).
const factorNotice = web.Notice("login.notice")

// AccountInProgress returns the account the journey is signing in, for
// factor pages.
func (j *Journey) AccountInProgress(c fiber.Ctx, factor string) (account.Account, bool) {
	st, ok := j.load(c)
	if !ok || st.AccountID == "" || st.Factor != factor {
		return account.Account{}, false
	}
	acct, err := j.accounts.Account(c.Context(), st.AccountID)
	if err != nil {
		return account.Account{}, false
	}
	return acct, true
}

func (j *Journey) complete(c fiber.Ctx, st state) error {
	_, err := j.SignIn(c, Proof{AccountID: st.AccountID, Method: strings.Join(st.Methods, "+"), Credentials: st.Proven, Switch: true})
	if errors.Is(err, ErrAccountBlocked) {
		web.Sess(c).Delete(stateKey)
		j.metrics.JourneysFinished.WithLabelValues("login", "blocked").Inc()
		return j.r.ErrorPage(c, http.StatusForbidden, "You cannot log in with this account",
			"This account can no longer be used. If you think this is a mistake, contact us.")
	} else if err != nil {
		return err
	}
	web.Sess(c).AfterSave(func() { j.metrics.JourneysFinished.WithLabelValues("login", "completed").Inc() })
	return redirect(c, st.ReturnTo)
}

// LoginCheck runs when a login completes, before the session is signed
// in (identity's check of the person's record). An error wrapping
// ErrAccountBlocked refuses the login; any other error fails it.
type LoginCheck interface {
	CheckLogin(ctx context.Context, a audit.Actor, accountID string) error
}

// CompleteSignIn signs in an account whose credentials another journey
// (creating an account) has just proven, and continues where a pending
// login journey wanted to go.
func (j *Journey) CompleteSignIn(c fiber.Ctx, accountID string, proven trust.Credentials) error {
	st, ok := j.load(c)
	if !ok {
		st = state{ReturnTo: "/account", Want: defaultWant()}
	}
	st.AccountID, st.Proven, st.Methods = accountID, proven, []string{MethodSignup}
	web.Sess(c).Put(stateKey, st)
	// A new account has proven what it has; if a relying party wants more
	// (a password typed in another browser, say) the journey asks for it.
	return j.next(c, st)
}

func (j *Journey) signOut(c fiber.Ctx) error {
	s := web.Sess(c)
	if id := s.AccountID(); id != "" {
		if err := j.audit.Record(c.Context(), web.Actor(c), "session.signed_out", audit.Success, id, nil); err != nil {
			return err
		}
	}
	s.Destroy()
	return j.r.Render(c, http.StatusOK, "signed_out", web.View{Title: "You have signed out"})
}

// returnOrAccount keeps ReturnTo a path of this server (web.LocalPath),
// the account page otherwise, so the journey is no open redirect.
func returnOrAccount(p string) string {
	if p = web.LocalPath(p); p == "" {
		return "/account"
	}
	return p
}

func redirect(c fiber.Ctx, to string) error { return c.Redirect().Status(http.StatusSeeOther).To(to) }

// ---- the password step ----

func (j *Journey) passwordView(c fiber.Ctx, st state) web.View {
	return web.View{Title: "Log in", Data: passwordPageData{HideSignup: st.HideSignup, ClientName: st.ClientName, Passkeys: j.passkeys != nil}}
}

type passwordPageData struct {
	HideSignup bool
	ClientName string
	// Passkeys shows "Log in with a passkey" and autofill of passkeys.
	Passkeys bool
}

func (j *Journey) passwordPage(c fiber.Ctx) error {
	st, ok := j.load(c)
	if a, signedIn := j.Current(c); !ok && signedIn && (a.Credentials.Has(trust.Cd) || a.Credentials.Has(trust.Cm)) {
		// Back after logging in: the journey is finished.
		return redirect(c, "/account")
	}
	if !ok {
		// Someone came to /login directly: a plain login to the account page.
		st = state{Want: defaultWant(), ReturnTo: returnOrAccount(c.Query("return_to"))}
		web.Sess(c).Put(stateKey, st)
		j.countStarted(c)
	}
	return j.r.Render(c, http.StatusOK, "login", j.passwordView(c, st))
}

func (j *Journey) passwordSubmit(c fiber.Ctx) error {
	st, ok := j.load(c)
	if !ok {
		st = state{Want: defaultWant(), ReturnTo: "/account"}
	}
	email, pw := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	v := j.passwordView(c, st)
	v.Values = map[string]string{"email": email}
	if email == "" {
		v.Errors.Add("email", "Enter your email address")
	}
	if pw == "" {
		v.Errors.Add("password", "Enter your password")
	}
	if len(v.Errors) > 0 {
		return j.r.Render(c, http.StatusUnprocessableEntity, "login", v)
	}
	acct, err := j.accounts.CheckPassword(c.Context(), web.Actor(c), email, pw)
	var pending *account.PendingSignupError
	switch {
	case errors.As(err, &pending):
		web.Sess(c).Delete(stateKey)
		return account.ResumePending(c, pending.SignupID, pending.Email)
	case errors.Is(err, account.ErrBadPassword):
		v.Errors.Add("email", "Enter a correct email address and password")
		return j.r.Render(c, http.StatusUnprocessableEntity, "login", v)
	case errors.Is(err, account.ErrLocked):
		v.Errors.Add("email", "You have entered the wrong details too many times. Wait 15 minutes and try again, or reset your password.")
		return j.r.Render(c, http.StatusTooManyRequests, "login", v)
	case errors.Is(err, account.ErrBlocked):
		j.metrics.JourneysFinished.WithLabelValues("login", "blocked").Inc()
		return j.r.ErrorPage(c, http.StatusForbidden, "You cannot log in with this account", "Contact us if you think this is a mistake.")
	case err != nil:
		return err
	}
	if acct.Status == account.StatusPendingPhone {
		web.Sess(c).Delete(stateKey)
		return account.ResumePhone(c, acct.ID)
	}
	if st.AccountID != acct.ID { // a different person, or a first sign-in
		st.Proven, st.Methods = nil, nil
	}
	st.AccountID = acct.ID
	st.Proven = st.Proven.With(trust.Cp)
	st.used(MethodPassword)
	web.Sess(c).Renew()
	web.Sess(c).Put(stateKey, st)
	return j.next(c, st)
}
