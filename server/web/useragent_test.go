package web

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestBrowserAndOS(t *testing.T) {
	for _, tc := range []struct{ ua, browser, os string }{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge", "Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari", "macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome", "iOS"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Chrome", "Linux"},
		{"curl/8.5.0", "", ""},
		{"", "", ""},
	} {
		b, o := BrowserAndOS(tc.ua)
		require.Equal(t, tc.browser, b, tc.ua)
		require.Equal(t, tc.os, o, tc.ua)
	}
}

func FuzzBrowserAndOS(f *testing.F) {
	f.Add("Mozilla/5.0 (Windows NT 10.0) Firefox/133.0")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, ua string) {
		b, o := BrowserAndOS(ua)
		// Only fixed names come out, never the input itself.
		for _, s := range []string{b, o} {
			if len(s) > 20 || !utf8.ValidString(s) {
				t.Fatalf("unexpected name %q", s)
			}
		}
	})
}
