// Package browser holds the tests that drive idlink's pages in a real
// headless Chromium (Debian's chromium, through the DevTools protocol with
// chromedp), and run axe-core on every page they visit, failing on serious
// or critical accessibility problems.
//
// The tests skip when no Chromium is installed, unless
// IDLINK_REQUIRE_BROWSER=1 (as in CI), when they fail instead. Run them
// alone with `make test-browser`.
package browser
