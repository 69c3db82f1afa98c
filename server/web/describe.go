package web

import (
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	_ "time/tzdata" // Europe/London must load on a machine without zoneinfo
)

// london is the time zone every time shown to a person is in.
var london = mustLoad("Europe/London")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err) // embedded by time/tzdata
	}
	return loc
}

// UKTime formats t in UK time (Europe/London), as pages and messages show
// it: "2 December 2026 at 3:04pm".
func UKTime(t time.Time) string { return t.In(london).Format("2 January 2006 at 3:04pm") }

// UKDate formats the day of t in UK time: "2 December 2026".
func UKDate(t time.Time) string { return t.In(london).Format("2 January 2006") }

// DescribeBrowser names the browser and operating system of a User-Agent
// header in words ("Firefox on Windows"), or "an unknown browser". It only
// looks for well-known tokens; the result is shown to the person, never
// trusted.
func DescribeBrowser(ua string) string {
	browser, os := BrowserAndOS(ua)
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "a browser on " + os
	}
	return "an unknown browser"
}

// BrowserAndOS names the browser and operating system of a User-Agent
// header ("Firefox", "Windows"), each "" when it cannot tell. It only looks
// for well-known tokens; the result is shown to the person, never trusted.
func BrowserAndOS(ua string) (browser, os string) {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	has := func(s string) bool { return strings.Contains(ua, s) }
	switch {
	case has("Edg/"), has("EdgA/"), has("EdgiOS/"):
		browser = "Edge"
	case has("SamsungBrowser/"):
		browser = "Samsung Internet"
	case has("OPR/"), has("Opera"):
		browser = "Opera"
	case has("Firefox/"), has("FxiOS/"):
		browser = "Firefox"
	case has("CriOS/"), has("Chrome/") && !has("Chromium/"):
		browser = "Chrome"
	case has("Chromium/"):
		browser = "Chromium"
	case has("Safari/") && has("Version/"):
		browser = "Safari"
	}
	switch {
	case has("iPhone"), has("iPad"), has("iPod"):
		os = "iOS"
	case has("Android"):
		os = "Android"
	case has("CrOS"):
		os = "ChromeOS"
	case has("Windows"):
		os = "Windows"
	case has("Mac OS X"), has("Macintosh"):
		os = "macOS"
	case has("Linux"):
		os = "Linux"
	}
	return browser, os
}

// NationalPhone shows a number stored in E.164 as people write it: UK
// numbers in national format ("07700 900123"), others internationally
// ("+33 6 12 34 56 78"). "" stays "".
func NationalPhone(e164 string) string {
	if e164 == "" {
		return ""
	}
	n, err := phonenumbers.Parse(e164, "GB")
	if err != nil {
		return e164
	}
	if n.GetCountryCode() == 44 {
		return phonenumbers.Format(n, phonenumbers.NATIONAL)
	}
	return phonenumbers.Format(n, phonenumbers.INTERNATIONAL)
}
