// Package partner serves NHS login's partner APIs (documented in
// docs/api/partner-users.yaml and docs/api/partner-provisioning.yaml):
//
//   - the users endpoint (GET /partner/v2/users): a partner client with
//     the users_endpoint scope looks a person up by NHS number and/or
//     email and gets, per matching account, the person's sub (the same
//     for every client: idlink's subject identifiers are public), the
//     account's status and its identity proofing level;
//   - account provisioning (POST /partner/v1/provisioning, GET
//     /partner/v1/provisioning/:id): a partner client with the
//     account_provisioning scope submits a patient's demographics, mobile
//     number and email and its organisation's ODS code; idlink checks them
//     against PDS and answers with a provisioning id or a specific error,
//     and emails the patient a link to claim a P9 account.
//
// Partners authenticate with an access token of the client_credentials
// grant (private_key_jwt at /token; server/oidc). Every call is rate
// limited per client and audited (partner.*). Every error is JSON
// {"error": "<stable code>", "error_description": "..."}; the codes are the
// Code* constants.
package partner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/web"
)

// Paths of the APIs.
const (
	PathUsers        = "/partner/v2/users"
	PathProvisioning = "/partner/v1/provisioning"
	// PathClaim is the page of the emailed link where the patient claims
	// a provisioned account.
	PathClaim = "/claim-account"
)

// Stable error codes of the APIs.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeTooLarge          = "request_too_large"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	CodeRateLimited       = "rate_limited"
	CodeServerError       = "server_error"
	CodeNotFound          = "not_found"

	// Provisioning refusals, one per eligibility rule.
	CodeInvalidODSCode      = "invalid_ods_code"
	CodeInvalidNHSNumber    = "invalid_nhs_number"
	CodeInvalidDemographics = "invalid_demographics"
	CodeInvalidMobile       = "invalid_mobile_number"
	CodeInvalidEmail        = "invalid_email"
	CodePDSNoMatch          = "pds_no_match"
	CodePDSMultipleMatches  = "pds_multiple_matches"
	CodePDSDeceased         = "pds_patient_deceased"
	CodePDSRestricted       = "pds_record_restricted"
	CodeMobileMismatch      = "mobile_not_in_pds"
	CodeAlreadyP9           = "p9_account_exists"
	CodeEmailInUse          = "email_in_use"
	CodeAlreadyProvisioning = "provisioning_in_progress"
	CodePDSUnavailable      = "pds_unavailable"
	CodeEmailFailed         = "email_send_failed"
)

// Defaults of Config.
const (
	DefaultUsersPerMinute       = 120
	DefaultProvisionsPerMinute  = 30
	DefaultProvisioningLifetime = 14 * 24 * time.Hour
	maxProvisioningBody         = 16 << 10
)

// Config tunes the APIs.
type Config struct {
	// Issuer is the server's public URL, for the claim links.
	Issuer string
	// UsersPerMinute bounds users endpoint calls per client.
	UsersPerMinute int
	// ProvisionsPerMinute bounds provisioning calls per client.
	ProvisionsPerMinute int
	// ProvisioningLifetime is how long a provisioning id can be claimed.
	ProvisioningLifetime time.Duration
	// TermsVersion is the version of the terms a claim accepts.
	TermsVersion string
}

// Tokens verifies partner access tokens; *oidc.Server implements it.
type Tokens interface {
	VerifyClientToken(ctx context.Context, raw string) (oidc.ClientToken, error)
}

// Subjects gives a person's sub; *oidc.Server implements it.
type Subjects interface {
	SubjectFor(ctx context.Context, accountID string) (string, error)
}

