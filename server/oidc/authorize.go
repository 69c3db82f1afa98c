package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Login is what /authorize needs from the login capability.
type Login interface {
	// CurrentIncludingAsserted reports who is signed in on this browser
	// and what they proved, including a login carried in from another
	// relying party.
	CurrentIncludingAsserted(c fiber.Ctx) (login.Auth, bool)
	// Start sends the browser through the login journey.
	Start(c fiber.Ctx, req login.Request) error
	// SignIn signs the browser in with a proof verified here (the
	// companion app's assertion, another relying party's login).
	SignIn(c fiber.Ctx, p login.Proof) (login.Auth, error)
}

// Authorize serves /authorize and the pages around it: consent, the
// proofing-level hand-over, and the return from the login journey.
type Authorize struct {
	s        *Server
	login    Login
	r        *web.Renderer
	consents *consents
	fido     FIDOLogin // nil: fido_auth_response is refused
}

// FIDOLogin verifies the companion app's biometric login: an assertion
// answering a ceremony begun at /fido/authenticate/begin, found by its
// challenge and used up. *fido.Service implements it.
type FIDOLogin interface {
	FinishLoginByChallenge(ctx context.Context, body []byte) (fido.Credential, error)
}

// NewAuthorize returns the authorization endpoint of s, signing people in
// through l and rendering pages with r. With f, it accepts the companion
// app's fido_auth_response; with nil, that parameter is refused.
func NewAuthorize(s *Server, l Login, r *web.Renderer, f FIDOLogin) *Authorize {
	return &Authorize{s: s, login: l, r: r, consents: &consents{store: s.store}, fido: f}
}

// Register mounts /authorize (GET and POST) and its pages.
func (a *Authorize) Register(p web.Pages) {
	p.Get("/authorize", a.handleAuthorize)
	// POST /authorize comes from a relying party's page, so it carries no
	// CSRF token of ours: it is an authorization request, not a form of
	// this site, and changes nothing until the person acts.
	p.R.Post("/authorize", p.Sessions.Middleware(), web.NoStore, a.handleAuthorize)
	p.Get("/authorize/continue", a.handleContinue)
	p.Post("/authorize/consent", a.handleConsent)
	p.Post("/authorize/cancel", a.handleCancel)
	p.Post("/authorize/switch", a.handleSwitch)
}

// Limits on authorization request parameters.
const (
	maxParamLen       = 2048
	maxPendingPerSess = 5
	// pendingLifetime is how long a person has to log in (and create an
	// account) before the request must be started again.
	pendingLifetime = time.Hour
)

// refused lists the parameters whose meaning idlink cannot honour and
// must not silently drop, with the error each gets (OpenID Connect Core
// 1.0 section 3.1.2.6): a request object or registration carries other
// parameters inside it.
var refused = []struct{ param, code string }{
	{"request", "request_not_supported"},
	{"request_uri", "request_uri_not_supported"},
	{"registration", "registration_not_supported"},
}

// ignored lists the parameters NHS login documents as not supported and
// ignores; idlink ignores them too (logging them at debug), so that a
// library configured to send one works unchanged.
var ignored = []string{"acr_values", "max_age", "ui_locales", "id_token_hint", "login_hint", "claims", "claims_locales"}

// repeatedParam returns the name of the first parameter the request
// carries more than once, or "" (RFC 6749 section 3.1: parameters must
// not be included more than once).
func repeatedParam(c fiber.Ctx) string {
	args := c.Request().URI().QueryArgs()
	if c.Method() == http.MethodPost {
		args = c.Request().PostArgs()
	}
	seen := map[string]bool{}
	for k := range args.All() {
		key := string(k)
		if seen[key] {
			return key
		}
		seen[key] = true
	}
	return ""
}

