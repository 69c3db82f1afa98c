package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
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

// pageAccounts is identity.Accounts over a map.
type pageAccounts struct {
	mu    sync.Mutex
	accts map[string]account.Account
}

func (f *pageAccounts) add(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	phone := "+447700900123"
	f.accts[id] = account.Account{ID: id, Email: id + "@example.com", Phone: &phone, ProofingLevel: "P0", Status: account.StatusActive}
}

func (f *pageAccounts) Account(_ context.Context, id string) (account.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return a, nil
}

func (f *pageAccounts) RaiseLevel(_ context.Context, _ audit.Actor, id string, level trust.Level) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accts[id]
	if level > a.Level() {
		a.ProofingLevel = level.String()
	}
	f.accts[id] = a
	return nil
}

func (f *pageAccounts) Block(_ context.Context, _ audit.Actor, id, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accts[id]
	a.Status = account.StatusBlocked
	f.accts[id] = a
	return nil
}

func (f *pageAccounts) SendSecurityAlert(context.Context, audit.Actor, string, notify.Kind, string) error {
	return nil
}

func (f *pageAccounts) level(id string) trust.Level {
	a, _ := f.Account(context.Background(), id)
	return a.Level()
}

// pageSignIn takes the signed-in account and its credentials from test
// headers, and records the logins the pages start.
type pageSignIn struct {
	mu      sync.Mutex
	started []login.Request
}

const (
	pageHdrAccount = "X-Test-Account"
	pageHdrCreds   = "X-Test-Creds"
)

func (f *pageSignIn) Current(c fiber.Ctx) (login.Auth, bool) {
	id := c.Get(pageHdrAccount)
	if id == "" {
		return login.Auth{}, false
	}
	var creds trust.Credentials
	for _, s := range strings.Split(c.Get(pageHdrCreds, "Cp,Cd"), ",") {
		creds = creds.With(trust.Credential(s))
	}
	return login.Auth{AccountID: id, Credentials: creds}, true
}

func (f *pageSignIn) Start(c fiber.Ctx, req login.Request) error {
	f.mu.Lock()
	f.started = append(f.started, req)
	f.mu.Unlock()
	return c.Redirect().Status(http.StatusSeeOther).To("/login")
}

func (f *pageSignIn) last() login.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started[len(f.started)-1]
}

// pagePDS is the sandbox PDS with switches: down makes it unavailable;
// ignorePostcode searches on names and date of birth only, so that the
// dataset's namesakes match together.
type pagePDS struct {
	*pds.Sandbox
	down, ignorePostcode atomic.Bool
}

func (s *pagePDS) Search(ctx context.Context, q pds.Query) (pds.Patient, error) {
	if s.down.Load() {
		return pds.Patient{}, fmt.Errorf("search: %w", pds.ErrUnavailable)
	}
	if s.ignorePostcode.Load() {
		q.Postcode = ""
	}
	return s.Sandbox.Search(ctx, q)
}

// ---- the environment ----

type pageEnv struct {
	app      *fiber.App
	accounts *pageAccounts
	signIn   *pageSignIn
	pds      *pagePDS
	gp       *gp.Sandbox
	svc      *identity.Service
}

func newPageEnv(t *testing.T, db *sqlx.DB) *pageEnv {
	t.Helper()
	e := &pageEnv{accounts: &pageAccounts{accts: map[string]account.Account{}}, signIn: &pageSignIn{}, pds: &pagePDS{Sandbox: pds.NewSandbox()}}
	e.gp = gp.NewSandbox(db, nil)
	var seed []gp.SeedPatient
	for _, p := range e.pds.Patients() {
		seed = append(seed, gp.SeedPatient{NHSNumber: p.NHSNumber, ODSCode: p.GPODSCode})
	}
	_, err := e.gp.Seed(context.Background(), seed)
	require.NoError(t, err)
	key := make([]byte, media.KeySize)
	_, _ = rand.Read(key)
	store, err := media.New(media.Config{Dir: t.TempDir(), Key: key})
	require.NoError(t, err)
	e.svc, err = identity.New(identity.Config{}, identity.Deps{DB: db, Accounts: e.accounts, PDS: e.pds, GP: e.gp, Media: store,
		Limiter: ratelimit.New(db, nil), Audit: audit.New(db, nil)})
	require.NoError(t, err)

	r, err := web.NewRenderer(false)
	require.NoError(t, err)
	keys, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	sessions := web.NewSessions(db, keys, 30*time.Minute, 12*time.Hour, false, nil)
	e.app = fiber.New(fiber.Config{BodyLimit: 64 << 20})
	identity.NewPages(e.svc, identity.PageDeps{Login: e.signIn, Renderer: r, Audit: audit.New(db, nil)}).
		Register(web.Pages{R: e.app, Renderer: r, Sessions: sessions})
	return e
}

