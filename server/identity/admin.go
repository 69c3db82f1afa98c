package identity

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// This file is the ID checking team's back office under /admin: the
// review queue, a check's evidence, a PDS search and the decision. Every
// page needs a session whose login proved a passkey (Cm) and a staff role;
// the Service audits each step, and the handlers audit refusals.

// AdminSignIn is what the back office needs of the login journey;
// *login.Journey implements it.
type AdminSignIn interface {
	// Current reports who is signed in and what their login proved.
	Current(c fiber.Ctx) (login.Auth, bool)
	// Start begins a login and sends the browser to its first step.
	Start(c fiber.Ctx, req login.Request) error
}

// AdminDeps are what the back-office pages use.
type AdminDeps struct {
	Login    AdminSignIn
	Renderer *web.Renderer
	// LoginMaxAge bounds the age of the phishing-resistant login (a
	// passkey or the app: Cm) the back office needs; older, the person
	// logs in again. Zero means 12 hours.
	LoginMaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Admin serves the back-office pages. It is safe for concurrent use.
type Admin struct {
	s *Service
	d AdminDeps
}

// NewAdmin returns the back-office pages over s.
func NewAdmin(s *Service, d AdminDeps) *Admin {
	if d.LoginMaxAge <= 0 {
		d.LoginMaxAge = 12 * time.Hour
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Admin{s: s, d: d}
}

// Back-office paths and limits.
const (
	// AdminPath is the review queue; every back-office page is under it.
	AdminPath = "/admin"
	// AdminQueueSize is how many open checks the queue shows.
	AdminQueueSize = 100
	// MaxRejectionReason is the longest reason a rejection may give, in
	// bytes (which is characters for plain English text).
	MaxRejectionReason = maxRejectionReasonSize
)

// Register mounts the back-office pages.
func (a *Admin) Register(pg web.Pages) {
	pg.Get(AdminPath, a.queuePage)
	pg.Post(AdminPath+"/checks/:id/claim", a.claim)
	pg.Get(AdminPath+"/checks/:id", a.checkPage)
	pg.Post(AdminPath+"/checks/:id/search", a.search)
	pg.Post(AdminPath+"/checks/:id/decide", a.decide)
	pg.Get(AdminPath+"/checks/:id/photo", a.photo)
	pg.Get(AdminPath+"/checks/:id/video", a.video)
	pg.Post(AdminPath+"/checks/:id/release", a.release)
	pg.Post(AdminPath+"/checks/:id/reassign", a.reassign)
}

func adminCheckPath(id string) string { return AdminPath + "/checks/" + id }

// ---- access ----

// Require is the back office's one access check, used by every
// back-office route (these pages and server/backoffice's). It returns the
// signed-in staff member when they hold any of roles and their session
// holds a login made on idlink itself (single sign-on does not count) that
// proved Cm (a passkey or the app) within LoginMaxAge. Otherwise it answers
// the request and ok is false: a page saying what is needed (anonymous), a
// login asking for a passkey (returning to returnTo), or a 403 page for
// someone without the role; each refusal is audited
// (admin.access_refused).
func (a *Admin) Require(c fiber.Ctx, returnTo string, roles ...string) (Staff, bool, error) {
	return a.staffOnly(c, returnTo, false, roles)
}

// staffOnly is Require. Evidence requests (media) never start a login: an
// <img> or <video> must not replace the session's login journey.
func (a *Admin) staffOnly(c fiber.Ctx, returnTo string, media bool, roles []string) (Staff, bool, error) {
	auth, signedIn := a.d.Login.Current(c)
	if !signedIn || !auth.Credentials.Has(trust.Cm) || a.d.Now().Sub(auth.AuthTime) > a.d.LoginMaxAge {
		if media {
			a.refused(c, auth.AccountID, "no_passkey_login")
			return Staff{}, false, a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You do not have access",
				"Log in with a passkey to see the evidence.")
		}
		if signedIn {
			// No passkey login will help a person without a role: say so.
			if m, ok, err := a.s.StaffMember(c.Context(), auth.AccountID); err != nil {
				return Staff{}, false, err
			} else if !ok || !m.Has(roles...) {
				a.refused(c, auth.AccountID, "not_staff")
				return Staff{}, false, a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You do not have access", needed)
			}
		} else if c.Query("login") == "" {
			// Say what is needed before asking anyone to log in.
			return Staff{}, false, a.d.Renderer.Render(c, http.StatusOK, "admin_login", web.View{Title: "Log in to the back office",
				Data: returnTo + "?login=1"})
		}
		return Staff{}, false, a.d.Login.Start(c, login.Request{Want: []trust.Credentials{{trust.Cm}},
			ReturnTo: returnTo, Force: signedIn, HideRegistration: true})
	}
	m, ok, err := a.s.StaffMember(c.Context(), auth.AccountID)
	if err != nil {
		return Staff{}, false, err
	}
	if !ok || !m.Has(roles...) {
		a.refused(c, auth.AccountID, "not_staff")
		return Staff{}, false, a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You do not have access", needed)
	}
	return m, true, nil
}

// needed says what the back office needs of a person.
const needed = "These pages are for idlink's staff. You need the role this page is for, which an administrator gives, " +
	"and a passkey or the idlink app on your account to log in with. Ask an administrator if you need access."

// refused records a refusal of a back-office request.
func (a *Admin) refused(c fiber.Ctx, accountID, reason string) {
	detail := map[string]any{"path": c.Path(), "method": c.Method(), "reason": reason}
	if id := c.Params("id"); id != "" {
		detail["check_id"] = id
	}
	a.s.record(c.Context(), web.Actor(c), "admin.access_refused", false, accountID, detail)
}

// reviewers may review photo ID checks.
var reviewers = []string{RoleIDChecker}

// adminNotice is a one-time confirmation for the back office's next page.
const adminNotice = web.Notice("admin_notice")

func adminSeeOther(c fiber.Ctx, to string) error {
	return c.Redirect().Status(http.StatusSeeOther).To(to)
}

// adminDocumentName returns the name of a document type.
func adminDocumentName(t string) string {
	for _, d := range DocumentTypes {
		if d.Value == t {
			return d.Name
		}
	}
	return t
}

// ---- the queue ----

// adminQueueRow is one line of admin_queue.html.
type adminQueueRow struct {
	ID          string
	SubmittedAt time.Time
	Document    string
	// Status is "Waiting", "In review by you" or "In review by …".
	Status string
	// Reviewable: waiting, or held by the viewer.
	Reviewable bool
	Mine       bool
	// Movable: in review by someone, and the viewer is an admin, who may
	// release or reassign it.
	Movable bool
}

// adminReviewer is an ID checker a check can be reassigned to.
type adminReviewer struct{ ID, Email string }

// adminQueueData is what admin_queue.html shows.
type adminQueueData struct {
	Rows []adminQueueRow
	Full bool // the queue has at least AdminQueueSize checks
	// Reviewers are the ID checkers, for an admin's reassign forms.
	Reviewers []adminReviewer
}

func (a *Admin) queuePage(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, AdminPath, false, []string{RoleIDChecker, RoleAdmin})
	if !ok {
		return err
	}
	return a.renderQueue(c, m, web.View{Notice: adminNotice.Take(c)})
}

