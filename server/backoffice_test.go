package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/backoffice"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/servertest"
)

// staffPhones gives each staff account of a test its own mobile number, so
// that no number reaches the limit of codes.
var staffPhones = []string{"07700 900201", "07700 900202", "07700 900203", "07700 900204", "07700 900205", "07700 900206"}

// passkeyStaff creates an account with roles (none: a plain person who
// still logs in with a passkey), adds a passkey and returns a browser
// whose session logged in with it (Cm).
func passkeyStaff(t *testing.T, s *servertest.Server, email, phone string, roles ...string) *servertest.Browser {
	t.Helper()
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, email, pw, phone)
	d := newPasskeyDevice()
	addPasskey(t, s, b, d, "Work key")
	signOut(t, b)
	if len(roles) > 0 {
		require.NoError(t, s.Identity.SetStaff(context.Background(), audit.Actor{RequestID: "test"}, s.AccountID(t, email), roles...))
	}
	status, ans, _ := passkeyLogin(t, s, b, b.Get("/login"), d)
	require.Equal(t, http.StatusOK, status, ans)
	return b
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrfToken returns the session's form token, from a page with a form.
func csrfToken(t *testing.T, b *servertest.Browser) string {
	t.Helper()
	for _, path := range []string{"/account", "/login"} {
		if m := csrfField.FindStringSubmatch(b.Get(path).Body); m != nil {
			return m[1]
		}
	}
	t.Fatal("no page with a CSRF token")
	return ""
}

// backOfficeRoute is one back-office route and the roles that may use it.
type backOfficeRoute struct {
	method, path string
	roles        []string
	media        bool // evidence: never starts a login
}

