package server_test

// Tests of issue 11's findings: texts pumped from one sign-up, a lockout
// aimed at someone else's number, codes guessed across resends, a
// provider outage, limits a person meets on a normal day, the approval
// fallback without JavaScript, and forged client addresses.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/servertest"
)

// outboxTo counts the outbox messages of a kind to a recipient.
func outboxTo(t *testing.T, s *servertest.Server, to string, kind notify.Kind) int {
	t.Helper()
	es, err := s.Outbox.List(context.Background(), 1000)
	require.NoError(t, err)
	n := 0
	for _, e := range es {
		if e.Recipient == to && e.Kind == kind {
			n++
		}
	}
	return n
}

// toPhoneStep runs a sign-up as far as the phone number.
func toPhoneStep(t *testing.T, s *servertest.Server, b *servertest.Browser, email string) *servertest.Page {
	t.Helper()
	p := b.Get("/create-account")
	p = b.Submit(p, "/create-account/email", map[string]string{"email": email})
	p = b.Submit(p, "/create-account/password", map[string]string{"password": pw})
	b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
	p = b.Get(s.Latest(t, email, "signup_verify_email").Link)
	p = b.Submit(p, "/create-account/verify", nil)
	require.Equal(t, "Enter your mobile phone number", p.H1())
	return p
}

// Finding 1: one sign-up journey cannot pump texts: three numbers, a
// handful of codes, and the page says so instead of "We have sent".
func TestOneSignupCannotPumpTexts(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		p := toPhoneStep(t, s, b, "pump@example.org")
		var third *servertest.Page
		for i := 1; i <= 3; i++ {
			third = b.Submit(p, "/create-account/phone", map[string]string{"phone": fmt.Sprintf("07700 900 40%d", i)})
			require.Equal(t, "Enter the security code", third.H1(), "number %d", i)
			require.Contains(t, third.Body, "We have sent a 6-digit code")
		}
		got := b.Submit(p, "/create-account/phone", map[string]string{"phone": "07700 900 404"})
		require.Equal(t, http.StatusTooManyRequests, got.Status)
		require.Equal(t, "You have asked for too many security codes", got.H1())
		require.NotContains(t, got.Body, "We have sent")
		require.Contains(t, got.Body, "You can ask for a new code after")
		require.Zero(t, outboxTo(t, s, "+447700900404", "signup_code"), "the fourth number got nothing")
		// A code proves the number it was sent to, not the one typed last.
		got = b.Submit(third, "/create-account/code", map[string]string{"code": s.CodeFor(t, "+447700900403", "signup_code")})
		require.Equal(t, []string{"This security code has expired or has been used. Ask for a new code."}, got.Errors())

		// Resends to one number stop at its budget, and say so.
		codePage := b.Submit(p, "/create-account/phone", map[string]string{"phone": "07700 900 401"})
		for range 20 {
			p = b.Submit(codePage, "/create-account/code/resend", nil)
		}
		require.Equal(t, "You have asked for too many security codes", p.H1())
		require.NotEmpty(t, p.Header.Get("Retry-After"))
		require.Equal(t, 4, outboxTo(t, s, "+447700900401", "signup_code"), "the journey's budget binds first")
		total := 0
		for i := 1; i <= 4; i++ {
			total += outboxTo(t, s, fmt.Sprintf("+44770090040%d", i), "signup_code")
		}
		require.Equal(t, 6, total, "six texts per sign-up journey")
		// A code sent before the refusals still works.
		p = b.Submit(p, "/create-account/code", map[string]string{"code": s.CodeFor(t, "+447700900401", "signup_code")})
		require.Equal(t, "Your account", p.H1())
	})
}

