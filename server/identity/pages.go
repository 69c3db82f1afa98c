package identity

import (
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Paths of the person's identity-proofing pages.
const (
	ProvePath        = "/prove"
	ProveDetailsPath = "/prove/details"
	ProveGPPath      = "/prove/gp"
	ProvePhotoPath   = "/prove/photo"
)

// proveNotice is a one-time confirmation ("You have proved your identity
// (level P5)") left for the page the person is sent to next.
const proveNotice = web.Notice("identity_notice")

// PhotoReviewWorkingDays is how long the ID checking team usually takes,
// as the person is told after sending their photo ID.
const PhotoReviewWorkingDays = 3

// DefaultMaxUploads bounds how many photo ID submissions are checked and
// stored at once (each holds its files in memory).
const DefaultMaxUploads = 4

// PhotoReviewCancelReason is the reason the "We are checking your ID"
// page sends to /authorize/cancel, so that the relying party can be told
// that identity verification is in progress.
const PhotoReviewCancelReason = "photo_review"

// SignIn is what the pages need of the login journey; *login.Journey
// implements it.
type SignIn interface {
	Current(c fiber.Ctx) (login.Auth, bool)
	Start(c fiber.Ctx, req login.Request) error
}

// PageDeps are what the proving pages use.
type PageDeps struct {
	Login    SignIn
	Renderer *web.Renderer
	Audit    *audit.Log
	// MaxUploads bounds concurrent photo ID submissions (DefaultMaxUploads
	// when zero).
	MaxUploads int
}

// Pages serves the person's side of identity proofing: the choice of
// route (/prove), matching their details in PDS (P5), GP online-services
// details (P9) and sending photo ID and a video for review (P9). Every
// page needs a session whose login proved a password and a second factor,
// or a passkey. It is safe for concurrent use.
type Pages struct {
	s       *Service
	d       PageDeps
	uploads chan struct{}
}

// NewPages returns the proving pages over s.
func NewPages(s *Service, d PageDeps) *Pages {
	n := d.MaxUploads
	if n <= 0 {
		n = DefaultMaxUploads
	}
	return &Pages{s: s, d: d, uploads: make(chan struct{}, n)}
}

// Register mounts the proving pages.
func (p *Pages) Register(pg web.Pages) {
	pg.Get(ProvePath, p.start)
	pg.Get(ProveDetailsPath, p.detailsPage)
	pg.Post(ProveDetailsPath, p.detailsSubmit)
	pg.Get(ProveGPPath, p.gpPage)
	pg.Post(ProveGPPath, p.gpSubmit)
	pg.Get(ProvePhotoPath, p.photoPage)
	pg.Post(ProvePhotoPath, p.photoSubmit)
}

// ---- shared bits ----

// returnTo reads the return_to of a page or form, or "" when absent or
// unsafe.
func returnTo(c fiber.Ctx) string {
	if c.Method() == fiber.MethodPost {
		return web.LocalPath(c.FormValue("return_to"))
	}
	return web.LocalPath(c.Query("return_to"))
}

// withReturn adds return_to to a page path.
func withReturn(path, ret string) string {
	if ret == "" {
		return path
	}
	return path + "?" + url.Values{"return_to": {ret}}.Encode()
}

// destination is where a person goes once proven.
func destination(ret string) string {
	if ret == "" {
		return "/account"
	}
	return ret
}

// authorizeID returns the pending authorization's id when ret is the OIDC
// continue page (/authorize/continue?id=…).
func authorizeID(ret string) string {
	u, err := url.Parse(ret)
	if err != nil || u.Path != "/authorize/continue" {
		return ""
	}
	return u.Query().Get("id")
}

func redirectTo(c fiber.Ctx, to string) error { return c.Redirect().Status(http.StatusSeeOther).To(to) }

// strongLogin lists the logins that may prove an identity.
func strongLogin() []trust.Credentials {
	return []trust.Credentials{trust.Credentials(nil).With(trust.Cp, trust.Cd), trust.Credentials(nil).With(trust.Cm)}
}

func strong(a login.Auth) bool {
	return (a.Credentials.Has(trust.Cp) && a.Credentials.Has(trust.Cd)) || a.Credentials.Has(trust.Cm)
}

// signedIn returns the signed-in account when its login may prove an
// identity. Otherwise it answers the request (a login that returns to the
// page) and ok is false.
func (p *Pages) signedIn(c fiber.Ctx, page string) (account.Account, bool, error) {
	here := withReturn(page, returnTo(c))
	a, ok := p.d.Login.Current(c)
	if !ok {
		return account.Account{}, false, p.d.Login.Start(c, login.Request{Want: strongLogin(), ReturnTo: here})
	}
	if !strong(a) {
		return account.Account{}, false, p.d.Login.Start(c, login.Request{Want: strongLogin(), ReturnTo: here, Force: true})
	}
	acct, err := p.s.d.Accounts.Account(c.Context(), a.AccountID)
	if errors.Is(err, account.ErrNotFound) {
		web.Sess(c).Destroy()
		return account.Account{}, false, redirectTo(c, "/login")
	}
	if err != nil {
		return account.Account{}, false, fmt.Errorf("identity pages: %w", err)
	}
	if acct.Status == account.StatusBlocked {
		return account.Account{}, false, p.d.Renderer.ErrorPage(c, http.StatusForbidden, "You cannot use this account",
			"Contact us if you think this is a mistake.")
	}
	return acct, true, nil
}

func (p *Pages) render(c fiber.Ctx, page string, v web.View) error {
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return p.d.Renderer.Render(c, status, page, v)
}

// proven sends the person on. Landing on their account, the page says
// what they proved, once; a service they return to continues its own
// journey, and nothing is left to reappear in another one later.
func proven(c fiber.Ctx, level trust.Level, ret string) error {
	dest := destination(ret)
	if dest == "/account" {
		web.Sess(c).Put(account.NoticeKey, ProvenWords(level))
	}
	return redirectTo(c, dest)
}

// ProvenWords says in words what a person has just proved.
func ProvenWords(level trust.Level) string {
	if level >= trust.P9 {
		return "You have proved who you are. Services that need the highest level of proof can now give you access."
	}
	return "Your details match your NHS record: you have proved who you are to the medium level."
}

// outcome is the message and status for an error of the Service, or
// ok false for an error that is not the person's to fix.
type outcome struct {
	field, message string
	status         int
}

// recordError turns an error of MatchPDS or VerifyGP into what the page
// says. general is the field id the error summary links to when no field
// is at fault.
func recordError(err error, general string, gpRoute bool) (outcome, bool) {
	bad := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, ErrNoMatch):
		if gpRoute {
			return outcome{general, "We could not confirm these details with your GP surgery. Check them and try again.", bad}, true
		}
		return outcome{general, "We could not find your details in NHS records. Check them and try again.", bad}, true
	case errors.Is(err, ErrTooManyMatches):
		return outcome{"postcode", "We found more than one person with these details. Check your postcode is the one your GP surgery has for you.", bad}, true
	case errors.Is(err, ErrDeceased):
		return outcome{general, "We cannot use these details to prove who you are online. If you think this is a mistake, contact your GP surgery.", bad}, true
	case errors.Is(err, ErrRestricted):
		return outcome{general, "Your NHS record cannot be used to prove who you are online. Contact your GP surgery.", bad}, true
	case errors.Is(err, ErrAttempts):
		return outcome{general, fmt.Sprintf("You have tried %d times today. Try again tomorrow.", MatchAttemptsPerDay), http.StatusTooManyRequests}, true
	case errors.Is(err, ErrNHSNumberInUse):
		return outcome{general, "These details are already connected to another account. Log in to that account instead, or contact us.", http.StatusConflict}, true
	case errors.Is(err, ErrMismatch):
		return outcome{general, "These details belong to a different person from the one you proved before. Check them and try again.", bad}, true
	case errors.Is(err, ErrUnavailable):
		what := "NHS records are"
		if gpRoute {
			what = "Your GP surgery's system is"
		}
		return outcome{general, what + " not available right now. Try again later.", http.StatusServiceUnavailable}, true
	}
	return outcome{}, false
}