// backOfficeRoutes is every back-office route. Ids that do not exist keep
// the allowed requests from changing anything: they pass the access check
// and then find nothing.
var backOfficeRoutes = []backOfficeRoute{
	{http.MethodGet, "/admin", []string{identity.RoleIDChecker, identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/checks/nope/claim", []string{identity.RoleIDChecker}, false},
	{http.MethodGet, "/admin/checks/nope", []string{identity.RoleIDChecker}, false},
	{http.MethodPost, "/admin/checks/nope/search", []string{identity.RoleIDChecker}, false},
	{http.MethodPost, "/admin/checks/nope/decide", []string{identity.RoleIDChecker}, false},
	{http.MethodGet, "/admin/checks/nope/photo", []string{identity.RoleIDChecker}, true},
	{http.MethodGet, "/admin/checks/nope/video", []string{identity.RoleIDChecker}, true},
	{http.MethodPost, "/admin/checks/nope/release", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/checks/nope/reassign", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/staff", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/staff", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/staff/nope", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/staff/nope", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/staff/nope/remove", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/clients", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/clients/new", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/clients/new", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/clients/nope", []string{identity.RoleAdmin}, false},
	{http.MethodPost, "/admin/clients/nope", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/audit", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/audit.csv", []string{identity.RoleAdmin}, false},
	{http.MethodGet, "/admin/support", []string{identity.RoleSupport}, false},
	{http.MethodGet, "/admin/support/nope", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/signups/nope/resend", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/unlock", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/unpause", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/end-sessions", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/block", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/unblock", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/remove-passkey", []string{identity.RoleSupport}, false},
	{http.MethodPost, "/admin/support/nope/remove-device", []string{identity.RoleSupport}, false},
}

// TestBackOfficeRoutesByRole: every back-office route × every kind of
// visitor. Only a login made on idlink with a passkey, by a member holding
// one of the route's roles, gets past the access check; a single sign-on
// session counts as nobody, even for a member with every role.
func TestBackOfficeRoutesByRole(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startSSO(t, dbURL)
		s := e.s
		// The person of the single sign-on session holds every role: the
		// asserted login still opens nothing.
		require.NoError(t, s.Identity.SetStaff(context.Background(), audit.Actor{}, e.person, identity.Roles...))
		sso := s.NewBrowser(t)
		a := e.rp2.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`, "asserted_login_identity": e.assertion(nil)})
		p := sso.Get(a.URL)
		e.rp2.Returned(sso.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"}), a)

		// A plain person, logged in with a password and a code.
		plain := s.NewBrowser(t)
		s.CreateAccount(t, plain, "plain@example.org", pw, staffPhones[0])

		visitors := []struct {
			name  string
			b     *servertest.Browser
			roles []string
			// anonymous: the back office does not see a login at all.
			anonymous bool
		}{
			{"anonymous", s.NewBrowser(t), nil, true},
			{"single sign-on only", sso, identity.Roles, true},
			{"plain person", plain, nil, false},
			{"passkey, no role", passkeyStaff(t, s, "nobody@example.org", staffPhones[1]), nil, false},
			{"admin", passkeyStaff(t, s, "admin@example.org", staffPhones[2], identity.RoleAdmin), []string{identity.RoleAdmin}, false},
			{"id checker", passkeyStaff(t, s, "checker@example.org", staffPhones[3], identity.RoleIDChecker), []string{identity.RoleIDChecker}, false},
			{"support", passkeyStaff(t, s, "support@example.org", staffPhones[4], identity.RoleSupport), []string{identity.RoleSupport}, false},
			{"admin and support", passkeyStaff(t, s, "both@example.org", staffPhones[5], identity.RoleAdmin, identity.RoleSupport),
				[]string{identity.RoleAdmin, identity.RoleSupport}, false},
		}
		for _, v := range visitors {
			csrf := csrfToken(t, v.b)
			for _, r := range backOfficeRoutes {
				var page *servertest.Page
				if r.method == http.MethodGet {
					page = v.b.Get(r.path)
				} else {
					page = v.b.Post(r.path, url.Values{"csrf_token": {csrf}})
				}
				allowed := false
				for _, role := range r.roles {
					allowed = allowed || (!v.anonymous && contains(v.roles, role))
				}
				what := v.name + " " + r.method + " " + r.path
				switch {
				case allowed:
					require.NotEqual(t, http.StatusForbidden, page.Status, what)
					require.NotContains(t, page.H1(), "Log in", what)
					require.NotEqual(t, "You do not have access", page.H1(), what)
				case v.anonymous && !r.media:
					require.Equal(t, http.StatusOK, page.Status, what)
					require.Equal(t, "Log in to the back office", page.H1(), what)
				default:
					require.Equal(t, http.StatusForbidden, page.Status, what)
					require.Equal(t, "You do not have access", page.H1(), what)
				}
				if !allowed {
					require.NotContains(t, page.Body, ssoEmail, what)
				}
			}
		}
		// The table holds every back-office route the server has (the
		// admin API has its own bearer token and is not a page).
		listed := map[string]bool{}
		for _, r := range backOfficeRoutes {
			listed[r.method+" "+strings.ReplaceAll(r.path, "nope", ":id")] = true
		}
		for _, r := range s.App.GetRoutes(true) {
			if (r.Method != http.MethodGet && r.Method != http.MethodPost) || !strings.HasPrefix(r.Path, "/admin") ||
				strings.HasPrefix(r.Path, "/admin/api") {
				continue
			}
			require.True(t, listed[r.Method+" "+r.Path], "%s %s is missing from backOfficeRoutes", r.Method, r.Path)
		}
		// Every refusal of a signed-in visitor is audited.
		require.Positive(t, s.AuditCount(t, "admin.access_refused", s.AccountID(t, "support@example.org")))
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStaffManagement: an admin adds a member by the email of an existing
// account, changes their roles and removes them; every form shows all its
// errors; each change is audited naming the admin.
func TestStaffManagement(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		admin := passkeyStaff(t, s, "admin@example.org", staffPhones[0], identity.RoleAdmin)
		adminID := s.AccountID(t, "admin@example.org")
		s.CreateAccount(t, s.NewBrowser(t), "helper@example.org", pw, staffPhones[1])
		helperID := s.AccountID(t, "helper@example.org")

		p := admin.Get("/admin/staff")
		require.Equal(t, "Staff", p.H1())
		require.Contains(t, p.Body, "admin@example.org (you)")

		// Nothing filled in: both errors at once, linked to their fields.
		p = admin.Submit(p, "/admin/staff", nil)
		require.Equal(t, http.StatusUnprocessableEntity, p.Status)
		require.Equal(t, []string{"Enter the email address of the person's idlink account", "Choose at least one role"}, p.Errors())
		require.Contains(t, p.Body, `href="#email"`)
		require.Contains(t, p.Body, `href="#role_admin"`)
		// An address without an account.
		p = admin.Submit(p, "/admin/staff", map[string]string{"email": "stranger@example.org", "role_support": "support"})
		require.Equal(t, []string{"No idlink account has this email address. The person must create an account first"}, p.Errors())
		require.Contains(t, p.Body, `value="stranger@example.org"`)

		p = admin.Submit(p, "/admin/staff", map[string]string{"email": "Helper@Example.org", "role_support": "support", "role_id_checker": "id_checker"})
		require.Equal(t, "Staff", p.H1())
		require.Contains(t, p.Body, "helper@example.org is now staff: ID checker, Support.")
		m, ok, err := s.Identity.StaffMember(context.Background(), helperID)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []string{identity.RoleIDChecker, identity.RoleSupport}, m.Roles)
		require.Equal(t, 1, s.AuditCount(t, "staff.role_set", helperID, `"staff":"`+adminID+`"`))

		// Already staff.
		p = admin.Submit(p, "/admin/staff", map[string]string{"email": "helper@example.org", "role_admin": "admin"})
		require.Equal(t, []string{"This person is already staff. Choose them in the list to change their roles"}, p.Errors())

		// Change the roles: none chosen is an error; support only is kept.
		p = admin.Get("/admin/staff/" + helperID)
		require.Equal(t, "Change helper@example.org's roles", p.H1())
		require.Equal(t, []string{"Choose at least one role. To take every role away, remove the member instead"},
			admin.Submit(p, "/admin/staff/"+helperID, nil).Errors())
		p = admin.Submit(p, "/admin/staff/"+helperID, map[string]string{"role_support": "support"})
		require.Contains(t, p.Body, "The roles of helper@example.org are now: Support.")
		m, _, err = s.Identity.StaffMember(context.Background(), helperID)
		require.NoError(t, err)
		require.Equal(t, []string{identity.RoleSupport}, m.Roles)

		// An admin cannot take their own admin role away, nor remove themself.
		p = admin.Get("/admin/staff/" + adminID)
		require.False(t, p.HasForm("/admin/staff/"+adminID+"/remove"))
		require.Equal(t, []string{"You cannot take away your own admin role. Ask another admin"},
			admin.Submit(p, "/admin/staff/"+adminID, map[string]string{"role_admin": "", "role_support": "support"}).Errors())
		require.Equal(t, []string{"You cannot remove yourself. Ask another admin"},
			admin.Post("/admin/staff/"+adminID+"/remove", url.Values{"csrf_token": {csrfToken(t, admin)}}).Errors())

		// Remove the helper.
		p = admin.Submit(admin.Get("/admin/staff/"+helperID), "/admin/staff/"+helperID+"/remove", nil)
		require.Contains(t, p.Body, "helper@example.org is no longer staff.")
		_, ok, err = s.Identity.StaffMember(context.Background(), helperID)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, 3, s.AuditCount(t, "staff.role_set", helperID, `"staff":"`+adminID+`"`))
	})
}

// TestSupportDesk: a support member finds a locked-out person by email,
// mobile and NHS number-less search, unlocks them and the person logs in;
// blocking stops logins and withdraws relying parties' grants; each action
// is audited naming the member and emailed to the person; the page shows
// no code.
func TestSupportDesk(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		desk := passkeyStaff(t, s, "desk@example.org", staffPhones[0], identity.RoleSupport)
		deskID := s.AccountID(t, "desk@example.org")
		person := s.NewBrowser(t)
		s.CreateAccount(t, person, "locked@example.org", pw, staffPhones[1])
		personID := s.AccountID(t, "locked@example.org")
		signOut(t, person)
		for range 5 {
			p := person.Submit(person.Get("/login"), "/login", map[string]string{"email": "locked@example.org", "password": "wrong password"})
			require.NotEqual(t, "Enter the security code", p.H1())
		}
		p := person.Submit(person.Get("/login"), "/login", map[string]string{"email": "locked@example.org", "password": pw})
		require.NotEqual(t, "Enter the security code", p.H1(), "locked out")

		// Find: nothing typed; a mobile number; an email address.
		p = desk.Get("/admin/support?search=1&q=")
		require.Equal(t, []string{"Enter an email address, a mobile number or an NHS number"}, p.Errors())
		p = desk.Get("/admin/support?search=1&q=" + url.QueryEscape("123 456 7890"))
		require.Equal(t, []string{"Enter a valid NHS number: this one fails its check digit"}, p.Errors())
		p = desk.Get("/admin/support?search=1&q=" + url.QueryEscape(staffPhones[1]))
		require.Contains(t, p.Body, `href="/admin/support/`+personID+`"`)
		p = desk.Get("/admin/support?search=1&q=nobody@example.org")
		require.Contains(t, p.Body, "No account matches")
		p = desk.Get("/admin/support?search=1&q=Locked@Example.org")
		require.Contains(t, p.Body, `href="/admin/support/`+personID+`"`)
		// By NHS number, once the person has matched their NHS record (P5).
		_, err := s.Identity.MatchPDS(context.Background(), audit.Actor{}, personID, identity.Details{
			GivenName: "Jane", FamilyName: "Smith", BirthDate: "2010-10-22", Postcode: "LS1 6AE"})
		require.NoError(t, err)
		p = desk.Get("/admin/support?search=1&q=" + url.QueryEscape("900 000 0009"))
		require.Contains(t, p.Body, `href="/admin/support/`+personID+`"`)
		require.Contains(t, p.Body, "P5")

		p = desk.Get("/admin/support/" + personID)
		require.Equal(t, "locked@example.org", p.H1())
		require.Contains(t, p.Text("person-lock"), "Locked after too many wrong passwords")
		require.NotContains(t, p.Body, s.CodeFor(t, servertest.E164(t, staffPhones[1]), "signup_code"))
		require.NotContains(t, p.Body, "password_hash")

		p = desk.Submit(p, "/admin/support/"+personID+"/unlock", nil)
		require.Contains(t, p.Body, "The account is unlocked.")
		require.Equal(t, "Not locked", p.Text("person-lock"))
		require.Equal(t, 1, s.AuditCount(t, "support.unlock", personID, `"staff":"`+deskID+`"`))
		require.Contains(t, s.Latest(t, "locked@example.org", backoffice.NoticeSupportAction).Text, "unlocked your idlink account")
		require.Equal(t, "Your account", s.LogIn(t, person, nil, "locked@example.org", pw, staffPhones[1]).H1())

		// A relying party holds the person's tokens.
		rp := servertest.NewRP(t, s, false, "email")
		a := rp.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
		p = person.Get(a.URL)
		if p.HasForm("/authorize/consent") {
			p = person.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		}
		tok, _, _ := rp.Exchange(rp.Returned(p, a).Get("code"), a)
		require.NotEmpty(t, rp.UserInfo(tok)["email"])
		refresh := func(rt string) (int, string) {
			resp, err := http.PostForm(rp.Config.Endpoint.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
				"client_id": {rp.Client.ID}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion": {rp.Assertion()}})
			require.NoError(t, err)
			defer resp.Body.Close()
			var body struct {
				RefreshToken string `json:"refresh_token"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			return resp.StatusCode, body.RefreshToken
		}
		status, rt := refresh(tok.RefreshToken)
		require.Equal(t, http.StatusOK, status, "refreshing works before the block")
		require.NotEmpty(t, rt)

		// Block: a reason is needed; then the person is logged out and
		// cannot log in, and the relying party's tokens stop working;
		// unblock lets them in again.
		p = desk.Submit(desk.Get("/admin/support/"+personID), "/admin/support/"+personID+"/block", nil)
		require.Equal(t, []string{"Enter the reason for blocking the account"}, p.Errors())
		p = desk.Submit(p, "/admin/support/"+personID+"/block", map[string]string{"reason": "reported stolen phone"})
		require.Contains(t, p.Body, "The account is blocked.")
		require.Equal(t, "Blocked: cannot log in", p.Text("person-status"))
		require.Equal(t, 1, s.AuditCount(t, "support.block", personID, `"staff":"`+deskID+`"`, "reported stolen phone"))
		require.NotEqual(t, "Your account", person.Get("/account").H1(), "sessions ended")
		_, err = rp.Provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
		require.Error(t, err, "the access token is revoked")
		status, _ = refresh(rt)
		require.Equal(t, http.StatusBadRequest, status, "the refresh token is revoked")
		p = person.Submit(person.Get("/login"), "/login", map[string]string{"email": "locked@example.org", "password": pw})
		require.NotEqual(t, "Enter the security code", p.H1())
		p = desk.Submit(desk.Get("/admin/support/"+personID), "/admin/support/"+personID+"/unblock", map[string]string{"reason": "phone recovered"})
		require.Contains(t, p.Body, "The account is unblocked.")
		require.Equal(t, "Your account", s.LogIn(t, person, nil, "locked@example.org", pw, staffPhones[1]).H1())

		// Actions on what is not there change nothing and say so.
		p = desk.Submit(desk.Get("/admin/support/"+personID), "/admin/support/"+personID+"/end-sessions", nil)
		require.Contains(t, p.Body, "Logged out everywhere (1 sessions ended)")
		require.NotEqual(t, "Your account", person.Get("/account").H1())
		p = desk.Post("/admin/support/"+personID+"/remove-passkey", url.Values{"csrf_token": {csrfToken(t, desk)}, "id": {"AAAA"}})
		require.Equal(t, []string{"That passkey was not found. It may have been removed already"}, p.Errors())

		// Ways in: the desk removes the person's passkey, which then cannot
		// log in; a pause of app approvals is lifted.
		// (Another person: the first has had as many emails as one address
		// may get in 15 minutes.)
		person = s.NewBrowser(t)
		s.CreateAccount(t, person, "keys@example.org", pw, staffPhones[2])
		personID = s.AccountID(t, "keys@example.org")
		key := newPasskeyDevice()
		addPasskey(t, s, person, key, "Kitchen laptop")
		signOut(t, person)
		p = desk.Get("/admin/support/" + personID)
		require.Contains(t, p.Body, "Kitchen laptop")
		m := regexp.MustCompile(`action="/admin/support/` + personID + `/remove-passkey" novalidate><input type="hidden" name="csrf_token" value="[^"]+"><input type="hidden" name="id" value="([^"]+)"`).FindStringSubmatch(p.Body)
		require.NotNil(t, m)
		p = desk.Post("/admin/support/"+personID+"/remove-passkey", url.Values{"csrf_token": {csrfToken(t, desk)}, "id": {m[1]}})
		require.Contains(t, p.Body, "The passkey is removed.")
		require.NotContains(t, p.Body, "Kitchen laptop")
		status, _, _ = passkeyLogin(t, s, person, person.Get("/login"), key)
		require.NotEqual(t, http.StatusOK, status, "a removed passkey cannot log in")
		require.Contains(t, s.Latest(t, "keys@example.org", backoffice.NoticeSupportAction).Text, "removed a passkey")

		_, err = s.DB.Exec(s.DB.Rebind(`INSERT INTO push_pauses (account_id, until, reason) VALUES (?, ?, ?)`),
			personID, time.Now().UTC().Add(time.Hour), "reported")
		require.NoError(t, err)
		p = desk.Get("/admin/support/" + personID)
		require.Contains(t, p.Text("person-pause"), "Paused")
		p = desk.Submit(p, "/admin/support/"+personID+"/unpause", nil)
		require.Contains(t, p.Body, "Approvals are on again")
		require.Equal(t, "Not paused", p.Text("person-pause"))
		require.Equal(t, 1, s.AuditCount(t, "support.unpause", personID, `"staff":"`+deskID+`"`))

		// A registration waiting for its link: the desk sends it again,
		// with a new link that works.
		half := s.NewBrowser(t)
		p = half.Submit(half.Get("/create-account"), "/create-account/email", map[string]string{"email": "half@example.org"})
		p = half.Submit(p, "/create-account/password", map[string]string{"password": pw})
		p = half.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
		require.Equal(t, "Check your email", p.H1())
		first := s.Latest(t, "half@example.org", "signup_verify_email").Link
		p = desk.Get("/admin/support?search=1&q=half@example.org")
		require.Contains(t, p.Body, "a registration is waiting for its email link")
		require.NotContains(t, p.Body, "/create-account/verify", "no link is shown")
		m = regexp.MustCompile(`action="(/admin/support/signups/[^"]+/resend)"`).FindStringSubmatch(p.Body)
		require.NotNil(t, m)
		p = desk.Submit(p, m[1], nil)
		require.Contains(t, p.Body, "The verification email is sent again to half@example.org")
		second := s.Latest(t, "half@example.org", "signup_verify_email").Link
		require.NotEqual(t, first, second)
		require.Equal(t, 1, s.AuditCount(t, "support.resend_verification", "", `"staff":"`+deskID+`"`))
	})
}

