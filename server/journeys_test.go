package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/servertest"
)

const (
	pw    = "correct horse battery"
	phone = "07700 900123"
)

func TestCreateAccountAndLogIn(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)

		p := s.CreateAccount(t, b, "Jane.Smith@example.org", pw, phone)
		require.Equal(t, "Your account", p.H1())
		require.Equal(t, "jane.smith@example.org", p.Text("account-email"))
		require.Equal(t, "07700 900123", p.Text("account-phone"), "UK numbers are shown in national format")
		require.Equal(t, "You have not proved who you are yet", p.Text("account-level"))
		require.Contains(t, p.Text("prove-link"), "Prove who you are", "the account page leads to proving identity")
		require.Contains(t, p.Body, "Account created")

		p = b.Submit(p, "/sign-out", nil)
		require.Equal(t, "You have signed out", p.H1())
		p = b.Get("/account")
		require.Equal(t, "Log in", p.H1(), "signed out: the account page asks to log in")

		checks := s.PDSChecks(t)
		p = s.LogIn(t, b, p, "jane.smith@EXAMPLE.org", pw, phone)
		require.Equal(t, "Your account", p.H1())
		require.Contains(t, p.Body, "Logged in")
		id := s.AccountID(t, "jane.smith@example.org")
		require.Equal(t, 1, s.SignIns(t, id, "password+sms"), "one sign-in through login.SignIn")
		require.Equal(t, 1, s.SignIns(t, id, login.MethodSignup), "creating the account signed in once")
		require.Equal(t, checks+1, s.PDSChecks(t), "the per-login PDS check ran")

		// A second browser has its own session.
		other := s.NewBrowser(t)
		require.Equal(t, "Log in", other.Get("/account").H1())
	})
}

func TestSignupErrors(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		p := b.Get("/create-account")

		for _, tc := range []struct{ email, want string }{
			{"", "Enter your email address"},
			{"a@b.co", "Enter an email address in the correct format, like name@example.com"},
			{"not an email", "Enter an email address in the correct format, like name@example.com"},
			{"jane@@example.org", "Enter an email address in the correct format, like name@example.com"},
		} {
			got := b.Submit(p, "/create-account/email", map[string]string{"email": tc.email})
			require.Equal(t, http.StatusUnprocessableEntity, got.Status)
			require.Equal(t, []string{tc.want}, got.Errors(), tc.email)
		}
		p = b.Submit(p, "/create-account/email", map[string]string{"email": "sam@example.org"})
		for _, tc := range []struct{ password, want string }{
			{"", "Enter a password"},
			{"short", "Your password must be at least 8 characters"},
			{"sam@example.org", "Your password must not be your email address"},
			{"password1", "Your password is too common and easy to guess. Choose a different password"},
			{strings.Repeat("x", 129), "Your password must be 128 characters or fewer"},
		} {
			got := b.Submit(p, "/create-account/password", map[string]string{"password": tc.password})
			require.Equal(t, []string{tc.want}, got.Errors(), tc.password)
		}
		p = b.Submit(p, "/create-account/password", map[string]string{"password": pw})
		got := b.Submit(p, "/create-account/terms", nil)
		require.Equal(t, []string{"Select that you accept the terms of use to continue"}, got.Errors())

		// Steps cannot be skipped: the phone page before the email link
		// sends the person back to where they are.
		require.Equal(t, "Accept the terms of use", b.Get("/create-account/phone").H1())
		p = b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		require.Equal(t, "Check your email", p.H1())
		require.Equal(t, "Check your email", b.Get("/create-account/code").H1())

		// The phone step rejects landlines and nonsense.
		p = b.Get(s.Latest(t, "sam@example.org", "signup_verify_email").Link)
		p = b.Submit(p, "/create-account/verify", nil)
		for _, bad := range []string{"", "0161 496 0000", "12345", strings.Repeat("7", 40)} {
			got := b.Submit(p, "/create-account/phone", map[string]string{"phone": bad})
			require.Len(t, got.Errors(), 1, bad)
			require.Equal(t, "Enter your mobile phone number", got.H1())
		}
		// Texts go to UK mobiles only, unless IDLINK_SMS_COUNTRIES allows
		// more (TestInternationalNumbersByAllowList).
		got = b.Submit(p, "/create-account/phone", map[string]string{"phone": "+33 6 12 34 56 78"})
		require.Equal(t, []string{"Enter a UK mobile phone number. We cannot send security codes to this country."}, got.Errors())
		p = b.Submit(p, "/create-account/phone", map[string]string{"phone": "07700 900 321"})
		got = b.Submit(p, "/create-account/code", map[string]string{"code": "12ab56"})
		require.Equal(t, []string{"Enter the 6-digit security code"}, got.Errors())
		code := s.CodeFor(t, "+447700900321", "signup_code")
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		got = b.Submit(p, "/create-account/code", map[string]string{"code": wrong})
		require.Equal(t, []string{"The security code is not right. Check it and try again."}, got.Errors())
		got = b.Submit(p, "/create-account/code", map[string]string{"code": code})
		require.Equal(t, "Your account", got.H1())
		require.Equal(t, "07700 900321", got.Text("account-phone"), "UK numbers are shown in national format")
	})
}