func (a *Admin) renderQueue(c fiber.Ctx, m Staff, v web.View) error {
	checks, err := a.s.Queue(c.Context(), AdminQueueSize)
	if err != nil {
		return err
	}
	names := map[string]string{}
	data := adminQueueData{Full: len(checks) >= AdminQueueSize}
	for _, ch := range checks {
		row := adminQueueRow{ID: ch.ID, SubmittedAt: ch.SubmittedAt.UTC(), Document: adminDocumentName(ch.DocumentType),
			Status: "Waiting", Reviewable: m.CanReview()}
		if ch.Status == CheckInReview && ch.ClaimedBy != nil {
			switch by := *ch.ClaimedBy; {
			case by == m.AccountID:
				row.Status, row.Mine = "In review by you", true
			default:
				name, seen := names[by]
				if !seen {
					name = "another reviewer"
					if acct, err := a.s.d.Accounts.Account(c.Context(), by); err == nil {
						name = acct.Email
					}
					names[by] = name
				}
				row.Status, row.Reviewable = "In review by "+name, false
			}
			row.Movable = m.Has(RoleAdmin)
		}
		data.Rows = append(data.Rows, row)
	}
	if m.Has(RoleAdmin) {
		members, err := a.s.ListStaff(c.Context())
		if err != nil {
			return err
		}
		for _, s := range members {
			if !s.CanReview() {
				continue
			}
			email := s.AccountID
			if acct, err := a.s.d.Accounts.Account(c.Context(), s.AccountID); err == nil {
				email = acct.Email
			}
			data.Reviewers = append(data.Reviewers, adminReviewer{ID: s.AccountID, Email: email})
		}
	}
	v.Title, v.Data = "Photo ID checks to review", data
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return a.d.Renderer.Render(c, status, "admin_queue", v)
}

