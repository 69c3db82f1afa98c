package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// testClock runs with real time, and the test can move it forward (codes
// and messages sent one after another must not share a timestamp).
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func newClock() *testClock { return &testClock{} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

func TestChangePassword(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "pat@example.org", pw, phone)
		other := s.NewBrowser(t)
		require.Equal(t, "Your account", s.LogIn(t, other, nil, "pat@example.org", pw, phone).H1())

		p := b.Get("/account/password")
		require.Equal(t, "Change your password", p.H1())

		// Every problem at once, in field order, each linked to its field.
		got := b.Submit(p, "/account/password", nil)
		require.Equal(t, http.StatusUnprocessableEntity, got.Status)
		require.Equal(t, []string{"Enter your current password", "Enter a new password"}, got.Errors())
		require.Contains(t, got.Body, `href="#current-password"`)
		require.Contains(t, got.Body, `href="#new-password"`)
		got = b.Submit(p, "/account/password", map[string]string{"current_password": "not my password", "password": "short"})
		require.Equal(t, []string{"Your current password is not right", "Your password must be at least 8 characters"}, got.Errors())
		require.Equal(t, 1, audited(t, s, "password.confirm", "failure"))
		got = b.Submit(p, "/account/password", map[string]string{"current_password": pw, "password": pw})
		require.Equal(t, []string{"Your new password must be different from your current password"}, got.Errors())
		got = b.Submit(p, "/account/password", map[string]string{"current_password": pw, "password": "password1"})
		require.Equal(t, []string{"Your password is too common and easy to guess. Choose a different password"}, got.Errors())

		got = b.Submit(p, "/account/password", map[string]string{"current_password": pw, "password": "a new long passphrase"})
		require.Equal(t, "Your account", got.H1())
		require.Contains(t, got.Body, "Your password has been changed")
		require.Contains(t, got.Body, "Password changed")
		notice := s.Latest(t, "pat@example.org", "password_changed")
		require.Contains(t, notice.Text, "Your idlink password was changed")
		require.Contains(t, notice.Text, "If this was not you")

		// The other browser was signed out; the old password no longer works.
		require.Equal(t, "Log in", other.Get("/account").H1())
		bad := passwordOnly(t, other, "pat@example.org")
		require.Equal(t, []string{"Enter a correct email address and password"}, bad.Errors())
		other2 := s.NewBrowser(t)
		require.Equal(t, "Your account", s.LogIn(t, other2, nil, "pat@example.org", "a new long passphrase", phone).H1())
	})
}

