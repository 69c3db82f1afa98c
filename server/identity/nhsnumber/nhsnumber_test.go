package nhsnumber_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in        string
		want      string
		formatted string
		err       error
		testRange bool
	}{
		{in: "9000000009", want: "9000000009", formatted: "900 000 0009"},
		{in: "900 000 0009", want: "9000000009", formatted: "900 000 0009"},
		{in: "900-000-0009", want: "9000000009", formatted: "900 000 0009"},
		{in: "  9000000009 ", want: "9000000009", formatted: "900 000 0009"},
		{in: "9000000025", want: "9000000025", formatted: "900 000 0025"},
		{in: "9000000033", want: "9000000033", formatted: "900 000 0033"},
		{in: "9111231130", want: "9111231130", formatted: "911 123 1130"},
		{in: "4010232137", want: "4010232137", formatted: "401 023 2137"},
		{in: "9990000018", want: "9990000018", formatted: "999 000 0018", testRange: true},
		{in: "9000000000", err: nhsnumber.ErrCheckDigit},
		{in: "9000000001", err: nhsnumber.ErrCheckDigit},
		{in: "0000000000", want: "0000000000", formatted: "000 000 0000"}, // sum 0 → c=11 → 0
		{in: "1000000060", want: "1000000060", formatted: "100 000 0060"}, // sum 22 → c=11 → 0
		{in: "0000000060", err: nhsnumber.ErrCheckDigit},                  // sum 12 → c=10 → never valid
		{in: "", err: nhsnumber.ErrFormat},
		{in: "900000000", err: nhsnumber.ErrFormat},
		{in: "90000000090", err: nhsnumber.ErrFormat},
		{in: "900 000-0009", err: nhsnumber.ErrFormat},
		{in: "900  000 0009", err: nhsnumber.ErrFormat},
		{in: "9000 000 009", err: nhsnumber.ErrFormat},
		{in: "900000000a", err: nhsnumber.ErrFormat},
		{in: "９000000009", err: nhsnumber.ErrFormat},
		{in: "+900000009", err: nhsnumber.ErrFormat},
		{in: "900\t000\t0009", err: nhsnumber.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := nhsnumber.Parse(tt.in)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.True(t, n.IsZero())
				if len(tt.in) > 3 {
					require.NotContains(t, err.Error(), strings.TrimSpace(tt.in), "errors do not repeat the input")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, n.String())
			require.Equal(t, tt.formatted, n.Formatted())
			require.Equal(t, tt.testRange, n.IsTestRange())
			require.False(t, n.IsZero())
		})
	}
}

func TestCheckDigit(t *testing.T) {
	tests := []struct {
		in   string
		want byte
		ok   bool
	}{
		{"900000000", '9', true},
		{"000000000", '0', true}, // sum 0 → c = 11 → 0
		{"999000001", '8', true},
		{"000000006", 0, false}, // sum 12 → c = 10: no valid number
		{"12345678", 0, false},
		{"12345678x", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, ok := nhsnumber.CheckDigit(tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, d)
		})
	}
	for c := '0'; c <= '9'; c++ {
		_, err := nhsnumber.Parse("000000006" + string(c))
		require.ErrorIs(t, err, nhsnumber.ErrCheckDigit, "no digit completes a prefix whose check is 10")
	}
}

func TestZeroAndText(t *testing.T) {
	var z nhsnumber.Number
	require.True(t, z.IsZero())
	require.Equal(t, "", z.String())
	require.Equal(t, "", z.Formatted())
	require.False(t, z.IsTestRange())

	var v struct{ N nhsnumber.Number }
	require.NoError(t, json.Unmarshal([]byte(`{"N":"900 000 0009"}`), &v))
	require.Equal(t, "9000000009", v.N.String())
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.JSONEq(t, `{"N":"9000000009"}`, string(b))
	require.ErrorIs(t, json.Unmarshal([]byte(`{"N":"9000000000"}`), &v), nhsnumber.ErrCheckDigit)

	require.Panics(t, func() { nhsnumber.MustParse("123") })
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"9000000009", "900 000 0009", "900-000-0009", "9000000000", "", "999 123 4560", " 900-000-0009 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := nhsnumber.Parse(s)
		if err != nil {
			require.True(t, n.IsZero())
			return
		}
		d := n.String()
		require.Len(t, d, 10)
		c, ok := nhsnumber.CheckDigit(d[:9])
		require.True(t, ok)
		require.Equal(t, c, d[9])
		again, err := nhsnumber.Parse(n.Formatted())
		require.NoError(t, err)
		require.Equal(t, n, again)
		again, err = nhsnumber.Parse(d)
		require.NoError(t, err)
		require.Equal(t, n, again)
	})
}