// Finding 2: a stranger who signs up with someone's number and presses
// resend does not stop that person's login codes.
func TestSignupsCannotLockSomeoneOut(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		victim := s.NewBrowser(t)
		require.Equal(t, "Your account", s.CreateAccount(t, victim, "victim@example.org", pw, phone).H1())
		victim.Submit(victim.Get("/account"), "/sign-out", nil)

		attacker := s.NewBrowser(t)
		p := toPhoneStep(t, s, attacker, "attacker@example.org")
		codePage := attacker.Submit(p, "/create-account/phone", map[string]string{"phone": phone})
		for range 10 {
			p = attacker.Submit(codePage, "/create-account/code/resend", nil)
		}
		require.Equal(t, "You have asked for too many security codes", p.H1())

		for range 3 {
			p := s.LogIn(t, victim, nil, "victim@example.org", pw, phone)
			require.Equal(t, "Your account", p.H1(), "the victim's login codes still go")
			victim.Submit(p, "/sign-out", nil)
		}
	})
}

// Finding 3: wrong codes are capped per account across resends; the
// login then stops with a clear page, the person is emailed, and the
// event is audited.
func TestWrongCodesAreCappedAcrossResends(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "guess@example.org", pw, phone)
		b.Submit(b.Get("/account"), "/sign-out", nil)

		p := b.Submit(b.Get("/login"), "/login", map[string]string{"email": "guess@example.org", "password": pw})
		require.Equal(t, "Enter the security code", p.H1())
		wrong := func() string {
			if s.CodeFor(t, "+447700900123", "login_code") == "000000" {
				return "000001"
			}
			return "000000"
		}
		for i := 1; i < 10; i++ {
			got := b.Submit(p, "/login/code", map[string]string{"code": wrong()})
			require.Len(t, got.Errors(), 1, "guess %d", i)
			if i%4 == 0 { // a resend gives a fresh code, not fresh guesses
				p = b.Submit(p, "/login/code/resend", nil)
				require.Equal(t, "Enter the security code", p.H1())
			}
		}
		got := b.Submit(p, "/login/code", map[string]string{"code": wrong()})
		require.Equal(t, http.StatusTooManyRequests, got.Status)
		require.Equal(t, "You have entered too many wrong security codes", got.H1())
		alert := s.Latest(t, "guess@example.org", "code_guess_limit")
		require.Contains(t, alert.Text, "10 wrong security codes")
		n, err := s.Audit.Count(context.Background(), "", "code.guess_limit_reached", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		// The right code no longer works, in this login or a new one.
		p = b.Submit(b.Get("/login"), "/login", map[string]string{"email": "guess@example.org", "password": pw})
		got = b.Submit(p, "/login/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "login_code")})
		require.Equal(t, "You have entered too many wrong security codes", got.H1())
		require.Equal(t, "Log in", b.Get("/account").H1())
	})
}