// pageBrowser is one person's pageBrowser: a session cookie and who is signed in.
type pageBrowser struct {
	t       *testing.T
	e       *pageEnv
	account string
	creds   string
	cookie  string
}

func (e *pageEnv) pageBrowser(t *testing.T, accountID string) *pageBrowser {
	if accountID != "" {
		e.accounts.add(accountID)
	}
	return &pageBrowser{t: t, e: e, account: accountID, creds: "Cp,Cd"}
}

type pageResponse struct {
	status   int
	body     string
	location string
	// permissions is the Permissions-Policy header.
	permissions string
}

func (b *pageBrowser) do(method, path string, body io.Reader, contentType string) pageResponse {
	b.t.Helper()
	req := httptest.NewRequest(method, path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", web.SessionCookie+"="+b.cookie)
	}
	if b.account != "" {
		req.Header.Set(pageHdrAccount, b.account)
		req.Header.Set(pageHdrCreds, b.creds)
	}
	resp, err := b.e.app.Test(req, fiber.TestConfig{Timeout: 60 * time.Second, FailOnTimeout: true})
	require.NoError(b.t, err)
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == web.SessionCookie {
			b.cookie = c.Value
		}
	}
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return pageResponse{status: resp.StatusCode, body: string(data), location: resp.Header.Get("Location"),
		permissions: resp.Header.Get("Permissions-Policy")}
}

func (b *pageBrowser) get(path string) pageResponse { return b.do(http.MethodGet, path, nil, "") }

var pageCSRFRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf opens page and returns its form's token.
func (b *pageBrowser) csrf(page string) string {
	b.t.Helper()
	r := b.get(page)
	require.Equal(b.t, http.StatusOK, r.status, r.body)
	m := pageCSRFRe.FindStringSubmatch(r.body)
	require.NotNil(b.t, m, "no CSRF token on %s", page)
	return m[1]
}