func TestChangeEmail(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "old@example.org", pw, phone)
		s.CreateAccount(t, s.NewBrowser(t), "taken@example.org", pw, otherPhone)

		p := b.Get("/account/email")
		require.Equal(t, "Change your email address", p.H1())
		for _, tc := range []struct{ email, want string }{
			{"", "Enter your new email address"},
			{"not an email", "Enter an email address in the correct format, like name@example.com"},
			{"OLD@example.org", "This is already your email address. Enter a different one"},
		} {
			got := b.Submit(p, "/account/email", map[string]string{"email": tc.email})
			require.Equal(t, []string{tc.want}, got.Errors(), tc.email)
		}

		// A taken address looks the same on screen; its owner is told.
		got := b.Submit(p, "/account/email", map[string]string{"email": "taken@example.org"})
		require.Equal(t, "Check your email", got.H1())
		require.Contains(t, s.Latest(t, "taken@example.org", "email_change_taken").Text, "already belongs to an idlink account")
		require.NotContains(t, b.Get("/account").Body, "in use", "the activity does not tell either")

		got = b.Submit(p, "/account/email", map[string]string{"email": "new@example.org"})
		require.Equal(t, "Check your email", got.H1())
		link := s.Latest(t, "new@example.org", "email_change_verify").Link
		// Until the link is followed nothing changes.
		require.Equal(t, "old@example.org", b.Get("/account").Text("account-email"))

		// The link opens a page; its POST uses it, once.
		v := b.Get(link)
		require.Equal(t, "Confirm your new email address", v.H1())
		done := b.Submit(v, "/account/email/verify", nil)
		require.Equal(t, "Your email address has been changed", done.H1())
		require.Equal(t, "new@example.org", b.Get("/account").Text("account-email"))
		old := s.Latest(t, "old@example.org", "email_changed")
		require.Contains(t, old.Text, "n***@example.org")
		require.Contains(t, old.Text, "If this was not you")
		require.Equal(t, http.StatusGone, b.Get(link).Status, "a used link")
		require.Equal(t, http.StatusGone, b.Submit(v, "/account/email/verify", nil).Status, "a reused link")

		// The new address logs in; the old one does not.
		require.Equal(t, []string{"Enter a correct email address and password"}, passwordOnly(t, s.NewBrowser(t), "old@example.org").Errors())
		require.Equal(t, "Your account", s.LogIn(t, s.NewBrowser(t), nil, "new@example.org", pw, phone).H1())

		// An expired link (24 hours) does nothing.
		p = b.Get("/account/email")
		if p.H1() == "Log in" {
			p = s.LogIn(t, b, p, "new@example.org", pw, phone)
		}
		require.Equal(t, "Check your email", b.Submit(p, "/account/email", map[string]string{"email": "later@example.org"}).H1())
		late := s.Latest(t, "later@example.org", "email_change_verify").Link
		clk.Add(24*time.Hour + time.Minute)
		require.Equal(t, http.StatusGone, s.NewBrowser(t).Get(late).Status)
		require.Equal(t, 1, audited(t, s, "email.changed", "success"))
	})
}

// The recent-login rule: after 15 minutes, changing contact details asks
// for the password and code again, then comes straight back.
func TestStaleLoginIsConfirmedAgain(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "stale@example.org", pw, phone)
		p := b.Get("/account/email")
		require.Equal(t, "Change your email address", p.H1())

		clk.Add(16 * time.Minute)
		// A form posted with a stale login changes nothing.
		got := b.Submit(p, "/account/email", map[string]string{"email": "fresh@example.org"})
		require.Equal(t, "Log in", got.H1())
		_, err := s.Outbox.Latest(t.Context(), "fresh@example.org", "email_change_verify")
		require.Error(t, err, "nothing was sent")
		got = s.LogIn(t, b, got, "stale@example.org", pw, phone)
		require.Equal(t, "Change your email address", got.H1(), "back to what they were doing")
		require.Equal(t, "Check your email", b.Submit(got, "/account/email", map[string]string{"email": "fresh@example.org"}).H1())
	})
}

