// Package gp verifies GP online-services registration details (IM1
// linkage): the linkage key, practice ODS code and account id a person is
// given by their GP surgery, which together identify their NHS number.
//
// No public API exists for the GP clinical systems, so System is this
// service's own interface. Sandbox implements it over the gp_linkages table
// for development and tests.
package gp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// System checks and issues GP online-services registration details.
// Implementations are safe for concurrent use.
type System interface {
	// Verify returns the NHS number the details identify. Details that do
	// not verify give ErrNoMatch, whichever part is wrong; malformed ones
	// give ErrInvalid.
	Verify(ctx context.Context, d Details) (nhsnumber.Number, error)
	// LinkageFor returns the patient's linkage at the practice odsCode,
	// creating it (with a new account id and linkage key) when there is
	// none. Concurrent calls for the same patient and practice return the
	// same linkage.
	LinkageFor(ctx context.Context, nhs nhsnumber.Number, odsCode string) (Linkage, error)
}

// Sentinel errors of a System.
var (
	// ErrNoMatch: the details do not identify anyone. The error never says
	// which part was wrong.
	ErrNoMatch = errors.New("GP registration details do not match")
	// ErrInvalid: a detail is malformed (the error names which).
	ErrInvalid = errors.New("invalid GP registration details")
	// ErrUnavailable: the GP system (for the sandbox, the database) could
	// not be asked.
	ErrUnavailable = errors.New("GP system is unavailable")
)

// Formats of the details, after normalisation (see Details.Normalize).
const (
	// LinkageKeyLength is the length of a linkage key.
	LinkageKeyLength = 13
	// LinkageKeyAlphabet holds the characters of linkage keys: digits and
	// capitals without the easily confused 0, 1, I and O.
	LinkageKeyAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	// MinAccountIDLength and MaxAccountIDLength bound an account id, which
	// is all digits.
	MinAccountIDLength = 6
	MaxAccountIDLength = 12
	// AccountIDLength is the length of account ids the sandbox issues.
	AccountIDLength = 10
)

// Details are the registration details a person types.
type Details struct {
	// LinkageKey is the secret key (or passphrase) from the surgery.
	LinkageKey string
	// ODSCode is the practice's organisation code ("Y12345"): 3 to 6
	// letters and digits.
	ODSCode string
	// AccountID is the person's account id at the practice: 6 to 12 digits.
	AccountID string
}

// Normalize returns d in canonical form: spaces and hyphens removed from all
// three, ODS code and linkage key upper case. Validation failures wrap
// ErrInvalid and name the field, never repeating the linkage key.
func (d Details) Normalize() (Details, error) {
	n := Details{
		LinkageKey: strings.ToUpper(strip(d.LinkageKey)),
		AccountID:  strip(d.AccountID),
	}
	ods, err := NormalizeODSCode(d.ODSCode)
	if err != nil {
		return Details{}, err
	}
	n.ODSCode = ods
	if len(n.AccountID) < MinAccountIDLength || len(n.AccountID) > MaxAccountIDLength || !allIn(n.AccountID, "0123456789") {
		return Details{}, fmt.Errorf("%w: account id must be %d to %d digits", ErrInvalid, MinAccountIDLength, MaxAccountIDLength)
	}
	if len(n.LinkageKey) != LinkageKeyLength || !allIn(n.LinkageKey, LinkageKeyAlphabet) {
		return Details{}, fmt.Errorf("%w: linkage key must be %d letters and digits", ErrInvalid, LinkageKeyLength)
	}
	return n, nil
}

// String describes d without the linkage key, which must never be logged.
func (d Details) String() string {
	return fmt.Sprintf("gp.Details{ODSCode:%s AccountID:%s LinkageKey:[redacted]}", d.ODSCode, d.AccountID)
}

// NormalizeODSCode upper-cases an ODS code and checks it is 3 to 6 letters
// and digits; errors wrap ErrInvalid.
func NormalizeODSCode(s string) (string, error) {
	ods := strings.ToUpper(strings.TrimSpace(s))
	if len(ods) < 3 || len(ods) > 6 || !allIn(ods, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return "", fmt.Errorf("%w: ODS code must be 3 to 6 letters and digits", ErrInvalid)
	}
	return ods, nil
}

// Linkage is a patient's registration at a practice.
type Linkage struct {
	NHSNumber nhsnumber.Number
	ODSCode   string
	AccountID string
	// LinkageKey is a secret the person types: show it to them, never log it.
	LinkageKey string
	CreatedAt  time.Time
}

// String describes l without the linkage key, which must never be logged.
func (l Linkage) String() string {
	return fmt.Sprintf("gp.Linkage{NHSNumber:%s ODSCode:%s AccountID:%s LinkageKey:[redacted] CreatedAt:%s}",
		l.NHSNumber, l.ODSCode, l.AccountID, l.CreatedAt.Format(time.RFC3339))
}

func strip(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
}

func allIn(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
