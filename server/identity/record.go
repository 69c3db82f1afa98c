package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/trust"
)

// Routes by which a record was proven.
const (
	RoutePDSMatch  = "pds_match"  // P5
	RouteGP        = "gp_linkage" // P9 by GP online-services details
	RoutePhotoID   = "photo_id"   // P9 by photo ID and video
	routeUnchanged = ""
)

// Record is what identity knows of a proven person: what PDS returned, the
// GP registration details, and how it was proven.
type Record struct {
	AccountID       string    `db:"account_id"`
	NHSNumber       string    `db:"nhs_number"`
	Route           string    `db:"route"`
	GivenName       string    `db:"given_name"`
	FamilyName      string    `db:"family_name"`
	BirthDate       string    `db:"birth_date"`
	Gender          string    `db:"gender"`
	Postcode        string    `db:"postcode"`
	GPODSCode       string    `db:"gp_ods_code"`
	GPAccountID     string    `db:"gp_account_id"`
	GPLinkageKey    string    `db:"gp_linkage_key"`
	GPLinkageODS    string    `db:"gp_linkage_ods"`
	PhonePDSMatched bool      `db:"phone_pds_matched"`
	Restricted      bool      `db:"restricted"`
	PDSVersion      string    `db:"pds_version"`
	CheckedAt       time.Time `db:"checked_at"`
	CheckPending    bool      `db:"check_pending"`
	CreatedAt       time.Time `db:"created_at"`
	UpdatedAt       time.Time `db:"updated_at"`
}

// HasGPCredentials reports whether GP online-services registration
// details can be released.
func (r Record) HasGPCredentials() bool {
	return r.GPLinkageKey != "" && r.GPAccountID != "" && r.GPLinkageODS != ""
}

const recordCols = `account_id, nhs_number, route, given_name, family_name, birth_date, gender, postcode,
	gp_ods_code, gp_account_id, gp_linkage_key, gp_linkage_ods, phone_pds_matched, restricted, pds_version,
	checked_at, check_pending, created_at, updated_at`

// Record returns the account's identity record; ok is false for an account
// that has proven nothing (P0).
func (s *Service) Record(ctx context.Context, accountID string) (Record, bool, error) {
	var r Record
	err := s.d.DB.GetContext(ctx, &r, s.d.DB.Rebind(`SELECT `+recordCols+` FROM identity_records WHERE account_id = ?`), accountID)
	if migrations.IsNoRows(err) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("identity record: %w", err)
	}
	return r, true, nil
}

// save stores what PDS says of the person behind accountID, creating the
// record or updating it. route is the route of a new proof (or
// routeUnchanged for a refresh). The phone match, once true, stays true.
func (s *Service) save(ctx context.Context, acct account.Account, p pds.Patient, route string, link *gp.Linkage) (Record, error) {
	now := s.nowUTC()
	old, exists, err := s.Record(ctx, acct.ID)
	if err != nil {
		return Record{}, err
	}
	r := old
	if !exists {
		r = Record{AccountID: acct.ID, CreatedAt: now}
	}
	r.NHSNumber = p.NHSNumber.String()
	if route != routeUnchanged {
		r.Route = route
	}
	r.GivenName, r.FamilyName, r.BirthDate, r.Gender = p.GivenName(), p.Family, p.BirthDate, p.Gender
	r.Postcode, r.GPODSCode, r.Restricted, r.PDSVersion = p.Postcode, p.GPODSCode, p.Restricted, p.Version
	r.PhonePDSMatched = r.PhonePDSMatched || phoneMatches(acct.PhoneNumber(), p.Phones)
	if link != nil {
		r.GPAccountID, r.GPLinkageKey, r.GPLinkageODS = link.AccountID, link.LinkageKey, link.ODSCode
	}
	r.CheckedAt, r.CheckPending, r.UpdatedAt = now, false, now
	_, err = s.d.DB.NamedExecContext(ctx, `INSERT INTO identity_records (`+recordCols+`) VALUES (
		:account_id, :nhs_number, :route, :given_name, :family_name, :birth_date, :gender, :postcode,
		:gp_ods_code, :gp_account_id, :gp_linkage_key, :gp_linkage_ods, :phone_pds_matched, :restricted, :pds_version,
		:checked_at, :check_pending, :created_at, :updated_at)
		ON CONFLICT (account_id) DO UPDATE SET nhs_number = excluded.nhs_number, route = excluded.route,
		given_name = excluded.given_name, family_name = excluded.family_name, birth_date = excluded.birth_date,
		gender = excluded.gender, postcode = excluded.postcode, gp_ods_code = excluded.gp_ods_code,
		gp_account_id = excluded.gp_account_id, gp_linkage_key = excluded.gp_linkage_key, gp_linkage_ods = excluded.gp_linkage_ods,
		phone_pds_matched = excluded.phone_pds_matched, restricted = excluded.restricted, pds_version = excluded.pds_version,
		checked_at = excluded.checked_at, check_pending = excluded.check_pending, updated_at = excluded.updated_at`, r)
	if migrations.IsUniqueViolation(err) {
		return Record{}, ErrNHSNumberInUse
	}
	if err != nil {
		return Record{}, fmt.Errorf("save identity record: %w", err)
	}
	return r, nil
}

