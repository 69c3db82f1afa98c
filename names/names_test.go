package names_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/names"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in, want string
		reason         error
		message        string
	}{
		{"plain", "Sam's", "Sam's", nil, ""},
		{"trimmed", "  Work key \t", "Work key", nil, ""},
		{"at the maximum", strings.Repeat("é", 8), strings.Repeat("é", 8), nil, ""},
		{"empty", "", "", names.ErrEmpty, "name must be 1 to 8 characters"},
		{"only spaces", " \t ", "", names.ErrEmpty, "name must be 1 to 8 characters"},
		{"too long", strings.Repeat("a", 9), "", names.ErrTooLong, "name must be 1 to 8 characters"},
		{"control character", "a\x00b", "", names.ErrCharacters, "name contains characters that are not allowed"},
		{"line break inside", "a\nb", "", names.ErrCharacters, "name contains characters that are not allowed"},
		{"invalid UTF-8", "a\xffb", "", names.ErrCharacters, "name contains characters that are not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := names.Clean(tc.in, 8)
			if tc.reason == nil {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, tc.reason)
			require.EqualError(t, err, tc.message)
			require.Empty(t, got)
		})
	}
}
