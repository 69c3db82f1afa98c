package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/server/secrets"
)

// The companion app's public client, as registered in development.
const (
	companionClientID    = "idlink-companion"
	companionRedirectURI = "idlink-companion://callback"
	enrolmentScope       = "openid device_enrolment"
	enrolmentVTR         = `["P0.Cp.Cd"]`
)

// browser is a cookie-keeping client that stops at the redirect URI (the
// app's or the relying party's) instead of following it.
type browser struct {
	base        string
	redirectURI string
	c           *http.Client
}

func newBrowser(base, redirectURI string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{base: strings.TrimSuffix(base, "/"), redirectURI: redirectURI}
	b.c = &http.Client{Jar: jar, Timeout: 60 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	return b
}

// page is a response: the HTML page, or the redirect to the redirect URI.
type page struct {
	status   int
	url      *url.URL
	body     string
	location string // set when the browser stopped at the redirect URI
}

func (b *browser) do(ctx context.Context, method, target string, form url.Values) (*page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	p := &page{status: resp.StatusCode, url: resp.Request.URL, body: string(raw)}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, b.redirectURI) {
		p.location = loc
	}
	return p, nil
}

var (
	formRE    = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	csrfRE    = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	requestRE = regexp.MustCompile(`name="id" value="([^"]+)"`)
	h1RE      = regexp.MustCompile(`(?s)<h1[^>]*>(.*?)</h1>`)
)

func (p *page) heading() string {
	m := h1RE.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(html.UnescapeString(m[1])), " ")
}

// submit posts fields to action with the page's CSRF token.
func (b *browser) submit(ctx context.Context, p *page, action string, fields url.Values) (*page, error) {
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		return nil, fmt.Errorf("no form on page %q", p.heading())
	}
	fields.Set("csrf_token", html.UnescapeString(m[1]))
	return b.do(ctx, http.MethodPost, b.base+action, fields)
}

// answers gives what the person types on each page of the journey.
type answers struct {
	email, password string
	code            func() (string, error)
}

// authorize follows an authorization request through the pages (login,
// security code, consent) until the browser is sent to the redirect URI,
// and returns the code. It fails on a page it does not know and on an
// error sent to the redirect URI.
func (b *browser) authorize(ctx context.Context, authURL, wantState string, a answers) (string, error) {
	p, err := b.do(ctx, http.MethodGet, authURL, nil)
	for step := 0; err == nil && p.location == "" && step < 8; step++ {
		if p.status >= 400 {
			return "", fmt.Errorf("%s: HTTP %d (%s)", p.url.Path, p.status, p.heading())
		}
		m := formRE.FindStringSubmatch(p.body)
		action := ""
		if m != nil {
			action = html.UnescapeString(m[1])
		}
		switch {
		case action == "/authorize/consent":
			id := requestRE.FindStringSubmatch(p.body)
			if id == nil {
				return "", errors.New("consent page without a request id")
			}
			p, err = b.submit(ctx, p, action, url.Values{"id": {html.UnescapeString(id[1])}, "decision": {"allow"}})
		case action == "/login" && a.password != "":
			p, err = b.submit(ctx, p, action, url.Values{"email": {a.email}, "password": {a.password}})
		case action == "/login/code" && a.code != nil:
			code, cerr := a.code()
			if cerr != nil {
				return "", cerr
			}
			p, err = b.submit(ctx, p, action, url.Values{"code": {code}})
		default:
			return "", fmt.Errorf("the server showed a page the simulator cannot answer: %q (%s)", p.heading(), p.url.Path)
		}
	}
	if err != nil {
		return "", err
	}
	if p.location == "" {
		return "", fmt.Errorf("the journey did not end at the redirect URI (last page %q)", p.heading())
	}
	u, err := url.Parse(p.location)
	if err != nil {
		return "", fmt.Errorf("redirect %q: %w", p.location, err)
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization refused: %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != wantState {
		return "", errors.New("the redirect carries another state")
	}
	if q.Get("code") == "" {
		return "", errors.New("the redirect carries no code")
	}
	return q.Get("code"), nil
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randomString()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest is one authorization request and what finishing it needs.
type authRequest struct {
	url, state, nonce, verifier string
}

func newAuthRequest(base, clientID, redirectURI, scope, vtr string, extra url.Values) authRequest {
	a := authRequest{state: randomString(), nonce: randomString()}
	var challenge string
	a.verifier, challenge = pkce()
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "scope": {scope},
		"state": {a.state}, "nonce": {a.nonce}, "vtr": {vtr},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	a.url = strings.TrimSuffix(base, "/") + "/authorize?" + q.Encode()
	return a
}

// tokenResponse is what /token answers.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func postForm(ctx context.Context, c *http.Client, target string, form url.Values) (tokenResponse, error) {
	var out tokenResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return out, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return out, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("token response (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("token endpoint: HTTP %d: %s: %s", resp.StatusCode, out.Error, out.Description)
	}
	return out, nil
}

// callJSON sends a JSON request with an Authorization header and decodes
// a JSON answer into out (nil: none expected).
func callJSON(ctx context.Context, c *http.Client, method, target, authorization string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, target, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, target, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("%s %s: HTTP %d: %s: %s", method, target, resp.StatusCode, e.Error, e.Description)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, target, err)
	}
	return nil
}

