// Package servertest starts a real idlink server on a loopback port for
// end-to-end tests, and drives it like a person with a browser would:
// cookies, forms with their CSRF tokens, and the development outbox for
// emailed links and texted codes.
package servertest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/password"
)

// FastPasswords are Argon2id parameters cheap enough for tests that hash
// hundreds of passwords; production parameters are password.DefaultParams.
var FastPasswords = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// The WebAuthn relying party of test servers (the issuer's host is an IP
// address, which WebAuthn does not accept as a relying party id).
const (
	WebAuthnRPID   = "localhost"
	WebAuthnOrigin = "http://localhost"
)

// Server is a running test server.
type Server struct {
	*server.Server
	URL string
}

// Start runs a server in development mode on dbURL (see dbtest.EachURL)
// until the test ends. env adds or overrides IDLINK_* variables.
func Start(t testing.TB, dbURL string, env map[string]string, opt server.Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	vars := map[string]string{
		"IDLINK_DATA_DIR":     t.TempDir(),
		"IDLINK_DATABASE_URL": dbURL,
		"IDLINK_ISSUER":       base,
		"IDLINK_ADDR":         ln.Addr().String(),
		"IDLINK_LOG_LEVEL":    "warn",
		// WebAuthn refuses an IP address as relying party id: tests use
		// localhost. Virtual authenticators claim WebAuthnOrigin; a real
		// browser opens the server as http://localhost:<port>.
		"IDLINK_WEBAUTHN_RP_ID":   WebAuthnRPID,
		"IDLINK_WEBAUTHN_ORIGINS": WebAuthnOrigin + "," + WebAuthnOrigin + ":" + portOf(ln.Addr()),
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	require.NoError(t, err)
	if opt.PasswordParams == (password.Params{}) {
		opt.PasswordParams = FastPasswords
	}
	if opt.Logger == nil {
		opt.Logger = server.NewLogger(vars["IDLINK_LOG_LEVEL"])
	}
	srv, err := server.New(context.Background(), cfg, opt)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("server stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not shut down")
		}
		srv.Close()
	})
	return &Server{Server: srv, URL: base}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// Latest returns the newest outbox message of kind sent to recipient.
func (s *Server) Latest(t testing.TB, recipient string, kind notify.Kind) notify.Entry {
	t.Helper()
	require.NotNil(t, s.Outbox, "the sandbox provider is not in use")
	e, err := s.Outbox.Latest(context.Background(), recipient, kind)
	require.NoError(t, err, "no %s message to %s", kind, recipient)
	return e
}

// Browser is an HTTP client with a cookie jar that follows redirects and
// fills in forms' hidden fields, as a browser would.
type Browser struct {
	t      testing.TB
	base   string
	Client *http.Client
}

// NewBrowser returns a browser with no cookies.
func (s *Server) NewBrowser(t testing.TB) *Browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &Browser{t: t, base: s.URL, Client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// Page is a response as the browser saw it after redirects.
type Page struct {
	Status int
	URL    *url.URL
	Header http.Header
	Body   string
	doc    *html.Node
}

// Get loads path (or an absolute URL).
func (b *Browser) Get(path string) *Page {
	b.t.Helper()
	resp, err := b.Client.Get(b.abs(path))
	require.NoError(b.t, err)
	return b.read(resp)
}

// Post submits raw form values to path without looking at any form (for
// tests of forged or stale submissions).
func (b *Browser) Post(path string, values url.Values) *Page {
	b.t.Helper()
	resp, err := b.Client.PostForm(b.abs(path), values)
	require.NoError(b.t, err)
	return b.read(resp)
}

// Submit fills the form on p whose action is action with fields (plus the
// form's hidden inputs, such as the CSRF token) and posts it.
func (b *Browser) Submit(p *Page, action string, fields map[string]string) *Page {
	b.t.Helper()
	form := p.form(action)
	require.NotNil(b.t, form, "no form with action %q on %s (h1 %q)", action, p.URL, p.H1())
	values := url.Values{}
	walk(form, func(n *html.Node) {
		if n.Data == "input" && attr(n, "type") == "hidden" {
			values.Set(attr(n, "name"), attr(n, "value"))
		}
	})
	for k, v := range fields {
		values.Set(k, v)
	}
	target := p.URL.ResolveReference(&url.URL{Path: action})
	return b.Post(target.String(), values)
}

func (b *Browser) abs(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return b.base + path
}

func (b *Browser) read(resp *http.Response) *Page {
	b.t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	p := &Page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		p.doc, err = html.Parse(strings.NewReader(p.Body))
		require.NoError(b.t, err)
	}
	return p
}

