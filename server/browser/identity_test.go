package browser_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/media/mediatest"
	"github.com/idlink/idlink/server/servertest"
	"github.com/idlink/idlink/server/trust"
)

// TestIdentityJourneysInChromium proves identities through the pages in a
// real browser, checking accessibility on every page reached:
//
//  1. P5: a person matches their details with NHS records (a wrong detail
//     first), and a relying party asking for P5.Cp.Cd gets the profile.
//  2. A second person sends photo ID and a video for review.
//  3. An ID checker (staff, passkey login) reviews the check in the back
//     office: sees the photo and the video, finds the person in PDS,
//     approves; the second person is now P9, and a relying party asking
//     for P9.Cp.Cd gets their NHS number.
func TestIdentityJourneysInChromium(t *testing.T) {
	ctx := chrome(t)
	virtualAuthenticator(t, ctx)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	// WebAuthn needs a domain: the browser opens the server as localhost.
	base := "http://localhost:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	p := &page{t: t, ctx: ctx, s: s, base: base}
	const pw = "correct horse battery"
	const (
		janeEmail, janePhone       = "jane.smith@example.org", "07700 900461"
		oliviaEmail, oliviaPhone   = "olivia.taylor@example.org", "07700 900462"
		checkerEmail, checkerPhone = "id.checker@example.org", "07700 900463"
	)

	// ---- 1. P5: match your details with NHS records ----
	p.signUp(janeEmail, pw, janePhone)
	p.open("/prove")
	p.expect("Prove who you are")
	p.waitFor("Your account is at level P0")
	p.click(`a[href^="/prove/details"]`) // "Match your details with NHS records"
	p.expect("Enter your details")

	jane := map[string]string{"dob-day": "22", "dob-month": "10", "dob-year": "2010",
		"given_name": "Jane", "family_name": "Smith", "postcode": "LS1 6AE"}
	wrong := map[string]string{}
	for k, v := range jane {
		wrong[k] = v
	}
	wrong["dob-day"] = "23" // one detail wrong: no record matches
	p.fill("/prove/details", wrong)
	p.expect("Enter your details") // the error state, checked by axe too
	errs, err := chromedp.Run(ctx, chromedp.Text(".nhsuk-error-summary"))
	require.NoError(t, err)
	require.Contains(t, errs, "We could not find your details in NHS records")
	require.Equal(t, trust.P0, p.level(janeEmail))

	p.fill("/prove/details", jane)
	p.expect("Your account") // the return page (none given: the account)
	require.Equal(t, trust.P5, p.level(janeEmail))
	p.open("/prove")
	p.expect("Prove who you are")
	p.waitFor("Your account is at level P5")

	// A relying party asks for P5 with the profile scope: the session
	// already meets it; consent, then the profile claims at P5.
	rp := servertest.NewRP(t, s, false, "profile", "email")
	claims := p.authorize(rp, `["P5.Cp.Cd"]`)
	require.Equal(t, "P5.Cp.Cd", claims["vot"])
	require.Equal(t, "Smith", claims["family_name"])
	require.Equal(t, "2010-10-22", claims["birthdate"])
	require.Equal(t, "9000000009", claims["nhs_number"])
	require.Equal(t, "P5", claims["identity_proofing_level"])

	p.open("/account")
	p.expect("Your account")
	p.fill("/sign-out", nil)
	p.expect("You have signed out")

	// ---- 2. Photo ID and a video, for a second person ----
	dir := t.TempDir()
	photo, video := filepath.Join(dir, "passport.jpg"), filepath.Join(dir, "face.mp4")
	require.NoError(t, os.WriteFile(photo, idPhotoJPEG(t), 0o600))
	require.NoError(t, os.WriteFile(video, idFaceMP4(5), 0o600))

	p.signUp(oliviaEmail, pw, oliviaPhone)
	p.open("/prove")
	p.expect("Prove who you are")
	p.click(`a[href^="/prove/photo"]`) // "Use photo ID and a short video"
	p.expect("Send a photo of your ID and a short video")
	// A file of the wrong type is reported at once, beside its field.
	notPhoto := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notPhoto, []byte("not a photo"), 0o600))
	require.NoError(t, chromedp.Do(p.bounded(), chromedp.SetUploadFiles(`#photo`, []string{notPhoto})))
	p.waitFor("The photo must be a JPEG, PNG or HEIC image")
	p.axe()
	require.NoError(t, chromedp.Do(p.bounded(),
		chromedp.Click(`#document_type`), // the first choice: Passport
		chromedp.SetUploadFiles(`#photo`, []string{photo}),
		chromedp.SetUploadFiles(`#video`, []string{video}),
	))
	chosen, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("input[name=document_type]:checked").value + " " +
		document.getElementById("photo").files.length + " " + document.getElementById("video").files.length`))
	require.NoError(t, err)
	require.Equal(t, "passport 1 1", chosen)
	p.fill("/prove/photo", nil) // Send
	p.expect("We are checking your ID")
	p.open("/prove")
	p.expect("Prove who you are")
	p.waitFor("You sent your photo ID and a video on")
	require.Equal(t, trust.P0, p.level(oliviaEmail))
	p.open("/account")
	p.expect("Your account")
	p.fill("/sign-out", nil)
	p.expect("You have signed out")

	// ---- 3. The ID checker's review ----
	p.signUp(checkerEmail, pw, checkerPhone)
	p.open("/account/security")
	p.expect("Security settings")
	require.NoError(t, chromedp.Do(p.bounded(), chromedp.WaitVisible("#passkey-add-button"),
		chromedp.SendKeys("#passkey-name", "Chromium passkey"), chromedp.Click("#passkey-add-button")))
	p.waitFor("Your passkey has been added")
	p.axe()
	checker, err := s.Accounts.AccountByEmail(context.Background(), checkerEmail)
	require.NoError(t, err)
	require.NoError(t, s.Identity.SetStaff(context.Background(), audit.Actor{RequestID: "browser-test"}, checker.ID, identity.RoleIDChecker))

	// Signed in with a password and a code, the back office still asks
	// for the passkey; sign out first and come in by the passkey alone.
	p.open("/account")
	p.expect("Your account")
	p.fill("/sign-out", nil)
	p.expect("You have signed out")
	p.open("/admin")
	p.expect("Log in to the back office")
	p.click("#admin-login")
	p.passkeyLogin("Photo ID checks to review")
	p.expect("Photo ID checks to review")
	checkID, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#admin-queue tr[data-check-id]") || {dataset: {}}).dataset.checkId || ""`))
	require.NoError(t, err)
	require.NotEmpty(t, checkID, "the queue shows the check")
	row, err := chromedp.Run(ctx, chromedp.Text(fmt.Sprintf(`tr[data-check-id=%q]`, checkID)))
	require.NoError(t, err)
	require.Contains(t, row, "Passport")
	require.Contains(t, row, "Waiting")
	p.fill("/admin/checks/"+checkID+"/claim", nil) // Review
	p.expect("Review a photo ID check")

	// The evidence: the photo loaded, and the video is there (a minimal
	// MP4 without frames: its bytes are served, not played).
	p.waitJS(`(() => { const i = document.querySelector("figure img"); return !!i && i.complete && i.naturalWidth > 0; })()`, "the ID photo loads")
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector("figure img").naturalWidth`))
	require.NoError(t, err)
	require.Equal(t, 320, width)
	vsrc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("figure video") || {}).getAttribute ? document.querySelector("figure video").getAttribute("src") : ""`))
	require.NoError(t, err)
	require.Equal(t, "/admin/checks/"+checkID+"/video", vsrc)
	served, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q).then(r => r.status + " " + r.headers.get("content-type"))`, vsrc), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, "200 video/mp4", served)

	// Find the person in PDS and choose the record.
	search := "/admin/checks/" + checkID + "/search"
	p.fill(search, map[string]string{"family_name": "Taylor", "given_name": "Olivia",
		"dob_day": "7", "dob_month": "7", "dob_year": "1970", "postcode": "LS1 6AE"})
	p.expect("Review a photo ID check")
	found, err := chromedp.Run(ctx, chromedp.Text("#pds-nhs-number"))
	require.NoError(t, err)
	require.Equal(t, "999 000 0344", strings.TrimSpace(found))
	p.click(`form[action="` + search + `"] input[name=choose] ~ button[type=submit]`) // Choose this record
	p.expect("Review a photo ID check")
	p.waitFor("is filled in below")
	nhs, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("nhs_number").value`))
	require.NoError(t, err)
	require.Equal(t, "9990000344", nhs)

	// The decision: ID valid, face matches, approve.
	require.NoError(t, chromedp.Do(p.bounded(), chromedp.Click(`#id_valid`), chromedp.Click(`#face_match`)))
	p.click(`button[name=decision][value=approve]`)
	p.expect("Photo ID checks to review")
	p.waitFor("Check approved. The NHS number is connected to the account and its identity is now proven (P9).")
	p.waitFor("There are no photo ID checks waiting for review.")
	require.Equal(t, trust.P9, p.level(oliviaEmail))
	p.fill("/sign-out", nil)
	p.expect("You have signed out")

	// The second person logs in, on their own browser (no passkey there:
	// this tab's authenticator would sign the checker in by autofill),
	// for a relying party asking for P9.
	own, cancelOwn := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelOwn()
	p2 := &page{t: t, ctx: own, s: s, base: base}
	rp9 := servertest.NewRP(t, s, false, "profile")
	a := rp9.Request(map[string]string{"vtr": `["P9.Cp.Cd"]`})
	p2.open(base + a.URL[strings.Index(a.URL, "/authorize"):])
	p2.expect("Log in")
	p2.fill("/login", map[string]string{"email": oliviaEmail, "password": pw})
	p2.expect("Enter the security code")
	p2.fill("/login/code", map[string]string{"code": s.Latest(t, idE164(t, oliviaPhone), "login_code").Code})
	claims = p2.consentAndExchange(rp9, a)
	require.Equal(t, "P9.Cp.Cd", claims["vot"])
	require.Equal(t, "9990000344", claims["nhs_number"])
	require.Equal(t, "Taylor", claims["family_name"])
	require.Equal(t, "1970-07-07", claims["birthdate"])
	require.Equal(t, "P9", claims["identity_proofing_level"])
}

