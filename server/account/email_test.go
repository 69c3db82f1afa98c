package account_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/account"
)

// Addresses that look alike are one account or are refused; none becomes
// a separate account that passes for another.
func TestParseEmailLookAlikes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Jane@Example.org", "jane@example.org"},
		{" jane@example.org ", "jane@example.org"},
		{"jane@EXAMPLE.ORG", "jane@example.org"},
		{"ｊａｎｅ@example.org", "jane@example.org"},              // full-width letters fold to the same account
		{"jane@ｅｘａｍｐｌｅ.org", "jane@example.org"},              // full-width domain too
		{"jane@bücher.example", "jane@xn--bcher-kva.example"}, // international domains in their ASCII form
		{"jane@BÜCHER.example", "jane@xn--bcher-kva.example"},
		{"jane@xn--bcher-kva.example", "jane@xn--bcher-kva.example"},
		{"иван@example.org", "иван@example.org"}, // one script is fine
		{"jane.smith+nhs@example.co.uk", "jane.smith+nhs@example.co.uk"},
	} {
		got, err := account.ParseEmail(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.Equal(t, tc.want, account.NormalizeEmail(tc.in), tc.in)
	}
	for _, bad := range []string{
		"ja\u200bne@example.org", // zero-width space
		"jane@exam\u200bple.org", // … in the domain
		"jane\u00ad@example.org", // soft hyphen
		"jane\u202e@example.org", // bidi override
		"j\u0430ne@example.org",  // Cyrillic а among Latin letters
		"jane@ex\u0430mple.org",  // … in the domain
		"jane@\u0435x\u0430mple.org",
		"jane@[127.0.0.1]", // IP literals
		"jane@[IPv6:::1]",
		"jane@127.0.0.1",
		"jane@example.123",
		"jane@localhost",
		"a@b.co", "jane@example", "jane@@example.org", "Jane <jane@example.org>", "jane@example..org", "",
		"jane doe@example.org",
	} {
		_, err := account.ParseEmail(bad)
		require.ErrorIs(t, err, account.ErrEmailInvalid, "%q", bad)
	}
}

func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"jane@example.org", "ｊａｎｅ@ｅｘａｍｐｌｅ.org", "j\u0430ne@example.org", "jane@[127.0.0.1]", "jane@bücher.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := account.ParseEmail(s)
		if err != nil {
			return
		}
		again, err := account.ParseEmail(e)
		if err != nil || again != e {
			t.Fatalf("%q normalises to %q, which normalises to %q (%v)", s, e, again, err)
		}
	})
}