// ---- /prove ----

// startData is what prove_start.html shows.
type startData struct {
	Level    string
	ReturnTo string
	// Done: the account is at the highest level.
	Done bool
	// ShowDetails offers the P5 route; ShowP9 the GP and photo routes.
	ShowDetails, ShowP9 bool
	DetailsURL, GPURL   string
	PhotoURL, Continue  string
	// CheckOpen: a photo ID check waits for review (submitted at CheckSent).
	CheckOpen bool
	CheckSent string
	// Rejected is the reason given for the latest photo check's rejection.
	Rejected string
}

func (p *Pages) start(c fiber.Ctx) error {
	acct, ok, err := p.signedIn(c, ProvePath)
	if !ok {
		return err
	}
	ctx := c.Context()
	ret := returnTo(c)
	level := acct.Level()
	d := startData{
		Level: level.String(), ReturnTo: ret, Done: level >= trust.P9,
		ShowDetails: level < trust.P5, ShowP9: level < trust.P9,
		DetailsURL: withReturn(ProveDetailsPath, ret), GPURL: withReturn(ProveGPPath, ret),
		PhotoURL: withReturn(ProvePhotoPath, ret), Continue: destination(ret),
	}
	if d.ShowP9 {
		open, isOpen, err := p.s.OpenCheck(ctx, acct.ID)
		if err != nil {
			return err
		}
		if isOpen {
			d.CheckOpen, d.CheckSent = true, open.SubmittedAt.Format("2 January 2006")
		} else if last, ok, err := p.s.LatestCheck(ctx, acct.ID); err != nil {
			return err
		} else if ok && last.Status == CheckRejected {
			d.Rejected = last.Reason
		}
	}
	return p.render(c, "prove_start", web.View{Title: "Prove who you are", Data: d, Notice: proveNotice.Take(c), BackLink: "/account"})
}