// signUp creates an account through the pages; the browser ends signed
// in (password and texted code) on the account page.
func (p *page) signUp(email, pw, phone string) {
	p.t.Helper()
	p.open("/create-account")
	p.expect("What is your email address?")
	p.fill("/create-account/email", map[string]string{"email": email})
	p.expect("Create a password")
	p.fill("/create-account/password", map[string]string{"password": pw})
	p.expect("Accept the terms of use")
	p.fill("/create-account/terms", map[string]string{"terms": "accept"})
	p.expect("Check your email")
	link := p.s.Latest(p.t, email, "signup_verify_email").Link
	p.open(link[strings.Index(link, "/create-account/verify"):])
	p.expect("Confirm your email address")
	p.fill("/create-account/verify", nil)
	p.expect("Enter your mobile phone number")
	p.fill("/create-account/phone", map[string]string{"phone": phone})
	p.expect("Enter the security code")
	p.fill("/create-account/code", map[string]string{"code": p.s.Latest(p.t, idE164(p.t, phone), "signup_code").Code})
	p.expect("Your account")
}

func idE164(t *testing.T, phone string) string {
	t.Helper()
	e, err := account.ParsePhone(phone, true)
	require.NoError(t, err)
	return e
}

// level is the account's proofing level, read from the server.
func (p *page) level(email string) trust.Level {
	p.t.Helper()
	a, err := p.s.Accounts.AccountByEmail(context.Background(), email)
	require.NoError(p.t, err)
	return a.Level()
}