func TestChangePhoneAndCancel(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "mo@example.org", pw, phone)
		signOut(t, b)
		logInRemembering(t, s, b, "mo@example.org", phone)
		require.NotEmpty(t, rememberedCookie(b, s))
		require.Contains(t, s.Latest(t, "mo@example.org", "browser_remembered").Text, "was remembered")

		p := b.Get("/account/phone")
		require.Equal(t, "Enter your new mobile phone number", p.H1())
		for _, tc := range []struct{ phone, want string }{
			{"", "Enter your new mobile phone number"},
			{"0161 496 0000", "Enter a mobile phone number, like 07700 900 982 or +44 7700 900 982"},
			{phone, "This is already your mobile phone number. Enter a different one"},
		} {
			got := b.Submit(p, "/account/phone", map[string]string{"phone": tc.phone})
			require.Equal(t, []string{tc.want}, got.Errors(), tc.phone)
		}
		newPhone := "07700 900789"
		code := b.Submit(p, "/account/phone", map[string]string{"phone": newPhone})
		require.Equal(t, "Enter the security code", code.H1(), code.Errors())
		sent := s.CodeFor(t, servertest.E164(t, newPhone), "phone_change_code")
		wrong := "000000"
		if sent == wrong {
			wrong = "111111"
		}
		got := b.Submit(code, "/account/phone/code", map[string]string{"code": wrong})
		require.Equal(t, []string{"The security code is not right. Check it and try again."}, got.Errors())
		require.Equal(t, "07700 900123", b.Get("/account").Text("account-phone"), "nothing changes before the code")
		got = b.Submit(code, "/account/phone/code", map[string]string{"code": sent})
		require.Equal(t, "Your account", got.H1(), got.Errors())
		require.Equal(t, "07700 900789", got.Text("account-phone"), got.H1(), got.Errors(), code.H1(), code.Errors())
		require.Empty(t, rememberedCookie(b, s), "remembered browsers are forgotten")
		require.Contains(t, s.Latest(t, "mo@example.org", "phone_changed").Text, "changed to a number ending 789")
		cancel := s.Latest(t, servertest.E164(t, phone), "phone_changed_old")
		require.NotEmpty(t, cancel.Link)

		// The link sent to the old number undoes it and signs everyone out.
		stranger := s.NewBrowser(t)
		cp := stranger.Get(cancel.Link)
		require.Equal(t, "Undo the change of mobile phone number", cp.H1())
		done := stranger.Submit(cp, "/account/phone/cancel", nil)
		require.Equal(t, "The change of mobile phone number has been undone", done.H1())
		require.Equal(t, "Log in", b.Get("/account").H1(), "signed out")
		require.Equal(t, http.StatusGone, stranger.Get(cancel.Link).Status, "single use")
		b = s.NewBrowser(t)
		back := s.LogIn(t, b, nil, "mo@example.org", pw, phone)
		require.Equal(t, "07700 900123", back.Text("account-phone"), back.H1(), back.Errors())

		// The cancel link of a later change expires after 24 hours.
		p = b.Get("/account/phone")
		code = b.Submit(p, "/account/phone", map[string]string{"phone": newPhone})
		got = b.Submit(code, "/account/phone/code", map[string]string{"code": s.CodeFor(t, servertest.E164(t, newPhone), "phone_change_code")})
		require.Equal(t, "07700 900789", got.Text("account-phone"), got.H1(), got.Errors(), code.H1(), code.Errors())
		late := s.Latest(t, servertest.E164(t, phone), "phone_changed_old").Link
		clk.Add(24*time.Hour + time.Minute)
		require.Equal(t, http.StatusGone, s.NewBrowser(t).Get(late).Status)
		require.Equal(t, 1, audited(t, s, "phone.change_cancelled", "success"))
	})
}

func TestLandline(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		b := s.NewBrowser(t)
		p := s.CreateAccount(t, b, "land@example.org", pw, phone)
		require.Equal(t, "Not given", p.Text("account-landline"))
		p = b.Get("/account/landline")
		require.Equal(t, "Your landline number", p.H1())
		for _, bad := range []string{"", "07700 900123", "12345", "+33 1 23 45 67 89"} {
			got := b.Submit(p, "/account/landline", map[string]string{"landline": bad})
			require.Len(t, got.Errors(), 1, bad)
		}
		got := b.Submit(p, "/account/landline", map[string]string{"landline": "0161 496 0000"})
		require.Equal(t, "0161 496 0000", got.Text("account-landline"))
		require.Contains(t, s.Latest(t, "land@example.org", "landline_changed").Text, "A landline number was added")
		p = b.Get("/account/landline")
		got = b.Submit(p, "/account/landline", map[string]string{"action": "remove"})
		require.Equal(t, "Not given", got.Text("account-landline"))
		require.True(t, strings.Contains(got.Body, "Landline number removed"))
	})
}

