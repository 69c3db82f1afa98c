package trust

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseVTR(t *testing.T) {
	tests := []struct {
		raw     string
		want    string
		wantErr error
	}{
		{`["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`, `["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`, nil},
		{`["P5.Cp.Cd", "P5.Cp.Ck", "P5.Cm"]`, `["P5.Cp.Cd","P5.Cp.Ck","P5.Cm"]`, nil},
		{" [ \"P0.Cp\" ,\n\t\"Cp.Cd\" ] ", `["P0.Cp","Cp.Cd"]`, nil},
		{`["P9.Cm","P9.Cm"]`, `["P9.Cm"]`, nil},
		{`[]`, "", ErrEmpty},
		{`null`, "", ErrMalformed},
		{`"P9.Cm"`, "", ErrMalformed},
		{`["P9.Cm"] x`, "", ErrMalformed},
		{`["P9.Cm",]`, "", ErrMalformed},
		{`[1]`, "", ErrMalformed},
		{`["P7.Cp"]`, "", ErrUnknownComponent},
		{`["P9.Cx"]`, "", ErrUnknownComponent},
		// NHS login accepts omitted components and prints vectors with
		// surrounding spaces.
		{`["P9"]`, `["P9"]`, nil},
		{`["P9.Cp.Cd ", " P9.Cm"]`, `["P9.Cp.Cd","P9.Cm"]`, nil},
		{`["P9. Cp"]`, "", ErrUnknownComponent},
		{`["  "]`, "", ErrUnknownComponent},
		{`["Cp.P9"]`, "", ErrUnknownComponent},
		{`["P9.Cp.Cp"]`, "", ErrUnknownComponent},
		{`["P9..Cp"]`, "", ErrUnknownComponent},
		{`[""]`, "", ErrUnknownComponent},
		{"[" + strings.Repeat(`"Cp",`, MaxVectors) + `"Cm"]`, "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			vs, err := ParseVTR(tc.raw)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, FormatVTR(vs))
		})
	}
}

func TestChoose(t *testing.T) {
	all, err := ParseVTR(`["P5.Cp.Cd","P5.Cp.Ck","P5.Cm","P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`)
	require.NoError(t, err)
	tests := []struct {
		name  string
		level Level
		creds Credentials
		want  string // "" when nothing is met
	}{
		{"password only meets nothing", P9, Credentials{Cp}, ""},
		{"P9 with code", P9, Credentials{Cp, Cd}, "P9.Cp.Cd"},
		{"P5 with code", P5, Credentials{Cp, Cd}, "P5.Cp.Cd"},
		{"P0 meets no P5 vector", P0, Credentials{Cp, Cd, Cm}, ""},
		{"FIDO alone", P9, Credentials{Cm}, "P9.Cm"},
		{"both factors: first requested P9 wins", P9, Credentials{Cd, Cm, Cp}, "P9.Cp.Cd"},
		{"level only: password and code", P9, Credentials{Cp, Cd}, "P9"},
		{"level only: device key", P9, Credentials{Cm}, "P9"},
		{"level only: password alone is not enough", P9, Credentials{Cp}, ""},
		{"level only: level too low", P5, Credentials{Cp, Cd}, ""},
	}
	levelOnly, err := ParseVTR(`["P9"]`)
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requested := all
			if strings.HasPrefix(tc.name, "level only") {
				requested = levelOnly
			}
			v, ok := Choose(requested, tc.level, Credentials(nil).With(tc.creds...))
			require.Equal(t, tc.want != "", ok)
			if ok {
				require.Equal(t, tc.want, v.String())
			}
		})
	}
}

func TestCredentialSets(t *testing.T) {
	vs, err := ParseVTR(`["P9.Cp.Cd","P5.Cm","Cp"]`)
	require.NoError(t, err)
	require.Equal(t, []Credentials{{Cm}, {Cp}}, CredentialSets(vs, P5))
	require.Equal(t, Credentials{Cd}, Credentials{Cp}.Missing(Credentials{Cp, Cd}))
	// A vector naming no credential aims for the usual authentication.
	vs, err = ParseVTR(`["P5"]`)
	require.NoError(t, err)
	require.Equal(t, []Credentials{{Cd, Cp}, {Cm}}, CredentialSets(vs, P9))
	require.Empty(t, CredentialSets(vs, P0))
}

func FuzzParseVTR(f *testing.F) {
	for _, s := range []string{DefaultVTR, `["P9"]`, `["P9.Cp.Cd "]`, `["P5.Cp.Cd", "P5.Cm"]`, `[]`, `["Cp"]`, `{"a":1}`, `["P9.Cp.Cp"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		vs, err := ParseVTR(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrUnknownComponent) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// What parses must round-trip to the same vectors.
		again, err := ParseVTR(FormatVTR(vs))
		if err != nil || FormatVTR(again) != FormatVTR(vs) {
			t.Fatalf("round trip of %q: %v %v", raw, FormatVTR(again), err)
		}
	})
}
