package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/media/mediatest"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// ---- fakes ----

// admAccounts is a fake identity.Accounts that remembers levels and alerts.
type admAccounts struct {
	mu     sync.Mutex
	accts  map[string]account.Account
	alerts map[string][]string // account id → alert texts
}

func (a *admAccounts) add(id, email string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	phone := "+447700900123"
	a.accts[id] = account.Account{ID: id, Email: email, Phone: &phone, ProofingLevel: trust.P0.String(), Status: "active"}
}

func (a *admAccounts) Account(_ context.Context, id string) (account.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return acct, nil
}

func (a *admAccounts) RaiseLevel(_ context.Context, _ audit.Actor, id string, l trust.Level) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.accts[id]
	if !ok {
		return account.ErrNotFound
	}
	if l > acct.Level() {
		acct.ProofingLevel = l.String()
		a.accts[id] = acct
	}
	return nil
}

func (a *admAccounts) Block(context.Context, audit.Actor, string, string) error { return nil }

func (a *admAccounts) SendSecurityAlert(_ context.Context, _ audit.Actor, id string, _ notify.Kind, text string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alerts[id] = append(a.alerts[id], text)
	return nil
}

func (a *admAccounts) level(id string) trust.Level {
	acct, _ := a.Account(context.Background(), id)
	return acct.Level()
}

// admSignIn is a fake login journey: the browser says who it is signed in
// as (X-Test-Account) and whether that login proved a passkey (X-Test-Cm).
type admSignIn struct {
	mu     sync.Mutex
	starts []login.Request
}

func (s *admSignIn) Current(c fiber.Ctx) (login.Auth, bool) {
	id := c.Get("X-Test-Account")
	if id == "" {
		return login.Auth{}, false
	}
	creds := trust.Credentials{trust.Cp, trust.Cd}
	if c.Get("X-Test-Cm") == "1" {
		creds = trust.Credentials{trust.Cm}
	}
	authTime := time.Now()
	if age, err := time.ParseDuration(c.Get("X-Test-Login-Age")); err == nil {
		authTime = authTime.Add(-age)
	}
	return login.Auth{AccountID: id, Credentials: creds, AuthTime: authTime}, true
}

func (s *admSignIn) Start(c fiber.Ctx, req login.Request) error {
	s.mu.Lock()
	s.starts = append(s.starts, req)
	s.mu.Unlock()
	return c.Redirect().Status(http.StatusSeeOther).To("/login")
}

func (s *admSignIn) last() login.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.starts) == 0 {
		return login.Request{}
	}
	return s.starts[len(s.starts)-1]
}

// admClock is a settable clock, so that checks are submitted in order.
type admClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *admClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *admClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// ---- the environment ----

type admEnv struct {
	t      *testing.T
	db     *sqlx.DB
	svc    *identity.Service
	app    *fiber.App
	accts  *admAccounts
	signIn *admSignIn
	clock  *admClock
}

func admSetup(t *testing.T, db *sqlx.DB) *admEnv {
	t.Helper()
	key := make([]byte, media.KeySize)
	copy(key, secrets.NewKey())
	store, err := media.New(media.Config{Dir: t.TempDir(), Key: key})
	require.NoError(t, err)
	clock := &admClock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	accts := &admAccounts{accts: map[string]account.Account{}, alerts: map[string][]string{}}
	svc, err := identity.New(identity.Config{}, identity.Deps{DB: db, Accounts: accts, PDS: pds.NewSandbox(),
		GP: gp.NewSandbox(db, nil), Media: store, Limiter: ratelimit.New(db, nil), Audit: audit.New(db, nil), Now: clock.Now})
	require.NoError(t, err)

	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	sessions := web.NewSessions(db, keys, 30*time.Minute, 12*time.Hour, false, nil)
	r, err := web.NewRenderer(false)
	require.NoError(t, err)
	signIn := &admSignIn{}
	app := fiber.New()
	identity.NewAdmin(svc, identity.AdminDeps{Login: signIn, Renderer: r}).Register(web.Pages{R: app, Renderer: r, Sessions: sessions})
	return &admEnv{t: t, db: db, svc: svc, app: app, accts: accts, signIn: signIn, clock: clock}
}

