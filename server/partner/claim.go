package partner

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/web"
)

// The patient's claim of a provisioned account, from the emailed link:
//
//	GET  /claim-account?token=…   the link; what will happen
//	POST /claim-account/start     text a security code to the provisioned mobile
//	POST /claim-account/code      the code: the mobile is the patient's
//	POST /claim-account/password  a new password, or the existing account's
//	POST /claim-account/terms     the terms → account created or found,
//	                              PDS read again, P9, request claimed
//
// The journey's state is kept in the session under claimKey; every step
// re-reads the request, which must still be pending and unexpired.

// purposeClaim is the security code's purpose (its subject is the
// provisioning id).
const purposeClaim account.Purpose = "provisioning_claim"

// claimKey is the session key of the journey's state.
const claimKey = "partner_claim"

// claimState is the journey's progress.
type claimState struct {
	ID string `json:"id"`
	// Existing is the account the claim raises ("" for a new account).
	Existing string `json:"existing,omitempty"`
	CodeOK   bool   `json:"code_ok,omitempty"`
	// Hash is the new password's hash, or "checked" once an existing
	// account's password was entered.
	Hash string `json:"hash,omitempty"`
}

// claimView is the data of the claim page.
type claimView struct {
	Step     string
	ODSCode  string
	PhoneEnd string
	Existing bool
	Terms    string
}

// RegisterPages mounts the claim journey's pages.
func (a *API) RegisterPages(p web.Pages) {
	p.Get(PathClaim, a.handleClaimLink)
	p.Post(PathClaim+"/start", a.handleClaimStart)
	p.Post(PathClaim+"/code", a.handleClaimCode)
	p.Post(PathClaim+"/password", a.handleClaimPassword)
	p.Post(PathClaim+"/terms", a.handleClaimTerms)
}

// linkGone answers a link that is unknown, used or expired.
func (a *API) linkGone(c fiber.Ctx) error {
	return a.d.Renderer.ErrorPage(c, http.StatusGone, "This link has expired or has already been used",
		"Ask the healthcare provider who set up your account to do it again, or create an account yourself.")
}

// open reads the request of the journey in the session, refusing one
// that is no longer pending or has expired.
func (a *API) open(c fiber.Ctx) (claimState, provisionRow, bool, error) {
	var st claimState
	if !web.Sess(c).Get(claimKey, &st) || st.ID == "" {
		return st, provisionRow{}, false, nil
	}
	row, ok, err := a.st.provisioning(c.Context(), st.ID)
	if err != nil || !ok {
		return st, row, false, err
	}
	if row.Status != StatusPending || !a.d.Now().Before(row.ExpiresAt) {
		return st, row, false, nil
	}
	return st, row, true, nil
}