// admins may release and reassign checks.
var admins = []string{RoleAdmin}

func (a *Admin) release(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, AdminPath, false, admins)
	if !ok {
		return err
	}
	return a.moved(c, m)(a.s.Release(c.Context(), web.Actor(c), m, c.Params("id")))
}

func (a *Admin) reassign(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, AdminPath, false, admins)
	if !ok {
		return err
	}
	id, to := c.Params("id"), c.FormValue("to")
	if to == "" {
		var v web.View
		v.Errors.Add("to-"+id, "Choose the ID checker to give the check to")
		return a.renderQueue(c, m, v)
	}
	return a.moved(c, m)(a.s.Reassign(c.Context(), web.Actor(c), m, id, to))
}

// moved answers a release or reassignment.
func (a *Admin) moved(c fiber.Ctx, m Staff) func(Check, error) error {
	return func(ch Check, err error) error {
		var v web.View
		switch {
		case errors.Is(err, ErrNotFound):
			return a.notFound(c)
		case errors.Is(err, ErrClaimed):
			adminNotice.Set(c, "The check is no longer in review: it was decided or released meanwhile. Nothing was changed.")
		case errors.Is(err, ErrOwnCheck):
			v.Errors.Add("to-"+c.Params("id"), "This ID checker is the person being checked. Choose someone else")
			return a.renderQueue(c, m, v)
		case errors.Is(err, ErrInvalid):
			v.Errors.Add("to-"+c.Params("id"), "Choose a member of staff with the ID checker role")
			return a.renderQueue(c, m, v)
		case err != nil:
			return err
		case ch.Status == CheckSubmitted:
			adminNotice.Set(c, "The check is back in the queue for anyone to review.")
		default:
			adminNotice.Set(c, "The check is reassigned.")
		}
		return adminSeeOther(c, AdminPath)
	}
}

// Messages of the back office.
const (
	adminMsgClaimed    = "Someone else is reviewing this check"
	adminMsgDecided    = "Someone else is reviewing this check, or it has already been decided"
	adminMsgNotClaimed = "Choose Review to start reviewing this check"
)

func (a *Admin) claim(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, AdminPath, false, reviewers)
	if !ok {
		return err
	}
	id := c.Params("id")
	_, err = a.s.Claim(c.Context(), web.Actor(c), m, id)
	switch {
	case errors.Is(err, ErrClaimed):
		adminNotice.Set(c, adminMsgClaimed)
		return adminSeeOther(c, AdminPath)
	case errors.Is(err, ErrNotFound):
		return a.notFound(c)
	case errors.Is(err, ErrOwnCheck):
		return a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You cannot review this check",
			"This is your own identity check. Another member of the team must review it.")
	case errors.Is(err, ErrForbidden):
		return a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You do not have access", "Your role does not allow you to review checks.")
	case err != nil:
		return err
	}
	return adminSeeOther(c, adminCheckPath(id))
}

