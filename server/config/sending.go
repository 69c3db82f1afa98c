package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/sending"
)

// DefaultCodeGuesses is how many wrong security codes an account may have
// per window, across resends, before its logins with a code stop.
var DefaultCodeGuesses = ratelimit.Rate{N: 10, Per: time.Hour}

// loadAbuse reads the sending budgets, the wrong-code cap, the provider
// deadline, the client-address proxy settings and the metrics exposure.
// Every variable and its default is listed in docs/SECURITY.md.
func loadAbuse(c *Config, get func(k, def string) string, bad func(format string, a ...any)) {
	l := sending.DefaultLimits()
	rate := func(name string, r *ratelimit.Rate) {
		v := get(name, r.String())
		got, err := ratelimit.ParseRate(v)
		if err != nil {
			bad("%s: %v", name, err)
			return
		}
		*r = got
	}
	count := func(name string, n *int, lo, hi int) {
		v, err := strconv.Atoi(get(name, strconv.Itoa(*n)))
		if err != nil || v < lo || v > hi {
			bad("%s must be a whole number from %d to %d", name, lo, hi)
			return
		}
		*n = v
	}
	rate("IDLINK_SMS_SIGNUP_NUMBERS", &l.SignupNumbers)
	rate("IDLINK_SMS_SIGNUP_CODES", &l.SignupCodes)
	rate("IDLINK_SMS_PER_ACCOUNT", &l.AccountTexts)
	rate("IDLINK_SMS_PER_NEW_NUMBER", &l.NewNumber)
	rate("IDLINK_SMS_PER_VERIFIED_NUMBER", &l.VerifiedNumber)
	rate("IDLINK_SMS_PER_ADDRESS", &l.Address)
	rate("IDLINK_SMS_PER_NETWORK", &l.Network)
	count("IDLINK_SMS_CEILING_PER_MINUTE", &l.CeilingPerMinute, 1, 1_000_000)
	count("IDLINK_SMS_CEILING_PER_HOUR", &l.CeilingPerHour, 1, 100_000_000)
	count("IDLINK_SMS_SIGNUP_SHARE", &l.SignupShare, 0, 100)
	for _, cc := range splitComma(get("IDLINK_SMS_COUNTRIES", "")) {
		cc = strings.ToUpper(cc)
		if phonenumbers.GetCountryCodeForRegion(cc) == 0 {
			bad("IDLINK_SMS_COUNTRIES: %q is not an ISO 3166 region code with phone numbers (like IE, FR)", cc)
			continue
		}
		l.Countries = append(l.Countries, cc)
	}
	rate("IDLINK_EMAIL_PER_RECIPIENT", &l.EmailRecipient)
	rate("IDLINK_EMAIL_PER_ADDRESS", &l.EmailAddress)
	c.Sending = l

	c.CodeGuesses = DefaultCodeGuesses
	rate("IDLINK_CODE_GUESSES", &c.CodeGuesses)
	var err error
	if c.NotifyDeadline, err = duration(get("IDLINK_NOTIFY_DEADLINE", "10s")); err != nil || c.NotifyDeadline > time.Minute {
		bad("IDLINK_NOTIFY_DEADLINE must be a duration up to 1m")
	}

	c.ProxyHeader = get("IDLINK_PROXY_HEADER", "")
	c.MetricsAddr = get("IDLINK_METRICS_ADDR", "")
	c.MetricsToken = get("IDLINK_METRICS_TOKEN", "")
	if c.MetricsToken != "" && len(c.MetricsToken) < 32 {
		bad("IDLINK_METRICS_TOKEN must be at least 32 characters")
	}
}