// existingAccount is the account the claim raises: the one proven with
// the patient's NHS number, else the one with the email address.
func (a *API) existingAccount(ctx context.Context, row provisionRow) (string, error) {
	id, ok, err := a.accountByNHSNumber(ctx, row.NHSNumber)
	if err != nil || ok {
		return id, err
	}
	acct, err := a.d.Accounts.AccountByEmail(ctx, row.Email)
	if errors.Is(err, account.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return acct.ID, nil
}

func phoneEnd(e164 string) string {
	if len(e164) < 3 {
		return e164
	}
	return e164[len(e164)-3:]
}

func (a *API) renderClaim(c fiber.Ctx, status int, title string, errs web.Errors, st claimState, row provisionRow, step string) error {
	return a.d.Renderer.Render(c, status, "claim", web.View{Title: title, Errors: errs, Data: claimView{
		Step: step, ODSCode: row.ODSCode, PhoneEnd: phoneEnd(row.Mobile), Existing: st.Existing != "", Terms: a.cfg.TermsVersion,
	}})
}

// handleClaimLink serves the emailed link.
func (a *API) handleClaimLink(c fiber.Ctx) error {
	token := c.Query("token")
	if token == "" || len(token) > 128 {
		return a.linkGone(c)
	}
	row, ok, err := a.st.provisioningByToken(c.Context(), a.d.Keys.MAC(macClaim, token))
	if err != nil {
		return err
	}
	if !ok || row.Status != StatusPending || !a.d.Now().Before(row.ExpiresAt) {
		a.record(c.Context(), actor(c), "partner.claim_link_invalid", false, "", nil)
		return a.linkGone(c)
	}
	existing, err := a.existingAccount(c.Context(), row)
	if err != nil {
		return err
	}
	st := claimState{ID: row.ID, Existing: existing}
	web.Sess(c).Put(claimKey, st)
	a.record(c.Context(), actor(c), "partner.claim_opened", true, existing, map[string]any{"provisioning_id": row.ID})
	return a.renderClaim(c, http.StatusOK, "Claim your account", nil, st, row, "start")
}

// handleClaimStart texts the security code.
func (a *API) handleClaimStart(c fiber.Ctx) error {
	st, row, ok, err := a.open(c)
	if err != nil {
		return err
	}
	if !ok {
		return a.linkGone(c)
	}
	if err := a.d.Accounts.SendCode(c.Context(), actor(c), purposeClaim, row.ID, row.Mobile, st.Existing); err != nil {
		if errors.Is(err, account.ErrTooManyCodes) || errors.Is(err, account.ErrSendFailed) {
			return a.renderClaim(c, http.StatusTooManyRequests, "Claim your account",
				web.Errors{{Field: "code", Message: "We could not send a security code. Wait a few minutes and try again."}}, st, row, "start")
		}
		return err
	}
	return a.renderCode(c, http.StatusOK, nil, row)
}

func (a *API) renderCode(c fiber.Ctx, status int, errs web.Errors, row provisionRow) error {
	return a.d.Renderer.Render(c, status, "code", web.View{Title: "Enter the security code", Errors: errs, Data: account.CodePageData{
		Action: PathClaim + "/code", Resend: PathClaim + "/start", SentTo: web.NationalPhone(row.Mobile), Sent: true,
	}})
}

// handleClaimCode checks the code.
func (a *API) handleClaimCode(c fiber.Ctx) error {
	st, row, ok, err := a.open(c)
	if err != nil {
		return err
	}
	if !ok {
		return a.linkGone(c)
	}
	err = a.d.Accounts.VerifyCode(c.Context(), actor(c), purposeClaim, row.ID, c.FormValue("code"), st.Existing)
	var wrong *account.WrongCodeError
	switch {
	case errors.As(err, &wrong):
		return a.renderCode(c, http.StatusUnprocessableEntity, web.Errors{{Field: "code", Message: "The security code is not right. Check it and try again."}}, row)
	case errors.Is(err, account.ErrCodeExpired):
		return a.renderCode(c, http.StatusUnprocessableEntity, web.Errors{{Field: "code", Message: "The security code has expired. Ask for a new code."}}, row)
	case err != nil:
		return err
	}
	st.CodeOK = true
	web.Sess(c).Put(claimKey, st)
	return a.renderClaim(c, http.StatusOK, a.passwordTitle(st), nil, st, row, "password")
}

func (a *API) passwordTitle(st claimState) string {
	if st.Existing != "" {
		return "Enter your password"
	}
	return "Create a password"
}

// handleClaimPassword takes the new password, or checks the existing
// account's.
func (a *API) handleClaimPassword(c fiber.Ctx) error {
	st, row, ok, err := a.open(c)
	if err != nil {
		return err
	}
	if !ok || !st.CodeOK {
		return a.linkGone(c)
	}
	pw := c.FormValue("password")
	if st.Existing != "" {
		acct, err := a.d.Accounts.Account(c.Context(), st.Existing)
		if err != nil {
			return err
		}
		if _, err := a.d.Accounts.CheckPassword(c.Context(), actor(c), acct.Email, pw); err != nil {
			if errors.Is(err, account.ErrBadPassword) || errors.Is(err, account.ErrLocked) {
				return a.renderClaim(c, http.StatusUnprocessableEntity, a.passwordTitle(st),
					web.Errors{{Field: "password", Message: "The password is not right."}}, st, row, "password")
			}
			return err
		}
		st.Hash = "checked"
	} else {
		hash, err := a.d.Accounts.CheckNewPassword(c.Context(), row.Email, pw)
		if msg := password.Message(err); msg != "" {
			return a.renderClaim(c, http.StatusUnprocessableEntity, a.passwordTitle(st),
				web.Errors{{Field: "password", Message: msg}}, st, row, "password")
		}
		if err != nil {
			return err
		}
		st.Hash = hash
	}
	web.Sess(c).Put(claimKey, st)
	return a.renderClaim(c, http.StatusOK, "Accept the terms of use", nil, st, row, "terms")
}

// handleClaimTerms finishes the claim.
func (a *API) handleClaimTerms(c fiber.Ctx) error {
	st, row, ok, err := a.open(c)
	if err != nil {
		return err
	}
	if !ok || !st.CodeOK || st.Hash == "" {
		return a.linkGone(c)
	}
	if c.FormValue("terms") != "accept" {
		return a.renderClaim(c, http.StatusUnprocessableEntity, "Accept the terms of use",
			web.Errors{{Field: "terms", Message: "Select that you accept the terms of use"}}, st, row, "terms")
	}
	ctx, act := c.Context(), actor(c)
	accountID := st.Existing
	if accountID == "" {
		acct, err := a.d.Accounts.CreateProvisionedAccount(ctx, act, row.Email, row.Mobile, st.Hash)
		if errors.Is(err, account.ErrEmailTaken) {
			return a.d.Renderer.ErrorPage(c, http.StatusConflict, "An account with this email address already exists",
				"Open the link in the email again to claim the account you have.")
		}
		if err != nil {
			return err
		}
		accountID = acct.ID
	}
	nhs, err := nhsnumber.Parse(row.NHSNumber)
	if err != nil {
		return err
	}
	if _, err := a.d.Identity.ProveProvisioned(ctx, act, accountID, nhs); err != nil {
		a.record(ctx, act, "partner.claim_refused", false, accountID, map[string]any{"provisioning_id": row.ID, "error": err.Error()})
		if errors.Is(err, identity.ErrUnavailable) {
			return a.d.Renderer.ErrorPage(c, http.StatusServiceUnavailable, "Sorry, there is a problem with the service",
				"We could not check your details. Try again later: your link still works.")
		}
		return a.d.Renderer.ErrorPage(c, http.StatusConflict, "We could not set up your account",
			"Your details no longer match the records we hold. Contact the healthcare provider who set up your account.")
	}
	claimed, err := a.st.markClaimed(ctx, row.ID, accountID, a.d.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return err
	}
	web.Sess(c).Delete(claimKey)
	a.record(ctx, act, "partner.claimed", claimed, accountID, map[string]any{"provisioning_id": row.ID, "client_id": row.ClientID, "existing_account": st.Existing != ""})
	return a.renderClaim(c, http.StatusOK, "Your account is ready", nil, st, row, "done")
}
