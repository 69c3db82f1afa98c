package companion_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server"
	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

const (
	email       = "app.user@example.org"
	pw          = "correct horse battery staple"
	phoneNumber = "07700 900321"
)

// webauthnEnv gives the test server a WebAuthn relying party the virtual
// phone answers for (an IP address cannot be a relying party id, and the
// test server's issuer is http://127.0.0.1:port).
var webauthnEnv = map[string]string{"IDLINK_WEBAUTHN_RP_ID": "localhost", "IDLINK_WEBAUTHN_ORIGINS": "http://localhost"}

var rp = virtualwebauthn.RelyingParty{ID: "localhost", Name: "idlink", Origin: "http://localhost"}

// env is a running server with one account signed in on a browser.
type env struct {
	t   *testing.T
	s   *servertest.Server
	b   *servertest.Browser
	clk *clock // the server's clock, which the phone follows
}

func start(t *testing.T, dbURL string) *env {
	t.Helper()
	return startWith(t, dbURL, webauthnEnv, server.Options{})
}

// startWithClock starts a server whose clock the test moves.
func startWithClock(t *testing.T, dbURL string, vars map[string]string) *env {
	t.Helper()
	clk := &clock{}
	e := startWith(t, dbURL, vars, server.Options{Now: clk.Now})
	e.clk = clk
	return e
}

// startWith is start with more configuration.
func startWith(t *testing.T, dbURL string, vars map[string]string, opt server.Options) *env {
	t.Helper()
	s := servertest.Start(t, dbURL, vars, opt)
	b := s.NewBrowser(t)
	s.CreateAccount(t, b, email, pw, phoneNumber)
	// Stop at the app's private-use redirect URI instead of following it.
	// Stop at the app's private-use redirect URI and at the test relying
	// party's instead of following them.
	b.Client.CheckRedirect = stopAtRedirectURIs
	return &env{t: t, s: s, b: b}
}

// appToken runs the companion app's OIDC login (the browser is signed in
// already) and returns the access token for scope.
func (e *env) appToken(scope string) string {
	e.t.Helper()
	return e.appTokenWith(e.b, scope, `["P0.Cp.Cd"]`, nil)
}

// appTokenWith runs the companion app's OIDC login on b for vtr; login,
// when not nil, answers the login pages.
func (e *env) appTokenWith(b *servertest.Browser, scope, vtr string, login func(*servertest.Page) *servertest.Page) string {
	e.t.Helper()
	return e.appTokenSet(b, scope, vtr, login)["access_token"].(string)
}

// appTokenSet is appTokenWith returning the whole token response.
func (e *env) appTokenSet(b *servertest.Browser, scope, vtr string, login func(*servertest.Page) *servertest.Page) map[string]any {
	e.t.Helper()
	verifier := secrets.NewID() + secrets.NewID()
	sum := sha256.Sum256([]byte(verifier))
	state := secrets.NewID()
	q := url.Values{
		"response_type": {"code"}, "client_id": {idp.CompanionClientID}, "redirect_uri": {idp.CompanionRedirectURI},
		"scope": {scope}, "state": {state}, "nonce": {secrets.NewID()}, "vtr": {vtr},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	p := b.Get("/authorize?" + q.Encode())
	if login != nil {
		p = login(p)
	} else if p.H1() == "Log in" {
		// Enrolment always needs a login made for it.
		p = e.logInWithCode(b, p)
	}
	if p.HasForm("/authorize/consent") {
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
	}
	require.Equal(e.t, http.StatusSeeOther, p.Status, "page %q", p.H1())
	loc, err := url.Parse(p.Header.Get("Location"))
	require.NoError(e.t, err)
	require.Equal(e.t, "idlink-companion", loc.Scheme, loc.String())
	code := loc.Query().Get("code")
	require.NotEmpty(e.t, code, loc.String())
	return e.postToken(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {idp.CompanionRedirectURI},
		"client_id": {idp.CompanionClientID}, "code_verifier": {verifier}})
}