// Adding or removing a way in needs a recent login too, and a new way in
// is emailed to the person.
func TestWaysInNeedARecentLogin(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		clk := newClock()
		s := servertest.Start(t, dbURL, nil, server.Options{Now: clk.Now})
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "keys@example.org", pw, phone)
		require.Equal(t, "Security settings", addPasskey(t, s, b, newPasskeyDevice(), "Phone").H1())
		notice := s.Latest(t, "keys@example.org", "passkey_added")
		require.Contains(t, notice.Text, "A passkey was added")
		require.Contains(t, notice.Text, "If this was not you")

		clk.Add(16 * time.Minute)
		p := b.Get("/account/security")
		require.Contains(t, p.Body, `id="passkey-confirm"`, "the page asks for a new login before adding")
		status, raw := postJSON(t, s, b, "/account/passkeys/begin", regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(p.Body)[1], []byte("{}"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "recent_login_required", answer(t, raw)["error"])
		id := regexp.MustCompile(`rename\?id=([A-Za-z0-9_-]+)`).FindStringSubmatch(p.Body)
		require.NotNil(t, id)
		got := b.Submit(p, "/account/security/passkeys/remove", map[string]string{"id": id[1]})
		require.Equal(t, "Log in", got.H1())
		require.Equal(t, 0, audited(t, s, "passkey.removed", "success"))
		got = s.LogIn(t, b, got, "keys@example.org", pw, phone)
		require.Equal(t, "Security settings", got.H1())
		got = b.Submit(got, "/account/security/passkeys/remove", map[string]string{"id": id[1]})
		require.Contains(t, got.Body, "The passkey has been removed")
		require.Equal(t, 1, audited(t, s, "passkey.removed", "success"))
	})
}

// Back after finishing a journey does not show its first page again to a
// signed-in person.
func TestFinishedJourneysGoToTheAccount(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, "back@example.org", pw, phone)
	for _, path := range []string{"/create-account", "/create-account/email", "/create-account/password", "/create-account/terms", "/login"} {
		require.Equal(t, "Your account", b.Get(path).H1(), path)
	}
	signOut(t, b)
	require.Equal(t, "What is your email address?", b.Get("/create-account").H1())
	require.Equal(t, "Log in", b.Get("/login").H1())
}

// After proving who they are, the person lands on their account, which
// says so once; the notice does not turn up later in another journey.
func TestProvenNoticeShownOnce(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, "jane.proof@example.org", pw, phone)
	p := b.Get("/prove/details")
	require.Equal(t, "Enter your details", p.H1())
	p = b.Submit(p, "/prove/details", map[string]string{"dob-day": "22", "dob-month": "10", "dob-year": "2010",
		"given_name": "Jane", "family_name": "Smith", "postcode": "LS1 6AE", "nhs_number": "9000000009"})
	require.Equal(t, "Your account", p.H1(), p.Errors())
	require.Contains(t, p.Body, "you have proved who you are to the medium level")
	require.Equal(t, "Your details match your NHS record, but you have not fully proved who you are", p.Text("account-level"))
	require.NotContains(t, p.Text("maincontent"), "P5", "level codes are for developers, not on the person's pages")
	require.NotContains(t, b.Get("/account").Body, "you have proved who you are to the medium level")
	require.NotContains(t, b.Get("/prove").Body, "you have proved who you are to the medium level")

	// A new mobile number must match PDS afresh: the flag is cleared for
	// the next login's check to work out.
	_, err := s.DB.Exec(`UPDATE identity_records SET phone_pds_matched = TRUE`)
	require.NoError(t, err)
	p = b.Submit(b.Get("/account/phone"), "/account/phone", map[string]string{"phone": "07700 900999"})
	p = b.Submit(p, "/account/phone/code", map[string]string{"code": s.CodeFor(t, "+447700900999", "phone_change_code")})
	require.Equal(t, "Your account", p.H1(), p.Errors())
	var matched bool
	require.NoError(t, s.DB.Get(&matched, `SELECT phone_pds_matched FROM identity_records`))
	require.False(t, matched)
}
