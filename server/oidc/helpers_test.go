package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

const (
	testIssuer     = "https://id.example.test"
	testAdminToken = "admin-token-0123456789-abcdefghij"
	testAccount    = "acct-1"
	rpRedirect     = "https://rp.example.test/callback"
	appRedirect    = "com.example.app:/callback"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Now().UTC().Truncate(time.Second)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memPeople is an in-memory People.
type memPeople struct {
	mu sync.RWMutex
	m  map[string]Person
}

func (p *memPeople) Person(_ context.Context, id string) (Person, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	person, ok := p.m[id]
	if !ok {
		return Person{}, ErrNoPerson
	}
	return person, nil
}

func (p *memPeople) set(id string, person Person) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[id] = person
}

// fullPerson is a P9 person with every claim populated.
func fullPerson() Person {
	return Person{
		Email: "jane@example.test", EmailVerified: true,
		PhoneNumber: "+447700900123", PhoneNumberVerified: true, PhoneNumberPDSMatched: true,
		LandlineNumber: "+441134960000", LandlineNumberVerified: false,
		ProofingLevel: trust.P9, NHSNumber: "9000000009", FamilyName: "Smith", GivenName: "Jane",
		BirthDate: "2010-10-22", GPODSCode: "Y12345",
		GPIntegration: &GPIntegrationCredentials{GPUserID: "u-1", GPLinkageKey: "lk-1", GPODSCode: "Y12345"},
	}
}

var (
	keyCacheMu sync.Mutex
	keyCache   = map[string]*rsa.PrivateKey{}
)

// testKey reads testdata/<name>_key.pem.
func testKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[name]; ok {
		return k
	}
	b, err := os.ReadFile(filepath.Join("testdata", name+"_key.pem"))
	require.NoError(t, err)
	k, err := parseRSAPrivateKeyPEM(b, name)
	require.NoError(t, err)
	keyCache[name] = k
	return k
}

func publicPEM(t testing.TB, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// testKeyGenerator hands out the committed signing keys in turn instead of
// generating RSA keys (slow under the race detector).
func testKeyGenerator(t testing.TB) func() (*rsa.PrivateKey, error) {
	keys := []*rsa.PrivateKey{testKey(t, "sign1"), testKey(t, "sign2"), testKey(t, "sign3"), testKey(t, "sign4")}
	var mu sync.Mutex
	i := 0
	return func() (*rsa.PrivateKey, error) {
		mu.Lock()
		defer mu.Unlock()
		k := keys[i%len(keys)]
		i++
		return k, nil
	}
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// env is a running provider with two clients and one person.
type env struct {
	t      testing.TB
	db     *sqlx.DB
	srv    *Server
	app    *fiber.App
	clock  *testClock
	people *memPeople
	rp     *Client // confidential, key rp1, every scope, refresh tokens
	rpKey  *rsa.PrivateKey
	app1   *Client // public, PKCE
	cfg    Config
	deps   Deps
}

// replica returns another Server on the same database, keyring and clock,
// as a second replica would be.
func (e *env) replica() *Server {
	e.t.Helper()
	s, err := New(e.cfg, e.deps)
	require.NoError(e.t, err)
	s.keys.generate = testKeyGenerator(e.t)
	e.t.Cleanup(func() { require.NoError(e.t, s.Close()) })
	return s
}

func newEnv(t testing.TB, db *sqlx.DB, opts ...func(*Config)) *env {
	t.Helper()
	clock := newTestClock()
	cfg := Config{Issuer: testIssuer, AdminToken: testAdminToken, Now: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	kr, err := secrets.NewKeyring(secrets.NewKey())
	require.NoError(t, err)
	people := &memPeople{m: map[string]Person{testAccount: fullPerson()}}
	deps := Deps{DB: db, Keyring: kr, People: people, Logger: slog.New(slog.NewTextHandler(tbWriter{t}, nil))}
	srv, err := New(cfg, deps)
	require.NoError(t, err)
	srv.keys.generate = testKeyGenerator(t)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	ctx := context.Background()
	require.NoError(t, srv.Keys().EnsureKeys(ctx))
	app := fiber.New()
	srv.Register(app)
	srv.Admin().Register(app.Group("/admin"))

	e := &env{t: t, db: db, srv: srv, app: app, clock: clock, people: people, rpKey: testKey(t, "rp1"), cfg: cfg, deps: deps}
	e.rp, err = srv.Clients().Create(ctx, Client{
		ID: "rp1", Name: "Relying party 1", RedirectURIs: []string{rpRedirect},
		Scopes: SupportedScopes(), VTR: NHSProfileVectors(), PublicKeyPEM: publicPEM(t, e.rpKey), RefreshTokens: true,
	})
	require.NoError(t, err)
	e.app1, err = srv.Clients().Create(ctx, Client{
		ID: "app1", Name: "Native app", RedirectURIs: []string{appRedirect}, Public: true,
		Scopes: []string{ScopeOpenID, ScopeProfile, ScopeEmail}, VTR: NHSProfileVectors(), RefreshTokens: true,
	})
	require.NoError(t, err)
	return e
}

func fiberTestConfig() fiber.TestConfig {
	return fiber.TestConfig{Timeout: 60 * time.Second, FailOnTimeout: true}
}

// do sends a request through the Fiber app.
func (e *env) do(req *http.Request) *http.Response {
	e.t.Helper()
	resp, err := e.app.Test(req, fiberTestConfig())
	require.NoError(e.t, err)
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// jsonBody decodes a JSON response body (nil for an empty one).
func jsonBody(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "body: %s", b)
	return m
}

// postForm posts a form and returns the status and the decoded JSON body.
func (e *env) postForm(path string, v url.Values) (*http.Response, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := e.do(req)
	return resp, jsonBody(e.t, resp)
}

// signJWT signs claims with key (an *rsa.PrivateKey, or []byte for HMAC).
func signJWT(t testing.TB, key any, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}

// assertionClaims are valid client-assertion claims for clientID.
func (e *env) assertionClaims(clientID string) map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": testIssuer + "/token",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": secrets.NewID(),
	}
}

// assertion is a valid RS512 client assertion by rp1, changed by mutate.
func (e *env) assertion(mutate func(map[string]any)) string {
	c := e.assertionClaims(e.rp.ID)
	if mutate != nil {
		mutate(c)
	}
	return signJWT(e.t, e.rpKey, jose.RS512, c)
}

// clientAuth returns the form fields authenticating with assertion.
func clientAuth(assertion string) url.Values {
	return url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {assertion}}
}