// post submits a form on page (whose token it reads first).
func (b *pageBrowser) post(page string, form url.Values) pageResponse {
	b.t.Helper()
	form.Set(web.CSRFField, b.csrf(page))
	return b.do(http.MethodPost, strings.SplitN(page, "?", 2)[0], strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
}

// upload submits the photo form as multipart/form-data.
func (b *pageBrowser) upload(token string, fields map[string]string, files map[string][]byte) pageResponse {
	b.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if token != "" {
		require.NoError(b.t, w.WriteField(web.CSRFField, token))
	}
	for k, v := range fields {
		require.NoError(b.t, w.WriteField(k, v))
	}
	for name, data := range files {
		fw, err := w.CreateFormFile(name, name+".bin")
		require.NoError(b.t, err)
		_, err = fw.Write(data)
		require.NoError(b.t, err)
	}
	require.NoError(b.t, w.Close())
	return b.do(http.MethodPost, identity.ProvePhotoPath, &buf, w.FormDataContentType())
}

func pageJPEG(t *testing.T, w, h int) []byte { return mediatest.JPEG(t, w, h) }

// pageMP4 is a minimal MP4 of the given length.
func pageMP4(seconds float64) []byte { return mediatest.MP4(seconds) }

// ---- tests ----

const pageContinue = "/authorize/continue?id=req123"

var pageProveDetails = identity.ProveDetailsPath + "?return_to=" + url.QueryEscape(pageContinue)

func pageJane() url.Values {
	return url.Values{"dob-day": {"22"}, "dob-month": {"10"}, "dob-year": {"2010"}, "given_name": {"Jane"},
		"family_name": {"Smith"}, "postcode": {"LS1 6AE"}, "return_to": {pageContinue}}
}

func TestPagesNeedAStrongLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newPageEnv(t, db)

		anon := e.pageBrowser(t, "")
		r := anon.get(pageProveDetails)
		require.Equal(t, http.StatusSeeOther, r.status)
		req := e.signIn.last()
		require.Equal(t, pageProveDetails, req.ReturnTo)
		require.False(t, req.Force)

		weak := e.pageBrowser(t, "acct-weak")
		weak.creds = "Cp"
		r = weak.get(identity.ProvePath + "?return_to=/account")
		require.Equal(t, http.StatusSeeOther, r.status)
		req = e.signIn.last()
		require.Equal(t, identity.ProvePath+"?return_to=%2Faccount", req.ReturnTo)
		require.True(t, req.Force)

		// An unsafe return_to is dropped.
		r = anon.get(identity.ProvePath + "?return_to=//evil.example/")
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, identity.ProvePath, e.signIn.last().ReturnTo)

		passkey := e.pageBrowser(t, "acct-passkey")
		passkey.creds = "Cm"
		r = passkey.get(identity.ProvePath)
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, "Match your details with NHS records")
		require.Contains(t, r.body, "Use your GP online services details")
		require.Contains(t, r.body, "Use photo ID and a short video")
	})
}