// pending is an authorization request waiting for the person, kept in the
// session under its id.
type pending struct {
	ID                  string    `json:"id"`
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri"`
	State               string    `json:"state"`
	Nonce               string    `json:"nonce"`
	Scope               string    `json:"scope"`
	VTR                 string    `json:"vtr"` // normalised JSON array
	CodeChallenge       string    `json:"code_challenge,omitempty"`
	CodeChallengeMethod string    `json:"code_challenge_method,omitempty"`
	Prompt              string    `json:"prompt,omitempty"`
	HideRegistration    bool      `json:"hide_registration,omitempty"`
	Created             time.Time `json:"created"`
	// PriorLogin is the login the session had when the request came; with
	// prompt=login only a different (newer) login will do.
	PriorLogin string `json:"prior_login,omitempty"`
	// Switch is a verified proof for another account than the one signed
	// in, waiting for the person to choose (the switch-account page).
	Switch *login.Proof `json:"switch,omitempty"`
	// Enrol marks a request for device_enrolment: it always needs a login
	// made for it (as prompt=login) and the person's confirmation.
	Enrol bool `json:"enrol,omitempty"`
}

const pendingKey = "authorize"

type pendingSet map[string]pending

func loadPending(c fiber.Ctx) pendingSet {
	set := pendingSet{}
	web.Sess(c).Get(pendingKey, &set)
	return set
}

func savePending(c fiber.Ctx, set pendingSet) {
	if len(set) == 0 {
		web.Sess(c).Delete(pendingKey)
		return
	}
	web.Sess(c).Put(pendingKey, set)
}

// authzError is an error answered to the relying party by redirect.
type authzError struct{ code, description string }

func (e *authzError) Error() string { return e.code + ": " + e.description }

func authzErr(code, format string, a ...any) *authzError {
	return &authzError{code: code, description: fmt.Sprintf(format, a...)}
}

func (a *Authorize) handleAuthorize(c fiber.Ctx) error {
	param := func(name string) string {
		if c.Method() == http.MethodPost {
			return c.FormValue(name)
		}
		return c.Query(name)
	}
	act := web.Actor(c)
	repeated := repeatedParam(c)
	// 1. The client and its redirect URI, before anything else: a wrong
	// one gets a page, never a redirect.
	clientID, redirectURI := param("client_id"), param("redirect_uri")
	if repeated == "client_id" || repeated == "redirect_uri" {
		a.s.record(c.Context(), act, "authorize.invalid_request", audit.Failure, "", map[string]any{"client_id": truncateParam(clientID), "error": "repeated " + repeated})
		return a.r.ErrorPage(c, http.StatusBadRequest, "There is a problem with the service you came from",
			"It sent a request idlink cannot read ("+repeated+" more than once). Go back to the service and try again, or contact it.")
	}
	client, err := a.s.clients.Get(c.Context(), clientID)
	if clientID == "" || len(clientID) > maxParamLen || errors.Is(err, ErrClientNotFound) {
		a.s.record(c.Context(), act, "authorize.invalid_client", audit.Failure, "", map[string]any{"client_id": truncateParam(clientID)})
		return a.r.ErrorPage(c, http.StatusBadRequest, "There is a problem with the service you came from",
			"It is not set up to use idlink (unknown client). Go back to the service and try again, or contact it.")
	}
	if err != nil {
		return err
	}
	if redirectURI == "" || !client.HasRedirectURI(redirectURI) {
		a.s.record(c.Context(), act, "authorize.invalid_redirect_uri", audit.Failure, "", map[string]any{"client_id": client.ID, "redirect_uri": truncateParam(redirectURI)})
		return a.r.ErrorPage(c, http.StatusBadRequest, "There is a problem with the service you came from",
			"It asked to send you back to an address it has not registered with idlink. Go back to the service and try again, or contact it.")
	}
	state := param("state")
	req, aerr := a.parse(client, param)
	if repeated != "" {
		aerr = authzErr(codeInvalidRequest, "parameter %s is repeated", repeated)
	}
	if aerr != nil {
		a.s.record(c.Context(), act, "authorize.invalid_request", audit.Failure, "", map[string]any{"client_id": client.ID, "error": aerr.code, "description": aerr.description})
		return a.redirectError(c, redirectURI, state, aerr)
	}
	req.ID = secrets.NewID()
	req.Created = a.s.now().Truncate(time.Second)

	if cur, ok := a.login.CurrentIncludingAsserted(c); ok {
		req.PriorLogin = cur.LoginID
	}
	// A login proven with the request itself: the first relying party
	// vouching for its login, or the companion app's biometric login (a
	// login newer than PriorLogin, so it satisfies prompt=login).
	var proof *login.Proof
	if raw := param("asserted_login_identity"); raw != "" {
		al, err := a.s.VerifyAssertedLogin(c.Context(), raw, client.ID)
		if err != nil {
			a.s.record(c.Context(), act, "authorize.asserted_login_rejected", audit.Failure, "", map[string]any{"client_id": client.ID, "error": err.Error()})
			return a.redirectError(c, redirectURI, state, authzErr(codeInvalidRequest, "asserted_login_identity is not valid"))
		}
		a.s.record(c.Context(), act, "authorize.asserted_login", audit.Success, al.AccountID, map[string]any{"client_id": client.ID, "from": al.FromClientID})
		proof = &login.Proof{AccountID: al.AccountID, Method: login.MethodAssertedLogin, Credentials: al.Credentials,
			AuthTime: al.AuthTime, Asserted: true, Detail: map[string]any{"client_id": client.ID, "from": al.FromClientID}}
	}
	if raw := param("fido_auth_response"); raw != "" {
		p, aerr := a.fidoProof(c, client, raw)
		if aerr != nil {
			return a.redirectError(c, redirectURI, state, aerr)
		}
		proof = &p
	}
	set := loadPending(c)
	set.add(req)
	savePending(c, set)
	if proof != nil {
		return a.signIn(c, req, client, *proof)
	}
	return a.proceed(c, req, client)
}