func (a *Admin) notFound(c fiber.Ctx) error {
	return a.d.Renderer.ErrorPage(c, http.StatusNotFound, "Check not found",
		"There is no photo ID check at this address. Go back to the queue and choose one.")
}

// ---- a check ----

// adminPatient is a PDS record as the check page shows it.
type adminPatient struct {
	Name       string
	BirthDate  string
	NHSNumber  string // formatted, 3-3-4
	NHSDigits  string
	GPODSCode  string
	Deceased   bool
	Restricted bool
}

// Usable reports whether the record can be connected.
func (p adminPatient) Usable() bool { return !p.Deceased && !p.Restricted }

func adminPatientView(p pds.Patient) *adminPatient {
	return &adminPatient{Name: strings.TrimSpace(p.GivenName() + " " + p.Family), BirthDate: p.BirthDate,
		NHSNumber: p.NHSNumber.Formatted(), NHSDigits: p.NHSNumber.String(), GPODSCode: p.GPODSCode,
		Deceased: p.Deceased, Restricted: p.Restricted}
}

// adminCheckData is what admin_check.html shows.
type adminCheckData struct {
	ID          string
	Document    string
	SubmittedAt time.Time
	PhotoURL    string
	VideoURL    string
	VideoType   string
	SearchURL   string
	DecideURL   string
	Found       *adminPatient
	// SearchError marks errors that belong to the search form (shown
	// beside it), as opposed to the decision form.
	SearchError string
	ReasonMax   int
}

// reviewing returns the check when the staff member holds it. Otherwise
// it answers the request (404, back to the queue, or 403) and ok is false.
func (a *Admin) reviewing(c fiber.Ctx, m Staff) (Check, bool, error) {
	ch, err := a.s.GetCheck(c.Context(), c.Params("id"))
	if errors.Is(err, ErrNotFound) {
		return Check{}, false, a.notFound(c)
	}
	if err != nil {
		return Check{}, false, err
	}
	if ch.Status == CheckSubmitted {
		adminNotice.Set(c, adminMsgNotClaimed)
		return Check{}, false, adminSeeOther(c, AdminPath)
	}
	if ch.Status != CheckInReview || ch.ClaimedBy == nil || *ch.ClaimedBy != m.AccountID {
		a.refused(c, m.AccountID, "not_reviewer")
		return Check{}, false, a.d.Renderer.ErrorPage(c, http.StatusForbidden, adminMsgDecided,
			"Only the reviewer who chose this check can see it. Go back to the queue and choose another.")
	}
	return ch, true, nil
}

func (a *Admin) checkView(ch Check) web.View {
	p := adminCheckPath(ch.ID)
	return web.View{Title: "Review a photo ID check", BackLink: AdminPath, Values: map[string]string{},
		Data: &adminCheckData{ID: ch.ID, Document: adminDocumentName(ch.DocumentType), SubmittedAt: ch.SubmittedAt.UTC(),
			PhotoURL: p + "/photo", VideoURL: p + "/video", VideoType: ch.VideoType, SearchURL: p + "/search",
			DecideURL: p + "/decide", ReasonMax: MaxRejectionReason}}
}

func (a *Admin) renderCheck(c fiber.Ctx, v web.View) error {
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
		if v.StatusCode != 0 {
			status = v.StatusCode
		}
	}
	return a.d.Renderer.Render(c, status, "admin_check", v)
}

func (a *Admin) checkPage(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, adminCheckPath(c.Params("id")), false, reviewers)
	if !ok {
		return err
	}
	ch, ok, err := a.reviewing(c, m)
	if !ok {
		return err
	}
	v := a.checkView(ch)
	v.Notice = adminNotice.Take(c)
	return a.renderCheck(c, v)
}

