// Package nhsnumber parses and validates NHS numbers: ten digits whose last
// is a modulus-11 check digit over the first nine.
//
// Parse accepts the forms people type ("9000000009", "900 000 0009",
// "900-000-0009") and returns a Number, which always holds ten digits with a
// valid check digit. The range 999 000 0000–999 999 9999 is reserved for
// testing and never issued; IsTestRange reports it.
package nhsnumber

import (
	"errors"
	"fmt"
)

// Sentinel errors of Parse.
var (
	// ErrFormat is returned for input that is not ten digits in one of the
	// accepted layouts.
	ErrFormat = errors.New("NHS number must be 10 digits")
	// ErrCheckDigit is returned for ten digits whose check digit is wrong
	// (including numbers whose check digit would be 10, which are never
	// issued).
	ErrCheckDigit = errors.New("NHS number check digit is wrong")
)

// Number is a valid NHS number. The zero value is not a valid number; use
// IsZero to test for it.
type Number struct {
	digits string
}

// Parse validates s and returns its NHS number. Allowed layouts: ten digits,
// or 3-3-4 groups separated by single spaces or single hyphens (the same
// separator twice); leading and trailing spaces are ignored. Errors wrap
// ErrFormat or ErrCheckDigit; they never repeat the input.
func Parse(s string) (Number, error) {
	d, ok := normalize(s)
	if !ok {
		return Number{}, fmt.Errorf("parse NHS number: %w", ErrFormat)
	}
	c, ok := CheckDigit(d[:9])
	if !ok || c != d[9] {
		return Number{}, fmt.Errorf("parse NHS number: %w", ErrCheckDigit)
	}
	return Number{digits: d}, nil
}

// MustParse is Parse for constants in tests and fixtures; it panics on an
// invalid number.
func MustParse(s string) Number {
	n, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return n
}

// CheckDigit computes the modulus-11 check digit of nine digits: weights 10
// down to 2, c = 11 − (sum mod 11), 11 becomes 0. ok is false when the
// input is not nine ASCII digits or when c is 10 (no valid number exists
// with that prefix).
func CheckDigit(first9 string) (digit byte, ok bool) {
	if len(first9) != 9 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := first9[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		sum += int(c-'0') * (10 - i)
	}
	check := 11 - sum%11
	switch check {
	case 11:
		return '0', true
	case 10:
		return 0, false
	default:
		return byte('0' + check), true
	}
}

// normalize strips the accepted separators and returns the ten digits.
func normalize(s string) (string, bool) {
	// Trim surrounding spaces only (no other whitespace).
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	switch len(s) {
	case 10:
		if !allDigits(s) {
			return "", false
		}
		return s, true
	case 12:
		sep := s[3]
		if (sep != ' ' && sep != '-') || s[7] != sep {
			return "", false
		}
		d := s[:3] + s[4:7] + s[8:]
		if !allDigits(d) {
			return "", false
		}
		return d, true
	default:
		return "", false
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the ten digits without separators ("9000000009"), the form
// used in FHIR identifiers and URLs. The zero Number returns "".
func (n Number) String() string { return n.digits }

// Formatted returns the number in 3-3-4 groups ("900 000 0009"), the form
// shown to people. The zero Number returns "".
func (n Number) Formatted() string {
	if n.digits == "" {
		return ""
	}
	return n.digits[:3] + " " + n.digits[3:6] + " " + n.digits[6:]
}

// IsZero reports whether n is the zero Number (no number).
func (n Number) IsZero() bool { return n.digits == "" }

// IsTestRange reports whether n lies in 999 000 0000–999 999 9999, the range
// reserved for testing and never issued to a person.
func (n Number) IsTestRange() bool { return len(n.digits) == 10 && n.digits[:3] == "999" }

// MarshalText encodes n as its ten digits.
func (n Number) MarshalText() ([]byte, error) { return []byte(n.digits), nil }

// UnmarshalText parses text with Parse; empty text gives the zero Number.
func (n *Number) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*n = Number{}
		return nil
	}
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*n = v
	return nil
}
