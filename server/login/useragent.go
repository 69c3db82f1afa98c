package login

import "strings"

// describeAgent names the browser and operating system of a User-Agent
// header for a phone approval ("Firefox", "Windows"), or "" when it cannot
// tell. It only looks for well-known tokens; the result is shown to the
// person, never trusted.
func describeAgent(ua string) (browser, os string) {
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
