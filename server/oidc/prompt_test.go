package oidc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePrompt(t *testing.T) {
	tests := []struct {
		raw, want string
		wantErr   bool
	}{
		{"", "", false},
		{"none", "none", false},
		{"login", "login", false},
		{"consent", "", false}, // ignored, as NHS login
		{"login consent", "login", false},
		{" none  consent ", "none", false},
		{"none login", "", true},
		{"select_account", "", true},
		{"NONE", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := parsePrompt(tc.raw)
			if tc.wantErr {
				require.NotNil(t, err)
				require.Equal(t, codeInvalidRequest, err.code)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParsePrompt(f *testing.F) {
	for _, s := range []string{"", "none", "login consent", "none login", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parsePrompt(raw)
		if err != nil {
			if err.code != codeInvalidRequest || got != "" {
				t.Fatalf("%q: %q %v", raw, got, err)
			}
			return
		}
		if got != "" && got != "none" && got != "login" {
			t.Fatalf("%q gave %q", raw, got)
		}
	})
}