// enrolOptions are the flags of enrol.
type enrolOptions struct {
	URL, Email, Password, Phone string
	Name, Platform, PushToken   string
	Origin, RPID                string
	// CodeFrom, when not nil, gives the security code (a line); otherwise
	// it is read from the development outbox.
	CodeFrom io.Reader
}

// enrol signs in as the companion app and registers the phone.
func enrol(ctx context.Context, o enrolOptions) (*state, error) {
	st, err := newState(o.URL, o.Origin, o.RPID)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(o.URL, "/")
	b := newBrowser(base, companionRedirectURI)
	code := func() (string, error) {
		if o.CodeFrom != nil {
			fmt.Fprint(os.Stderr, "security code: ")
			line, err := bufio.NewReader(o.CodeFrom).ReadString('\n')
			if err != nil && line == "" {
				return "", fmt.Errorf("read the security code: %w", err)
			}
			return strings.TrimSpace(line), nil
		}
		return outboxCode(ctx, b.c, base, o.Phone)
	}
	req := newAuthRequest(base, companionClientID, companionRedirectURI, enrolmentScope, enrolmentVTR, nil)
	authCode, err := b.authorize(ctx, req.url, req.state, answers{email: o.Email, password: o.Password, code: code})
	if err != nil {
		return nil, fmt.Errorf("log in as the companion app: %w", err)
	}
	tok, err := postForm(ctx, b.c, base+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {authCode}, "redirect_uri": {companionRedirectURI},
		"client_id": {companionClientID}, "code_verifier": {req.verifier},
	})
	if err != nil {
		return nil, err
	}
	bearer := "Bearer " + tok.AccessToken
	var begun struct {
		CeremonyID string          `json:"ceremony_id"`
		Options    json.RawMessage `json:"options"`
	}
	if err := callJSON(ctx, b.c, http.MethodPost, base+"/app/v1/enrolment/begin", bearer, struct{}{}, &begun); err != nil {
		return nil, err
	}
	attestation, err := st.attest(begun.Options)
	if err != nil {
		return nil, err
	}
	jwk, err := st.deviceJWK()
	if err != nil {
		return nil, err
	}
	var created struct {
		DeviceID string `json:"device_id"`
	}
	err = callJSON(ctx, b.c, http.MethodPost, base+"/app/v1/devices", bearer, map[string]any{
		"ceremony_id": begun.CeremonyID, "credential": json.RawMessage(attestation), "device_key": jwk,
		"push_token": o.PushToken, "name": o.Name, "platform": o.Platform,
	}, &created)
	if err != nil {
		return nil, err
	}
	st.DeviceID = created.DeviceID
	return st, nil
}

// outboxCode reads the newest login code texted to phone from the
// development outbox.
func outboxCode(ctx context.Context, c *http.Client, base, phone string) (string, error) {
	var out struct {
		Messages []struct {
			Code string `json:"code"`
		} `json:"messages"`
	}
	target := base + "/dev/outbox.json?" + url.Values{"to": {phone}, "kind": {"login_code"}}.Encode()
	if err := callJSON(ctx, c, http.MethodGet, target, "", nil, &out); err != nil {
		return "", fmt.Errorf("development outbox: %w", err)
	}
	if len(out.Messages) == 0 || out.Messages[0].Code == "" {
		return "", fmt.Errorf("no login code for %s in the development outbox (is the server in development mode?)", phone)
	}
	return out.Messages[0].Code, nil
}