// H1 returns the text of the page's first <h1>, trimmed.
func (p *Page) H1() string {
	var out string
	walk(p.doc, func(n *html.Node) {
		if out == "" && n.Type == html.ElementNode && n.Data == "h1" {
			out = strings.Join(strings.Fields(text(n)), " ")
		}
	})
	return out
}

// Errors returns the messages in the page's error summary.
func (p *Page) Errors() []string {
	var out []string
	walk(p.doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "ul" && strings.Contains(attr(n, "class"), "nhsuk-error-summary__list") {
			walk(n, func(li *html.Node) {
				if li.Type == html.ElementNode && li.Data == "a" {
					out = append(out, strings.Join(strings.Fields(text(li)), " "))
				}
			})
		}
	})
	return out
}

// Text returns the visible text of the element with id, or "".
func (p *Page) Text(id string) string {
	var out string
	walk(p.doc, func(n *html.Node) {
		if out == "" && n.Type == html.ElementNode && attr(n, "id") == id {
			out = strings.Join(strings.Fields(text(n)), " ")
		}
	})
	return out
}

// HasForm reports whether the page has a form posting to action.
func (p *Page) HasForm(action string) bool { return p.form(action) != nil }

func (p *Page) form(action string) *html.Node {
	var found *html.Node
	walk(p.doc, func(n *html.Node) {
		if found == nil && n.Type == html.ElementNode && n.Data == "form" && attr(n, "action") == action {
			found = n
		}
	})
	return found
}

func walk(n *html.Node, fn func(*html.Node)) {
	if n == nil {
		return
	}
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			sb.WriteString(c.Data)
			sb.WriteByte(' ')
		}
	})
	return sb.String()
}

// AuditCount counts the audit events of typ about accountID ("" for any
// account) whose detail contains every one of the fragments.
func (s *Server) AuditCount(t testing.TB, typ, accountID string, fragments ...string) int {
	t.Helper()
	q := `SELECT COUNT(*) FROM audit_events WHERE type = ?`
	args := []any{typ}
	if accountID != "" {
		q += ` AND account_id = ?`
		args = append(args, accountID)
	}
	for _, f := range fragments {
		q += ` AND detail LIKE ?`
		args = append(args, "%"+f+"%")
	}
	var n int
	require.NoError(t, s.DB.Get(&n, s.DB.Rebind(q), args...))
	return n
}

// SignIns counts login.completed events of accountID whose method is
// exactly method.
func (s *Server) SignIns(t testing.TB, accountID, method string) int {
	t.Helper()
	return s.AuditCount(t, "login.completed", accountID, `"method":"`+method+`"`)
}

// PDSChecks is how many per-login PDS checks have run, whatever their
// outcome.
func (s *Server) PDSChecks(t testing.TB) int {
	t.Helper()
	mfs, err := s.Metrics.Registry.Gather()
	require.NoError(t, err)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "idlink_pds_login_checks_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int(n)
}

// AccountID returns the id of the account with email.
func (s *Server) AccountID(t testing.TB, email string) string {
	t.Helper()
	var id string
	require.NoError(t, s.DB.Get(&id, s.DB.Rebind(`SELECT id FROM accounts WHERE email = ?`), email))
	return id
}