// Finding 4: a provider outage (500s, a 429 with Retry-After, a hang)
// neither locks anyone out nor claims a text was sent; the person logs in
// as soon as the provider recovers.
func TestProviderOutage(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		fake := newNotifyFake(t)
		s := servertest.Start(t, dbURL, map[string]string{"IDLINK_NOTIFY_DEADLINE": "2s"}, server.Options{Sender: fake.sender(t)})
		ctx := context.Background()
		hash, err := s.Accounts.CheckNewPassword(ctx, "outage@example.org", pw)
		require.NoError(t, err)
		_, err = s.Accounts.SeedAccount(ctx, "outage@example.org", phone, hash)
		require.NoError(t, err)
		b := s.NewBrowser(t)

		fake.set("500", "")
		p := b.Submit(b.Get("/login"), "/login", map[string]string{"email": "outage@example.org", "password": pw})
		require.Equal(t, http.StatusOK, p.Status)
		require.Equal(t, "We could not send a security code", p.H1())
		require.NotContains(t, p.Body, "We have sent")
		require.False(t, p.HasForm("/login/code"), "no code to enter: none was ever sent")
		for range 20 { // more than any budget
			p = b.Submit(p, "/login/code/resend", nil)
			require.Equal(t, "We could not send a security code", p.H1())
			require.NotContains(t, p.Body, "too many")
		}
		require.Greater(t, fake.callCount(), 20, "the client retried")

		fake.set("429", "120")
		p = b.Submit(p, "/login/code/resend", nil)
		require.Equal(t, "We could not send a security code", p.H1())
		require.Contains(t, p.Body, "You can try again after")
		require.Contains(t, p.Body, "(in 2 minutes)")

		fake.set("hang", "")
		start := time.Now()
		p = b.Submit(p, "/login/code/resend", nil)
		require.Less(t, time.Since(start), 5*time.Second, "a hang is cut short at the deadline")
		require.Equal(t, "We could not send a security code", p.H1())

		fake.set("ok", "")
		p = b.Submit(p, "/login/code/resend", nil)
		require.Equal(t, "Enter the security code", p.H1())
		require.Contains(t, p.Body, "We have sent a 6-digit code")
		p = b.Submit(p, "/login/code", map[string]string{"code": fake.code("+447700900123")})
		require.Equal(t, "Your account", p.H1())

		n, err := s.Audit.Count(ctx, "", "code.send_failed", audit.Failure)
		require.NoError(t, err)
		require.Equal(t, 23, n, "every failure is audited")
		n, err = s.Audit.Count(ctx, "", "code.rate_limited", audit.Failure)
		require.NoError(t, err)
		require.Zero(t, n, "and none of them used a budget")
	})
}

