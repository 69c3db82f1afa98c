package password

import (
	_ "embed"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"
)

// Length limits of a password, in characters (Unicode code points).
const (
	MinLength = 8
	MaxLength = 128
)

// Policy errors, returned by Check.
var (
	ErrTooShort    = errors.New("password is shorter than 8 characters")
	ErrTooLong     = errors.New("password is longer than 128 characters")
	ErrSameAsEmail = errors.New("password is the email address or its local part")
	ErrCommon      = errors.New("password is a common password")
)

// Check returns nil if password may be used by the person with this email
// address, or else the first policy error that applies, in this order:
// ErrTooShort, ErrTooLong, ErrSameAsEmail, ErrCommon. Lengths count
// characters, not bytes. The password may not be the email address or its
// local part (before the @), ignoring case, nor one of 20,000 common
// passwords, ignoring case.
func Check(password, email string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinLength:
		return ErrTooShort
	case n > MaxLength:
		return ErrTooLong
	}
	if sameAsEmail(password, email) {
		return ErrSameAsEmail
	}
	if _, ok := commonPasswords()[strings.ToLower(password)]; ok {
		return ErrCommon
	}
	return nil
}

// Message returns the sentence to show the person for a policy error from
// Check (also when wrapped), or "" for nil or any other error.
func Message(err error) string {
	switch {
	case errors.Is(err, ErrTooShort):
		return "Your password must be at least 8 characters"
	case errors.Is(err, ErrTooLong):
		return "Your password must be 128 characters or fewer"
	case errors.Is(err, ErrSameAsEmail):
		return "Your password must not be your email address"
	case errors.Is(err, ErrCommon):
		return "Your password is too common and easy to guess. Choose a different password"
	}
	return ""
}

// sameAsEmail reports whether password is, ignoring case, the email address
// or its local part.
func sameAsEmail(password, email string) bool {
	email = strings.TrimSpace(email)
	if email == "" {
		return false
	}
	if strings.EqualFold(password, email) {
		return true
	}
	// The domain cannot contain "@"; a quoted local part can.
	if at := strings.LastIndexByte(email, '@'); at > 0 {
		return strings.EqualFold(password, email[:at])
	}
	return false
}

// commonPasswordsText is common-passwords.txt: the first 20,000 entries of
// src/passwords.json in the npm package @zxcvbn-ts/language-common 4.1.3
// (MIT licence, see common-passwords.LICENSE; derived from public
// password-frequency lists), most frequent first, lowercase, one per line.
//
//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords returns the set of common passwords, built on first use
// and read-only afterwards.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 20000)
	for line := range strings.Lines(commonPasswordsText) {
		if w := strings.TrimRight(line, "\r\n"); w != "" {
			set[w] = struct{}{}
		}
	}
	return set
})
