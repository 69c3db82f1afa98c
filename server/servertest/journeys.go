package servertest

import (
	"github.com/idlink/idlink/server/account"
	"testing"

	"github.com/stretchr/testify/require"
)

// CreateAccount walks the whole signup journey through the pages and
// returns the page it ends on (the account page, or wherever a pending
// login journey continues).
func (s *Server) CreateAccount(t testing.TB, b *Browser, email, password, phone string) *Page {
	t.Helper()
	p := b.Get("/create-account")
	require.Equal(t, "What is your email address?", p.H1())
	p = b.Submit(p, "/create-account/email", map[string]string{"email": email})
	require.Equal(t, "Create a password", p.H1(), p.Errors())
	p = b.Submit(p, "/create-account/password", map[string]string{"password": password})
	require.Equal(t, "Accept the terms of use", p.H1(), p.Errors())
	p = b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
	require.Equal(t, "Check your email", p.H1(), p.Errors())
	return s.FinishSignup(t, b, email, phone)
}

// FinishSignup follows the newest verification link sent to email and
// completes the phone step.
func (s *Server) FinishSignup(t testing.TB, b *Browser, email, phone string) *Page {
	t.Helper()
	link := s.Latest(t, account.NormalizeEmail(email), "signup_verify_email").Link
	p := b.Get(link)
	require.Equal(t, "Confirm your email address", p.H1())
	p = b.Submit(p, "/create-account/verify", nil)
	require.Equal(t, "Enter your mobile phone number", p.H1(), p.Errors())
	p = b.Submit(p, "/create-account/phone", map[string]string{"phone": phone})
	require.Equal(t, "Enter the security code", p.H1(), p.Errors())
	code := s.CodeFor(t, E164(t, phone), "signup_code")
	return b.Submit(p, "/create-account/code", map[string]string{"code": code})
}

// CodeFor returns the newest security code texted to phone (E.164).
func (s *Server) CodeFor(t testing.TB, phone string, kind string) string {
	t.Helper()
	return s.Latest(t, phone, notifyKind(kind)).Code
}

// LogIn signs in with a password and the texted code, starting from
// whatever login page p shows (or /login when p is nil).
func (s *Server) LogIn(t testing.TB, b *Browser, p *Page, email, password, phone string) *Page {
	t.Helper()
	if p == nil {
		p = b.Get("/login")
	}
	require.Equal(t, "Log in", p.H1())
	p = b.Submit(p, "/login", map[string]string{"email": email, "password": password})
	require.Equal(t, "Enter the security code", p.H1(), p.Errors())
	return b.Submit(p, "/login/code", map[string]string{"code": s.CodeFor(t, E164(t, phone), "login_code")})
}