// Accounts reads accounts; *account.Service implements it.
type Accounts interface {
	Account(ctx context.Context, id string) (account.Account, error)
	AccountByEmail(ctx context.Context, email string) (account.Account, error)
	// ParsePhone turns a UK mobile number into E.164.
	ParsePhone(raw string) (string, error)
	// The claim journey's pieces, shared with the signup pages.
	SendCode(ctx context.Context, a audit.Actor, purpose account.Purpose, subject, phone, accountID string) error
	VerifyCode(ctx context.Context, a audit.Actor, purpose account.Purpose, subject, code, accountID string) error
	CheckPassword(ctx context.Context, a audit.Actor, email, pw string) (account.Account, error)
	CheckNewPassword(ctx context.Context, email, pw string) (string, error)
	CreateProvisionedAccount(ctx context.Context, a audit.Actor, email, phone, passwordHash string) (account.Account, error)
}

// Keys computes keyed hashes of secrets; *secrets.Keyring implements it.
type Keys interface {
	MAC(purpose, value string) string
}

// Identity reads what identity proofing established; *identity.Service
// implements it.
type Identity interface {
	Record(ctx context.Context, accountID string) (identity.Record, bool, error)
	// AccountByNHSNumber gives identity.ErrNotFound when nobody is
	// proven with the number.
	AccountByNHSNumber(ctx context.Context, raw string) (string, error)
	ProveProvisioned(ctx context.Context, a audit.Actor, accountID string, nhs nhsnumber.Number) (identity.Record, error)
}

// Limiter counts calls per key in a window; *ratelimit.Limiter implements
// it.
type Limiter interface {
	Take(ctx context.Context, key string, limit int, window time.Duration) (bool, error)
}

// Auditor records audit events; *audit.Log implements it.
type Auditor interface {
	Record(ctx context.Context, a audit.Actor, typ string, outcome audit.Outcome, accountID string, detail map[string]any) error
}

// Deps are the capabilities the APIs use.
type Deps struct {
	DB       *sqlx.DB
	Tokens   Tokens
	Subjects Subjects
	Accounts Accounts
	Identity Identity
	PDS      pds.Directory
	Keys     Keys
	Sender   notify.Sender
	Renderer *web.Renderer
	Limiter  Limiter
	Audit    Auditor
	Logger   *slog.Logger
	Now      func() time.Time
}

// API serves the partner APIs.
type API struct {
	cfg Config
	d   Deps
	st  store
}

// New builds the APIs.
func New(cfg Config, d Deps) (*API, error) {
	if d.DB == nil || d.Tokens == nil || d.Subjects == nil || d.Accounts == nil || d.Identity == nil || d.Limiter == nil || d.Audit == nil ||
		d.PDS == nil || d.Keys == nil || d.Sender == nil || d.Renderer == nil {
		return nil, errors.New("partner: missing dependency")
	}
	if cfg.UsersPerMinute <= 0 {
		cfg.UsersPerMinute = DefaultUsersPerMinute
	}
	if cfg.ProvisionsPerMinute <= 0 {
		cfg.ProvisionsPerMinute = DefaultProvisionsPerMinute
	}
	if cfg.ProvisioningLifetime <= 0 {
		cfg.ProvisioningLifetime = DefaultProvisioningLifetime
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &API{cfg: cfg, d: d, st: store{db: d.DB}}, nil
}

// record writes an audit event; a failure to audit is logged.
func (a *API) record(ctx context.Context, act audit.Actor, typ string, ok bool, accountID string, detail map[string]any) {
	outcome := audit.Success
	if !ok {
		outcome = audit.Failure
	}
	if err := a.d.Audit.Record(context.WithoutCancel(ctx), act, typ, outcome, accountID, detail); err != nil {
		a.d.Logger.Error("partner audit event lost", "type", typ, "err", err)
	}
}

// ForgetAccount deletes what the partner APIs keep about an account that
// is being deleted: the provisioning requests it claimed.
func (a *API) ForgetAccount(ctx context.Context, accountID string) error {
	return a.st.forgetAccount(ctx, accountID)
}

// accountByNHSNumber finds the account proven with nhs (ok false when
// there is none).
func (a *API) accountByNHSNumber(ctx context.Context, nhs string) (string, bool, error) {
	id, err := a.d.Identity.AccountByNHSNumber(ctx, nhs)
	if errors.Is(err, identity.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("account by NHS number: %w", err)
	}
	return id, true, nil
}