// signIn signs the browser in with a proof that came with the request,
// then carries on with it. A browser signed in to another account is not
// switched silently: the person is asked first.
func (a *Authorize) signIn(c fiber.Ctx, req pending, client *Client, p login.Proof) error {
	auth, err := a.login.SignIn(c, p)
	switch {
	case errors.Is(err, login.ErrOtherAccount):
		return a.askSwitch(c, req, client, p)
	case errors.Is(err, login.ErrAccountBlocked):
		event := "authorize.fido_rejected"
		if p.Asserted {
			event = "authorize.asserted_login_rejected"
		}
		a.s.record(c.Context(), web.Actor(c), event, audit.Failure, p.AccountID, map[string]any{"client_id": client.ID, "reason": "account_blocked"})
		return a.finishError(c, req, authzErr("access_denied", "the account cannot be used to sign in"))
	case err != nil:
		return err
	}
	if p.Asserted {
		// Another relying party's login is not a new login here: with
		// prompt=login the person still logs in.
		req.PriorLogin = auth.LoginID
	}
	req.Switch = nil
	set := loadPending(c)
	set[req.ID] = req
	savePending(c, set)
	return a.proceed(c, req, client)
}

// switchView is what the switch-account page shows.
type switchView struct {
	RequestID, ClientName, Current, Other string
}

// askSwitch keeps the verified proof with the request and asks the person
// whether to leave the account this browser is signed in to.
func (a *Authorize) askSwitch(c fiber.Ctx, req pending, client *Client, p login.Proof) error {
	cur, _ := a.login.CurrentIncludingAsserted(c)
	curPerson, err := a.s.person(c.Context(), cur.AccountID)
	if err != nil && !errors.Is(err, ErrAccountBlocked) && !errors.Is(err, ErrNoPerson) {
		return err
	}
	other, err := a.s.person(c.Context(), p.AccountID)
	if err != nil && !errors.Is(err, ErrAccountBlocked) && !errors.Is(err, ErrNoPerson) {
		return err
	}
	req.Switch = &p
	set := loadPending(c)
	set[req.ID] = req
	savePending(c, set)
	a.s.record(c.Context(), web.Actor(c), "authorize.switch_asked", audit.Success, cur.AccountID,
		map[string]any{"client_id": client.ID, "method": p.Method, "other_account_id": p.AccountID})
	return a.r.Render(c, http.StatusOK, "switch_account", web.View{Title: "You are already logged in",
		Data: switchView{RequestID: req.ID, ClientName: client.Name, Current: curPerson.Email, Other: other.Email}})
}