// person creates an account with a photo ID check waiting for review.
func (e *admEnv) person(id string) identity.Check {
	e.t.Helper()
	e.accts.add(id, id+"@example.test")
	e.clock.Add(time.Minute)
	c, err := e.svc.SubmitPhotoCheck(context.Background(), audit.Actor{}, id, identity.Evidence{
		DocumentType: identity.DocPassport, Photo: bytes.NewReader(admJPEG(e.t)), Video: bytes.NewReader(admMP4(5))})
	require.NoError(e.t, err)
	return c
}

// staff creates an account with a back-office role.
func (e *admEnv) staff(id, role string) {
	e.t.Helper()
	e.accts.add(id, id+"@nhs.example")
	require.NoError(e.t, e.svc.SetStaff(context.Background(), audit.Actor{}, id, role))
}

func (e *admEnv) auditCount(typ, accountID string) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.Get(&n, e.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE type = ? AND account_id = ?`), typ, accountID))
	return n
}

// admBrowser keeps a session cookie and the page's CSRF token.
type admBrowser struct {
	e       *admEnv
	account string
	cm      bool
	mu      sync.Mutex
	cookie  string
	csrf    string
}

func (e *admEnv) browser(account string, cm bool) *admBrowser {
	return &admBrowser{e: e, account: account, cm: cm}
}

type admResponse struct {
	status  int
	header  http.Header
	body    string
	bodyRaw []byte
}

func (r admResponse) location() string { return r.header.Get("Location") }

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *admBrowser) do(method, path string, form url.Values, header ...string) admResponse {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if b.account != "" {
		req.Header.Set("X-Test-Account", b.account)
	}
	if b.cm {
		req.Header.Set("X-Test-Cm", "1")
	}
	b.mu.Lock()
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: b.cookie})
	}
	b.mu.Unlock()
	resp, err := b.e.app.Test(req, fiber.TestConfig{Timeout: 30 * time.Second})
	require.NoError(b.e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.e.t, err)
	b.mu.Lock()
	for _, ck := range resp.Cookies() {
		if ck.Name == web.SessionCookie {
			b.cookie = ck.Value
		}
	}
	if m := csrfRE.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	b.mu.Unlock()
	return admResponse{status: resp.StatusCode, header: resp.Header, body: string(raw), bodyRaw: raw}
}

func (b *admBrowser) get(path string, header ...string) admResponse {
	return b.do(http.MethodGet, path, nil, header...)
}

// post submits a form with the CSRF token of the last page seen (opening
// the queue first if no page has been seen).
func (b *admBrowser) post(path string, form url.Values) admResponse {
	b.e.t.Helper()
	if b.csrf == "" {
		r := b.get("/admin")
		require.Equal(b.e.t, http.StatusOK, r.status, r.body)
	}
	if form == nil {
		form = url.Values{}
	}
	b.mu.Lock()
	form.Set(web.CSRFField, b.csrf)
	b.mu.Unlock()
	return b.do(http.MethodPost, path, form)
}

// claim reviews a check and opens its page.
func (b *admBrowser) claim(id string) admResponse {
	b.e.t.Helper()
	r := b.post("/admin/checks/"+id+"/claim", nil)
	require.Equal(b.e.t, http.StatusSeeOther, r.status, r.body)
	require.Equal(b.e.t, "/admin/checks/"+id, r.location())
	page := b.get(r.location())
	require.Equal(b.e.t, http.StatusOK, page.status, page.body)
	return page
}

func admJPEG(t *testing.T) []byte { return mediatest.Photo(t) }

func admMP4(seconds uint32) []byte { return mediatest.MP4(float64(seconds)) }

// ---- tests ----

func TestAdminAccess(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		c := e.person("person-1")
		e.staff("checker", identity.RoleIDChecker)
		e.accts.add("stranger", "stranger@example.test")

		// Not signed in: a passkey login, back to the page asked for.
		// Not signed in: the page says what is needed, then a passkey login.
		r := e.browser("", false).get("/admin/checks/" + c.ID)
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, "a role on your idlink account (ID checker, support or admin)")
		require.Contains(t, r.body, "a passkey or the idlink app on that account")
		r = e.browser("", false).get("/admin/checks/" + c.ID + "?login=1")
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, "/login", r.location())
		req := e.signIn.last()
		require.Equal(t, []trust.Credentials{{trust.Cm}}, req.Want)
		require.Equal(t, "/admin/checks/"+c.ID, req.ReturnTo)
		require.False(t, req.Force)

		// Signed in with a password and a code: a passkey login, forced.
		r = e.browser("checker", false).get("/admin")
		require.Equal(t, http.StatusSeeOther, r.status)
		req = e.signIn.last()
		require.Equal(t, []trust.Credentials{{trust.Cm}}, req.Want)
		require.Equal(t, "/admin", req.ReturnTo)
		require.True(t, req.Force)

		// Signed in with a password but without a role: no passkey login
		// would help; the page says what is needed.
		r = e.browser("stranger", false).get("/admin")
		require.Equal(t, http.StatusForbidden, r.status)
		require.Contains(t, r.body, "You need the role this page is for")
		require.Equal(t, 1, e.auditCount("admin.access_refused", "stranger"))

		// Signed in with a passkey but not staff: 403, audited; the
		// evidence is refused too.
		stranger := e.browser("stranger", true)
		r = stranger.get("/admin")
		require.Equal(t, http.StatusForbidden, r.status)
		require.Contains(t, r.body, "You do not have access")
		require.NotContains(t, r.body, c.ID)
		r = stranger.get("/admin/checks/" + c.ID + "/photo")
		require.Equal(t, http.StatusForbidden, r.status)
		require.Equal(t, 3, e.auditCount("admin.access_refused", "stranger"))

		// Evidence never starts a login (an <img> must not replace the
		// journey): 403.
		r = e.browser("checker", false).get("/admin/checks/" + c.ID + "/video")
		require.Equal(t, http.StatusForbidden, r.status)

		// Staff with a passkey login see the queue.
		r = e.browser("checker", true).get("/admin")
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, c.ID)
		require.Contains(t, r.body, "Passport")
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))

		// A passkey login older than the limit (12 hours by default) is
		// asked again, forced; just inside it is enough.
		r = e.browser("checker", true).do(http.MethodGet, "/admin", nil, "X-Test-Login-Age", "12h1m")
		require.Equal(t, http.StatusSeeOther, r.status)
		req = e.signIn.last()
		require.Equal(t, []trust.Credentials{{trust.Cm}}, req.Want)
		require.True(t, req.Force)
		r = e.browser("checker", true).do(http.MethodGet, "/admin", nil, "X-Test-Login-Age", "11h59m")
		require.Equal(t, http.StatusOK, r.status)

		// Removing the role takes access away.
		require.NoError(t, e.svc.SetStaff(context.Background(), audit.Actor{}, "checker", ""))
		r = e.browser("checker", true).get("/admin")
		require.Equal(t, http.StatusForbidden, r.status)
	})
}

func TestAdminQueueAndClaim(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		first, second, third := e.person("p1"), e.person("p2"), e.person("p3")
		e.staff("alice", identity.RoleIDChecker)
		e.staff("bob", identity.RoleIDChecker)
		alice, bob := e.browser("alice", true), e.browser("bob", true)

		r := alice.get("/admin")
		require.Equal(t, http.StatusOK, r.status)
		i1, i2, i3 := strings.Index(r.body, first.ID), strings.Index(r.body, second.ID), strings.Index(r.body, third.ID)
		require.True(t, i1 > 0 && i1 < i2 && i2 < i3, "oldest first")
		require.Equal(t, 3, strings.Count(r.body, ">Review<"))

		// Alice takes the second check; the queue says so, to both.
		page := alice.claim(second.ID)
		require.Contains(t, page.body, `src="/admin/checks/`+second.ID+`/photo"`)
		require.Contains(t, page.body, `controls preload="metadata" src="/admin/checks/`+second.ID+`/video"`)
		require.Contains(t, page.body, "Is the ID valid?")
		require.Contains(t, page.body, "Does the face in the video match the photo?")
		r = alice.get("/admin")
		require.Contains(t, r.body, "In review by you")
		require.Contains(t, r.body, "Continue reviewing")
		r = bob.get("/admin")
		require.Contains(t, r.body, "In review by alice@nhs.example")
		require.Equal(t, 2, strings.Count(r.body, ">Review<"), "no button for a check someone else holds")

		// Bob cannot claim it, see it, its evidence, search for it or decide it.
		r = bob.post("/admin/checks/"+second.ID+"/claim", nil)
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, "/admin", r.location())
		r = bob.get("/admin")
		require.Contains(t, r.body, "Someone else is reviewing this check")
		r = bob.get("/admin/checks/" + second.ID)
		require.Equal(t, http.StatusForbidden, r.status)
		for _, kind := range []string{"photo", "video"} {
			r = bob.get("/admin/checks/" + second.ID + "/" + kind)
			require.Equal(t, http.StatusForbidden, r.status)
			require.NotEqual(t, "image/jpeg", r.header.Get("Content-Type"))
		}
		r = bob.post("/admin/checks/"+second.ID+"/search", url.Values{"search_nhs_number": {"9000000009"}})
		require.Equal(t, http.StatusForbidden, r.status)
		r = bob.post("/admin/checks/"+second.ID+"/decide", url.Values{"decision": {"reject"}, "id_valid": {"no"},
			"face_match": {"no"}, "reason": {"no"}})
		require.Equal(t, http.StatusForbidden, r.status)
		got, err := e.svc.GetCheck(context.Background(), second.ID)
		require.NoError(t, err)
		require.Equal(t, identity.CheckInReview, got.Status)
		require.Equal(t, "alice", *got.ClaimedBy)

		// A check not yet claimed sends the reviewer back to the queue.
		r = bob.get("/admin/checks/" + first.ID)
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, "/admin", r.location())
		// An unknown check is not found.
		r = bob.get("/admin/checks/nope")
		require.Equal(t, http.StatusNotFound, r.status)
		r = bob.post("/admin/checks/nope/claim", nil)
		require.Equal(t, http.StatusNotFound, r.status)

		// Exactly one of two concurrent claims wins.
		var wg sync.WaitGroup
		results := make([]admResponse, 2)
		for i, b := range []*admBrowser{alice, bob} {
			b.get("/admin") // a fresh CSRF token
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = b.post("/admin/checks/"+third.ID+"/claim", nil)
			}()
		}
		wg.Wait()
		var won, lost int
		for _, r := range results {
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			switch r.location() {
			case "/admin/checks/" + third.ID:
				won++
			case "/admin":
				lost++
			}
		}
		require.Equal(t, 1, won)
		require.Equal(t, 1, lost)
	})
}

func TestAdminEvidence(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		c := e.person("p1")
		e.staff("alice", identity.RoleIDChecker)
		alice := e.browser("alice", true)
		alice.claim(c.ID)

		photo := alice.get("/admin/checks/" + c.ID + "/photo")
		require.Equal(t, http.StatusOK, photo.status)
		require.Equal(t, "image/jpeg", photo.header.Get("Content-Type"))
		require.Equal(t, "no-store", photo.header.Get("Cache-Control"))
		require.Equal(t, "inline", photo.header.Get("Content-Disposition"))
		require.Equal(t, "nosniff", photo.header.Get("X-Content-Type-Options"))
		require.Equal(t, admJPEG(t), photo.bodyRaw)

		video := alice.get("/admin/checks/" + c.ID + "/video")
		require.Equal(t, http.StatusOK, video.status)
		require.Equal(t, "video/mp4", video.header.Get("Content-Type"))
		require.Equal(t, "no-store", video.header.Get("Cache-Control"))
		full := admMP4(5)
		require.Equal(t, full, video.bodyRaw)

		// Byte ranges, as Safari asks for video.
		part := alice.get("/admin/checks/"+c.ID+"/video", "Range", "bytes=0-1")
		require.Equal(t, http.StatusPartialContent, part.status)
		require.Equal(t, fmt.Sprintf("bytes 0-1/%d", len(full)), part.header.Get("Content-Range"))
		require.Equal(t, full[:2], part.bodyRaw)
		part = alice.get("/admin/checks/"+c.ID+"/video", "Range", "bytes=-10")
		require.Equal(t, http.StatusPartialContent, part.status)
		require.Equal(t, full[len(full)-10:], part.bodyRaw)
		part = alice.get("/admin/checks/"+c.ID+"/video", "Range", fmt.Sprintf("bytes=%d-", len(full)))
		require.Equal(t, http.StatusRequestedRangeNotSatisfiable, part.status)
		require.Equal(t, 5, e.auditCount("idcheck.evidence_viewed", "p1"), "each view is audited")
	})
}

func TestAdminApprove(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		c := e.person("p1")
		e.staff("alice", identity.RoleIDChecker)
		alice := e.browser("alice", true)
		alice.claim(c.ID)
		path := "/admin/checks/" + c.ID

		// Search by details: the record is shown.
		r := alice.post(path+"/search", url.Values{"family_name": {"Smith"}, "given_name": {"Jane"},
			"dob_day": {"22"}, "dob_month": {"10"}, "dob_year": {"2010"}, "postcode": {"LS1 6AE"}})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Contains(t, r.body, "Jane Smith")
		require.Contains(t, r.body, "900 000 0009")
		require.Contains(t, r.body, "Y12345")
		require.Contains(t, r.body, "Choose this record")

		// Bad searches say what is wrong.
		r = alice.post(path+"/search", url.Values{"family_name": {"Nobody"}, "given_name": {"Jane"},
			"dob_day": {"22"}, "dob_month": {"10"}, "dob_year": {"2010"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "No PDS record matches these details")
		r = alice.post(path+"/search", url.Values{"family_name": {"Smith"}, "given_name": {"Jane"},
			"dob_day": {"31"}, "dob_month": {"02"}, "dob_year": {"2010"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Enter a valid date of birth")
		r = alice.post(path+"/search", url.Values{"search_nhs_number": {"9000000001"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Enter a valid NHS number")
		r = alice.post(path+"/search", url.Values{})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)

		// A restricted record is shown with its flag and cannot be chosen.
		r = alice.post(path+"/search", url.Values{"search_nhs_number": {"9000000025"}})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Contains(t, r.body, "Restricted")
		require.Contains(t, r.body, "This record cannot be connected")
		require.NotContains(t, r.body, "Choose this record")

		// Choosing the record fills in the decision's NHS number.
		r = alice.post(path+"/search", url.Values{"choose": {"9000000009"}})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Regexp(t, `id="nhs_number" name="nhs_number" type="text" value="9000000009"`, r.body)

		// Approval needs both answers yes, and an NHS number.
		r = alice.post(path+"/decide", url.Values{"decision": {"approve"}, "id_valid": {"yes"}, "face_match": {"no"},
			"nhs_number": {"9000000009"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "You can only approve a check when the ID is valid and the face matches")
		r = alice.post(path+"/decide", url.Values{"decision": {"approve"}, "face_match": {"yes"}, "nhs_number": {""}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Select yes if the ID is valid")
		require.Contains(t, r.body, "Enter the NHS number")
		// A restricted record is refused by the Service, with a message.
		r = alice.post(path+"/decide", url.Values{"decision": {"approve"}, "id_valid": {"yes"}, "face_match": {"yes"},
			"nhs_number": {"9000000025"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "This PDS record is restricted")
		require.Equal(t, trust.P0, e.accts.level("p1"))

		r = alice.post(path+"/decide", url.Values{"decision": {"approve"}, "id_valid": {"yes"}, "face_match": {"yes"},
			"nhs_number": {"900 000 0009"}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		require.Equal(t, "/admin", r.location())
		r = alice.get("/admin")
		require.Contains(t, r.body, "Check approved")
		require.NotContains(t, r.body, c.ID, "a decided check leaves the queue")

		require.Equal(t, trust.P9, e.accts.level("p1"))
		got, err := e.svc.GetCheck(context.Background(), c.ID)
		require.NoError(t, err)
		require.Equal(t, identity.CheckApproved, got.Status)
		require.Equal(t, "9000000009", *got.NHSNumber)
		rec, ok, err := e.svc.Record(context.Background(), "p1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, identity.RoutePhotoID, rec.Route)

		// Decided: its page and evidence are closed, and deciding again
		// goes back to the queue.
		r = alice.get(path)
		require.Equal(t, http.StatusForbidden, r.status)
		r = alice.get(path + "/photo")
		require.Equal(t, http.StatusForbidden, r.status)

		// The NHS number is now taken: a second person's check cannot use it.
		c2 := e.person("p2")
		alice.claim(c2.ID)
		r = alice.post("/admin/checks/"+c2.ID+"/decide", url.Values{"decision": {"approve"}, "id_valid": {"yes"},
			"face_match": {"yes"}, "nhs_number": {"9000000009"}})
		require.Equal(t, http.StatusConflict, r.status)
		require.Contains(t, r.body, "Another account is already connected to this NHS number")
		require.Equal(t, trust.P0, e.accts.level("p2"))
	})
}

func TestAdminReject(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		c := e.person("p1")
		e.staff("alice", identity.RoleIDChecker)
		alice := e.browser("alice", true)
		alice.claim(c.ID)
		path := "/admin/checks/" + c.ID

		r := alice.post(path+"/decide", url.Values{"decision": {"reject"}, "id_valid": {"no"}, "face_match": {"yes"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Enter the reason for rejecting the check")
		r = alice.post(path+"/decide", url.Values{"decision": {"reject"}, "id_valid": {"no"}, "face_match": {"yes"},
			"reason": {strings.Repeat("x", identity.MaxRejectionReason+1)}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "The reason must be 500 characters or fewer")
		require.Empty(t, e.accts.alerts["p1"])

		reason := "The photo of your passport is too blurred to read."
		r = alice.post(path+"/decide", url.Values{"decision": {"reject"}, "id_valid": {"no"}, "face_match": {"yes"},
			"reason": {reason}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		require.Equal(t, "/admin", r.location())
		r = alice.get("/admin")
		require.Contains(t, r.body, "Check rejected")

		got, err := e.svc.GetCheck(context.Background(), c.ID)
		require.NoError(t, err)
		require.Equal(t, identity.CheckRejected, got.Status)
		require.Equal(t, reason, got.Reason)
		require.Equal(t, trust.P0, e.accts.level("p1"))
		e.accts.mu.Lock()
		alerts := e.accts.alerts["p1"]
		e.accts.mu.Unlock()
		require.Len(t, alerts, 1)
		require.Contains(t, alerts[0], reason)

		// A decided check cannot be decided again.
		r = alice.post(path+"/decide", url.Values{"decision": {"reject"}, "id_valid": {"no"}, "face_match": {"no"}, "reason": {"again"}})
		require.Equal(t, http.StatusForbidden, r.status)
	})
}

// TestAdminReleaseAndReassign: an admin takes a check back from its
// reviewer, into the queue or to another ID checker; nobody else can.
func TestAdminReleaseAndReassign(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := admSetup(t, db)
		c := e.person("p1")
		e.staff("alice", identity.RoleIDChecker)
		e.staff("carol", identity.RoleIDChecker)
		e.staff("boss", identity.RoleAdmin)
		e.staff("helper", identity.RoleSupport)
		alice, carol, boss := e.browser("alice", true), e.browser("carol", true), e.browser("boss", true)
		alice.claim(c.ID)

		r := boss.get("/admin")
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, "In review by alice@nhs.example")
		require.Contains(t, r.body, `action="/admin/checks/`+c.ID+`/release"`)
		require.Contains(t, r.body, `<option value="carol">carol@nhs.example</option>`)
		require.NotContains(t, r.body, `<option value="boss">`, "only ID checkers")
		require.NotContains(t, alice.get("/admin").body, "/release\"", "only admins")

		// Only an admin may move a check.
		r = alice.post("/admin/checks/"+c.ID+"/release", nil)
		require.Equal(t, http.StatusForbidden, r.status)

		// Reassign: nobody chosen, or someone who is not an ID checker.
		r = boss.post("/admin/checks/"+c.ID+"/reassign", url.Values{})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Choose the ID checker to give the check to")
		require.Contains(t, r.body, `href="#to-`+c.ID+`"`)
		r = boss.post("/admin/checks/"+c.ID+"/reassign", url.Values{"to": {"helper"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, r.body, "Choose a member of staff with the ID checker role")

		r = boss.post("/admin/checks/"+c.ID+"/reassign", url.Values{"to": {"carol"}})
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, http.StatusOK, carol.get("/admin/checks/"+c.ID).status)
		require.Equal(t, http.StatusForbidden, alice.get("/admin/checks/"+c.ID).status)
		require.Equal(t, 1, e.auditCount("idcheck.reassigned", "p1"))

		r = boss.post("/admin/checks/"+c.ID+"/release", nil)
		require.Equal(t, http.StatusSeeOther, r.status)
		got, err := e.svc.GetCheck(context.Background(), c.ID)
		require.NoError(t, err)
		require.Equal(t, identity.CheckSubmitted, got.Status)
		require.Nil(t, got.ClaimedBy)
		require.Contains(t, boss.get("/admin").body, "The check is back in the queue")
		require.Equal(t, 1, e.auditCount("idcheck.released", "p1"))

		// A check no longer in review is not moved.
		r = boss.post("/admin/checks/"+c.ID+"/release", nil)
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Contains(t, boss.get("/admin").body, "Nothing was changed")
	})
}