// newVerifier returns a PKCE verifier and its S256 challenge.
func newVerifier() (string, string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

// grant returns a grant for rp1 at P9.Cp.Cd with PKCE; verifier is the
// matching code_verifier.
func (e *env) grant(mutate func(*Grant)) (g Grant, verifier string) {
	vtr, err := trust.ParseVTR(`["P9.Cp.Cd","P9.Cm"]`) // NHS login's default as /authorize passes it on (less Ck)
	require.NoError(e.t, err)
	verifier, challenge := newVerifier()
	g = Grant{
		ClientID: e.rp.ID, RedirectURI: rpRedirect, AccountID: testAccount,
		Scopes: []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopePhone},
		Nonce:  "n-" + secrets.NewID(), VoT: "P9.Cp.Cd", VTR: vtr,
		AuthTime:      e.clock.Now().Add(-time.Minute),
		Credentials:   trust.Credentials{trust.Cp, trust.Cd},
		CodeChallenge: challenge, CodeChallengeMethod: CodeChallengeS256,
	}
	if mutate != nil {
		mutate(&g)
	}
	return g, verifier
}

// issue issues a code for g.
func (e *env) issue(g Grant) string {
	e.t.Helper()
	code, err := e.srv.IssueCode(context.Background(), g)
	require.NoError(e.t, err)
	return code
}

// exchangeForm is a valid authorization_code request by rp1.
func (e *env) exchangeForm(code, verifier string) url.Values {
	f := clientAuth(e.assertion(nil))
	f.Set("grant_type", GrantTypeAuthorizationCode)
	f.Set("code", code)
	f.Set("redirect_uri", rpRedirect)
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return f
}

// login issues a code for rp1 and exchanges it, returning the tokens.
func (e *env) login(mutate func(*Grant)) map[string]any {
	e.t.Helper()
	g, verifier := e.grant(mutate)
	resp, body := e.postForm("/token", e.exchangeForm(e.issue(g), verifier))
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", body)
	return body
}

// loginAs issues a code for another confidential client (signing its
// assertion with key) and exchanges it.
func (e *env) loginAs(clientID string, key *rsa.PrivateKey, redirectURI string, mutate func(*Grant)) map[string]any {
	e.t.Helper()
	g, verifier := e.grant(func(g *Grant) {
		g.ClientID, g.RedirectURI = clientID, redirectURI
		if mutate != nil {
			mutate(g)
		}
	})
	f := clientAuth(signJWT(e.t, key, jose.RS512, e.assertionClaims(clientID)))
	f.Set("grant_type", GrantTypeAuthorizationCode)
	f.Set("code", e.issue(g))
	f.Set("redirect_uri", redirectURI)
	f.Set("code_verifier", verifier)
	resp, body := e.postForm("/token", f)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", body)
	return body
}

// refreshForm is a refresh_token request by rp1.
func (e *env) refreshForm(token string) url.Values {
	f := clientAuth(e.assertion(nil))
	f.Set("grant_type", GrantTypeRefreshToken)
	f.Set("refresh_token", token)
	return f
}

// verifyToken checks a token this server signed against its JWKS and
// returns its header and claims.
func (e *env) verifyToken(raw string) (jose.Header, map[string]any) {
	e.t.Helper()
	resp := e.do(httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&set))
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS512})
	require.NoError(e.t, err)
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	require.Len(e.t, keys, 1, "kid %s in JWKS", h.KeyID)
	payload, err := jws.Verify(keys[0].Key)
	require.NoError(e.t, err)
	var claims map[string]any
	require.NoError(e.t, json.Unmarshal(payload, &claims))
	return h, claims
}

// userinfo calls GET /userinfo with a bearer token.
func (e *env) userinfo(token string) (*http.Response, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp := e.do(req)
	return resp, jsonBody(e.t, resp)
}

// count returns the number of rows of a query's result.
func count(t testing.TB, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.Get(&n, db.Rebind(query), args...))
	return n
}
