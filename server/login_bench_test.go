package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/servertest"
)

// benchClock lets the benchmark move time on between logins, so one
// account can log in b.N times without meeting the limit of five codes per
// number per fifteen minutes.
type benchClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *benchClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *benchClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// BenchmarkFullLogin measures one complete password login through the
// pages over loopback HTTP, with production Argon2id parameters on
// embedded SQLite: load the login page, post email and password (hash
// check, lockout counter, audit events, a security code stored and
// "texted" to the outbox), then post the code and land signed in.
// Compare with BenchmarkArgon2idVerify, the bare hash it contains; run both
// with -cpu 1 for the per-core figure.
func BenchmarkFullLogin(b *testing.B) {
	clk := &benchClock{now: time.Now()}
	s := servertest.Start(b, dbtest.SQLiteURL(b), nil, server.Options{PasswordParams: password.DefaultParams, Now: clk.Now})
	setup := s.NewBrowser(b)
	require.Equal(b, "Your account", s.CreateAccount(b, setup, "bench@example.org", pw, phone).H1())

	e164 := servertest.E164(b, phone)
	b.ResetTimer()
	for b.Loop() {
		// A lean client: the browser helper parses every page's HTML, which
		// on one core would bill the test harness to the server.
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		page := get(b, c, s.URL+"/login")
		page = post(b, c, s.URL+"/login", url.Values{"csrf_token": {csrf(b, page)}, "email": {"bench@example.org"}, "password": {pw}})
		code := s.CodeFor(b, e164, "login_code")
		page = post(b, c, s.URL+"/login/code", url.Values{"csrf_token": {csrf(b, page)}, "code": {code}})
		if !strings.Contains(page, "<h1>Your account</h1>") {
			b.Fatal("login did not end on the account page")
		}
		clk.Add(4 * time.Minute)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrf(b *testing.B, page string) string {
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.Fatal("no CSRF token on the page")
	}
	return m[1]
}

func get(b *testing.B, c *http.Client, u string) string {
	resp, err := c.Get(u)
	require.NoError(b, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b, err)
	return string(body)
}

func post(b *testing.B, c *http.Client, u string, v url.Values) string {
	resp, err := c.PostForm(u, v)
	require.NoError(b, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b, err)
	return string(body)
}

// BenchmarkArgon2idVerify is the bare cost of the password check inside a
// login: one Argon2id verification with production parameters.
func BenchmarkArgon2idVerify(b *testing.B) {
	h := password.NewHasher(password.DefaultParams, 0)
	enc, err := h.Hash(context.Background(), pw)
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		ok, _, err := h.Verify(context.Background(), enc, pw)
		if err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}
