// Package web renders the server's HTML pages with the NHS.UK design system,
// and holds what every page needs: server-side sessions, CSRF protection,
// security headers, form errors, and the embedded templates and assets.
//
// Capabilities own their handlers and call Render with a page name; the
// pages themselves live in templates/, each defining a "content" block that
// the layout wraps.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Static returns the embedded NHS.UK frontend assets, rooted so that
// nhsuk-frontend.min.css and images/ sit at its top (served under /assets/).
func Static() fs.FS {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// FieldError is a message about one form field; Field is the id of the
// input the error summary links to.
type FieldError struct {
	Field   string
	Message string
}

// Errors is the ordered list of problems with a submitted form.
type Errors []FieldError

// Add appends an error for field.
func (e *Errors) Add(field, message string) { *e = append(*e, FieldError{field, message}) }

// For returns the first message for field, or "".
func (e Errors) For(field string) string {
	for _, fe := range e {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

// View is what every page template receives.
type View struct {
	Title      string            // the page's question or purpose; also its <h1> unless the page overrides it
	Errors     Errors            // shown in the error summary and beside each field
	Values     map[string]string // submitted values to show again
	Data       any               // page-specific data
	csrf       func() string     // filled by Render; called only by pages with forms
	SignedIn   bool              // filled by Render
	Dev        bool              // filled by Render: show the development outbox link
	BackLink   string            // optional "Back" link target
	Notice     string            // optional message shown above the content
	RequestID  string            // filled by Render, shown on error pages
	StatusCode int               // filled by Render
}

// CSRF returns the session's anti-forgery token for a form, creating the
// session on first use; pages without forms never call it.
func (v View) CSRF() string {
	if v.csrf == nil {
		return ""
	}
	return v.csrf()
}

// Value returns the submitted value of a field.
func (v View) Value(name string) string { return v.Values[name] }

// Renderer turns page names into HTML responses.
type Renderer struct {
	pages map[string]*template.Template
	dev   bool
}

// NewRenderer parses the embedded templates. dev shows development-only
// links (the outbox).
func NewRenderer(dev bool) (*Renderer, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	r := &Renderer{pages: map[string]*template.Template{}, dev: dev}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone layout: %w", err)
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Render writes page with status. It fills in the CSRF token, whether
// someone is signed in, and the request id.
func (r *Renderer) Render(c fiber.Ctx, status int, page string, v View) error {
	t, ok := r.pages[page]
	if !ok {
		return fmt.Errorf("render: no page %q", page)
	}
	if s, ok := c.Locals(localsSession).(*Session); ok {
		v.csrf = s.CSRFToken
		v.SignedIn = s.AccountID() != "" && isSignedIn(s)
	}
	v.Dev = r.dev
	v.RequestID = RequestID(c)
	v.StatusCode = status
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("render %s: %w", page, err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// Has reports whether a page template exists (used by tests).
func (r *Renderer) Has(page string) bool { _, ok := r.pages[page]; return ok }

// ErrorPage renders the generic error page with a title and a message.
func (r *Renderer) ErrorPage(c fiber.Ctx, status int, title, message string) error {
	return r.Render(c, status, "error", View{Title: title, Data: message})
}

// SignedInKey is the session key under which the login capability records a
// completed sign-in; pages only need to know whether it is there.
const SignedInKey = "auth"

func isSignedIn(s *Session) bool {
	_, ok := s.values[SignedInKey]
	return ok
}

// SignedInAccount returns the account of a login made on idlink itself in
// this session, or "" — a session carrying only another relying party's
// login (single sign-on) opens none of idlink's own pages.
func SignedInAccount(s *Session) string {
	if !isSignedIn(s) {
		return ""
	}
	return s.AccountID()
}

var funcs = template.FuncMap{
	// ukTime and ukDate show times in UK time (Europe/London).
	"ukTime": UKTime,
	"ukDate": UKDate,
	// phone shows an E.164 number as people write it.
	"phone": NationalPhone,
	// dict builds a map for passing several values to a partial.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict needs key/value pairs")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

// CSRFField is the name of the hidden form field that carries the token.
const CSRFField = "csrf_token"

// CheckCSRF wraps a form handler so that it runs only when the submitted
// token matches the session's. A mismatch renders a 403 page that sends the
// person back to start again; nothing is changed.
func (r *Renderer) CheckCSRF(h fiber.Handler) fiber.Handler {
	return func(c fiber.Ctx) error {
		s := Sess(c)
		var want string
		got := c.FormValue(CSRFField)
		if !s.Get("csrf", &want) || want == "" || got == "" || !constantEqual(got, want) {
			return r.ErrorPage(c, http.StatusForbidden, "Sorry, you need to start again",
				"This page was open for too long or was sent from somewhere else. Go back, refresh the page and try again.")
		}
		return h(c)
	}
}

// Pages registers page routes: each runs with the browser's session and is
// never cached; POST handlers run behind the CSRF check.
type Pages struct {
	R        fiber.Router
	Renderer *Renderer
	Sessions *Sessions
}

// Get registers a page.
func (p Pages) Get(path string, h fiber.Handler) { p.R.Get(path, p.Sessions.Middleware(), NoStore, h) }

// Post registers a form handler behind the CSRF check.
func (p Pages) Post(path string, h fiber.Handler) {
	p.R.Post(path, p.Sessions.Middleware(), NoStore, p.Renderer.CheckCSRF(h))
}

func constantEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := range len(a) {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-ID"

const localsRequestID = "idlink.request_id"

// SetRequestID records the request's id for logs, pages and audit events.
func SetRequestID(c fiber.Ctx, id string) { c.Locals(localsRequestID, id) }

// RequestID returns the request's id, or "".
func RequestID(c fiber.Ctx) string {
	id, _ := c.Locals(localsRequestID).(string)
	return id
}

// Actor describes the request for audit events.
func Actor(c fiber.Ctx) audit.Actor {
	return audit.Actor{IP: ClientIP(c), UserAgent: string(c.Request().Header.UserAgent()), RequestID: RequestID(c)}
}

// SecurityHeaders sets the headers every response carries: a strict
// Content-Security-Policy (no inline script or style, no framing),
// Referrer-Policy, nosniff, and HSTS when the issuer is https.
func SecurityHeaders(https bool) fiber.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	return func(c fiber.Ctx) error {
		h := &c.Response().Header
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if https {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		return c.Next()
	}
}

// NoStore marks a response as not to be cached: every page that shows or
// asks for personal details.
func NoStore(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}
