package login

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Ways into a session, as named in the login.completed audit event and the
// idlink_sign_ins_total metric. A journey joins the methods it used with
// "+" ("password+sms_code").
const (
	MethodSignup           = "signup"
	MethodPassword         = "password"
	MethodPasskey          = "passkey"
	MethodFIDOAuthResponse = "fido_auth_response"
	MethodAssertedLogin    = "asserted_login_identity"
)

// ErrAccountBlocked is returned by SignIn for an account that may not sign
// in (blocked, or refused by the per-login check).
var ErrAccountBlocked = errors.New("login: this account cannot be used to sign in")

// ErrOtherAccount is returned by SignIn when the browser is signed in to a
// different account and the proof did not come from the person choosing
// to switch: nothing changed.
var ErrOtherAccount = errors.New("login: this browser is signed in to a different account")

// Proof is what one way into a session has proven about one account.
type Proof struct {
	AccountID string
	// Method names the way in (Method* constants, or a journey's factors).
	Method string
	// Credentials are the components proven.
	Credentials trust.Credentials
	// AuthTime is when the person authenticated; zero means now. An
	// asserted login keeps the time of the login it came from.
	AuthTime time.Time
	// Asserted marks a login vouched for by another relying party
	// (single sign-on): the session may complete authorization requests
	// but opens none of idlink's own account pages.
	Asserted bool
	// Switch says the person chose this account on an idlink page, so a
	// session signed in to another account is replaced. Without it a
	// different account gives ErrOtherAccount.
	Switch bool
	// DeviceID names the companion-app device whose credential made the
	// login, if one did (fido_auth_response): grants issued from it are
	// revoked when the device is removed.
	DeviceID string
	// Detail is added to the login.completed audit event.
	Detail map[string]any
}

// ssoKey is the session key of a login carried in from another relying
// party: kept apart from authKey so that nothing treating the session as
// a login made on idlink can see it.
const ssoKey = "sso"

// SignIn is the one door into a signed-in session: every way in ends here.
// It refuses a silent switch of account (ErrOtherAccount), checks the
// account may be used and runs the per-login check (PDS) — a refusal is
// ErrAccountBlocked —, renews the session id, records what was proven,
// writes one login.completed audit event and counts the sign-in.
func (j *Journey) SignIn(c fiber.Ctx, p Proof) (Auth, error) {
	cur, signedIn := j.CurrentIncludingAsserted(c)
	if signedIn && cur.AccountID != p.AccountID && !p.Switch {
		return Auth{}, ErrOtherAccount
	}
	if p.Asserted && signedIn && cur.AccountID == p.AccountID && !cur.Asserted {
		return cur, nil // a login made here is stronger than one carried in
	}
	if err := j.allowed(c, p); err != nil {
		return Auth{}, err
	}
	authTime := p.AuthTime
	if authTime.IsZero() {
		authTime = j.now()
	}
	a := Auth{AccountID: p.AccountID, Credentials: p.Credentials, AuthTime: authTime.UTC().Truncate(time.Second),
		LoginID: secrets.NewID(), Method: p.Method, Asserted: p.Asserted, DeviceID: p.DeviceID}
	s := web.Sess(c)
	s.Renew() // a new id for the signed-in session: no fixation
	s.SetAccount(p.AccountID)
	if p.Asserted {
		s.Delete(authKey)
		s.Put(ssoKey, a)
	} else {
		s.Delete(ssoKey)
		s.Put(authKey, a)
	}
	s.Delete(stateKey)
	detail := map[string]any{"method": p.Method, "credentials": p.Credentials}
	if p.Asserted {
		detail["asserted"] = true
	}
	if signedIn && cur.AccountID != p.AccountID {
		detail["replaced_account_id"] = cur.AccountID
	}
	for k, v := range p.Detail {
		detail[k] = v
	}
	// The event is written with the signed-in session, in its transaction:
	// a login is never recorded as completed when the session that holds
	// it could not be saved.
	actor := web.Actor(c)
	s.InSave(func(ctx context.Context, tx sqlx.ExtContext) error {
		return j.audit.RecordIn(ctx, tx, actor, "login.completed", audit.Success, p.AccountID, detail)
	})
	s.AfterSave(func() { j.metrics.SignIns.WithLabelValues(p.Method, "completed").Inc() })
	return a, nil
}

// allowed checks the account may sign in: its status, then the per-login
// check. A refusal is audited as login.refused and wraps ErrAccountBlocked.
func (j *Journey) allowed(c fiber.Ctx, p Proof) error {
	acct, err := j.accounts.Account(c.Context(), p.AccountID)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	refuse := func(reason string, cause error) error {
		j.metrics.SignIns.WithLabelValues(p.Method, "blocked").Inc()
		if err := j.audit.Record(c.Context(), web.Actor(c), "login.refused", audit.Failure, p.AccountID,
			map[string]any{"method": p.Method, "reason": reason}); err != nil {
			return err
		}
		if cause != nil {
			return fmt.Errorf("%w: %w", ErrAccountBlocked, cause)
		}
		return ErrAccountBlocked
	}
	if acct.Status == account.StatusBlocked {
		return refuse("account_blocked", nil)
	}
	if j.check == nil {
		return nil
	}
	if err := j.check.CheckLogin(c.Context(), web.Actor(c), p.AccountID); errors.Is(err, ErrAccountBlocked) {
		return refuse("login_check", err)
	} else if err != nil {
		return fmt.Errorf("login check: %w", err)
	}
	return nil
}

// Current reports who is signed in on this browser by a login made on
// idlink itself, and what they proved. A login carried in from another
// relying party (asserted_login_identity) does not count: idlink's own
// pages use Current.
func (j *Journey) Current(c fiber.Ctx) (Auth, bool) {
	return current(c, authKey)
}

// CurrentIncludingAsserted is Current, or else a login carried in from
// another relying party. Only the authorization endpoint uses it, to
// complete requests at the strength that login proved.
func (j *Journey) CurrentIncludingAsserted(c fiber.Ctx) (Auth, bool) {
	if a, ok := current(c, authKey); ok {
		return a, true
	}
	return current(c, ssoKey)
}

func current(c fiber.Ctx, key string) (Auth, bool) {
	s := web.Sess(c)
	var a Auth
	if s.AccountID() == "" || !s.Get(key, &a) || a.AccountID != s.AccountID() {
		return Auth{}, false
	}
	return a, true
}
