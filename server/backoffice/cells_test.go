package backoffice

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCSVCell: a cell a spreadsheet would run as a formula is quoted;
// everything else is kept as it is.
func TestCSVCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"login.completed", "login.completed"},
		{"=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"},
		{"+441632960000", "'+441632960000"},
		{"-1", "'-1"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"Firefox on Windows", "Firefox on Windows"},
	} {
		require.Equal(t, tc.want, csvCell(tc.in), tc.in)
	}
}

// TestFingerprint: the SHA-256 of the key's DER in colon-separated hex;
// nothing for text that is not PEM.
func TestFingerprint(t *testing.T) {
	const pemText = "-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n" // DER 00 01 02
	require.Equal(t, "AE:4B:32:80:E5:6E:2F:AF:83:F4:14:A6:E3:DA:BE:9D:5F:BE:18:97:65:44:C0:5F:ED:12:1A:CC:B8:5B:53:FC", fingerprint(pemText))
	require.Empty(t, fingerprint("not a key"))
}