// adminSearchFields maps the field names in ErrInvalid messages to the search
// form's inputs.
var adminSearchFields = map[string]string{
	"family name":   "family_name",
	"given name":    "given_name",
	"date of birth": "dob-day",
	"postcode":      "postcode",
	"NHS number":    "search_nhs_number",
}

// adminMessage says what a Service error means to a reviewer, and with
// which status the page is shown.
func adminMessage(err error) (string, int, bool) {
	switch {
	case errors.Is(err, ErrNoMatch):
		return "No PDS record matches these details. Check them against the ID, or search by NHS number.", http.StatusUnprocessableEntity, true
	case errors.Is(err, ErrTooManyMatches):
		return "More than one PDS record matches these details. Add the postcode, or search by NHS number.", http.StatusUnprocessableEntity, true
	case errors.Is(err, ErrDeceased):
		return "This PDS record is marked as deceased. It cannot be connected to an account.", http.StatusUnprocessableEntity, true
	case errors.Is(err, ErrRestricted):
		return "This PDS record is restricted. It cannot be connected to an account online.", http.StatusUnprocessableEntity, true
	case errors.Is(err, ErrMismatch):
		return "This account is already connected to a different NHS number. Reject the check, or ask for the record to be investigated.", http.StatusConflict, true
	case errors.Is(err, ErrNHSNumberInUse):
		return "Another account is already connected to this NHS number. It cannot be connected to this one too.", http.StatusConflict, true
	case errors.Is(err, ErrUnavailable):
		return "PDS cannot be reached at the moment. Try again in a few minutes.", http.StatusServiceUnavailable, true
	case errors.Is(err, ErrClaimed):
		return adminMsgDecided, http.StatusConflict, true
	case errors.Is(err, ErrInvalid):
		return "Check the details: " + adminInvalidDetail(err), http.StatusUnprocessableEntity, true
	}
	return "", 0, false
}

// adminInvalidDetail returns what an ErrInvalid error says about the input.
func adminInvalidDetail(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ErrInvalid.Error()+": "); i >= 0 {
		return msg[i+len(ErrInvalid.Error())+2:]
	}
	return "some details are not valid"
}

func (a *Admin) search(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, adminCheckPath(c.Params("id")), false, reviewers)
	if !ok {
		return err
	}
	ch, ok, err := a.reviewing(c, m)
	if !ok {
		return err
	}
	v := a.checkView(ch)
	data := v.Data.(*adminCheckData)
	field := func(name string) string {
		val := strings.TrimSpace(c.FormValue(name))
		v.Values[name] = val
		return val
	}
	d := Details{FamilyName: field("family_name"), GivenName: field("given_name"), Postcode: field("postcode"),
		NHSNumber: field("search_nhs_number")}
	day, month, year := field("dob_day"), field("dob_month"), field("dob_year")
	// "Choose this record" searches again by the chosen NHS number alone
	// and puts it in the decision.
	chosen := strings.TrimSpace(c.FormValue("choose"))
	if chosen != "" {
		d = Details{NHSNumber: chosen}
	} else {
		if day != "" || month != "" || year != "" {
			d.BirthDate = adminBirthDate(day, month, year)
		}
		if d.FamilyName == "" && d.GivenName == "" && d.BirthDate == "" && d.Postcode == "" && d.NHSNumber == "" {
			v.Errors.Add("family_name", "Enter the family name, given name and date of birth from the ID, or an NHS number")
			data.SearchError = "search"
			return a.renderCheck(c, v)
		}
		if d.NHSNumber != "" {
			if _, err := nhsnumber.Parse(d.NHSNumber); err != nil {
				v.Errors.Add("search_nhs_number", "Enter a valid NHS number, 10 digits")
				data.SearchError = "search"
				return a.renderCheck(c, v)
			}
		}
	}
	p, err := a.s.SearchPDS(c.Context(), web.Actor(c), m, ch.ID, d)
	if err != nil {
		msg, status, known := adminMessage(err)
		if !known {
			return err
		}
		data.SearchError = "search"
		if errors.Is(err, ErrInvalid) {
			added := false
			for _, part := range strings.Split(adminInvalidDetail(err), ", ") {
				if id, ok := adminSearchFields[part]; ok {
					v.Errors.Add(id, "Enter a valid "+part)
					added = true
				}
			}
			if !added {
				v.Errors.Add("family_name", msg)
			}
		} else {
			v.Errors.Add("family_name", msg)
		}
		v.StatusCode = status
		return a.renderCheck(c, v)
	}
	data.Found = adminPatientView(p)
	if chosen != "" && data.Found.Usable() {
		v.Values["nhs_number"] = data.Found.NHSDigits
		v.Notice = "The NHS number " + data.Found.NHSNumber + " is filled in below. Answer the questions and approve."
	}
	return a.renderCheck(c, v)
}