// phoneMatches reports whether the login phone (E.164) is among the PDS
// record's numbers, compared as E.164.
func phoneMatches(login string, pdsPhones []string) bool {
	if login == "" {
		return false
	}
	return slices.ContainsFunc(pdsPhones, func(p string) bool {
		e, err := account.ParsePhone(p, true)
		return err == nil && e == login
	})
}

// usable refuses a PDS record that cannot prove anyone online.
func usable(p pds.Patient) error {
	switch {
	case p.Deceased:
		return ErrDeceased
	case p.Restricted:
		return ErrRestricted
	}
	return nil
}

// attempt takes one of the account's daily attempts of kind.
func (s *Service) attempt(ctx context.Context, a audit.Actor, kind, accountID string) error {
	ok, err := s.d.Limiter.Take(ctx, "identity-"+kind+":"+accountID, MatchAttemptsPerDay, 24*time.Hour)
	if err != nil {
		return fmt.Errorf("identity attempts: %w", err)
	}
	if !ok {
		s.record(ctx, a, "identity."+kind+"_refused", false, accountID, map[string]any{"reason": "attempts"})
		return ErrAttempts
	}
	return nil
}

// Details are what a person types to be matched in PDS.
type Details struct {
	BirthDate  string // YYYY-MM-DD
	FamilyName string
	GivenName  string
	// Postcode is optional but narrows the search.
	Postcode string
	// NHSNumber is optional.
	NHSNumber string
}

// normalize checks the details and returns the PDS query they make.
func (d Details) query() (pds.Query, error) {
	q := pds.Query{Family: strings.TrimSpace(d.FamilyName), BirthDate: strings.TrimSpace(d.BirthDate), Postcode: strings.TrimSpace(d.Postcode)}
	if g := strings.TrimSpace(d.GivenName); g != "" {
		q.Given = []string{g}
	}
	var problems []string
	if q.Family == "" || len(q.Family) > 100 {
		problems = append(problems, "family name")
	}
	if len(q.Given) == 0 || len(q.Given[0]) > 100 {
		problems = append(problems, "given name")
	}
	if t, err := time.Parse("2006-01-02", q.BirthDate); err != nil || t.After(time.Now()) || t.Year() < 1880 {
		problems = append(problems, "date of birth")
	}
	// The postcode narrows the search; without it, people sharing a name
	// and birthday are too many matches.
	if pc := strings.ReplaceAll(q.Postcode, " ", ""); pc != "" && (len(pc) < 5 || len(pc) > 7) {
		problems = append(problems, "postcode")
	}
	if raw := strings.TrimSpace(d.NHSNumber); raw != "" {
		n, err := nhsnumber.Parse(raw)
		if err != nil {
			problems = append(problems, "NHS number")
		}
		q.NHSNumber = n
	}
	if len(problems) > 0 {
		return pds.Query{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, ", "))
	}
	return q, nil
}

