// Package identity proves who people are and keeps it current:
//
//   - P5: the person's details (date of birth, names, postcode, optionally
//     their NHS number) match exactly one record in the Personal
//     Demographics Service (MatchPDS);
//   - P9 by GP online-services registration details: the linkage key, ODS
//     code and account id identify an NHS number in the GP system, which
//     must agree with PDS and with any earlier P5 match (VerifyGP);
//   - P9 by photo ID and video: the person uploads evidence (SubmitPhotoCheck)
//     that an ID checker reviews in the back office (Queue, Claim, Decide);
//   - on every login, a PDS check refreshes the GP practice and linkage,
//     recomputes phone_number_pds_matched and blocks the account of a person
//     marked deceased (CheckLogin).
//
// The external systems (PDS, the GP system) and the evidence store sit
// behind the interfaces of the subpackages pds, gp and media. The level
// itself stays on the account; this package raises it through Accounts.
package identity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/trust"
)

// Sentinel errors callers branch on (pages map each to a message).
var (
	// ErrNoMatch: no PDS record matches the details (or the GP details do
	// not verify).
	ErrNoMatch = errors.New("identity: no match")
	// ErrTooManyMatches: more than one PDS record matches; more details
	// (the NHS number) would narrow it.
	ErrTooManyMatches = errors.New("identity: more than one match")
	// ErrDeceased: the matching PDS record is of a person who has died.
	ErrDeceased = errors.New("identity: the record is marked deceased")
	// ErrRestricted: the matching record is restricted and cannot be used
	// online.
	ErrRestricted = errors.New("identity: the record is restricted")
	// ErrAttempts: too many attempts today.
	ErrAttempts = errors.New("identity: too many attempts")
	// ErrNHSNumberInUse: another account is already connected to this NHS
	// number.
	ErrNHSNumberInUse = errors.New("identity: NHS number connected to another account")
	// ErrMismatch: the GP details name another person than the one matched
	// before.
	ErrMismatch = errors.New("identity: details belong to another person")
	// ErrUnavailable: PDS or the GP system could not be asked; try later.
	ErrUnavailable = errors.New("identity: a record system is unavailable")
	// ErrInvalid: malformed input; the wrapped message names the field.
	ErrInvalid = errors.New("identity: invalid details")
	// ErrCheckOpen: a photo ID check is already waiting for review.
	ErrCheckOpen = errors.New("identity: a photo ID check is already open")
	// ErrNotFound: no such check (or record).
	ErrNotFound = errors.New("identity: not found")
	// ErrClaimed: another reviewer holds the check, or it is decided.
	ErrClaimed = errors.New("identity: the check is held by someone else or already decided")
	// ErrForbidden: the staff member's role does not allow this.
	ErrForbidden = errors.New("identity: not allowed")
	// ErrOwnCheck: a checker tried to review their own account's check.
	ErrOwnCheck = errors.New("identity: nobody reviews their own identity check")
	// ErrBlocked: the account may not sign in (its person is deceased).
	ErrBlocked = errors.New("identity: the account is blocked")
)

// Limits and defaults.
const (
	// MatchAttemptsPerDay bounds P5 attempts (and GP details attempts) per
	// account per day.
	MatchAttemptsPerDay = 3
	// DefaultMediaRetention is how long evidence is kept after a decision.
	DefaultMediaRetention = 7 * 24 * time.Hour
)

// Accounts is what identity needs of the account capability;
// *account.Service implements it.
type Accounts interface {
	Account(ctx context.Context, id string) (account.Account, error)
	RaiseLevel(ctx context.Context, a audit.Actor, accountID string, level trust.Level) error
	Block(ctx context.Context, a audit.Actor, accountID, reason string) error
	SendSecurityAlert(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, text string) error
}

// Grants revokes what relying parties hold for an account;
// *oidc.Server implements it.
type Grants interface {
	RevokeAccount(ctx context.Context, accountID string) (int64, error)
}

// Media stores photo ID evidence; *media.Store implements it.
type Media interface {
	Put(ctx context.Context, kind media.Kind, r io.Reader) (media.Info, error)
	Get(ctx context.Context, id string, kind media.Kind) ([]byte, media.Info, error)
	Delete(ctx context.Context, id string) error
}

// Counter counts per-login PDS checks by outcome.
type Counter interface {
	Inc(outcome string)
}

// Config holds identity's rules.
type Config struct {
	// MediaRetention is how long evidence is kept after a decision.
	MediaRetention time.Duration
}

// Deps are identity's collaborators.
type Deps struct {
	DB       *sqlx.DB
	Accounts Accounts
	Grants   Grants
	PDS      pds.Directory
	GP       gp.System
	Media    Media
	Limiter  *ratelimit.Limiter
	Audit    *audit.Log
	Checks   Counter
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service proves identities. It is safe for concurrent use.
type Service struct {
	d   Deps
	cfg Config
	now func() time.Time
	log *slog.Logger
}

// New returns the service.
func New(cfg Config, d Deps) (*Service, error) {
	if d.DB == nil || d.Accounts == nil || d.PDS == nil || d.GP == nil || d.Media == nil || d.Limiter == nil || d.Audit == nil {
		return nil, errors.New("identity: db, accounts, pds, gp, media, limiter and audit are required")
	}
	if cfg.MediaRetention <= 0 {
		cfg.MediaRetention = DefaultMediaRetention
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Checks == nil {
		d.Checks = nopCounter{}
	}
	return &Service{d: d, cfg: cfg, now: d.Now, log: d.Logger}, nil
}

type nopCounter struct{}

func (nopCounter) Inc(string) {}

func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Service) record(ctx context.Context, a audit.Actor, typ string, ok bool, accountID string, detail map[string]any) {
	outcome := audit.Success
	if !ok {
		outcome = audit.Failure
	}
	if err := s.d.Audit.Record(context.WithoutCancel(ctx), a, typ, outcome, accountID, detail); err != nil {
		s.log.Error("identity audit event lost", "type", typ, "err", err)
	}
}
