package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/login"
	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// ssoEnv is a server with two relying parties, rp1 allowed to assert its
// logins to rp2, and a person logged in to rp1.
type ssoEnv struct {
	s        *servertest.Server
	rp1, rp2 *servertest.RP
	person   string // account id
	sub      string // the person's sub (the same for every client)
	idJTI    string // the jti of the ID token rp1 received
}

const ssoEmail = "sso.person@example.org"

func startSSO(t *testing.T, dbURL string) *ssoEnv {
	t.Helper()
	s := servertest.Start(t, dbURL, map[string]string{"IDLINK_ASSERTED_LOGIN_PAIRS": "rp1>rp2"}, server.Options{})
	e := &ssoEnv{s: s, rp1: servertest.NewRPWithID(t, s, "rp1", false, "email"), rp2: servertest.NewRPWithID(t, s, "rp2", false, "email")}
	b := s.NewBrowser(t)
	a := e.rp1.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
	s.CreateAccount(t, b, ssoEmail, pw, phone)
	p := b.Get(a.URL)
	if p.HasForm("/authorize/consent") {
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
	}
	_, idt, claims := e.rp1.Exchange(e.rp1.Returned(p, a).Get("code"), a)
	e.idJTI, e.sub = claims["jti"].(string), idt.Subject
	e.person = s.AccountID(t, ssoEmail)
	return e
}

// assertion is rp1's asserted_login_identity for the person; mutate may
// change its claims.
func (e *ssoEnv) assertion(mutate func(map[string]any)) string {
	now := time.Now()
	c := map[string]any{"iss": "rp1", "code": e.idJTI, "jti": secrets.NewID(), "iat": now.Unix(), "exp": now.Add(50 * time.Second).Unix()}
	if mutate != nil {
		mutate(c)
	}
	return e.rp1.Sign(c)
}

// TestAssertedLoginIsSingleSignOnOnly: an asserted_login_identity signs a
// fresh browser in through login.SignIn (one login.completed, the PDS
// check run) for relying parties only: idlink's own pages, the app's
// enrolment and the back office ask for a login made on idlink.
func TestAssertedLoginIsSingleSignOnOnly(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startSSO(t, dbURL)
		s := e.s
		ctx := context.Background()
		require.NoError(t, s.Identity.SetStaff(ctx, audit.Actor{}, e.person, identity.RoleIDChecker))

		checks := s.PDSChecks(t)
		b := s.NewBrowser(t)
		a := e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "asserted_login_identity": e.assertion(nil)})
		p := b.Get(a.URL)
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		q := e.rp2.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, idt, claims := e.rp2.Exchange(q.Get("code"), a)
		require.Equal(t, "P0.Cp.Cd", claims["vot"])
		require.Equal(t, e.sub, idt.Subject)
		require.Equal(t, 1, s.SignIns(t, e.person, login.MethodAssertedLogin))
		require.Equal(t, checks+1, s.PDSChecks(t), "the per-login PDS check ran")

		// The session completes rp2's requests silently…
		a = e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "prompt": "none"})
		require.NotEmpty(t, e.rp2.Returned(b.Get(a.URL), a).Get("code"))

		// …but opens none of idlink's own pages.
		for _, path := range []string{"/account", "/account/security", "/prove", "/admin"} {
			p := b.Get(path)
			require.True(t, strings.HasPrefix(p.H1(), "Log in"), "%s: %s", path, p.H1())
			require.NotContains(t, p.Body, ssoEmail, path)
		}
		// Enrolling the app needs a login made here.
		enrol := url.Values{"response_type": {"code"}, "client_id": {idp.CompanionClientID}, "redirect_uri": {idp.CompanionRedirectURI},
			"scope": {"openid device_enrolment"}, "state": {"s"}, "nonce": {"n"}, "vtr": {`["P0.Cp.Cd"]`},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
		require.Equal(t, "Log in", b.Get("/authorize?"+enrol.Encode()).H1())

		// Logging in on idlink (here, for the enrolment) makes it a full
		// session.
		p = s.LogIn(t, b, b.Get("/login"), ssoEmail, pw, phone)
		require.Equal(t, "Set up the app on this phone", p.H1())
		require.Equal(t, "Your account", b.Get("/account").H1())
		require.Equal(t, 1, s.SignIns(t, e.person, "password+sms"))
	})
}

// TestAssertedLoginAudience: aud, when present, must name this provider
// (the issuer or its authorization endpoint).
func TestAssertedLoginAudience(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startSSO(t, dbURL)
		for _, tc := range []struct {
			aud any
			ok  bool
		}{
			{"https://evil.example", false},
			{[]string{"https://evil.example", "rp2"}, false},
			{e.s.URL, true},
			{e.s.URL + "/authorize", true},
			{nil, true},
		} {
			b := e.s.NewBrowser(t)
			a := e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "asserted_login_identity": e.assertion(func(c map[string]any) {
				if tc.aud != nil {
					c["aud"] = tc.aud
				}
			})})
			p := b.Get(a.URL)
			if !tc.ok {
				require.Equal(t, "invalid_request", e.rp2.Returned(p, a).Get("error"), "aud %v", tc.aud)
				continue
			}
			require.Equal(t, "Share your details with Test Health Service", p.H1(), "aud %v", tc.aud)
		}
	})
}

// TestAssertedLoginNeverSwitchesSilently: a browser signed in as one
// person, sent an assertion for another, is asked; both answers honoured.
func TestAssertedLoginNeverSwitchesSilently(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startSSO(t, dbURL)
		s := e.s
		const victim = "victim@example.org"
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, victim, pw, "07700 900456")
		victimID := s.AccountID(t, victim)

		// Cancel: the browser stays the victim's, rp2 hears access_denied.
		a := e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "asserted_login_identity": e.assertion(nil)})
		p := b.Get(a.URL)
		require.Equal(t, "You are already logged in", p.H1())
		require.Contains(t, p.Body, victim)
		require.Contains(t, p.Body, ssoEmail)
		require.Equal(t, "Your account", b.Get("/account").H1())
		require.Contains(t, b.Get("/account").Body, victim)
		q := e.rp2.Returned(b.Submit(p, "/authorize/switch", map[string]string{"decision": "cancel"}), a)
		require.Equal(t, "access_denied", q.Get("error"))
		require.Contains(t, b.Get("/account").Body, victim)
		require.Equal(t, 0, s.SignIns(t, e.person, login.MethodAssertedLogin))

		// Switch: the victim is signed out of this browser; the session is
		// the other person's, for relying parties only.
		a = e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "asserted_login_identity": e.assertion(nil)})
		p = b.Get(a.URL)
		require.Equal(t, "You are already logged in", p.H1())
		p = b.Submit(p, "/authorize/switch", map[string]string{"decision": "switch"})
		require.Equal(t, "Share your details with Test Health Service", p.H1())
		q = e.rp2.Returned(b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)
		_, idt, _ := e.rp2.Exchange(q.Get("code"), a)
		require.Equal(t, e.sub, idt.Subject, "the code is the other person's")
		require.Equal(t, 1, s.SignIns(t, e.person, login.MethodAssertedLogin))
		require.Equal(t, 1, s.AuditCount(t, "login.completed", e.person, victimID), "the event names the account replaced")
		p = b.Get("/account")
		require.Equal(t, "Log in", p.H1())
		require.NotContains(t, p.Body, victim)
	})
}