// handleSwitch takes the person's choice on the switch-account page:
// continue as the other account (signing the first out of this browser),
// or stay and send the relying party access_denied.
func (a *Authorize) handleSwitch(c fiber.Ctx) error {
	req, client, err := a.loadRequest(c, c.FormValue("id"))
	if err != nil || client == nil {
		return err
	}
	if req.Switch == nil {
		return a.proceed(c, req, client)
	}
	p := *req.Switch
	if c.FormValue("decision") != "switch" {
		a.s.record(c.Context(), web.Actor(c), "authorize.switch_declined", audit.Success, p.AccountID,
			map[string]any{"client_id": client.ID, "method": p.Method})
		return a.finishError(c, req, authzErr("access_denied", "the person chose to stay logged in to another account"))
	}
	p.Switch = true
	return a.signIn(c, req, client, p)
}

func (set pendingSet) add(p pending) {
	for len(set) >= maxPendingPerSess { // the oldest request gives way
		var oldest string
		for id, q := range set {
			if oldest == "" || q.Created.Before(set[oldest].Created) {
				oldest = id
			}
		}
		delete(set, oldest)
	}
	set[p.ID] = p
}

// parse checks every parameter after client_id and redirect_uri.
func (a *Authorize) parse(client *Client, param func(string) string) (pending, *authzError) {
	req := pending{ClientID: client.ID, RedirectURI: param("redirect_uri")}
	if aerr := a.screen(client, param); aerr != nil {
		return req, aerr
	}
	// state and nonce are optional (OpenID Connect Core 1.0 sections
	// 3.1.2.1 and 3.1.2.2 for the code flow); when absent, they are left
	// out of the response and the ID token.
	req.State = param("state")
	req.Nonce = param("nonce")
	if len(req.Nonce) > maxNonceLen {
		return req, authzErr(codeInvalidRequest, "nonce is longer than %d bytes", maxNonceLen)
	}
	req.Scope = param("scope")
	if !slices.Contains(strings.Fields(req.Scope), "openid") {
		return req, authzErr(codeInvalidScope, "scope must include openid")
	}
	// Validate the scopes now, at the highest level, so a request that can
	// never be granted fails before the person logs in.
	if _, err := ResolveScopes(client, req.Scope, trust.P9); err != nil {
		return req, authzErr(codeInvalidScope, "%s", strings.TrimPrefix(err.Error(), ErrInvalidScope.Error()+": "))
	}
	prompt, perr := parsePrompt(param("prompt"))
	if perr != nil {
		return req, perr
	}
	req.Prompt = prompt
	req.Enrol = slices.Contains(strings.Fields(req.Scope), ScopeDeviceEnrolment)
	if req.Enrol && req.Prompt == "none" {
		return req, authzErr("interaction_required", "device_enrolment needs the person to log in and confirm: prompt=none cannot be used")
	}
	vs, err := client.RequestedVectors(param("vtr"))
	if err != nil {
		return req, authzErr(codeInvalidRequest, "%s", err.Error())
	}
	req.VTR = trust.FormatVTR(vs)
	if aerr := parsePKCE(client, param, &req); aerr != nil {
		return req, aerr
	}
	// NHS login: any value other than "false" shows registration.
	req.HideRegistration = param("allow_registration") == "false"
	if param("fido_auth_response") != "" && param("asserted_login_identity") != "" {
		return req, authzErr(codeInvalidRequest, "asserted_login_identity and fido_auth_response cannot be used together")
	}
	if param("fido_auth_response") != "" && a.fido == nil {
		return req, authzErr(codeInvalidRequest, "fido_auth_response is not supported by this server")
	}
	return req, nil
}

