package password

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	const email = "Jane.Doe@Example.com"
	tests := []struct {
		name, password, email string
		want                  error
	}{
		{"empty", "", email, ErrTooShort},
		{"7 characters", "zq8!Kp2", email, ErrTooShort},
		{"8 characters", "zq8!Kp2x", email, nil},
		{"128 characters", strings.Repeat("ab3!", 32), email, nil},
		{"129 characters", strings.Repeat("ab3!", 32) + "x", email, ErrTooLong},
		{"7 two-byte runes (14 bytes)", strings.Repeat("é", 7), email, ErrTooShort},
		{"8 two-byte runes", strings.Repeat("é", 8), email, nil},
		{"8 three-byte runes", "密码密码密码密码", email, nil},
		{"7 four-byte runes (28 bytes)", strings.Repeat("🔒", 7), email, ErrTooShort},
		{"128 two-byte runes (256 bytes)", strings.Repeat("é", 128), email, nil},
		{"129 two-byte runes", strings.Repeat("é", 129), email, ErrTooLong},
		{"email address", "jane.doe@example.com", email, ErrSameAsEmail},
		{"email address, other case", "JANE.DOE@EXAMPLE.COM", email, ErrSameAsEmail},
		{"local part", "jane.doe", email, ErrSameAsEmail},
		{"local part, other case", "JANE.Doe", email, ErrSameAsEmail},
		{"email with spaces around", "jane.doe", "  jane.doe@example.com\n", ErrSameAsEmail},
		{"quoted local part with @", `"jane@doe"`, `"jane@doe"@example.com`, ErrSameAsEmail},
		{"domain is not the local part", "example.com", email, nil},
		{"local part plus a digit", "jane.doe1", email, nil},
		{"no email given", "jane.doe", "", nil},
		{"short local part: too short first", "jo", "jo@example.com", ErrTooShort},
		{"long email: too long first", strings.Repeat("a", 130), strings.Repeat("a", 130) + "@example.com", ErrTooLong},
		{"email before common", "password", "password@example.com", ErrSameAsEmail},
		{"common: password", "password", email, ErrCommon},
		{"common: password1", "password1", email, ErrCommon},
		{"common: Password1", "Password1", email, ErrCommon},
		{"common: PASSWORD", "PASSWORD", email, ErrCommon},
		{"common: qwerty123", "qwerty123", email, ErrCommon},
		{"common: iloveyou", "iloveyou", email, ErrCommon},
		{"common: 1qaz2wsx", "1qaz2wsx", email, ErrCommon},
		{"common: trustno1", "TrustNo1", email, ErrCommon},
		{"common: last entry of the list", "1thunder", email, ErrCommon},
		{"not in the first 20,000", "alistair", email, nil},
		{"common but short: too short first", "123456", email, ErrTooShort},
		{"strong passphrase", "plum tractor velvet orbit", email, nil},
		{"strong passphrase with symbols", "Correct-Horse-Battery-Staple-42", email, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.password, tc.email)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestMessage(t *testing.T) {
	require.Equal(t, "Your password must be at least 8 characters", Message(ErrTooShort))
	require.Equal(t, "Your password must be 128 characters or fewer", Message(ErrTooLong))
	require.Equal(t, "Your password must not be your email address", Message(ErrSameAsEmail))
	require.Equal(t, "Your password is too common and easy to guess. Choose a different password", Message(ErrCommon))
	require.Equal(t, Message(ErrCommon), Message(fmt.Errorf("register: %w", ErrCommon)))
	require.Empty(t, Message(nil))
	require.Empty(t, Message(ErrMalformedHash))
}

func TestCommonPasswordList(t *testing.T) {
	lines := strings.Split(commonPasswordsText, "\n")
	require.Equal(t, "", lines[len(lines)-1], "file ends with a newline")
	lines = lines[:len(lines)-1]
	require.Len(t, lines, 20000)
	require.Equal(t, "123456", lines[0], "frequency order kept")
	require.Equal(t, "password", lines[1])
	for _, w := range lines {
		require.NotEmpty(t, w)
		require.Equal(t, strings.ToLower(w), w)
		require.True(t, utf8.ValidString(w))
		require.NotContains(t, w, "\r")
	}
	require.Len(t, commonPasswords(), 20000, "no duplicates")
}