func TestProveDetails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newPageEnv(t, db)

		t.Run("match", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-jane")
			start := b.get(identity.ProvePath + "?return_to=" + url.QueryEscape(pageContinue))
			require.Contains(t, start.body, `href="/prove/details?return_to=%2Fauthorize%2Fcontinue%3Fid%3Dreq123"`)
			page := b.get(pageProveDetails)
			require.Contains(t, page.body, `name="return_to" value="/authorize/continue?id=req123"`)
			require.Contains(t, page.body, "You can find it on a letter from the NHS")

			r := b.post(pageProveDetails, pageJane())
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			require.Equal(t, pageContinue, r.location)
			require.Equal(t, trust.P5, e.accounts.level("acct-jane"))
			rec, ok, err := e.svc.Record(context.Background(), "acct-jane")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "9000000009", rec.NHSNumber)

			r = b.get(identity.ProvePath)
			// Back to the service: no notice is left to show up here later.
			require.NotContains(t, r.body, "you have proved who you are to the medium level")
			require.NotContains(t, r.body, "Match your details with NHS records")
			require.Contains(t, r.body, "Use your GP online services details")
			// The P5 form is not offered again.
			require.Equal(t, http.StatusSeeOther, b.get(identity.ProveDetailsPath).status)
		})

		t.Run("default return", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-nhs-number")
			form := url.Values{"dob-day": {"1"}, "dob-month": {"1"}, "dob-year": {"1940"}, "given_name": {"Olivia"},
				"family_name": {"Taylor"}, "postcode": {"ls16ae"}, "nhs_number": {"999 000 0018"}}
			r := b.post(identity.ProveDetailsPath, form)
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			require.Equal(t, "/account", r.location)
			// The account page says so (the notice it reads is left for it).
			require.NotContains(t, b.get(identity.ProvePath).body, "you have proved who you are to the medium level")
		})

		refusals := []struct {
			name   string
			form   url.Values
			before func()
			after  func()
			status int
			want   string
		}{
			{name: "empty", form: url.Values{}, status: http.StatusUnprocessableEntity,
				want: "Enter your date of birth"},
			// The NHS number is checked with the other fields, not after them.
			{name: "all at once", form: url.Values{"nhs_number": {"123"}}, status: http.StatusUnprocessableEntity,
				want: "Enter a real NHS number"},
			{name: "bad date", form: url.Values{"dob-day": {"31"}, "dob-month": {"2"}, "dob-year": {"1990"}, "given_name": {"A"},
				"family_name": {"B"}, "postcode": {"LS1 6AE"}}, status: http.StatusUnprocessableEntity, want: "Date of birth must be a real date"},
			{name: "bad NHS number", form: url.Values{"dob-day": {"22"}, "dob-month": {"10"}, "dob-year": {"2010"}, "given_name": {"Jane"},
				"family_name": {"Smith"}, "postcode": {"LS1 6AE"}, "nhs_number": {"9000000000"}}, status: http.StatusUnprocessableEntity,
				want: "Enter a real NHS number"},
			{name: "no match", form: url.Values{"dob-day": {"23"}, "dob-month": {"10"}, "dob-year": {"2010"}, "given_name": {"Jane"},
				"family_name": {"Smith"}, "postcode": {"LS1 6AE"}}, status: http.StatusUnprocessableEntity,
				want: "We could not find your details in NHS records. Check them and try again."},
			{name: "too many matches", form: url.Values{"dob-day": {"1"}, "dob-month": {"1"}, "dob-year": {"1980"}, "given_name": {"John"},
				"family_name": {"Smith"}, "postcode": {"LS1 6AE"}},
				before: func() { e.pds.ignorePostcode.Store(true) }, after: func() { e.pds.ignorePostcode.Store(false) },
				status: http.StatusUnprocessableEntity, want: "Check your postcode"},
			{name: "deceased", form: url.Values{"dob-day": {"11"}, "dob-month": {"4"}, "dob-year": {"1932"}, "given_name": {"Edith"},
				"family_name": {"Crawley"}, "postcode": {"LS1 6AE"}}, status: http.StatusUnprocessableEntity,
				want: "We cannot use these details to prove who you are online"},
			{name: "restricted", form: url.Values{"dob-day": {"22"}, "dob-month": {"10"}, "dob-year": {"2010"}, "given_name": {"Janet"},
				"family_name": {"Smythe"}, "postcode": {"LS1 6AE"}}, status: http.StatusUnprocessableEntity,
				want: "cannot be used to prove who you are online. Contact your GP surgery."},
			{name: "in use", form: pageJane(), status: http.StatusConflict, want: "already connected to another account"},
			{name: "unavailable", form: pageJane(), before: func() { e.pds.down.Store(true) }, after: func() { e.pds.down.Store(false) },
				status: http.StatusServiceUnavailable, want: "NHS records are not available right now. Try again later."},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				id := "acct-" + strings.ReplaceAll(tc.name, " ", "-")
				b := e.pageBrowser(t, id)
				if tc.before != nil {
					tc.before()
					defer tc.after()
				}
				r := b.post(identity.ProveDetailsPath, tc.form)
				require.Equal(t, tc.status, r.status, r.body)
				require.Contains(t, r.body, tc.want)
				require.Contains(t, r.body, "There is a problem")
				require.Equal(t, trust.P0, e.accounts.level(id))
			})
		}

		t.Run("attempts", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-tries")
			wrong := url.Values{"dob-day": {"2"}, "dob-month": {"2"}, "dob-year": {"2002"}, "given_name": {"Nobody"},
				"family_name": {"Known"}, "postcode": {"LS1 6AE"}}
			for range identity.MatchAttemptsPerDay {
				require.Equal(t, http.StatusUnprocessableEntity, b.post(identity.ProveDetailsPath, wrong).status)
			}
			r := b.post(identity.ProveDetailsPath, pageJane())
			require.Equal(t, http.StatusTooManyRequests, r.status)
			require.Contains(t, r.body, "You have tried 3 times today. Try again tomorrow.")
			require.Equal(t, trust.P0, e.accounts.level("acct-tries"))
		})
	})
}

