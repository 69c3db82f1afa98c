package account

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrPhoneInvalid is returned for a number that is not a valid mobile number.
var ErrPhoneInvalid = errors.New("not a valid mobile phone number")

// ErrPhoneCountry is returned for a mobile number in a country texts are
// not sent to (UK mobiles only, unless IDLINK_SMS_COUNTRIES allows more).
var ErrPhoneCountry = errors.New("texts are not sent to this country")

// ParsePhone reads a mobile number as a person types it (UK numbers may
// omit +44) and returns it in E.164. Numbers that cannot receive text
// messages (UK landlines) are refused. allowDrama also accepts Ofcom's
// drama range 07700 900000–900999, which no phone answers: for the
// development sandbox only.
func ParsePhone(raw string, allowDrama bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 32 {
		return "", ErrPhoneInvalid
	}
	n, err := phonenumbers.Parse(raw, "GB")
	if err != nil {
		return "", ErrPhoneInvalid
	}
	e164 := phonenumbers.Format(n, phonenumbers.E164)
	if allowDrama && len(e164) == 13 && strings.HasPrefix(e164, "+447700900") {
		return e164, nil
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", ErrPhoneInvalid
	}
	switch phonenumbers.GetNumberType(n) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return e164, nil
	}
	return "", ErrPhoneInvalid
}

// MaskPhone shows only the last three digits of a number, for pages that
// say where a code was sent.
func MaskPhone(e164 string) string {
	if len(e164) < 4 {
		return "your phone"
	}
	return "a number ending " + e164[len(e164)-3:]
}
