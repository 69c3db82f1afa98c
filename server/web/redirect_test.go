package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLocalPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"/account", "/account"},
		{"/authorize/continue?id=abc", "/authorize/continue?id=abc"},
		{"/prove?return_to=%2Fauthorize%2Fcontinue%3Fid%3Dx", "/prove?return_to=%2Fauthorize%2Fcontinue%3Fid%3Dx"},
		{"/", "/"},
		{"", ""},
		{"account", ""},
		{"//evil.example/x", ""},
		{"/\\evil.example/x", ""},
		{"/\t/evil.example/x", ""},
		{"/%09/evil.example/x", ""},
		{"/\r/evil.example", ""},
		{"/\n/evil.example", ""},
		{"/%0d%0a/evil.example", ""},
		{"/%0A/evil.example", ""},
		{"/%5C/evil.example", ""},
		{"/%5c/evil.example", ""},
		{"/a\\b", ""},
		{"/%2F/evil.example", ""},
		{"/%2f/evil.example", ""},
		{"https:evil.example", ""},
		{"https://evil.example/", ""},
		{"javascript:alert(1)", ""},
		{"/ /evil.example", ""},
		{"/%20/evil.example", ""},
		{"/x y", ""},
		{"/\u00a0/evil", ""},
		{"/%C2%85/evil", ""},
		{"/%E2%80%A8/evil", ""},
		{"/%zz", ""},
		{"/" + strings.Repeat("a", maxLocalPath), ""},
		{"/\x00", ""},
		{"/\x7f", ""},
	} {
		require.Equal(t, tc.want, LocalPath(tc.in), "LocalPath(%q)", tc.in)
	}
}

// FuzzLocalPath checks that whatever LocalPath accepts stays on this
// server however a browser reads it: resolved against our origin, the
// result has our host, and no browser-ignored character can change that.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/account", "//evil", "/\t/evil", "/%2F/evil", "/%5C", "https:evil", "/a?b=//c", "/#//x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://idlink.example/")
	f.Fuzz(func(t *testing.T, in string) {
		out := LocalPath(in)
		if out == "" {
			return
		}
		require.Equal(t, in, out)
		// A browser drops TAB, CR and LF and reads "\" as "/".
		browser := strings.NewReplacer("\t", "", "\r", "", "\n", "", "\\", "/").Replace(out)
		u, err := base.Parse(browser)
		require.NoError(t, err)
		require.Equal(t, "idlink.example", u.Host, "%q escapes to %q", in, u.String())
		dec, err := url.PathUnescape(out)
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(dec, "//"), "%q decodes to %q", in, dec)
	})
}