// screen refuses what no request may carry before its values are read:
// overlong parameters, the refused ones, a response type or mode other
// than code and query, an unknown display; it logs the ignored ones.
func (a *Authorize) screen(client *Client, param func(string) string) *authzError {
	for _, name := range []string{"scope", "state", "nonce", "vtr", "code_challenge", "prompt", "display", "response_type", "response_mode", "asserted_login_identity", "fido_auth_response"} {
		if len(param(name)) > maxParamLen*4 || (name != "asserted_login_identity" && name != "fido_auth_response" && len(param(name)) > maxParamLen) {
			return authzErr(codeInvalidRequest, "%s is too long", name)
		}
	}
	for _, u := range refused {
		if param(u.param) != "" {
			return authzErr(u.code, "%s is not supported", u.param)
		}
	}
	for _, name := range ignored {
		if v := param(name); v != "" {
			a.s.log.Debug("authorize: ignoring a parameter NHS login does not support", "client_id", client.ID, "param", name, "value", truncateParam(v))
		}
	}
	if rt := param("response_type"); rt != "code" {
		if rt == "" {
			return authzErr(codeInvalidRequest, "response_type is missing")
		}
		return authzErr("unsupported_response_type", "only response_type=code is supported")
	}
	if rm := param("response_mode"); rm != "" && rm != "query" {
		return authzErr(codeInvalidRequest, "only response_mode=query is supported")
	}
	switch d := param("display"); d {
	case "", "page", "touch":
	case "popup", "wap":
		// NHS login does not support them and shows its usual page.
		a.s.log.Debug("authorize: ignoring display", "client_id", client.ID, "display", d)
	default:
		return authzErr(codeInvalidRequest, "display must be page or touch")
	}
	return nil
}

// parsePKCE reads the code challenge (S256 when the method is left out);
// a public client must send one.
func parsePKCE(client *Client, param func(string) string, req *pending) *authzError {
	req.CodeChallenge, req.CodeChallengeMethod = param("code_challenge"), param("code_challenge_method")
	if req.CodeChallenge != "" && req.CodeChallengeMethod == "" {
		req.CodeChallengeMethod = CodeChallengeS256
	}
	if err := ValidateCodeChallenge(req.CodeChallenge, req.CodeChallengeMethod); err != nil {
		return authzErr(codeInvalidRequest, "%s", strings.TrimPrefix(err.Error(), ErrInvalidRequest.Error()+": "))
	}
	if client.Public && req.CodeChallenge == "" {
		return authzErr(codeInvalidRequest, "a public client must use PKCE (code_challenge with S256)")
	}
	return nil
}

// parsePrompt reads prompt, a space-separated list (OpenID Connect Core
// 1.0 section 3.1.2.1). consent is ignored, as NHS login ignores it (a
// person is asked whenever a service wants something not yet agreed);
// none and login remain; none with anything else is invalid.
func parsePrompt(raw string) (string, *authzError) {
	var none, login bool
	for _, p := range strings.Fields(raw) {
		switch p {
		case "none":
			none = true
		case "login":
			login = true
		case "consent":
		default:
			return "", authzErr(codeInvalidRequest, "prompt must be none or login")
		}
	}
	switch {
	case none && login:
		return "", authzErr(codeInvalidRequest, "prompt=none cannot be combined with login")
	case none:
		return "none", nil
	case login:
		return "login", nil
	}
	return "", nil
}