// logInWithCode answers the login page with the password and a texted
// code (asking for the code instead of the app when it has one).
func (e *env) logInWithCode(b *servertest.Browser, p *servertest.Page) *servertest.Page {
	e.t.Helper()
	p = b.Submit(p, "/login", map[string]string{"email": email, "password": pw})
	if p.HasForm("/login/approve/code") {
		p = b.Submit(p, "/login/approve/code", nil)
	}
	require.Equal(e.t, "Enter the security code", p.H1(), p.Errors())
	return b.Submit(p, "/login/code", map[string]string{"code": e.s.CodeFor(e.t, servertest.E164(e.t, phoneNumber), "login_code")})
}

func (e *env) postToken(form url.Values) map[string]any {
	e.t.Helper()
	resp, err := http.PostForm(e.s.URL+"/token", form)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(e.t, http.StatusOK, resp.StatusCode, out)
	return out
}

// call sends a JSON request and returns the status and decoded body.
func (e *env) call(method, path, authorization string, body any) (int, map[string]any) {
	e.t.Helper()
	return e.callAt(e.s.URL, method, path, authorization, body)
}

// callAt is call against base (another replica).
func (e *env) callAt(base, method, path, authorization string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	out := map[string]any{}
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

// phone is a simulated phone: platform authenticator and device key.
type phone struct {
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
	key      *ecdsa.PrivateKey
	deviceID string
}

func newPhone(t *testing.T) *phone {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return &phone{auth: virtualwebauthn.NewAuthenticator(), cred: virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2), key: key}
}

func (p *phone) jwk(t *testing.T) json.RawMessage {
	b, err := (&jose.JSONWebKey{Key: &p.key.PublicKey}).MarshalJSON()
	require.NoError(t, err)
	return b
}

// begin starts an enrolment and returns the ceremony id and options.
func (e *env) begin(token string) (string, string) {
	e.t.Helper()
	status, out := e.call(http.MethodPost, "/app/v1/enrolment/begin", "Bearer "+token, map[string]any{})
	require.Equal(e.t, http.StatusOK, status, out)
	opts, err := json.Marshal(out["options"])
	require.NoError(e.t, err)
	return out["ceremony_id"].(string), string(opts)
}

// attest answers creation options.
func (p *phone) attest(t *testing.T, options string) json.RawMessage {
	ao, err := virtualwebauthn.ParseAttestationOptions(options)
	require.NoError(t, err)
	resp := virtualwebauthn.CreateAttestationResponse(rp, p.auth, p.cred, *ao)
	p.auth.Options.UserHandle = []byte(ao.UserID)
	return json.RawMessage(resp)
}

// enrol runs a whole enrolment of the phone.
func (e *env) enrol(p *phone) {
	e.t.Helper()
	tok := e.appToken("openid device_enrolment")
	id, options := e.begin(tok)
	status, out := e.call(http.MethodPost, "/app/v1/devices", "Bearer "+tok, map[string]any{
		"ceremony_id": id, "credential": p.attest(e.t, options), "device_key": p.jwk(e.t),
		"name": "Test phone", "platform": "ios",
	})
	require.Equal(e.t, http.StatusCreated, status, out)
	p.deviceID = out["device_id"].(string)
	p.auth.AddCredential(p.cred)
}

// deviceJWT signs a device JWT for path with the given times.
func (p *phone) deviceJWT(t *testing.T, key *ecdsa.PrivateKey, aud string, iat, exp time.Time) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	require.NoError(t, err)
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: p.deviceID, Audience: jwt.Audience{aud}, ID: secrets.NewID(),
		IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(exp)}).Serialize()
	require.NoError(t, err)
	return raw
}

func (e *env) deviceAuth(p *phone, path string) string {
	now := time.Now()
	if e.clk != nil {
		now = e.clk.Now()
	}
	return "DeviceJWT " + p.deviceJWT(e.t, p.key, e.s.URL+path, now, now.Add(30*time.Second))
}