// A country on IDLINK_SMS_COUNTRIES gets texts; its numbers are stored
// E.164.
func TestInternationalNumbersByAllowList(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, map[string]string{"IDLINK_SMS_COUNTRIES": "FR,IE"}, server.Options{})
		p := s.CreateAccount(t, s.NewBrowser(t), "amelie@example.org", pw, "+33 6 12 34 56 78")
		require.Equal(t, "Your account", p.H1())
		require.Equal(t, "+33 6 12 34 56 78", p.Text("account-phone"), "international numbers are shown internationally")
		b := s.NewBrowser(t)
		p = b.Get("/create-account")
		p = b.Submit(p, "/create-account/email", map[string]string{"email": "moldova@example.org"})
		p = b.Submit(p, "/create-account/password", map[string]string{"password": pw})
		b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		p = b.Get(s.Latest(t, "moldova@example.org", "signup_verify_email").Link)
		p = b.Submit(p, "/create-account/verify", nil)
		got := b.Submit(p, "/create-account/phone", map[string]string{"phone": "+373 621 12345"})
		require.Equal(t, []string{"Enter a UK mobile phone number. We cannot send security codes to this country."}, got.Errors(),
			"a destination common in toll fraud, not on the list")
	})
}

// An address that already has an account goes through the same pages, and
// its owner is told by email; nothing on screen reveals the account.
func TestExistingEmailIsNotRevealed(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		s.CreateAccount(t, s.NewBrowser(t), "owner@example.org", pw, phone)

		b := s.NewBrowser(t)
		p := b.Get("/create-account")
		p = b.Submit(p, "/create-account/email", map[string]string{"email": "owner@example.org"})
		p = b.Submit(p, "/create-account/password", map[string]string{"password": "another good passphrase"})
		p = b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		require.Equal(t, "Check your email", p.H1())
		warn := s.Latest(t, "owner@example.org", "signup_existing_account")
		require.Contains(t, warn.Text, "already have one")

		// The same mobile number may belong to several accounts.
		p = s.CreateAccount(t, s.NewBrowser(t), "second@example.org", pw, phone)
		require.Equal(t, "Your account", p.H1())
	})
}