// proceed takes a stored request as far as it can go: a code when the
// session meets a requested vector, otherwise the login journey, the
// proofing-level page or consent.
func (a *Authorize) proceed(c fiber.Ctx, req pending, client *Client) error {
	ctx := c.Context()
	vs, err := trust.ParseVTR(req.VTR)
	if err != nil {
		return fmt.Errorf("stored vtr: %w", err)
	}
	auth, signedIn := a.login.CurrentIncludingAsserted(c)
	fresh := req.Prompt == "login" || req.Enrol
	if signedIn && fresh && auth.LoginID == req.PriorLogin {
		signedIn = false // prompt=login, enrolment: only a login after the request counts
	}
	if signedIn && auth.Asserted && slices.Contains(strings.Fields(req.Scope), ScopeDeviceEnrolment) {
		signedIn = false // enrolling the app needs a login made on idlink
	}
	var person Person
	if signedIn {
		person, err = a.s.person(ctx, auth.AccountID)
		if errors.Is(err, ErrAccountBlocked) || errors.Is(err, ErrNoPerson) {
			return a.finishError(c, req, authzErr("access_denied", "the account cannot be used to sign in"))
		}
		if err != nil {
			return err
		}
		if vot, ok := trust.Choose(vs, person.ProofingLevel, auth.Credentials); ok {
			return a.consentOrCode(c, req, client, auth, person, vot)
		}
	}
	if req.Prompt == "none" {
		return a.finishError(c, req, authzErr("sso_login_required", "the session does not meet any requested vector of trust"))
	}
	// What can the journey aim for? Signed in, only vectors the person's
	// level allows; otherwise any (the level is checked on return).
	level := trust.P9
	if signedIn {
		level = person.ProofingLevel
	}
	want := trust.CredentialSets(vs, level)
	if len(want) == 0 {
		return a.uplift(c, req, client, person, vs)
	}
	return a.login.Start(c, login.Request{
		Want:             want,
		ReturnTo:         "/authorize/continue?id=" + url.QueryEscape(req.ID),
		Force:            fresh,
		HideRegistration: req.HideRegistration,
		ClientName:       client.Name,
	})
}

// handleContinue is where the login journey returns to.
func (a *Authorize) handleContinue(c fiber.Ctx) error {
	req, client, err := a.loadRequest(c, c.Query("id"))
	if err != nil {
		return err
	}
	if client == nil {
		return nil // a page was rendered
	}
	return a.proceed(c, req, client)
}

func (a *Authorize) loadRequest(c fiber.Ctx, id string) (pending, *Client, error) {
	set := loadPending(c)
	req, ok := set[id]
	if !ok || a.s.now().Sub(req.Created) > pendingLifetime {
		if ok {
			delete(set, id)
			savePending(c, set)
		}
		return req, nil, a.r.ErrorPage(c, http.StatusBadRequest, "You need to start again",
			"This page has expired. Go back to the service you were using and log in again.")
	}
	client, err := a.s.clients.Get(c.Context(), req.ClientID)
	if errors.Is(err, ErrClientNotFound) {
		delete(set, id)
		savePending(c, set)
		return req, nil, a.r.ErrorPage(c, http.StatusBadRequest, "There is a problem with the service you came from",
			"It is no longer set up to use idlink.")
	}
	if err != nil {
		return req, nil, err
	}
	return req, client, nil
}

// consentOrCode issues the code, after asking for consent if the person
// has not yet agreed to share these scopes with this client.
func (a *Authorize) consentOrCode(c fiber.Ctx, req pending, client *Client, auth login.Auth, person Person, vot trust.Vector) error {
	scopes, err := ResolveScopes(client, req.Scope, vot.Level)
	if err != nil {
		return a.finishError(c, req, authzErr(codeInvalidScope, "%s", err.Error()))
	}
	shared := sharedScopes(scopes)
	agreed, err := a.consents.covers(c.Context(), auth.AccountID, client.ID, shared)
	if err != nil {
		return err
	}
	// Enrolling a device is never agreed once for all: the person confirms
	// each time, on this phone, that they are setting up the app.
	if enrol := slices.Contains(scopes, ScopeDeviceEnrolment); enrol {
		return a.r.Render(c, http.StatusOK, "consent", web.View{Title: "Set up the app on this phone",
			Data: consentView{RequestID: req.ID, ClientName: client.Name, Items: describeScopes(shared), Enrol: true}})
	}
	if !agreed {
		// Even with prompt=none: NHS login asks a person signed in by
		// single sign-on to agree the first time a service (or a service
		// asking for more) sees them, where OpenID Connect would answer
		// consent_required. Declining answers access_denied.
		return a.r.Render(c, http.StatusOK, "consent", web.View{Title: "Share your details with " + client.Name,
			Data: consentView{RequestID: req.ID, ClientName: client.Name, Items: describeScopes(shared)}})
	}
	return a.issue(c, req, client, auth, scopes, vot)
}