// MatchPDS proves P5: the details must match exactly one PDS record that
// is neither deceased nor restricted. The NHS number is then connected to
// the account and the details PDS holds are stored. At most
// MatchAttemptsPerDay attempts per day; every attempt is audited.
func (s *Service) MatchPDS(ctx context.Context, a audit.Actor, accountID string, d Details) (Record, error) {
	q, err := d.query()
	if err != nil {
		return Record{}, err
	}
	if err := s.attempt(ctx, a, "pds_match", accountID); err != nil {
		return Record{}, err
	}
	acct, err := s.d.Accounts.Account(ctx, accountID)
	if err != nil {
		return Record{}, fmt.Errorf("identity: %w", err)
	}
	fail := func(err error, reason string) (Record, error) {
		s.record(ctx, a, "identity.pds_match", false, accountID, map[string]any{"reason": reason})
		return Record{}, err
	}
	p, err := s.d.PDS.Search(ctx, q)
	switch {
	case errors.Is(err, pds.ErrNotFound):
		return fail(ErrNoMatch, "no_match")
	case errors.Is(err, pds.ErrTooManyMatches):
		return fail(ErrTooManyMatches, "too_many_matches")
	case errors.Is(err, pds.ErrUnavailable):
		return fail(fmt.Errorf("%w: %w", ErrUnavailable, err), "pds_unavailable")
	case err != nil:
		return Record{}, fmt.Errorf("pds search: %w", err)
	}
	if err := usable(p); err != nil {
		reason := "deceased"
		if errors.Is(err, ErrRestricted) {
			reason = "restricted"
		}
		return fail(err, reason)
	}
	if old, ok, err := s.Record(ctx, accountID); err != nil {
		return Record{}, err
	} else if ok && old.NHSNumber != p.NHSNumber.String() {
		return fail(ErrMismatch, "other_person")
	}
	route := RoutePDSMatch
	if acct.Level() >= trust.P9 {
		route = routeUnchanged // a P9 person re-matching keeps their route
	}
	r, err := s.save(ctx, acct, p, route, nil)
	if errors.Is(err, ErrNHSNumberInUse) {
		return fail(err, "nhs_number_in_use")
	}
	if err != nil {
		return Record{}, err
	}
	if err := s.d.Accounts.RaiseLevel(ctx, a, accountID, trust.P5); err != nil {
		return Record{}, err
	}
	s.record(ctx, a, "identity.pds_match", true, accountID, map[string]any{"phone_pds_matched": r.PhonePDSMatched})
	return r, nil
}

// VerifyGP proves P9 with GP online-services registration details: the GP
// system names an NHS number, PDS must hold a usable record of it, and it
// must be the person matched before if there was one. The details are kept
// for gp_integration_credentials.
func (s *Service) VerifyGP(ctx context.Context, a audit.Actor, accountID string, d gp.Details) (Record, error) {
	d, err := d.Normalize()
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.attempt(ctx, a, "gp", accountID); err != nil {
		return Record{}, err
	}
	acct, err := s.d.Accounts.Account(ctx, accountID)
	if err != nil {
		return Record{}, fmt.Errorf("identity: %w", err)
	}
	fail := func(err error, reason string) (Record, error) {
		s.record(ctx, a, "identity.gp_verify", false, accountID, map[string]any{"reason": reason})
		return Record{}, err
	}
	nhs, err := s.d.GP.Verify(ctx, d)
	switch {
	case errors.Is(err, gp.ErrNoMatch):
		return fail(ErrNoMatch, "gp_no_match")
	case errors.Is(err, gp.ErrUnavailable):
		return fail(fmt.Errorf("%w: %w", ErrUnavailable, err), "gp_unavailable")
	case errors.Is(err, gp.ErrInvalid):
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	case err != nil:
		return Record{}, fmt.Errorf("gp verify: %w", err)
	}
	p, err := s.d.PDS.Read(ctx, nhs)
	switch {
	case errors.Is(err, pds.ErrNotFound), errors.Is(err, pds.ErrInvalidNHSNumber):
		return fail(ErrNoMatch, "pds_no_record")
	case errors.Is(err, pds.ErrUnavailable):
		return fail(fmt.Errorf("%w: %w", ErrUnavailable, err), "pds_unavailable")
	case err != nil:
		return Record{}, fmt.Errorf("pds read: %w", err)
	}
	if err := usable(p); err != nil {
		return fail(err, "unusable_record")
	}
	if old, ok, err := s.Record(ctx, accountID); err != nil {
		return Record{}, err
	} else if ok && old.NHSNumber != p.NHSNumber.String() {
		return fail(ErrMismatch, "other_person")
	}
	link := gp.Linkage{NHSNumber: nhs, ODSCode: d.ODSCode, AccountID: d.AccountID, LinkageKey: d.LinkageKey}
	r, err := s.save(ctx, acct, p, RouteGP, &link)
	if errors.Is(err, ErrNHSNumberInUse) {
		return fail(err, "nhs_number_in_use")
	}
	if err != nil {
		return Record{}, err
	}
	if err := s.d.Accounts.RaiseLevel(ctx, a, accountID, trust.P9); err != nil {
		return Record{}, err
	}
	s.record(ctx, a, "identity.gp_verify", true, accountID, map[string]any{"ods_code": d.ODSCode})
	return r, nil
}