// A registration whose link was never followed is resumed by logging in,
// and never blocks a new attempt once its link has expired.
func TestAbandonedSignupResumes(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		p := b.Get("/create-account")
		p = b.Submit(p, "/create-account/email", map[string]string{"email": "later@example.org"})
		p = b.Submit(p, "/create-account/password", map[string]string{"password": pw})
		b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})

		// Another day, another browser: logging in shows where they were.
		b2 := s.NewBrowser(t)
		p = b2.Submit(b2.Get("/login"), "/login", map[string]string{"email": "later@example.org", "password": pw})
		require.Equal(t, "Check your email", p.H1())
		p = b2.Submit(p, "/create-account/resend", nil)
		require.Contains(t, p.Body, "We have sent the email again")
		// The link from the resend works, and the password typed to resume
		// counts: the person ends up signed in.
		p = s.FinishSignup(t, b2, "later@example.org", phone)
		require.Equal(t, "Your account", p.H1())

		// A link followed in a browser where no password was typed ends the
		// signup there, but signing in still needs the password.
		b5 := s.NewBrowser(t)
		p = b5.Get("/create-account")
		p = b5.Submit(p, "/create-account/email", map[string]string{"email": "elsewhere@example.org"})
		p = b5.Submit(p, "/create-account/password", map[string]string{"password": pw})
		b5.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		p = s.FinishSignup(t, s.NewBrowser(t), "elsewhere@example.org", phone)
		require.Equal(t, "Log in", p.H1())

		// After the link: stopping at the phone step and logging in resumes it.
		b3 := s.NewBrowser(t)
		p = b3.Get("/create-account")
		p = b3.Submit(p, "/create-account/email", map[string]string{"email": "resume@example.org"})
		p = b3.Submit(p, "/create-account/password", map[string]string{"password": pw})
		b3.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		p = b3.Get(s.Latest(t, "resume@example.org", "signup_verify_email").Link)
		b3.Submit(p, "/create-account/verify", nil)
		b4 := s.NewBrowser(t)
		p = b4.Submit(b4.Get("/login"), "/login", map[string]string{"email": "resume@example.org", "password": pw})
		require.Equal(t, "Enter your mobile phone number", p.H1())
	})
}

func TestLinksAreSingleUse(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "once@example.org", pw, phone)
		link := s.Latest(t, "once@example.org", "signup_verify_email").Link
		p := b.Get(link)
		require.Equal(t, http.StatusGone, p.Status)
		require.Equal(t, "This link has expired or has already been used", p.H1())
		u, err := url.Parse(link)
		require.NoError(t, err)
		p = b.Post("/create-account/verify", url.Values{"token": {u.Query().Get("token")}})
		require.Equal(t, http.StatusForbidden, p.Status, "a POST without the form's CSRF token is refused")
	})
}

func TestWrongPasswordAndLockout(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		s.CreateAccount(t, s.NewBrowser(t), "lock@example.org", pw, phone)
		b := s.NewBrowser(t)
		p := b.Get("/login")

		unknown := b.Submit(p, "/login", map[string]string{"email": "nobody@example.org", "password": pw})
		wrong := b.Submit(p, "/login", map[string]string{"email": "lock@example.org", "password": "not the password"})
		require.Equal(t, unknown.Errors(), wrong.Errors(), "unknown email and wrong password look the same")
		require.Equal(t, []string{"Enter a correct email address and password"}, wrong.Errors())

		for range 3 {
			b.Submit(p, "/login", map[string]string{"email": "lock@example.org", "password": "not the password"})
		}
		locked := b.Submit(p, "/login", map[string]string{"email": "lock@example.org", "password": "still not it"})
		require.Equal(t, http.StatusTooManyRequests, locked.Status)
		// Now even the right password is refused for 15 minutes.
		right := b.Submit(p, "/login", map[string]string{"email": "lock@example.org", "password": pw})
		require.Equal(t, http.StatusTooManyRequests, right.Status)
		require.Contains(t, right.Errors()[0], "Wait 15 minutes")

		// An unknown address "locks" the same way.
		var last *servertest.Page
		for range 6 {
			last = b.Submit(p, "/login", map[string]string{"email": "ghost@example.org", "password": "whatever it is"})
		}
		require.Equal(t, locked.Errors(), last.Errors())

		n, err := s.Audit.Count(context.Background(), "", "account.locked", "")
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestForgottenPassword(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		first := s.NewBrowser(t)
		require.Equal(t, "Your account", s.CreateAccount(t, first, "forgot@example.org", pw, phone).H1())

		b := s.NewBrowser(t)
		p := b.Submit(b.Get("/forgot-password"), "/forgot-password", map[string]string{"email": "forgot@example.org"})
		require.Equal(t, "Check your email", p.H1())
		// An unknown address gets the same page and no email.
		p2 := b.Submit(b.Get("/forgot-password"), "/forgot-password", map[string]string{"email": "unknown@example.org"})
		require.Equal(t, p.H1(), p2.H1())

		link := s.Latest(t, "forgot@example.org", "reset_email").Link
		p = b.Get(link)
		p = b.Submit(p, "/reset-password/verify", nil)
		require.Equal(t, "Enter the security code", p.H1())
		require.Equal(t, "Enter the security code", b.Get("/reset-password/new").H1(), "the new password waits for the code")
		p = b.Submit(p, "/reset-password/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "reset_code")})
		require.Equal(t, "Create a new password", p.H1(), p.Errors())
		bad := b.Submit(p, "/reset-password/new", map[string]string{"password": "forgot@example.org"})
		require.Equal(t, []string{"Your password must not be your email address"}, bad.Errors())
		p = b.Submit(p, "/reset-password/new", map[string]string{"password": "a brand new passphrase"})
		require.Equal(t, "Your password has been changed", p.H1())
		require.Contains(t, s.Latest(t, "forgot@example.org", "password_changed").Text, "signed out everywhere else")

		// The link was single use, and the other browser's session ended.
		require.Equal(t, http.StatusGone, b.Get(link).Status)
		require.Equal(t, "Log in", first.Get("/account").H1())
		// The old password no longer works; the new one does.
		old := b.Submit(b.Get("/login"), "/login", map[string]string{"email": "forgot@example.org", "password": pw})
		require.Equal(t, []string{"Enter a correct email address and password"}, old.Errors())
		require.Equal(t, "Your account", s.LogIn(t, b, nil, "forgot@example.org", "a brand new passphrase", phone).H1())
	})
}