// Finding 5: sign-up, three logins (one with a resend), a password reset
// and a fallback from a phone approval, all within 15 minutes, meet no
// limit, and every code page tells the truth.
func TestAFirstDayMeetsNoLimit(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		const email = "firstday@example.org"
		b := s.NewBrowser(t)
		require.Equal(t, "Your account", s.CreateAccount(t, b, email, pw, phone).H1())
		for i := range 3 {
			b.Submit(b.Get("/account"), "/sign-out", nil)
			p := b.Submit(b.Get("/login"), "/login", map[string]string{"email": email, "password": pw})
			require.Contains(t, p.Body, "We have sent a 6-digit code")
			if i == 1 {
				p = b.Submit(p, "/login/code/resend", nil)
				require.Contains(t, p.Body, "We have sent a new security code")
			}
			p = b.Submit(p, "/login/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "login_code")})
			require.Equal(t, "Your account", p.H1())
		}
		b.Submit(b.Get("/account"), "/sign-out", nil)
		require.Equal(t, "Check your email", b.Submit(b.Get("/forgot-password"), "/forgot-password", map[string]string{"email": email}).H1())
		p := b.Submit(b.Get(s.Latest(t, email, "reset_email").Link), "/reset-password/verify", nil)
		require.Contains(t, p.Body, "We have sent a 6-digit code")
		p = b.Submit(p, "/reset-password/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "reset_code")})
		const newPW = "a brand new passphrase"
		p = b.Submit(p, "/reset-password/new", map[string]string{"password": newPW})
		require.Equal(t, "Your password has been changed", p.H1())

		enrolApp(t, s, email, newPW)
		p = b.Submit(b.Get("/login"), "/login", map[string]string{"email": email, "password": newPW})
		require.Equal(t, "Check your phone", p.H1())
		p = b.Submit(p, "/login/approve/code", nil)
		require.Equal(t, "Enter the security code", p.H1())
		require.Contains(t, p.Body, "We have sent a 6-digit code")
		p = b.Submit(p, "/login/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "login_code")})
		require.Equal(t, "Your account", p.H1())

		n, err := s.Audit.Count(context.Background(), "", "code.rate_limited", "")
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// Finding 6, without JavaScript: "Send me a security code instead" lands
// on the code page, and a "Check again" arriving after it (as the page's
// script used to send) does not undo the choice.
func TestApprovalFallbackButtonWithoutJavaScript(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		const email = "fallback@example.org"
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, email, pw, phone)
		b.Submit(b.Get("/account"), "/sign-out", nil)
		enrolApp(t, s, email, pw)

		waiting := b.Submit(b.Get("/login"), "/login", map[string]string{"email": email, "password": pw})
		require.Equal(t, "Check your phone", waiting.H1())
		p := b.Submit(waiting, "/login/approve/code", nil)
		require.Equal(t, "Enter the security code", p.H1())
		require.Equal(t, "/login/code", p.URL.Path)
		require.Contains(t, p.Body, "We have sent a 6-digit code")

		// The stale waiting page's "Check again" (the script's submit).
		late := b.Submit(waiting, "/login/approve", nil)
		require.Equal(t, "Enter the security code", late.H1(), "still on the code page, not an empty login page")
		require.Equal(t, "/login/code", late.URL.Path)
		require.Equal(t, "Enter the security code", b.Get("/login/approve").H1())

		p = b.Submit(late, "/login/code", map[string]string{"code": s.CodeFor(t, "+447700900123", "login_code")})
		require.Equal(t, "Your account", p.H1())
	})
}

// Finding 7: with trusted proxies, the client address is the first valid
// untrusted address from the right; forged entries change nothing that
// is recorded or limited.
func TestForgedClientAddresses(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, map[string]string{
			"IDLINK_PROXY_HEADER": "X-Forwarded-For", "IDLINK_TRUSTED_PROXIES": "127.0.0.1/32",
		}, server.Options{})
		post := func(path, xff string) int {
			req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader("{}"))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", xff)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		// Rotating the client-written part of the header does not get past
		// the limit: the proxy's entry is what counts.
		ok := 0
		for i := range 40 {
			if post("/fido/authenticate/begin", fmt.Sprintf("192.0.2.%d, 198.51.100.1", i+1)) == http.StatusOK {
				ok++
			}
		}
		require.Equal(t, 30, ok, "30 a minute per client address")

		// Audit events record the decided address, never the raw header.
		b := s.NewBrowser(t)
		b.Client.Transport = headerTransport{"X-Forwarded-For": "not-an-ip<script>, 198.51.100.1"}
		b.Submit(b.Get("/login"), "/login", map[string]string{"email": "nobody@example.org", "password": pw})
		b.Client.Transport = headerTransport{"X-Forwarded-For": "198.51.100.2, not-an-ip<script>"}
		b.Submit(b.Get("/login"), "/login", map[string]string{"email": "nobody@example.org", "password": pw})
		var ips []string
		require.NoError(t, s.DB.Select(&ips, s.DB.Rebind(`SELECT ip FROM audit_events WHERE type = ? ORDER BY at`), "login.password"))
		require.Equal(t, []string{"198.51.100.1", "127.0.0.1"}, ips, "garbage where the client should be gives the peer")
	})
}

// headerTransport adds headers to every request.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Finding 9: look-alike addresses are the same account or are refused.
func TestLookAlikeEmails(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		s.CreateAccount(t, s.NewBrowser(t), "owner@example.org", pw, phone)

		b := s.NewBrowser(t)
		p := b.Get("/create-account")
		for _, bad := range []string{"own\u200ber@example.org", "\u043ewner@example.org", "owner@[127.0.0.1]"} {
			got := b.Submit(p, "/create-account/email", map[string]string{"email": bad})
			require.Equal(t, []string{"Enter an email address in the correct format, like name@example.com"}, got.Errors(), "%q", bad)
		}
		p = b.Submit(p, "/create-account/email", map[string]string{"email": "ｏｗｎｅｒ@EXAMPLE.org"})
		p = b.Submit(p, "/create-account/password", map[string]string{"password": "another good passphrase"})
		p = b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		require.Equal(t, "Check your email", p.H1())
		require.Contains(t, s.Latest(t, "owner@example.org", "signup_existing_account").Text, "already have one",
			"the full-width address is the owner's")
	})
}