func TestProveGP(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newPageEnv(t, db)
		ctx := context.Background()
		// A person with a practice, not used by other tests.
		var patient pds.Patient
		for _, p := range e.pds.Patients() {
			if p.GPODSCode != "" && !p.Deceased && !p.Restricted && p.NHSNumber.String() != "9000000009" {
				patient = p
				break
			}
		}
		require.False(t, patient.NHSNumber.IsZero())
		link, err := e.gp.LinkageFor(ctx, patient.NHSNumber, patient.GPODSCode)
		require.NoError(t, err)
		form := func(key string) url.Values {
			return url.Values{"linkage_key": {key}, "ods_code": {strings.ToLower(link.ODSCode)}, "account_id": {link.AccountID},
				"return_to": {pageContinue}}
		}

		t.Run("wrong key", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-gp-wrong")
			wrong := []byte(link.LinkageKey)
			wrong[0] = gp.LinkageKeyAlphabet[(strings.IndexByte(gp.LinkageKeyAlphabet, wrong[0])+1)%len(gp.LinkageKeyAlphabet)]
			r := b.post(identity.ProveGPPath, form(string(wrong)))
			require.Equal(t, http.StatusUnprocessableEntity, r.status, r.body)
			require.Contains(t, r.body, "We could not confirm these details with your GP surgery. Check them and try again.")
			require.NotContains(t, r.body, string(wrong), "the linkage key is not shown again")
			require.Equal(t, trust.P0, e.accounts.level("acct-gp-wrong"))
		})

		t.Run("malformed", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-gp-malformed")
			r := b.post(identity.ProveGPPath, url.Values{"linkage_key": {"short"}, "ods_code": {"!"}, "account_id": {"12"}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			require.Contains(t, r.body, "Enter the linkage key exactly as it is")
			require.Contains(t, r.body, "Enter a real practice ID")
			require.Contains(t, r.body, "Enter a real account ID")
		})

		t.Run("verified", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-gp")
			spaced := link.LinkageKey[:4] + " " + strings.ToLower(link.LinkageKey[4:])
			r := b.post(identity.ProveGPPath+"?return_to="+url.QueryEscape(pageContinue), form(spaced))
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			require.Equal(t, pageContinue, r.location)
			require.Equal(t, trust.P9, e.accounts.level("acct-gp"))
			r = b.get(identity.ProvePath)
			require.NotContains(t, r.body, "You have proved who you are. Services")
			require.Contains(t, r.body, "the highest level")
			require.NotContains(t, r.body, "Use photo ID")
		})
	})
}