// postMultipart posts fields and one file as a browser posts a form with
// a file input.
func postMultipart(t *testing.T, s *servertest.Server, b *servertest.Browser, path string, fields map[string]string, fileField, fileBody string) *servertest.Page {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	if fileField != "" {
		fw, err := w.CreateFormFile(fileField, "key.pem")
		require.NoError(t, err)
		_, err = fw.Write([]byte(fileBody))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	req, err := http.NewRequest(http.MethodPost, s.URL+path, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := b.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &servertest.Page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(body)}
}

// TestRelyingPartyPages: an admin registers a relying party with a key
// file upload (the oidc package's validation answers on the form), sees
// its fingerprint, and changes it; both changes are audited.
func TestRelyingPartyPages(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, map[string]string{"IDLINK_ASSERTED_LOGIN_PAIRS": "gp-app>nhs-app,portal>gp-app"}, server.Options{})
		admin := passkeyStaff(t, s, "admin@example.org", staffPhones[0], identity.RoleAdmin)
		adminID := s.AccountID(t, "admin@example.org")
		csrf := csrfToken(t, admin)

		// Nothing entered: every error at once.
		p := admin.Post("/admin/clients/new", url.Values{"csrf_token": {csrf}})
		require.Equal(t, http.StatusUnprocessableEntity, p.Status)
		require.Len(t, strings.Split(p.Body, `class="nhsuk-error-message"`), 4, "three fields in error")
		// The oidc rules: a redirect URI with a fragment is refused.
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		fields := map[string]string{"csrf_token": csrf, "client_id": "gp-app", "name": "GP App",
			"redirect_uris": "https://gp.example/cb#frag", "scopes": "openid email"}
		p = postMultipart(t, s, admin, "/admin/clients/new", fields, "public_key_file", keyPEM)
		require.Equal(t, http.StatusUnprocessableEntity, p.Status, p.Body)
		require.Contains(t, p.Body, `href="#redirect_uris"`)
		require.Contains(t, p.Body, "Check this:")

		fields["redirect_uris"] = "https://gp.example/cb"
		p = postMultipart(t, s, admin, "/admin/clients/new", fields, "public_key_file", keyPEM)
		require.Equal(t, http.StatusOK, p.Status, p.Body)
		require.Contains(t, p.Body, "The relying party GP App is registered with the client ID gp-app.")
		sum := sha256.Sum256(der)
		require.Contains(t, p.Body, strings.ToUpper(hex.EncodeToString(sum[:1])+":"+hex.EncodeToString(sum[1:2])+":"))
		cl, err := s.OIDC.Clients().Get(context.Background(), "gp-app")
		require.NoError(t, err)
		require.Equal(t, []string{"https://gp.example/cb"}, cl.RedirectURIs)
		require.Equal(t, strings.TrimSpace(keyPEM), strings.TrimSpace(cl.PublicKeyPEM))
		require.Equal(t, 1, s.AuditCount(t, "oidc.client_create", "", `"staff":"`+adminID+`"`, "gp-app"))

		// Taken client id.
		p = postMultipart(t, s, admin, "/admin/clients/new", fields, "public_key_file", keyPEM)
		require.Contains(t, p.Body, "This client ID is already registered")

		// Change its name and scopes.
		fields = map[string]string{"csrf_token": csrf, "name": "GP App 2", "redirect_uris": "https://gp.example/cb",
			"scopes": "openid email phone", "public_key_pem": keyPEM, "refresh_tokens": "yes"}
		p = postMultipart(t, s, admin, "/admin/clients/gp-app", fields, "", "")
		require.Equal(t, http.StatusOK, p.Status, p.Body)
		require.Contains(t, p.Body, "The changes to GP App 2 are saved.")
		cl, err = s.OIDC.Clients().Get(context.Background(), "gp-app")
		require.NoError(t, err)
		require.Equal(t, "GP App 2", cl.Name)
		require.True(t, cl.RefreshTokens)
		require.Equal(t, 1, s.AuditCount(t, "oidc.client_update", "", `"staff":"`+adminID+`"`))
		require.Contains(t, admin.Get("/admin/clients").Body, "GP App 2")

		// Its page shows its recent refused requests and logins.
		s.NewBrowser(t).Get("/authorize?" + url.Values{"client_id": {"gp-app"}, "redirect_uri": {"https://elsewhere.example/cb"},
			"response_type": {"code"}, "scope": {"openid"}}.Encode())
		p = admin.Get("/admin/clients/gp-app")
		require.Contains(t, p.Text("client-errors"), "authorize.invalid_redirect_uri")
		require.Contains(t, p.Text("client-errors"), "elsewhere.example")
		require.Equal(t, "0 logins sent back to the service (authorization codes issued) in the last 7 days.", p.Text("client-codes"))
		require.Contains(t, p.Text("client-sso"), "May pass its logins to: nhs-app. Receives logins from: portal.")
	})
}