// click clicks a link or button that leads to another page (also a
// submit button fill cannot tell apart: two forms with one action, or a
// named button).
func (p *page) click(sel string) {
	p.t.Helper()
	// Clicked from script: chromedp's mouse click misses a link that is
	// partly below the fold (the "Match your details" card).
	require.NoError(p.t, chromedp.Do(p.bounded(), chromedp.WaitVisible(sel), chromedp.Evaluate[chromedp.Void](`window.__idlinkStale = true`),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).click()`, sel))), "click %s", sel)
}

// bounded is the tab's context for steps that wait for an element: at
// most 20 s, until the test ends.
func (p *page) bounded() context.Context {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	p.t.Cleanup(cancel)
	return ctx
}

// waitJS waits until the expression is true.
func (p *page) waitJS(expr, what string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("timed out waiting until %s", what)
}

// passkeyLogin signs in with the virtual authenticator's passkey from
// whichever login page the browser was sent to (the login page's autofill
// or button, or the passkey page's button), until the page whose h1 is
// landing.
func (p *page) passkeyLogin(landing string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	clicked := map[string]bool{}
	var h1 string
	for time.Now().Before(deadline) {
		var err error
		h1, err = chromedp.Run(p.ctx, chromedp.Evaluate[string](`(() => {
			const h = document.querySelector("h1"); return h ? h.textContent.trim() : ""; })()`))
		if err == nil && h1 == landing {
			return
		}
		if err == nil && (h1 == "Log in" || h1 == "Use your passkey") && !clicked[h1] {
			// The login pages have their own accessibility checks; this
			// one may be cut short when autofill signs in meanwhile.
			if violations, err := seriousViolations(p.ctx); err == nil {
				require.Empty(p.t, violations, "accessibility problems on the %q page", h1)
			} else {
				p.t.Logf("axe on the %q page cut short: %v", h1, err)
			}
			// Autofill answers by itself on the login page; the button
			// is there when it does not (and on the passkey page).
			time.Sleep(500 * time.Millisecond)
			visible, _ := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`(() => {
				const h = document.querySelector("h1"), b = document.getElementById("passkey-login-button"), box = document.getElementById("passkey-login");
				return !!h && h.textContent.trim() !== "" && !!b && !!box && !box.hidden; })()`))
			if visible {
				if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("passkey-login-button").click()`)); err == nil {
					clicked[h1] = true
					p.t.Logf("passkey button pressed on the %q page", h1)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	msg, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.getElementById("passkey-error-message") || {}).textContent || ""`))
	loc, _ := chromedp.Run(p.ctx, chromedp.Location())
	p.t.Fatalf("passkey login never reached %q: on %q at %s (passkey message %q)", landing, h1, loc, msg)
}

// authorize sends the signed-in browser through rp's request for vtr and
// returns the ID token's claims.
func (p *page) authorize(rp *servertest.RP, vtr string) map[string]any {
	p.t.Helper()
	a := rp.Request(map[string]string{"vtr": vtr})
	p.open(p.base + a.URL[strings.Index(a.URL, "/authorize"):])
	return p.consentAndExchange(rp, a)
}

// consentAndExchange agrees on the consent page, waits for the relying
// party's callback and redeems the code.
func (p *page) consentAndExchange(rp *servertest.RP, a servertest.AuthRequest) map[string]any {
	p.t.Helper()
	p.expect("Share your details with Test Health Service")
	p.fill("/authorize/consent", nil) // the first form: "Agree and continue"
	var loc string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.HasPrefix(loc, rp.CallbackURL()) {
		loc, _ = chromedp.Run(p.ctx, chromedp.Location())
		time.Sleep(50 * time.Millisecond)
	}
	require.True(p.t, strings.HasPrefix(loc, rp.CallbackURL()), "back at the relying party, not %s", loc)
	u, err := url.Parse(loc)
	require.NoError(p.t, err)
	require.Equal(p.t, a.State, u.Query().Get("state"))
	require.Empty(p.t, u.Query().Get("error"), u.Query().Get("error_description"))
	_, _, claims := rp.Exchange(u.Query().Get("code"), a)
	return claims
}

// idPhotoJPEG is a 320×240 photo for the upload.
func idPhotoJPEG(t *testing.T) []byte { return mediatest.Photo(t) }

// idFaceMP4 is a minimal MP4 lasting seconds.
func idFaceMP4(seconds uint32) []byte { return mediatest.MP4(float64(seconds)) }