func (a *Authorize) issue(c fiber.Ctx, req pending, client *Client, auth login.Auth, scopes []string, vot trust.Vector) error {
	vs, err := trust.ParseVTR(req.VTR)
	if err != nil {
		return fmt.Errorf("stored vtr: %w", err)
	}
	code, err := a.s.IssueCode(c.Context(), Grant{
		ClientID: client.ID, RedirectURI: req.RedirectURI, AccountID: auth.AccountID, Scopes: scopes,
		Nonce: req.Nonce, VoT: vot.String(), VTR: vs, AuthTime: auth.AuthTime, Credentials: auth.Credentials,
		CodeChallenge: req.CodeChallenge, CodeChallengeMethod: req.CodeChallengeMethod, DeviceID: auth.DeviceID,
	})
	if errors.Is(err, ErrAccountBlocked) {
		return a.finishError(c, req, authzErr("access_denied", "the account cannot be used to sign in"))
	}
	if err != nil {
		return err
	}
	a.forget(c, req.ID)
	a.s.record(c.Context(), web.Actor(c), "authorize.code_issued", audit.Success, auth.AccountID,
		map[string]any{"client_id": client.ID, "vot": vot.String(), "scopes": strings.Join(scopes, " ")})
	v := url.Values{"code": {code}}
	if req.State != "" {
		v.Set("state", req.State)
	}
	return redirectTo(c, req.RedirectURI, v)
}

func (a *Authorize) handleConsent(c fiber.Ctx) error {
	req, client, err := a.loadRequest(c, c.FormValue("id"))
	if err != nil || client == nil {
		return err
	}
	auth, ok := a.login.CurrentIncludingAsserted(c)
	if !ok || req.Switch != nil {
		return a.proceed(c, req, client)
	}
	if c.FormValue("decision") != "allow" {
		a.s.record(c.Context(), web.Actor(c), "authorize.consent_declined", audit.Failure, auth.AccountID, map[string]any{"client_id": client.ID})
		return a.finishError(c, req, authzErr("access_denied", "the person declined to share their details"))
	}
	person, err := a.s.person(c.Context(), auth.AccountID)
	if err != nil {
		return a.finishError(c, req, authzErr("access_denied", "the account cannot be used to sign in"))
	}
	vs, err := trust.ParseVTR(req.VTR)
	if err != nil {
		return fmt.Errorf("stored vtr: %w", err)
	}
	vot, met := trust.Choose(vs, person.ProofingLevel, auth.Credentials)
	if !met {
		return a.proceed(c, req, client)
	}
	scopes, err := ResolveScopes(client, req.Scope, vot.Level)
	if err != nil {
		return a.finishError(c, req, authzErr(codeInvalidScope, "%s", err.Error()))
	}
	remembered := slices.DeleteFunc(sharedScopes(scopes), func(sc string) bool { return sc == ScopeDeviceEnrolment })
	if err := a.consents.add(c.Context(), auth.AccountID, client.ID, remembered, a.s.now()); err != nil {
		return err
	}
	a.s.record(c.Context(), web.Actor(c), "authorize.consent_given", audit.Success, auth.AccountID, map[string]any{"client_id": client.ID, "scopes": strings.Join(scopes, " ")})
	return a.issue(c, req, client, auth, scopes, vot)
}