// ---- /prove/details (P5) ----

type formData struct {
	ReturnTo string
	Start    string // the /prove page with return_to
	// Document types and limits, for the photo page.
	DocumentTypes []struct{ Value, Name string }
	PhotoMB       int64
	VideoMB       int64
	MinVideo      int
	MaxVideo      int
}

func (p *Pages) form(ret string) formData {
	l := p.limits()
	return formData{ReturnTo: ret, Start: withReturn(ProvePath, ret), DocumentTypes: DocumentTypes,
		PhotoMB: l.MaxPhotoBytes >> 20, VideoMB: l.MaxVideoBytes >> 20,
		MinVideo: int(l.MinVideo / time.Second), MaxVideo: int(l.MaxVideo / time.Second)}
}

func (p *Pages) detailsView(ret string) web.View {
	return web.View{Title: "Enter your details", BackLink: withReturn(ProvePath, ret), Data: p.form(ret), Values: map[string]string{}}
}

func (p *Pages) detailsPage(c fiber.Ctx) error {
	acct, ok, err := p.signedIn(c, ProveDetailsPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	if acct.Level() >= trust.P5 {
		return redirectTo(c, withReturn(ProvePath, ret))
	}
	return p.render(c, "prove_details", p.detailsView(ret))
}

// birthDate reads the three date fields; problem is "" when they make a
// date in the past.
func birthDate(day, month, year string, now time.Time) (string, string) {
	var missing []string
	for _, f := range []struct{ v, name string }{{day, "day"}, {month, "month"}, {year, "year"}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	switch len(missing) {
	case 3:
		return "", "Enter your date of birth"
	case 2:
		return "", "Date of birth must include a " + missing[0] + " and a " + missing[1]
	case 1:
		return "", "Date of birth must include a " + missing[0]
	}
	d, errD := strconv.Atoi(day)
	m, errM := strconv.Atoi(month)
	y, errY := strconv.Atoi(year)
	if errD != nil || errM != nil || errY != nil || len(year) != 4 {
		return "", "Date of birth must be a real date, like 15 3 1984"
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d || int(t.Month()) != m || t.Year() != y {
		return "", "Date of birth must be a real date, like 15 3 1984"
	}
	if t.After(now) {
		return "", "Date of birth must be in the past"
	}
	if y < 1880 {
		return "", "Date of birth must be after 1880"
	}
	return t.Format("2006-01-02"), ""
}

func (p *Pages) detailsSubmit(c fiber.Ctx) error {
	acct, ok, err := p.signedIn(c, ProveDetailsPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	v := p.detailsView(ret)
	for _, f := range []string{"dob-day", "dob-month", "dob-year", "family_name", "given_name", "postcode", "nhs_number"} {
		v.Values[f] = strings.TrimSpace(c.FormValue(f))
	}
	dob, problem := birthDate(v.Values["dob-day"], v.Values["dob-month"], v.Values["dob-year"], p.s.now())
	if problem != "" {
		v.Errors.Add("dob-day", problem)
	}
	// Every problem at once, in the order of the fields on the page.
	if v.Values["given_name"] == "" {
		v.Errors.Add("given_name", "Enter your first name")
	} else if len(v.Values["given_name"]) > 100 {
		v.Errors.Add("given_name", "First name must be 100 characters or fewer")
	}
	if v.Values["family_name"] == "" {
		v.Errors.Add("family_name", "Enter your last name")
	} else if len(v.Values["family_name"]) > 100 {
		v.Errors.Add("family_name", "Last name must be 100 characters or fewer")
	}
	if pc := strings.ReplaceAll(v.Values["postcode"], " ", ""); pc == "" {
		v.Errors.Add("postcode", "Enter your postcode")
	} else if len(pc) < 5 || len(pc) > 8 {
		v.Errors.Add("postcode", "Enter a real postcode, like LS1 6AE")
	}
	if n := v.Values["nhs_number"]; n != "" {
		if _, err := nhsnumber.Parse(n); err != nil {
			v.Errors.Add("nhs_number", "Enter a real NHS number: 10 digits, like 943 476 5919")
		}
	}
	if len(v.Errors) > 0 {
		return p.render(c, "prove_details", v)
	}
	_, err = p.s.MatchPDS(c.Context(), web.Actor(c), acct.ID, Details{
		BirthDate: dob, FamilyName: v.Values["family_name"], GivenName: v.Values["given_name"],
		Postcode: v.Values["postcode"], NHSNumber: v.Values["nhs_number"],
	})
	if err == nil {
		return proven(c, trust.P5, ret)
	}
	if errors.Is(err, ErrInvalid) {
		// The service names the fields it refused.
		msg := err.Error()
		for _, f := range []struct{ name, id, text string }{
			{"date of birth", "dob-day", "Date of birth must be a real date in the past"},
			{"family name", "family_name", "Enter your last name as it is on your NHS records"},
			{"given name", "given_name", "Enter your first name as it is on your NHS records"},
			{"postcode", "postcode", "Enter a real postcode, like LS1 6AE"},
			{"NHS number", "nhs_number", "Enter a real NHS number: 10 digits, like 943 476 5919"},
		} {
			if strings.Contains(msg, f.name) {
				v.Errors.Add(f.id, f.text)
			}
		}
		if len(v.Errors) == 0 {
			v.Errors.Add("dob-day", "Check your details and try again")
		}
		return p.render(c, "prove_details", v)
	}
	o, known := recordError(err, "details", false)
	if !known {
		return err
	}
	v.Errors.Add(o.field, o.message)
	return p.d.Renderer.Render(c, o.status, "prove_details", v)
}

// ---- /prove/gp (P9 by GP online-services details) ----

func (p *Pages) gpView(ret string) web.View {
	return web.View{Title: "Enter your GP online services details", BackLink: withReturn(ProvePath, ret), Data: p.form(ret), Values: map[string]string{}}
}

func (p *Pages) gpPage(c fiber.Ctx) error {
	acct, ok, err := p.signedIn(c, ProveGPPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	if acct.Level() >= trust.P9 {
		return redirectTo(c, withReturn(ProvePath, ret))
	}
	return p.render(c, "prove_gp", p.gpView(ret))
}

func stripGP(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
}

func onlyFrom(s, alphabet string) bool {
	for _, r := range s {
		if !strings.ContainsRune(alphabet, r) {
			return false
		}
	}
	return true
}

func (p *Pages) gpSubmit(c fiber.Ctx) error {
	acct, ok, err := p.signedIn(c, ProveGPPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	v := p.gpView(ret)
	key := strings.ToUpper(stripGP(c.FormValue("linkage_key")))
	ods := strings.TrimSpace(c.FormValue("ods_code"))
	gpAccount := stripGP(c.FormValue("account_id"))
	// The linkage key is a secret: it is never shown again.
	v.Values["ods_code"], v.Values["account_id"] = ods, gpAccount
	switch {
	case key == "":
		v.Errors.Add("linkage_key", "Enter your linkage key")
	case len(key) != gp.LinkageKeyLength || !onlyFrom(key, gp.LinkageKeyAlphabet):
		v.Errors.Add("linkage_key", fmt.Sprintf("Enter the linkage key exactly as it is on the letter from your GP surgery: %d letters and numbers", gp.LinkageKeyLength))
	}
	if ods == "" {
		v.Errors.Add("ods_code", "Enter your practice ID (ODS code)")
	} else if _, err := gp.NormalizeODSCode(ods); err != nil {
		v.Errors.Add("ods_code", "Enter a real practice ID (ODS code): 3 to 6 letters and numbers, like Y12345")
	}
	switch {
	case gpAccount == "":
		v.Errors.Add("account_id", "Enter your account ID")
	case len(gpAccount) < gp.MinAccountIDLength || len(gpAccount) > gp.MaxAccountIDLength || !onlyFrom(gpAccount, "0123456789"):
		v.Errors.Add("account_id", fmt.Sprintf("Enter a real account ID: %d to %d numbers", gp.MinAccountIDLength, gp.MaxAccountIDLength))
	}
	if len(v.Errors) > 0 {
		return p.render(c, "prove_gp", v)
	}
	_, err = p.s.VerifyGP(c.Context(), web.Actor(c), acct.ID, gp.Details{LinkageKey: key, ODSCode: ods, AccountID: gpAccount})
	if err == nil {
		return proven(c, trust.P9, ret)
	}
	if errors.Is(err, ErrInvalid) {
		v.Errors.Add("linkage_key", "Check your details and try again")
		return p.render(c, "prove_gp", v)
	}
	o, known := recordError(err, "gp-details", true)
	if !known {
		return err
	}
	v.Errors.Add(o.field, o.message)
	return p.d.Renderer.Render(c, o.status, "prove_gp", v)
}

// ---- /prove/photo (P9 by photo ID and video) ----

// sentData is what prove_photo_sent.html shows.
type sentData struct {
	Days int
	// AuthorizeID is the pending authorization to go back to, if any.
	AuthorizeID string
	Reason      string
	Account     string
}

func (p *Pages) limits() media.Limits {
	if l, ok := p.s.d.Media.(interface{ Limits() media.Limits }); ok {
		return l.Limits()
	}
	return media.DefaultLimits()
}

// cameraPolicy lets the photo page (and the same page shown again after
// a form error) record the video with the camera (record.js); every other
// page keeps the camera off.
const cameraPolicy = "camera=(self), microphone=(), geolocation=(), payment=()"

func (p *Pages) photoView(ret string) web.View {
	return web.View{Title: "Send a photo of your ID and a short video", BackLink: withReturn(ProvePath, ret), Data: p.form(ret), Values: map[string]string{}}
}

func (p *Pages) sent(c fiber.Ctx, status int, ret, notice string) error {
	return p.d.Renderer.Render(c, status, "prove_photo_sent", web.View{Title: "We are checking your ID", Notice: notice,
		Data: sentData{Days: PhotoReviewWorkingDays, AuthorizeID: authorizeID(ret), Reason: PhotoReviewCancelReason, Account: "/account"}})
}

func (p *Pages) photoPage(c fiber.Ctx) error {
	c.Set("Permissions-Policy", cameraPolicy)
	acct, ok, err := p.signedIn(c, ProvePhotoPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	if acct.Level() >= trust.P9 {
		return redirectTo(c, withReturn(ProvePath, ret))
	}
	if _, open, err := p.s.OpenCheck(c.Context(), acct.ID); err != nil {
		return err
	} else if open {
		return p.sent(c, http.StatusOK, ret, "")
	}
	return p.render(c, "prove_photo", p.photoView(ret))
}

// mediaMessage says what is wrong with an uploaded file.
func mediaMessage(err error, photo bool, l media.Limits) string {
	mb := func(n int64) int64 { return n >> 20 }
	if photo {
		switch {
		case errors.Is(err, media.ErrUnsupportedType):
			return "The photo must be a JPEG, PNG or HEIC image"
		case errors.Is(err, media.ErrTooLarge):
			return fmt.Sprintf("The photo must be smaller than %d MB", mb(l.MaxPhotoBytes))
		case errors.Is(err, media.ErrTooSmall):
			return fmt.Sprintf("The photo is too small. Take a photo of the whole ID, at least %d pixels across", l.MinPhotoSide)
		default:
			return "We could not read the photo. Take another photo and try again"
		}
	}
	switch {
	case errors.Is(err, media.ErrUnsupportedType):
		return "The video must be an MP4, MOV or WebM file"
	case errors.Is(err, media.ErrTooLarge):
		return fmt.Sprintf("The video must be smaller than %d MB", mb(l.MaxVideoBytes))
	case errors.Is(err, media.ErrTooLong):
		return fmt.Sprintf("The video must be %d seconds long or shorter", int(l.MaxVideo/time.Second))
	case errors.Is(err, media.ErrTooShort), errors.Is(err, media.ErrTooSmall):
		return fmt.Sprintf("The video must be at least %d seconds long", int(l.MinVideo/time.Second))
	default:
		return "We could not read the video. Record another video and try again"
	}
}

// upload returns the form's file field, or nil when none was chosen.
func upload(c fiber.Ctx, field string) *multipart.FileHeader {
	fh, err := c.FormFile(field)
	if err != nil || fh == nil || fh.Size == 0 {
		return nil
	}
	return fh
}

func (p *Pages) photoSubmit(c fiber.Ctx) error {
	// The page shown again with errors records with the camera too.
	c.Set("Permissions-Policy", cameraPolicy)
	acct, ok, err := p.signedIn(c, ProvePhotoPath)
	if !ok {
		return err
	}
	ret := returnTo(c)
	v := p.photoView(ret)
	docType := c.FormValue("document_type")
	v.Values["document_type"] = docType
	if !ValidDocumentType(docType) {
		v.Errors.Add("document_type", "Select the type of photo ID you have")
	}
	photo, video := upload(c, "photo"), upload(c, "video")
	if photo == nil {
		v.Errors.Add("photo", "Choose a photo of your ID")
	}
	if video == nil {
		v.Errors.Add("video", "Choose a video of your face")
	}
	if len(v.Errors) > 0 {
		return p.render(c, "prove_photo", v)
	}
	_, err = p.submit(c.Context(), web.Actor(c), acct.ID, docType, photo, video)
	switch {
	case err == nil:
		return redirectTo(c, withReturn(ProvePhotoPath, ret))
	case errors.Is(err, ErrCheckOpen):
		return p.sent(c, http.StatusConflict, ret, "We are already checking your ID. You do not need to send it again.")
	case errors.Is(err, ErrInvalid):
		v.Errors.Add("document_type", "Select the type of photo ID you have")
		return p.render(c, "prove_photo", v)
	case errors.Is(err, errBusy):
		return p.d.Renderer.ErrorPage(c, http.StatusServiceUnavailable, "Sorry, we are busy",
			"Too many people are sending their ID right now. Wait a minute and try again.")
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "photo: "):
		v.Errors.Add("photo", mediaMessage(err, true, p.limits()))
	case strings.HasPrefix(msg, "video: "):
		v.Errors.Add("video", mediaMessage(err, false, p.limits()))
	default:
		return err
	}
	return p.render(c, "prove_photo", v)
}

var errBusy = errors.New("identity: too many uploads at once")

// submit opens the uploaded files and hands them to SubmitPhotoCheck,
// with at most MaxUploads submissions at once.
func (p *Pages) submit(ctx context.Context, a audit.Actor, accountID, docType string, photo, video *multipart.FileHeader) (Check, error) {
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case p.uploads <- struct{}{}:
		defer func() { <-p.uploads }()
	case <-wait.Done():
		return Check{}, errBusy
	}
	pf, err := photo.Open()
	if err != nil {
		return Check{}, fmt.Errorf("open uploaded photo: %w", err)
	}
	defer pf.Close()
	vf, err := video.Open()
	if err != nil {
		return Check{}, fmt.Errorf("open uploaded video: %w", err)
	}
	defer vf.Close()
	return p.s.SubmitPhotoCheck(ctx, a, accountID, Evidence{DocumentType: docType, Photo: pf, Video: vf})
}
