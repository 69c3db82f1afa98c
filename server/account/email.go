package account

import (
	"errors"
	"net/mail"
	"net/netip"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
)

// ErrEmailInvalid is returned for an email address that cannot be used.
var ErrEmailInvalid = errors.New("not a valid email address")

// MinEmailLength is NHS login's rule: an address longer than 6 characters.
const MinEmailLength = 7

// domains maps and checks domain names as a lookup does (case and width
// folded, IDNA 2008 rules, the bidi rule, DNS lengths), giving the ASCII
// (A-label) form.
var domains = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true),
	idna.VerifyDNSLength(true), idna.StrictDomainName(true), idna.Transitional(false))

// ParseEmail checks an email address as a person typed it and returns the
// one form it is stored and compared in, so that addresses that look the
// same are the same account and addresses made to look like another are
// refused:
//
//   - the local part through PRECIS (UsernameCaseMapped: width-folded,
//     lowercased, NFC), which refuses invisible and control characters;
//   - the domain through IDNA (case- and width-folded), kept in its ASCII
//     form ("xn--…" for an international domain);
//   - refused: invisible characters (zero-width, bidi controls, soft
//     hyphens) anywhere; letters of more than one script in the local part
//     or in one label of the domain (a Cyrillic "а" among Latin letters);
//     IP-literal or numeric domains ("user@[127.0.0.1]").
func ParseEmail(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 320 || hasInvisible(raw) {
		return "", ErrEmailInvalid
	}
	at := strings.LastIndexByte(raw, '@')
	if at <= 0 || at == len(raw)-1 || strings.Count(raw, "@") != 1 {
		return "", ErrEmailInvalid
	}
	local, domain := raw[:at], raw[at+1:]
	local, err := precis.UsernameCaseMapped.String(local)
	if err != nil || local == "" || len(local) > 64 || mixedScript(local) {
		return "", ErrEmailInvalid
	}
	if strings.HasPrefix(domain, "[") || isIP(domain) {
		return "", ErrEmailInvalid
	}
	ascii, err := domains.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") || strings.HasPrefix(ascii, ".") || strings.HasSuffix(ascii, ".") || strings.Contains(ascii, "..") {
		return "", ErrEmailInvalid
	}
	ascii = strings.ToLower(ascii)
	if isIP(ascii) || allDigits(ascii[strings.LastIndexByte(ascii, '.')+1:]) {
		return "", ErrEmailInvalid
	}
	unicodeDomain, err := domains.ToUnicode(ascii)
	if err != nil {
		return "", ErrEmailInvalid
	}
	for _, label := range strings.Split(unicodeDomain, ".") {
		if mixedScript(label) {
			return "", ErrEmailInvalid
		}
	}
	e := local + "@" + ascii
	if len(e) < MinEmailLength || len(e) > 254 {
		return "", ErrEmailInvalid
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Name != "" || addr.Address != e {
		return "", ErrEmailInvalid
	}
	return e, nil
}

// NormalizeEmail returns the stored form of an address (ParseEmail's), or
// for text that is not a valid address, the text trimmed and lowercased:
// lookups of such text find nothing.
func NormalizeEmail(email string) string {
	if e, err := ParseEmail(email); err == nil {
		return e
	}
	return strings.ToLower(strings.TrimSpace(email))
}

// hasInvisible reports characters that show nothing: format characters
// (zero-width spaces and joiners, bidi controls, soft hyphens), other
// default-ignorable code points, and controls.
func hasInvisible(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
			unicode.IsControl(r) || unicode.Is(unicode.Variation_Selector, r) || r == '\u3164' || r == '\uffa0' || r == '\u115f' || r == '\u1160' {
			return true
		}
	}
	return false
}

// scripts are the writing systems whose letters are told apart; the
// Japanese scripts count as one, as they are written together.
var scripts = []struct {
	name   string
	tables []*unicode.RangeTable
}{
	{"Latin", []*unicode.RangeTable{unicode.Latin}},
	{"Cyrillic", []*unicode.RangeTable{unicode.Cyrillic}},
	{"Greek", []*unicode.RangeTable{unicode.Greek}},
	{"Armenian", []*unicode.RangeTable{unicode.Armenian}},
	{"Georgian", []*unicode.RangeTable{unicode.Georgian}},
	{"Hebrew", []*unicode.RangeTable{unicode.Hebrew}},
	{"Arabic", []*unicode.RangeTable{unicode.Arabic}},
	{"Devanagari", []*unicode.RangeTable{unicode.Devanagari}},
	{"Thai", []*unicode.RangeTable{unicode.Thai}},
	{"Hangul", []*unicode.RangeTable{unicode.Hangul}},
	{"Japanese", []*unicode.RangeTable{unicode.Han, unicode.Hiragana, unicode.Katakana}},
	{"Cherokee", []*unicode.RangeTable{unicode.Cherokee}},
}

// mixedScript reports letters of more than one script in s.
func mixedScript(s string) bool {
	seen := ""
	for _, r := range s {
		if !unicode.IsLetter(r) {
			continue
		}
		name := "Other"
		for _, sc := range scripts {
			if unicode.In(r, sc.tables...) {
				name = sc.name
				break
			}
		}
		if seen != "" && seen != name {
			return true
		}
		seen = name
	}
	return false
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
