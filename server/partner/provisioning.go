package partner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// Statuses of a provisioning request as the partner reads it.
const (
	StatusPending = "pending"
	StatusClaimed = "claimed"
	StatusExpired = "expired"
)

// KindProvisioningClaim is the email that carries the claim link.
const KindProvisioningClaim notify.Kind = "provisioning_claim"

// macClaim binds the keyed hashes of claim-link tokens to their use.
const macClaim = "partner-provisioning-claim"

// odsCodePattern is an organisation code of the Organisation Data Service:
// 3 to 10 capital letters and digits ("A81001", "RR8", "Y12345").
var odsCodePattern = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)

// ProvisionRequest is the body of POST /partner/v1/provisioning.
type ProvisionRequest struct {
	// ODSCode is the code of the organisation asking.
	ODSCode string `json:"ods_code"`
	// NHSNumber, GivenName, FamilyName, BirthDate (YYYY-MM-DD) and,
	// optionally, Postcode are checked against PDS.
	NHSNumber  string `json:"nhs_number"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	BirthDate  string `json:"birth_date"`
	Postcode   string `json:"postcode,omitempty"`
	// MobileNumber must be one of the patient's numbers in PDS; the
	// claim's code is texted to it.
	MobileNumber string `json:"mobile_number"`
	// Email receives the claim link and becomes the account's address.
	Email string `json:"email"`
}

// Provisioning is a provisioning request as the partner reads it.
type Provisioning struct {
	ID        string     `json:"provisioning_id" db:"id"`
	Status    string     `json:"status" db:"status"`
	ODSCode   string     `json:"ods_code" db:"ods_code"`
	CreatedAt time.Time  `json:"created_at" db:"created_at"`
	ExpiresAt time.Time  `json:"expires_at" db:"expires_at"`
	ClaimedAt *time.Time `json:"claimed_at,omitempty" db:"claimed_at"`
	ClientID  string     `json:"-" db:"client_id"`
}

// provisionRow is a provisioning request as stored.
type provisionRow struct {
	Provisioning
	NHSNumber  string  `db:"nhs_number"`
	GivenName  string  `db:"given_name"`
	FamilyName string  `db:"family_name"`
	BirthDate  string  `db:"birth_date"`
	Mobile     string  `db:"mobile"`
	Email      string  `db:"email"`
	TokenHash  string  `db:"token_hash"`
	AccountID  *string `db:"account_id"`
}

// ErrInvalidProvisionRequest is wrapped by every refusal of
// ParseProvisionRequest; a *FieldError says which field.
var ErrInvalidProvisionRequest = errors.New("invalid provisioning request")

// FieldError is a refused field of a provisioning request, with the
// stable code the API answers.
type FieldError struct {
	Code   string
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return ErrInvalidProvisionRequest.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidProvisionRequest.
func (e *FieldError) Unwrap() error { return ErrInvalidProvisionRequest }

// parsedProvision is a checked provisioning request.
type parsedProvision struct {
	ods    string
	query  pds.Query
	mobile string // E.164
	email  string
}

// ParseProvisionRequest decodes and checks a provisioning body: one JSON
// object of known fields, every required field present and well formed.
// parsePhone turns the mobile number into E.164. Errors wrap
// ErrInvalidProvisionRequest.
func ParseProvisionRequest(body []byte, parsePhone func(string) (string, error)) (ProvisionRequest, parsedProvision, error) {
	var r ProvisionRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, parsedProvision{}, &FieldError{CodeInvalidRequest, "body", "not a JSON object of the documented fields"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return r, parsedProvision{}, &FieldError{CodeInvalidRequest, "body", "more than one JSON value"}
	}
	var p parsedProvision
	p.ods = strings.ToUpper(strings.TrimSpace(r.ODSCode))
	if !odsCodePattern.MatchString(p.ods) {
		return r, p, &FieldError{CodeInvalidODSCode, "ods_code", "must be an ODS code (3 to 10 letters and digits)"}
	}
	n, err := nhsnumber.Parse(r.NHSNumber)
	if err != nil {
		return r, p, &FieldError{CodeInvalidNHSNumber, "nhs_number", "not a valid NHS number"}
	}
	p.query = pds.Query{
		Family: strings.TrimSpace(r.FamilyName), BirthDate: strings.TrimSpace(r.BirthDate),
		Postcode: strings.TrimSpace(r.Postcode), NHSNumber: n,
	}
	if g := strings.TrimSpace(r.GivenName); g != "" {
		p.query.Given = []string{g}
	}
	if len(p.query.Given) == 0 {
		return r, p, &FieldError{CodeInvalidDemographics, "given_name", "is required"}
	}
	if _, err := time.Parse("2006-01-02", p.query.BirthDate); err != nil {
		return r, p, &FieldError{CodeInvalidDemographics, "birth_date", "must be a date YYYY-MM-DD"}
	}
	if err := p.query.Validate(); err != nil {
		return r, p, &FieldError{CodeInvalidDemographics, "demographics", strings.TrimPrefix(err.Error(), pds.ErrInvalidQuery.Error()+": ")}
	}
	if p.mobile, err = parsePhone(r.MobileNumber); err != nil {
		return r, p, &FieldError{CodeInvalidMobile, "mobile_number", "not a valid UK mobile number"}
	}
	if p.email, err = account.ParseEmail(r.Email); err != nil {
		return r, p, &FieldError{CodeInvalidEmail, "email", "not a valid email address"}
	}
	return r, p, nil
}

// handleProvision serves POST /partner/v1/provisioning.
func (a *API) handleProvision(c fiber.Ctx) error {
	tok, err := a.authorize(c, oidc.ScopeAccountProvisioning, "provisioning", a.cfg.ProvisionsPerMinute)
	if err != nil {
		return a.answer(c, err)
	}
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return a.answer(c, fail(http.StatusUnsupportedMediaType, CodeInvalidRequest, "the body must be application/json"))
	}
	if len(c.Body()) > maxProvisioningBody {
		return a.answer(c, fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than %d bytes", maxProvisioningBody))
	}
	_, req, err := ParseProvisionRequest(c.Body(), a.d.Accounts.ParsePhone)
	var fe *FieldError
	if errors.As(err, &fe) {
		a.record(c.Context(), actor(c), "partner.provisioning_refused", false, "", map[string]any{"client_id": tok.ClientID, "reason": fe.Code, "field": fe.Field})
		return a.answer(c, fail(http.StatusBadRequest, fe.Code, "%s: %s", fe.Field, fe.Reason))
	}
	if err != nil {
		return a.answer(c, err)
	}
	p, err := a.provision(c.Context(), actor(c), tok.ClientID, req)
	if err != nil {
		return a.answer(c, err)
	}
	c.Set(fiber.HeaderLocation, a.cfg.Issuer+PathProvisioning+"/"+p.ID)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(p)
}

// provision checks the patient's eligibility against PDS and the accounts,
// records the request and emails the claim link.
func (a *API) provision(ctx context.Context, act audit.Actor, clientID string, req parsedProvision) (Provisioning, error) {
	refuse := func(status int, code, accountID, format string, args ...any) (Provisioning, error) {
		a.record(ctx, act, "partner.provisioning_refused", false, accountID, map[string]any{"client_id": clientID, "ods_code": req.ods, "reason": code})
		return Provisioning{}, fail(status, code, format, args...)
	}
	patient, err := a.d.PDS.Search(ctx, req.query)
	switch {
	case errors.Is(err, pds.ErrNotFound), errors.Is(err, pds.ErrInvalidNHSNumber):
		return refuse(http.StatusUnprocessableEntity, CodePDSNoMatch, "", "no PDS record matches these details and NHS number")
	case errors.Is(err, pds.ErrTooManyMatches):
		return refuse(http.StatusUnprocessableEntity, CodePDSMultipleMatches, "", "more than one PDS record matches these details")
	case errors.Is(err, pds.ErrUnavailable):
		e := fail(http.StatusServiceUnavailable, CodePDSUnavailable, "PDS could not be asked; try again later")
		e.retryAfter = time.Minute
		a.record(ctx, act, "partner.provisioning_refused", false, "", map[string]any{"client_id": clientID, "ods_code": req.ods, "reason": CodePDSUnavailable})
		return Provisioning{}, e
	case err != nil:
		return Provisioning{}, fmt.Errorf("provisioning pds search: %w", err)
	}
	switch {
	case patient.Deceased:
		return refuse(http.StatusUnprocessableEntity, CodePDSDeceased, "", "PDS records this patient as deceased")
	case patient.Restricted:
		return refuse(http.StatusUnprocessableEntity, CodePDSRestricted, "", "this patient's PDS record is restricted")
	}
	if !mobileInPDS(req.mobile, patient.Phones, a.d.Accounts.ParsePhone) {
		return refuse(http.StatusUnprocessableEntity, CodeMobileMismatch, "", "the mobile number is not one of the patient's numbers in PDS")
	}
	nhs := patient.NHSNumber.String()
	holder, held, err := a.accountByNHSNumber(ctx, nhs)
	if err != nil {
		return Provisioning{}, err
	}
	if held {
		acct, err := a.d.Accounts.Account(ctx, holder)
		if err != nil && !errors.Is(err, account.ErrNotFound) {
			return Provisioning{}, fmt.Errorf("provisioning: %w", err)
		}
		if err == nil && acct.Level() >= trust.P9 {
			return refuse(http.StatusConflict, CodeAlreadyP9, holder, "the patient already has a P9 account")
		}
	}
	byEmail, err := a.d.Accounts.AccountByEmail(ctx, req.email)
	switch {
	case errors.Is(err, account.ErrNotFound):
	case err != nil:
		return Provisioning{}, fmt.Errorf("provisioning: %w", err)
	case held && byEmail.ID != holder:
		return refuse(http.StatusConflict, CodeEmailInUse, "", "the email address belongs to another account")
	case !held && byEmail.Level() >= trust.P5:
		// An account proven as someone else (P5 and P9 carry an NHS
		// number, and it is not this one).
		return refuse(http.StatusConflict, CodeEmailInUse, "", "the email address belongs to another account")
	}
	now := a.d.Now().UTC().Truncate(time.Microsecond)
	token := secrets.NewToken()
	row := provisionRow{
		Provisioning: Provisioning{
			ID: secrets.NewID(), Status: StatusPending, ODSCode: req.ods, CreatedAt: now,
			ExpiresAt: now.Add(a.cfg.ProvisioningLifetime), ClientID: clientID,
		},
		NHSNumber: nhs, GivenName: patient.GivenName(), FamilyName: patient.Family, BirthDate: patient.BirthDate,
		Mobile: req.mobile, Email: req.email, TokenHash: a.d.Keys.MAC(macClaim, token),
	}
	created, err := a.st.createProvisioning(ctx, row, now)
	if err != nil {
		return Provisioning{}, err
	}
	if !created {
		return refuse(http.StatusConflict, CodeAlreadyProvisioning, "", "a provisioning request for this patient is waiting to be claimed")
	}
	if err := a.sendClaim(ctx, act, clientID, req, row, token); err != nil {
		return Provisioning{}, err
	}
	a.record(ctx, act, "partner.provisioned", true, holder, map[string]any{"client_id": clientID, "ods_code": req.ods, "provisioning_id": row.ID, "existing_account": held})
	return row.Provisioning, nil
}

// sendClaim emails the patient the link that claims row. When it cannot
// be sent, the request is withdrawn (nobody could claim it) and the
// partner is told to try again.
func (a *API) sendClaim(ctx context.Context, act audit.Actor, clientID string, req parsedProvision, row provisionRow, token string) error {
	link := a.cfg.Issuer + PathClaim + "?token=" + token
	msg := notify.Message{
		Channel: notify.Email, To: req.email, Kind: KindProvisioningClaim, Link: link, Reference: row.ID,
		Text: fmt.Sprintf("Your healthcare provider (%s) has set up an idlink account for you. "+
			"To start using it, follow this link, enter the security code we text to your mobile phone and choose a password: %s\n"+
			"The link works until %s. If you did not expect this email, you can ignore it.",
			req.ods, link, row.ExpiresAt.Format("2 January 2006")),
	}
	if err := a.d.Sender.Send(ctx, msg); err != nil {
		// Without its email nobody can claim the request: withdraw it, so
		// that the partner can simply try again.
		a.record(ctx, act, "partner.provisioning_email_failed", false, "", map[string]any{"client_id": clientID, "provisioning_id": row.ID, "error": err.Error()})
		if derr := a.st.deleteProvisioning(context.WithoutCancel(ctx), row.ID); derr != nil {
			return errors.Join(fmt.Errorf("provisioning email: %w", err), derr)
		}
		e := fail(http.StatusServiceUnavailable, CodeEmailFailed, "the email to the patient could not be sent; nothing was kept, try again later")
		e.retryAfter = time.Minute
		return e
	}
	return nil
}

// mobileInPDS reports whether mobile (E.164) is one of PDS's numbers.
func mobileInPDS(mobile string, phones []string, parsePhone func(string) (string, error)) bool {
	for _, p := range phones {
		if e, err := parsePhone(p); err == nil && e == mobile {
			return true
		}
	}
	return false
}

// handleProvisioningStatus serves GET /partner/v1/provisioning/:id: the
// request's status, for the partner that made it only.
func (a *API) handleProvisioningStatus(c fiber.Ctx) error {
	tok, err := a.authorize(c, oidc.ScopeAccountProvisioning, "provisioning_status", a.cfg.UsersPerMinute)
	if err != nil {
		return a.answer(c, err)
	}
	id := c.Params("id")
	p, ok, err := a.st.provisioning(c.Context(), id)
	if err != nil {
		return a.answer(c, err)
	}
	if !ok || p.ClientID != tok.ClientID {
		return a.answer(c, fail(http.StatusNotFound, CodeNotFound, "no provisioning request of this client has this id"))
	}
	if p.Status == StatusPending && !a.d.Now().Before(p.ExpiresAt) {
		p.Status = StatusExpired
	}
	a.record(c.Context(), actor(c), "partner.provisioning_read", true, "", map[string]any{"client_id": tok.ClientID, "provisioning_id": p.ID, "status": p.Status})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(p)
}
