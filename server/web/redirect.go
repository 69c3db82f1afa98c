package web

import (
	"net/url"
	"strings"
)

// maxLocalPath bounds a local redirect target.
const maxLocalPath = 2048

// LocalPath returns p when it is safe to redirect a browser to: a path of
// this server, such as "/authorize/continue?id=…". Anything else gives ""
// (the caller then uses its own default). It is the one check for every
// return_to and internal redirect, so that no parameter can send a
// browser to another site.
//
// Refused: an empty or overlong value; anything that is not a path
// starting with a single "/" (schemes, "//host", "https:evil"); control
// characters, whitespace and backslashes, raw or percent-encoded
// (browsers drop TAB, CR and LF and read "\" as "/", so "/\t/evil" is
// "//evil" to them); and a path whose decoded form starts with "//" or
// "/\" ("/%2F/evil").
func LocalPath(p string) string {
	if p == "" || len(p) > maxLocalPath || p[0] != '/' {
		return ""
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return ""
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		if b <= ' ' || b == 0x7f || b == '\\' || b >= 0x80 {
			return ""
		}
	}
	decoded, err := url.PathUnescape(p)
	if err != nil {
		return ""
	}
	for _, r := range decoded {
		if r <= ' ' || r == 0x7f || r == '\\' || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' || r == '\ufeff' {
			return ""
		}
	}
	path := decoded
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if strings.HasPrefix(path, "//") || strings.HasPrefix(path, "/\\") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	return p
}