// uplift is shown when the person is signed in but their proofing level
// is below every requested vector.
func (a *Authorize) uplift(c fiber.Ctx, req pending, client *Client, person Person, vs []trust.Vector) error {
	need := trust.P9
	for _, v := range vs {
		if v.Level < need {
			need = v.Level
		}
	}
	return a.r.Render(c, http.StatusOK, "uplift", web.View{Title: "You need to prove who you are",
		Data: upliftView{RequestID: req.ID, ClientName: client.Name, Have: person.ProofingLevel.String(), Need: need.String(),
			ReturnTo: "/authorize/continue?id=" + url.QueryEscape(req.ID)}})
}

// upliftView is what the proving-level page shows; ReturnTo brings the
// person back to this request once they have proven enough.
type upliftView struct {
	RequestID, ClientName, Have, Need, ReturnTo string
}

func (a *Authorize) handleCancel(c fiber.Ctx) error {
	req, client, err := a.loadRequest(c, c.FormValue("id"))
	if err != nil || client == nil {
		return err
	}
	desc := "the person cancelled"
	switch c.FormValue("reason") {
	case "uplift":
		desc = "the person has not proven their identity to the level the service asked for"
	case "photo_review":
		desc = "identity verification is in progress (photo ID review); the person can log in again once it is complete"
	}
	return a.finishError(c, req, authzErr("access_denied", "%s", desc))
}

// finishError ends a stored request with an error sent to the client.
func (a *Authorize) finishError(c fiber.Ctx, req pending, e *authzError) error {
	a.forget(c, req.ID)
	acct := ""
	if auth, ok := a.login.CurrentIncludingAsserted(c); ok {
		acct = auth.AccountID
	}
	a.s.record(c.Context(), web.Actor(c), "authorize.denied", audit.Failure, acct, map[string]any{"client_id": req.ClientID, "error": e.code, "description": e.description})
	return a.redirectError(c, req.RedirectURI, req.State, e)
}

func (a *Authorize) forget(c fiber.Ctx, id string) {
	set := loadPending(c)
	delete(set, id)
	savePending(c, set)
}

func (a *Authorize) redirectError(c fiber.Ctx, redirectURI, state string, e *authzError) error {
	v := url.Values{"error": {e.code}, "error_description": {e.description}}
	if state != "" {
		v.Set("state", state)
	}
	return redirectTo(c, redirectURI, v)
}

// redirectTo sends the browser to a registered redirect URI with v added
// to its query.
func redirectTo(c fiber.Ctx, redirectURI string, v url.Values) error {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return fmt.Errorf("registered redirect_uri %q: %w", redirectURI, err)
	}
	q := u.Query()
	for k, vals := range v {
		q[k] = vals
	}
	u.RawQuery = q.Encode()
	return c.Redirect().Status(http.StatusSeeOther).To(u.String())
}

func truncateParam(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// sharedScopes are the scopes a person is asked about (openid shares only
// an identifier and is never asked about).
func sharedScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		if s != "openid" {
			out = append(out, s)
		}
	}
	return out
}

type consentView struct {
	RequestID  string
	ClientName string
	Items      []string
	// Enrol asks the person to confirm setting up the app on this phone.
	Enrol bool
}

var scopeWords = map[string]string{
	"profile":                    "your NHS number, surname, date of birth and how well your identity has been checked",
	"basic_demographics":         "your surname, date of birth and how well your identity has been checked",
	"profile_extended":           "your first name",
	"email":                      "your email address",
	"phone":                      "your mobile phone number",
	"landline":                   "your landline phone number",
	"gp_registration_details":    "the GP surgery you are registered with",
	"gp_integration_credentials": "your GP online services details, so the service can connect to your GP record",
	"client_metadata":            "a reference the service keeps about you",
	"device_enrolment":           "to add this app as a way to log in with your fingerprint or face",
}

func describeScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		if w, ok := scopeWords[s]; ok {
			out = append(out, w)
		}
	}
	return out
}
