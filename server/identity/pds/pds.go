// Package pds looks people up in the Personal Demographics Service (PDS), the
// NHS's register of patients, through its FHIR R4 API.
//
// Callers use the Directory interface: Read a record by NHS number, or Search
// for the single person matching some demographics. Two implementations are
// provided:
//
//   - Client (NewClient), the real API with application-restricted access:
//     a signed-JWT client-credentials token, X-Request-ID on every call,
//     retries with back-off on 429 and 5xx, a per-call timeout;
//   - Sandbox (NewSandbox), an in-process directory over a shipped dataset of
//     FHIR Patient resources (sandbox_patients.json), for development and
//     tests. Package pdsfake serves the same dataset over HTTP for tests of
//     the real client.
//
// Results are returned as Patient, this package's model, not raw FHIR.
// Failures wrap one of the sentinel errors, so that callers can tell "no
// such person" (ErrNotFound) from "PDS is down" (ErrUnavailable).
//
// Restricted records (meta.security code R) are returned, not refused: PDS
// withholds their address, telephone numbers and GP, and Patient.Restricted
// is set so that the caller can decide what to do.
package pds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// Directory finds people in PDS. Implementations are safe for concurrent use.
type Directory interface {
	// Read returns the record of the given NHS number. A number PDS does not
	// know (or has invalidated) gives ErrNotFound.
	Read(ctx context.Context, nhs nhsnumber.Number) (Patient, error)
	// Search returns the one record matching q. No match gives ErrNotFound;
	// more than one gives ErrTooManyMatches; an incomplete or malformed
	// query gives ErrInvalidQuery.
	Search(ctx context.Context, q Query) (Patient, error)
}

// Sentinel errors of a Directory. Every error returned wraps exactly one of
// ErrNotFound, ErrTooManyMatches, ErrInvalidNHSNumber, ErrInvalidQuery or
// ErrUnavailable (ErrBadResponse always comes with ErrUnavailable).
var (
	// ErrNotFound: no record has this NHS number, or no record matches the
	// search.
	ErrNotFound = errors.New("no matching PDS record")
	// ErrTooManyMatches: the search matched more than one record (PDS's
	// TOO_MANY_MATCHES); more details would narrow it.
	ErrTooManyMatches = errors.New("more than one PDS record matches")
	// ErrInvalidNHSNumber: PDS rejected the NHS number as invalid.
	ErrInvalidNHSNumber = errors.New("invalid NHS number")
	// ErrInvalidQuery: the search is incomplete (family name and birth date
	// are required) or malformed. Nothing was sent to PDS.
	ErrInvalidQuery = errors.New("invalid PDS search")
	// ErrUnavailable: PDS could not be asked or did not answer usefully:
	// network failure, timeout, 5xx or 429 after retries, an access token
	// that could not be obtained, or a response that could not be read.
	// Callers should say "try again later", never "we could not find you".
	ErrUnavailable = errors.New("PDS is unavailable")
	// ErrBadResponse: a response could not be parsed as the FHIR resource
	// expected. Returned by ParsePatient and ParseSearchset; the Client
	// wraps it together with ErrUnavailable.
	ErrBadResponse = errors.New("malformed PDS response")
)

// Genders as PDS codes them.
const (
	GenderMale    = "male"
	GenderFemale  = "female"
	GenderOther   = "other"
	GenderUnknown = "unknown"
)

// Patient is a PDS record as this service uses it.
type Patient struct {
	// NHSNumber identifies the record.
	NHSNumber nhsnumber.Number
	// Given and Family are the person's usual name: the name with use
	// "usual" (else the first) among those whose period has not ended.
	Given  []string
	Family string
	// Gender is one of the Gender constants, or "" when PDS has none.
	Gender string
	// BirthDate is the civil date of birth exactly as PDS gives it: normally
	// "YYYY-MM-DD", possibly a partial "YYYY-MM" or "YYYY". It is a string,
	// not a time.Time, so that it has no time zone to go wrong and compares
	// as text with what a person typed.
	BirthDate string
	// Deceased is set when PDS records a death; DeceasedAt is its time (UTC;
	// midnight for a date without time), zero when PDS gives none.
	Deceased   bool
	DeceasedAt time.Time
	// Postcode is the postcode of the home address as PDS gives it (for
	// example "LS1 6AE"); empty for restricted records.
	Postcode string
	// GPODSCode is the ODS code of the GP practice the person is registered
	// with ("Y12345"); empty when none, and for restricted records.
	GPODSCode string
	// Phones and Emails are the current telecom values as PDS gives them
	// (mobile numbers usually in E.164, "+447700900123"; not normalised).
	Phones []string
	Emails []string
	// Restricted is set for records with restricted access (meta.security
	// R, or V "very restricted"): PDS withholds address, telecom and GP.
	Restricted bool
	// Version is the record's version, the n of its ETag W/"n"
	// (meta.versionId); it increases whenever the record changes.
	Version string
	// Score is the search score of a search result (1 for an exact match,
	// less for a fuzzy one), 0 for a read.
	Score float64
}

