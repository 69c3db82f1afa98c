package login

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// defaultWant is what a plain login aims for: a password and a second
// factor, or a passkey.
func defaultWant() []trust.Credentials {
	return []trust.Credentials{{trust.Cd, trust.Cp}, {trust.Cm}}
}

// continuePage moves a journey on from wherever it stands (used after a
// step answered in JSON, such as a passkey).
func (j *Journey) continuePage(c fiber.Ctx) error {
	st, ok := j.load(c)
	if !ok {
		return redirect(c, "/login")
	}
	return j.next(c, st)
}

// SignedInByCredential records that the person, on an idlink page, proved
// cred with a credential that identifies the account by itself (a passkey
// proves Cm with no email address or password), using method. It returns
// the local path the browser goes to next: where the login returns to
// when a wanted set of credentials is now proven (the login is then
// complete, through SignIn), otherwise the journey's next step. A blocked
// account gives ErrAccountBlocked.
func (j *Journey) SignedInByCredential(c fiber.Ctx, accountID, method string, cred trust.Credential) (string, error) {
	st, ok := j.load(c)
	if !ok {
		st = state{Want: defaultWant(), ReturnTo: "/account"}
		j.countStarted(c)
	}
	if st.AccountID != accountID { // a different person, or a first sign-in
		st.Proven, st.Methods = nil, nil
	}
	st.AccountID = accountID
	st.Proven = st.Proven.With(cred)
	st.used(method)
	st.Factor = ""
	for _, want := range st.Want {
		if len(st.Proven.Missing(want)) == 0 {
			if _, err := j.SignIn(c, Proof{AccountID: accountID, Method: strings.Join(st.Methods, "+"), Credentials: st.Proven, Switch: true}); err != nil {
				return "", err
			}
			web.Sess(c).AfterSave(func() { j.metrics.JourneysFinished.WithLabelValues("login", "completed").Inc() })
			return st.ReturnTo, nil
		}
	}
	acct, err := j.accounts.Account(c.Context(), accountID)
	if err != nil {
		return "", fmt.Errorf("signed in by credential: %w", err)
	}
	if acct.Status == account.StatusBlocked {
		return "", ErrAccountBlocked
	}
	s := web.Sess(c)
	s.Renew()
	s.Put(stateKey, st)
	return "/login/continue", nil
}

// CSRFHeader carries the session's anti-forgery token on JSON requests.
const CSRFHeader = "X-CSRF-Token"

// PostJSON registers a JSON endpoint for the pages' scripts: it runs with
// the browser's session, is never cached, and runs only when the CSRF
// header matches the session's token (403 JSON otherwise).
func PostJSON(p web.Pages, path string, h fiber.Handler) {
	p.R.Post(path, p.Sessions.Middleware(), web.NoStore, func(c fiber.Ctx) error {
		got := c.Get(CSRFHeader)
		want := web.Sess(c).CSRFToken()
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return JSONError(c, http.StatusForbidden, "csrf", "This page was open for too long or was sent from somewhere else. Refresh the page and try again.")
		}
		return h(c)
	})
}

// JSONError answers a JSON endpoint with a stable error code and a message
// for the person.
func JSONError(c fiber.Ctx, status int, code, message string) error {
	return c.Status(status).JSON(fiber.Map{"error": code, "message": message})
}