func TestProvePhoto(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newPageEnv(t, db)
		photo, video := pageJPEG(t, 240, 240), pageMP4(5)
		page := identity.ProvePhotoPath + "?return_to=" + url.QueryEscape(pageContinue)

		t.Run("refused without a CSRF token", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-photo-csrf")
			b.csrf(page) // a session exists
			r := b.upload("", map[string]string{"document_type": identity.DocPassport}, map[string][]byte{"photo": photo, "video": video})
			require.Equal(t, http.StatusForbidden, r.status)
			_, open, err := e.svc.OpenCheck(context.Background(), "acct-photo-csrf")
			require.NoError(t, err)
			require.False(t, open)
		})

		bad := []struct {
			name         string
			fields       map[string]string
			files        map[string][]byte
			field, wants string
		}{
			{"nothing", map[string]string{}, map[string][]byte{}, "document_type", "Select the type of photo ID you have"},
			{"no video", map[string]string{"document_type": identity.DocPassport}, map[string][]byte{"photo": photo}, "video", "Choose a video of your face"},
			{"wrong type", map[string]string{"document_type": identity.DocPassport}, map[string][]byte{"photo": video, "video": video},
				"photo", "The photo must be a JPEG, PNG or HEIC image"},
			{"photo too small", map[string]string{"document_type": identity.DocPassport}, map[string][]byte{"photo": pageJPEG(t, 100, 100), "video": video},
				"photo", "at least 200 pixels"},
			{"video too long", map[string]string{"document_type": identity.DocUKDrivingLicence}, map[string][]byte{"photo": photo, "video": pageMP4(45)},
				"video", "The video must be 30 seconds long or shorter"},
			{"video too short", map[string]string{"document_type": identity.DocUKDrivingLicence}, map[string][]byte{"photo": photo, "video": pageMP4(1)},
				"video", "The video must be at least 2 seconds long"},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				b := e.pageBrowser(t, "acct-photo-"+strings.ReplaceAll(tc.name, " ", "-"))
				token := b.csrf(page)
				tc.fields["return_to"] = pageContinue
				r := b.upload(token, tc.fields, tc.files)
				require.Equal(t, http.StatusUnprocessableEntity, r.status, r.body)
				require.Contains(t, r.body, `id="`+tc.field+`-error"`)
				require.Contains(t, r.body, tc.wants)
				require.Contains(t, r.body, `name="return_to" value="/authorize/continue?id=req123"`)
				require.Contains(t, r.permissions, "camera=(self)", "the camera still works after a form error")
			})
		}

		t.Run("sent", func(t *testing.T) {
			b := e.pageBrowser(t, "acct-photo")
			form := b.get(page)
			require.Contains(t, form.body, `enctype="multipart/form-data"`)
			require.Contains(t, form.body, `accept="image/jpeg,image/png,image/heic"`)
			require.Contains(t, form.body, `capture="user"`)
			token := pageCSRFRe.FindStringSubmatch(form.body)[1]
			r := b.upload(token, map[string]string{"document_type": identity.DocPassport, "return_to": pageContinue},
				map[string][]byte{"photo": photo, "video": video})
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			require.Equal(t, page, r.location)

			c, open, err := e.svc.OpenCheck(context.Background(), "acct-photo")
			require.NoError(t, err)
			require.True(t, open)
			require.Equal(t, identity.DocPassport, c.DocumentType)
			require.Equal(t, media.TypeJPEG, c.PhotoType)
			require.Equal(t, media.TypeMP4, c.VideoType)

			r = b.get(r.location)
			require.Equal(t, http.StatusOK, r.status)
			require.Contains(t, r.body, "We are checking your ID")
			require.Contains(t, r.body, fmt.Sprintf("within %d working days", identity.PhotoReviewWorkingDays))
			require.Contains(t, r.body, `action="/authorize/cancel"`)
			require.Contains(t, r.body, `name="id" value="req123"`)
			require.Contains(t, r.body, `name="reason" value="photo_review"`)
			require.Contains(t, r.body, "Go back to the service")

			// The choice of routes says so instead of offering photo ID again.
			r = b.get(identity.ProvePath)
			require.Contains(t, r.body, "We are checking your ID")
			require.NotContains(t, r.body, "Use photo ID and a short video")

			// Sending again (a second tab) is refused.
			r = b.upload(token, map[string]string{"document_type": identity.DocPassport}, map[string][]byte{"photo": photo, "video": video})
			require.Equal(t, http.StatusConflict, r.status)
			require.Contains(t, r.body, "We are already checking your ID")
			require.NotContains(t, r.body, "Go back to the service", "no pending authorization without return_to")

			// A rejection is explained, and photo ID is offered again.
			ctx, actor := context.Background(), audit.Actor{RequestID: "test"}
			e.accounts.add("acct-checker")
			require.NoError(t, e.svc.SetStaff(ctx, actor, "acct-checker", identity.RoleIDChecker))
			staff := identity.Staff{AccountID: "acct-checker", Roles: []string{identity.RoleIDChecker}}
			_, err = e.svc.Claim(ctx, actor, staff, c.ID)
			require.NoError(t, err)
			_, err = e.svc.Decide(ctx, actor, staff, c.ID, identity.Decision{IDValid: false, Reason: "The photo of your passport was blurred."})
			require.NoError(t, err)
			r = b.get(identity.ProvePath)
			require.Contains(t, r.body, "The photo of your passport was blurred.")
			require.Contains(t, r.body, "Use photo ID and a short video")
			require.Equal(t, http.StatusOK, b.get(identity.ProvePhotoPath).status)
		})
	})
}