// birthDate makes YYYY-MM-DD of the date input's parts, or returns what
// was typed (which the Service refuses as an invalid date of birth).
func adminBirthDate(day, month, year string) string {
	d, errD := strconv.Atoi(day)
	mo, errM := strconv.Atoi(month)
	y, errY := strconv.Atoi(year)
	if errD != nil || errM != nil || errY != nil || len(year) != 4 || d < 1 || d > 31 || mo < 1 || mo > 12 {
		return year + "-" + month + "-" + day
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, mo, d)
}

func adminYesNo(s string) (value, ok bool) {
	switch s {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

func (a *Admin) decide(c fiber.Ctx) error {
	m, ok, err := a.staffOnly(c, adminCheckPath(c.Params("id")), false, reviewers)
	if !ok {
		return err
	}
	ch, ok, err := a.reviewing(c, m)
	if !ok {
		return err
	}
	v := a.checkView(ch)
	d := readDecision(c, &v)
	if len(v.Errors) > 0 {
		return a.renderCheck(c, v)
	}
	_, err = a.s.Decide(c.Context(), web.Actor(c), m, ch.ID, d)
	switch {
	case err == nil:
	case errors.Is(err, ErrClaimed):
		adminNotice.Set(c, adminMsgDecided)
		return adminSeeOther(c, AdminPath)
	case errors.Is(err, ErrNotFound):
		return a.notFound(c)
	default:
		msg, status, known := adminMessage(err)
		if !known {
			return err
		}
		field := "nhs_number"
		if errors.Is(err, ErrInvalid) && !strings.Contains(adminInvalidDetail(err), "NHS number") {
			field = "id_valid"
			if !d.Approve {
				field = "reason"
			}
		}
		v.Errors.Add(field, msg)
		v.StatusCode = status
		return a.renderCheck(c, v)
	}
	if d.Approve {
		adminNotice.Set(c, "Check approved. The NHS number is connected to the account and its identity is now proven (P9).")
	} else {
		adminNotice.Set(c, "Check rejected. The person has been told the reason.")
	}
	return adminSeeOther(c, AdminPath)
}

// readDecision reads a reviewer's decision form into v's values, adds an
// error to v for each answer that is missing or wrong, and returns the
// decision.
func readDecision(c fiber.Ctx, v *web.View) Decision {
	decision := c.FormValue("decision")
	rawValid, rawFace := c.FormValue("id_valid"), c.FormValue("face_match")
	nhs := strings.TrimSpace(c.FormValue("nhs_number"))
	reason := strings.TrimSpace(strings.ReplaceAll(c.FormValue("reason"), "\r\n", "\n"))
	v.Values["id_valid"], v.Values["face_match"], v.Values["nhs_number"], v.Values["reason"] = rawValid, rawFace, nhs, reason

	idValid, okValid := adminYesNo(rawValid)
	faceMatch, okFace := adminYesNo(rawFace)
	if !okValid {
		v.Errors.Add("id_valid", "Select yes if the ID is valid")
	}
	if !okFace {
		v.Errors.Add("face_match", "Select yes if the face in the video matches the photo")
	}
	d := Decision{IDValid: idValid, FaceMatch: faceMatch}
	switch decision {
	case "approve":
		d.Approve, d.NHSNumber = true, nhs
		if okValid && okFace && (!idValid || !faceMatch) {
			v.Errors.Add("id_valid", "You can only approve a check when the ID is valid and the face matches the photo. Otherwise, reject it")
		}
		if nhs == "" {
			v.Errors.Add("nhs_number", "Enter the NHS number of the person's record (search PDS and choose it)")
		} else if _, err := nhsnumber.Parse(nhs); err != nil {
			v.Errors.Add("nhs_number", "Enter a valid NHS number, 10 digits")
		}
	case "reject":
		d.Reason = reason
		switch {
		case reason == "":
			v.Errors.Add("reason", "Enter the reason for rejecting the check. The person will be told it")
		case len(reason) > MaxRejectionReason || !utf8.ValidString(reason):
			v.Errors.Add("reason", fmt.Sprintf("The reason must be %d characters or fewer", MaxRejectionReason))
		}
	default:
		v.Errors.Add("id_valid", "Choose Approve or Reject")
	}
	return d
}

// ---- evidence ----

func (a *Admin) photo(c fiber.Ctx) error { return a.evidence(c, media.KindIDPhoto) }
func (a *Admin) video(c fiber.Ctx) error { return a.evidence(c, media.KindFaceVideo) }

// evidence sends a check's photo or video to its reviewer: never cached,
// never sniffed, shown inline; single byte ranges are honoured (Safari
// plays video only from range requests).
func (a *Admin) evidence(c fiber.Ctx, kind media.Kind) error {
	m, ok, err := a.staffOnly(c, adminCheckPath(c.Params("id")), true, reviewers)
	if !ok {
		return err
	}
	b, info, err := a.s.Evidence(c.Context(), web.Actor(c), m, c.Params("id"), kind)
	switch {
	case errors.Is(err, ErrNotFound):
		return a.notFound(c)
	case errors.Is(err, ErrForbidden):
		// The Service has audited the refusal.
		return a.d.Renderer.ErrorPage(c, http.StatusForbidden, "You do not have access",
			"Only the reviewer who chose this check can see its evidence.")
	case err != nil:
		return err
	}
	h := &c.Response().Header
	h.Set(fiber.HeaderCacheControl, "no-store")
	h.Set(fiber.HeaderContentDisposition, "inline")
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderAcceptRanges, "bytes")
	h.Set(fiber.HeaderContentType, info.ContentType)
	if r := c.Get(fiber.HeaderRange); r != "" {
		start, end, ok := adminByteRange(r, len(b))
		if !ok {
			h.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", len(b)))
			return c.SendStatus(http.StatusRequestedRangeNotSatisfiable)
		}
		if start >= 0 {
			h.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, end, len(b)))
			return c.Status(http.StatusPartialContent).Send(b[start : end+1])
		}
	}
	return c.Status(http.StatusOK).Send(b)
}

// adminByteRange parses a Range header for a body of size n. It returns the
// inclusive range, or start -1 to send the whole body (several ranges, or
// a header it does not understand), or ok false for a range outside the
// body.
func adminByteRange(h string, n int) (start, end int, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return -1, -1, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return -1, -1, true
	}
	switch {
	case first == "": // the last `last` bytes
		k, err := strconv.Atoi(last)
		if err != nil || k < 0 {
			return -1, -1, true
		}
		if k == 0 || n == 0 {
			return 0, 0, false
		}
		k = min(k, n)
		return n - k, n - 1, true
	default:
		s, err := strconv.Atoi(first)
		if err != nil || s < 0 {
			return -1, -1, true
		}
		if s >= n {
			return 0, 0, false
		}
		e := n - 1
		if last != "" {
			le, err := strconv.Atoi(last)
			if err != nil || le < s {
				return -1, -1, true
			}
			e = min(le, n-1)
		}
		return s, e, true
	}
}

// Compile-time check: the login journey is what the back office signs in
// with.
var _ AdminSignIn = (*login.Journey)(nil)