// TestAuditSearch: an admin searches the audit trail by person, type prefix,
// time range and staff member, pages through it, and exports the filtered
// set as CSV; searching and exporting are audited.
func TestAuditSearch(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		admin := passkeyStaff(t, s, "admin@example.org", staffPhones[0], identity.RoleAdmin)
		adminID := s.AccountID(t, "admin@example.org")
		ctx := context.Background()
		base := time.Now().UTC().Add(-time.Hour)
		log := audit.New(s.DB, func() time.Time { return base })
		for i := range backoffice.AuditPageSize + 5 {
			require.NoError(t, log.Record(ctx, audit.Actor{IP: "192.0.2.7"}, "support.unlock", audit.Success, "person-1",
				map[string]any{"staff": adminID, "n": i, "note": "=SUM(A1)"}))
		}
		require.NoError(t, log.Record(ctx, audit.Actor{IP: "192.0.2.8"}, "support.block", audit.Success, "person-2", nil))

		// Errors, all at once.
		p := admin.Get("/admin/audit?search=1&from=yesterday&to=2026-13-01&person=nobody@example.org")
		require.Equal(t, http.StatusUnprocessableEntity, p.Status)
		require.Len(t, p.Errors(), 3)

		day := base.Format("2006-01-02")
		q := url.Values{"search": {"1"}, "person": {"person-1"}, "type": {"support."}, "from": {day}, "to": {day}, "staff": {"admin@example.org"}, "ip": {"192.0.2.7"}}
		p = admin.Get("/admin/audit?" + q.Encode())
		require.Equal(t, http.StatusOK, p.Status)
		require.Equal(t, backoffice.AuditPageSize, strings.Count(p.Body, "<td class=\"nhsuk-table__cell\">support.unlock</td>"))
		require.NotContains(t, p.Body, "support.block")
		m := regexp.MustCompile(`id="audit-next"`).FindString(p.Body)
		require.NotEmpty(t, m)
		next := regexp.MustCompile(`href="([^"]+)" id="audit-next"`).FindStringSubmatch(p.Body)
		require.NotNil(t, next)
		p = admin.Get(strings.ReplaceAll(next[1], "&amp;", "&"))
		require.Equal(t, 5, strings.Count(p.Body, "<td class=\"nhsuk-table__cell\">support.unlock</td>"))
		require.NotContains(t, p.Body, `id="audit-next"`)

		resp, err := admin.Client.Get(s.URL + "/admin/audit.csv?" + q.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
		rows, err := csv.NewReader(resp.Body).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 1+backoffice.AuditPageSize+5)
		require.Equal(t, "support.unlock", rows[1][1])
		require.Contains(t, rows[1][7], `"note":"=SUM(A1)"`)
		require.Equal(t, 1, s.AuditCount(t, "audit.exported", "", `"staff":"`+adminID+`"`, `"events":55`))
		require.Equal(t, 1, s.AuditCount(t, "audit.searched", "", `"staff":"`+adminID+`"`))
	})
}