func TestSecurityHeadersAndCookies(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	b := s.NewBrowser(t)
	p := b.Get("/login")
	csp := p.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, csp, "script-src 'self'")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "no-referrer", p.Header.Get("Referrer-Policy"))
	require.Equal(t, "no-store", p.Header.Get("Cache-Control"))
	require.NotEmpty(t, p.Header.Get("X-Request-Id"))
	require.Empty(t, p.Header.Get("Strict-Transport-Security"), "no HSTS over plain http")
	cookie := p.Header.Get("Set-Cookie")
	require.Contains(t, cookie, "HttpOnly")
	require.Contains(t, cookie, "SameSite=Lax")

	for _, path := range []string{"/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, b.Get(path).Status, path)
	}
	m := b.Get("/metrics")
	require.Equal(t, http.StatusOK, m.Status)
	require.Contains(t, m.Body, "idlink_http_requests_total")
	require.Equal(t, http.StatusNotFound, b.Get("/no-such-page").Status)
	j := b.Get("/dev/outbox.json")
	require.Equal(t, http.StatusOK, j.Status)
	require.Contains(t, j.Body, `"messages"`)
}

func TestProductionHasNoOutbox(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), map[string]string{"IDLINK_ENV": "development"}, server.Options{})
	require.Equal(t, http.StatusOK, s.NewBrowser(t).Get("/dev/outbox").Status)
}

// TestLoginReturnStaysOnThisServer: return_to tricks browsers would follow
// off-site end on the account page after logging in.
func TestLoginReturnStaysOnThisServer(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		s.CreateAccount(t, s.NewBrowser(t), "return@example.org", pw, phone)
		for _, trick := range []string{"/%09/evil.example/x", "/%5Cevil.example", "/%2F/evil.example"} {
			b := s.NewBrowser(t)
			p := s.LogIn(t, b, b.Get("/login?return_to="+trick), "return@example.org", pw, phone)
			require.Equal(t, "/account", p.URL.Path, trick)
			require.Equal(t, s.URL, p.URL.Scheme+"://"+p.URL.Host, trick)
		}
		b := s.NewBrowser(t)
		p := s.LogIn(t, b, b.Get("/login?return_to=%2Faccount%2Fsecurity"), "return@example.org", pw, phone)
		require.Equal(t, "/account/security", p.URL.Path, "a local path is honoured")
	})
}