// fidoResponse begins a biometric login and answers it.
func (e *env) fidoResponse(p *phone) string {
	e.t.Helper()
	status, out := e.call(http.MethodPost, "/fido/authenticate/begin", "", map[string]any{})
	require.Equal(e.t, http.StatusOK, status, out)
	opts, err := json.Marshal(out["options"])
	require.NoError(e.t, err)
	ao, err := virtualwebauthn.ParseAssertionOptions(string(opts))
	require.NoError(e.t, err)
	p.cred.Counter++
	return base64.RawURLEncoding.EncodeToString([]byte(virtualwebauthn.CreateAssertionResponse(rp, p.auth, p.cred, *ao)))
}

// testRP is a public relying party client (PKCE) registered like an NHS
// login client.
type testRP struct {
	e        *env
	client   *idp.Client
	redirect string
}

func (e *env) newRP() *testRP {
	e.t.Helper()
	redirect := "http://127.0.0.1:9/callback"
	c, err := e.s.OIDC.Clients().Create(context.Background(), idp.Client{Name: "Test Health Service", RedirectURIs: []string{redirect},
		Scopes: []string{"openid"}, VTR: idp.NHSProfileVectors(), Public: true})
	require.NoError(e.t, err)
	return &testRP{e: e, client: c, redirect: redirect}
}

// authorize sends a fresh browser (no session) to /authorize with
// fido_auth_response and returns the query it brings back to the relying
// party, after consent if asked, and the verifier.
func (r *testRP) authorize(b *servertest.Browser, fidoAuthResponse, vtr string) (url.Values, string) {
	r.e.t.Helper()
	return r.authorizeWith(b, fidoAuthResponse, vtr, nil)
}

// authorizeWith is authorize with extra parameters.
func (r *testRP) authorizeWith(b *servertest.Browser, fidoAuthResponse, vtr string, extra url.Values) (url.Values, string) {
	r.e.t.Helper()
	verifier := secrets.NewID() + secrets.NewID()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {r.client.ID}, "redirect_uri": {r.redirect}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n-1"}, "vtr": {vtr}, "fido_auth_response": {fidoAuthResponse},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if fidoAuthResponse == "" {
		q.Del("fido_auth_response")
	}
	for k, v := range extra {
		q[k] = v
	}
	p := b.Get("/authorize?" + q.Encode())
	if p.HasForm("/authorize/consent") {
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
	}
	require.Equal(r.e.t, http.StatusSeeOther, p.Status, "page %q", p.H1())
	loc, err := url.Parse(p.Header.Get("Location"))
	require.NoError(r.e.t, err)
	require.True(r.e.t, strings.HasPrefix(loc.String(), r.redirect), loc.String())
	require.Equal(r.e.t, "st", loc.Query().Get("state"))
	return loc.Query(), verifier
}

// claims exchanges the code and returns the ID token's claims.
func (r *testRP) claims(code, verifier string) map[string]any {
	r.e.t.Helper()
	tok := r.e.postToken(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {r.redirect},
		"client_id": {r.client.ID}, "code_verifier": {verifier}})
	parsed, err := jwt.ParseSigned(tok["id_token"].(string), []jose.SignatureAlgorithm{jose.RS512})
	require.NoError(r.e.t, err)
	out := map[string]any{}
	require.NoError(r.e.t, parsed.UnsafeClaimsWithoutVerification(&out))
	return out
}

// stoppingBrowser is a browser with no session that does not follow the
// redirect to the relying party.
func (e *env) stoppingBrowser() *servertest.Browser {
	b := e.s.NewBrowser(e.t)
	b.Client.CheckRedirect = stopAtRedirectURIs
	return b
}

// stopAtRedirectURIs does not follow redirects to the companion app's
// redirect URI or to the test relying party's (port 9).
func stopAtRedirectURIs(req *http.Request, _ []*http.Request) error {
	if req.URL.Port() == "9" || req.URL.Scheme != "http" {
		return http.ErrUseLastResponse
	}
	return nil
}

// auditCount counts audit events of typ whose detail contains detail.
func (e *env) auditCount(typ, detail string) int {
	var n int
	require.NoError(e.t, e.s.DB.Get(&n, e.s.DB.Rebind(`SELECT COUNT(*) FROM audit_events WHERE type = ? AND detail LIKE ?`), typ, "%"+detail+"%"))
	return n
}