// whoami asks the server which device this is, with a device JWT.
func whoami(ctx context.Context, st *state) (map[string]any, error) {
	target := strings.TrimSuffix(st.URL, "/") + "/app/v1/device"
	tok, err := st.deviceJWT(target)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if err := callJSON(ctx, &http.Client{Timeout: 30 * time.Second}, http.MethodGet, target, "DeviceJWT "+tok, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// loginOptions are the flags of login.
type loginOptions struct {
	ClientID, RedirectURI, KeyFile string
	Scope, VTR                     string
}

// login performs a biometric login for a relying party and returns the
// claims of the ID token the relying party receives, verified.
func login(ctx context.Context, st *state, o loginOptions) (map[string]any, error) {
	key, err := readRSAKey(o.KeyFile)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(st.URL, "/")
	b := newBrowser(base, o.RedirectURI)
	var disc struct {
		Issuer    string `json:"issuer"`
		Token     string `json:"token_endpoint"`
		JWKS      string `json:"jwks_uri"`
		FIDOBegin string `json:"fido_authentication_endpoint"`
	}
	if err := callJSON(ctx, b.c, http.MethodGet, base+"/.well-known/openid-configuration", "", nil, &disc); err != nil {
		return nil, err
	}
	var begun struct {
		Options json.RawMessage `json:"options"`
	}
	if err := callJSON(ctx, b.c, http.MethodPost, disc.FIDOBegin, "", struct{}{}, &begun); err != nil {
		return nil, err
	}
	assertion, err := st.assert(begun.Options)
	if err != nil {
		return nil, err
	}
	req := newAuthRequest(base, o.ClientID, o.RedirectURI, o.Scope, o.VTR,
		url.Values{"fido_auth_response": {base64.RawURLEncoding.EncodeToString(assertion)}})
	code, err := b.authorize(ctx, req.url, req.state, answers{})
	if err != nil {
		return nil, fmt.Errorf("biometric login: %w", err)
	}
	assertionJWT, err := clientAssertion(key, o.ClientID, disc.Token)
	if err != nil {
		return nil, err
	}
	tok, err := postForm(ctx, b.c, disc.Token, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {o.RedirectURI},
		"code_verifier": {req.verifier}, "client_id": {o.ClientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertionJWT},
	})
	if err != nil {
		return nil, err
	}
	return verifyIDToken(ctx, b.c, disc.JWKS, disc.Issuer, o.ClientID, req.nonce, tok.IDToken)
}

func readRSAKey(path string) (*rsa.PrivateKey, error) {
	key, err := secrets.ReadRSAPrivateKey(path)
	if err != nil {
		return nil, fmt.Errorf("relying party key: %w", err)
	}
	return key, nil
}

// clientAssertion is a private_key_jwt client assertion (RS512).
func clientAssertion(key *rsa.PrivateKey, clientID, tokenURL string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("client assertion: %w", err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{tokenURL}, ID: randomString(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
	if err != nil {
		return "", fmt.Errorf("client assertion: %w", err)
	}
	return raw, nil
}

// verifyIDToken checks the ID token's signature against the provider's
// JWKS, its issuer, audience, expiry and nonce, and returns its claims.
func verifyIDToken(ctx context.Context, c *http.Client, jwksURL, issuer, clientID, nonce, raw string) (map[string]any, error) {
	var jwks jose.JSONWebKeySet
	if err := callJSON(ctx, c, http.MethodGet, jwksURL, "", nil, &jwks); err != nil {
		return nil, err
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS512})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("the ID token is not an RS512 JWT")
	}
	keys := jwks.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return nil, errors.New("the ID token's key is not in the provider's JWKS")
	}
	var std jwt.Claims
	claims := map[string]any{}
	if err := tok.Claims(keys[0].Key, &std, &claims); err != nil {
		return nil, fmt.Errorf("ID token signature: %w", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{clientID}, Time: time.Now()}, time.Minute); err != nil {
		return nil, fmt.Errorf("ID token: %w", err)
	}
	if claims["nonce"] != nonce {
		return nil, errors.New("the ID token carries another nonce")
	}
	return claims, nil
}