// GivenName returns the given names joined by spaces.
func (p Patient) GivenName() string { return strings.Join(p.Given, " ") }

// Query is a PDS search. Family and BirthDate are required.
type Query struct {
	// Family is the family name; matched without regard to case.
	Family string
	// Given names, each matched without regard to case; optional.
	Given []string
	// Gender is one of the Gender constants; optional.
	Gender string
	// BirthDate is the exact date of birth, "YYYY-MM-DD".
	BirthDate string
	// Postcode is the home postcode; optional. Spaces and case do not
	// matter.
	Postcode string
	// NHSNumber, when set, confirms the search: the single match must have
	// this NHS number, or the result is ErrNotFound. The search is done by
	// demographics and the number checked afterwards (rather than a read by
	// number and a comparison of details), so that the rules for what
	// matches are PDS's own and the same with or without a number.
	NHSNumber nhsnumber.Number
	// Fuzzy asks for PDS's fuzzy matching (similar-sounding names,
	// transposed day and month).
	Fuzzy bool
}

// Limits on query fields, generous for real names and postcodes.
const (
	maxNameLength     = 100
	maxGivenNames     = 5
	maxPostcodeLength = 10
)

// Validate checks q and returns an error wrapping ErrInvalidQuery naming the
// first field at fault.
func (q Query) Validate() error {
	if strings.TrimSpace(q.Family) == "" {
		return fmt.Errorf("%w: family name is required", ErrInvalidQuery)
	}
	if err := checkName(q.Family); err != nil {
		return fmt.Errorf("%w: family name %w", ErrInvalidQuery, err)
	}
	if len(q.Given) > maxGivenNames {
		return fmt.Errorf("%w: at most %d given names", ErrInvalidQuery, maxGivenNames)
	}
	for _, g := range q.Given {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("%w: empty given name", ErrInvalidQuery)
		}
		if err := checkName(g); err != nil {
			return fmt.Errorf("%w: given name %w", ErrInvalidQuery, err)
		}
	}
	switch q.Gender {
	case "", GenderMale, GenderFemale, GenderOther, GenderUnknown:
	default:
		return fmt.Errorf("%w: gender must be male, female, other or unknown", ErrInvalidQuery)
	}
	if q.BirthDate == "" {
		return fmt.Errorf("%w: birth date is required", ErrInvalidQuery)
	}
	if !isFullDate(q.BirthDate) {
		return fmt.Errorf("%w: birth date must be YYYY-MM-DD", ErrInvalidQuery)
	}
	if q.Postcode != "" {
		pc := normalizePostcode(q.Postcode)
		if len(pc) < 2 || len(q.Postcode) > maxPostcodeLength+2 || !isAlnum(pc) {
			return fmt.Errorf("%w: postcode is malformed", ErrInvalidQuery)
		}
	}
	return nil
}

// confirm applies Query.NHSNumber to a search result.
func (q Query) confirm(p Patient) (Patient, error) {
	if !q.NHSNumber.IsZero() && p.NHSNumber != q.NHSNumber {
		return Patient{}, fmt.Errorf("search confirmed by NHS number: %w", ErrNotFound)
	}
	return p, nil
}

func checkName(s string) error {
	if len(s) > maxNameLength {
		return fmt.Errorf("is longer than %d bytes", maxNameLength)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// isFullDate reports whether s is a valid calendar date YYYY-MM-DD.
func isFullDate(s string) bool {
	if len(s) != len("2006-01-02") {
		return false
	}
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

// normalizePostcode removes spaces and upper-cases, so that "ls1 6ae" and
// "LS16AE" compare equal.
func normalizePostcode(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, " ", ""))
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
