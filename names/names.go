// Package names checks the names people give to what they own in idlink (a
// passkey, an app device): trimmed, 1 to a maximum number of characters,
// printable. It knows nothing of where a name is stored or shown, so that
// device, fido and the settings pages apply one rule.
package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The reasons a name is refused; a refusal is an *Error wrapping one.
var (
	// ErrEmpty: nothing is left once spaces are trimmed.
	ErrEmpty = errors.New("name is empty")
	// ErrTooLong: more characters than the maximum.
	ErrTooLong = errors.New("name is too long")
	// ErrCharacters: invalid UTF-8 or a control character.
	ErrCharacters = errors.New("name contains characters that are not allowed")
)

// Error is a refused name: Reason is ErrEmpty, ErrTooLong or ErrCharacters
// (errors.Is matches it), Max the maximum that was applied.
type Error struct {
	Reason error
	Max    int
}

// Error says what a name must be.
func (e *Error) Error() string {
	if e.Reason == ErrCharacters {
		return ErrCharacters.Error()
	}
	return fmt.Sprintf("name must be 1 to %d characters", e.Max)
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Reason }

// Clean trims spaces from name and checks that it is 1 to max characters
// with no control character, returning the trimmed name or an *Error.
func Clean(name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	switch {
	case n == 0:
		return "", &Error{Reason: ErrEmpty, Max: max}
	case n > max:
		return "", &Error{Reason: ErrTooLong, Max: max}
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", &Error{Reason: ErrCharacters, Max: max}
	}
	return name, nil
}
