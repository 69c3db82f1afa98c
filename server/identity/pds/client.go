package pds

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// Base URLs of the PDS FHIR API environments.
const (
	SandboxBaseURL     = "https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4"
	IntegrationBaseURL = "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4"
	ProductionBaseURL  = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
)

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRetries   = 3
	DefaultRetryBase    = 250 * time.Millisecond
	DefaultMaxRetryWait = 5 * time.Second
)

// assertionLifetime is the lifetime of a client assertion (the API platform
// accepts at most 5 minutes).
const assertionLifetime = 4 * time.Minute

// tokenMargin is how long before its expiry a cached access token is
// replaced.
const tokenMargin = 30 * time.Second

// ErrBadConfig is returned by NewClient for an unusable configuration.
var ErrBadConfig = errors.New("invalid PDS client configuration")

// Config configures a Client.
type Config struct {
	// BaseURL is the FHIR API root, for example IntegrationBaseURL.
	BaseURL string
	// TokenURL is the API platform's OAuth 2.0 token endpoint
	// (https://int.api.service.nhs.uk/oauth2/token for integration).
	TokenURL string
	// ClientID is the application's API key; it is the client assertion's
	// issuer and subject.
	ClientID string
	// Key signs client assertions (RS512); its public half is registered
	// with the API platform under KID.
	Key *rsa.PrivateKey
	// KID is the key id put in client assertion headers.
	KID string
	// HTTPClient makes the requests; http.DefaultClient when nil (Timeout
	// bounds every call anyway).
	HTTPClient *http.Client
	// Timeout bounds a whole Read or Search, retries and token included;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// MaxRetries is how many times a failed attempt (network error, 429,
	// 5xx) is retried; DefaultMaxRetries when zero, none when negative.
	MaxRetries int
	// RetryBase is the first back-off (doubled each retry, with jitter);
	// DefaultRetryBase when zero.
	RetryBase time.Duration
	// MaxRetryWait caps one back-off; a Retry-After longer than it gives up
	// at once. DefaultMaxRetryWait when zero.
	MaxRetryWait time.Duration
	// Now is the clock for assertions and token expiry; time.Now when nil.
	Now func() time.Time
}

// Client is a Directory over the PDS FHIR R4 API with application-restricted
// access. It is safe for concurrent use.
type Client struct {
	base, tokenURL, clientID string
	signer                   jose.Signer
	http                     *http.Client
	timeout                  time.Duration
	maxRetries               int
	retryBase, maxRetryWait  time.Duration
	now                      func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

var _ Directory = (*Client)(nil)

// NewClient checks cfg and returns a Client. Errors wrap ErrBadConfig.
func NewClient(cfg Config) (*Client, error) {
	for name, raw := range map[string]string{"base URL": cfg.BaseURL, "token URL": cfg.TokenURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%w: %s must be an http(s) URL without query", ErrBadConfig, name)
		}
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: client id (API key) is required", ErrBadConfig)
	}
	if cfg.Key == nil {
		return nil, fmt.Errorf("%w: signing key is required", ErrBadConfig)
	}
	if cfg.KID == "" {
		return nil, fmt.Errorf("%w: key id is required", ErrBadConfig)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS512, Key: jose.JSONWebKey{Key: cfg.Key, KeyID: cfg.KID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("%w: assertion signer: %w", ErrBadConfig, err)
	}
	c := &Client{
		base:         strings.TrimRight(cfg.BaseURL, "/"),
		tokenURL:     cfg.TokenURL,
		clientID:     cfg.ClientID,
		signer:       signer,
		http:         cfg.HTTPClient,
		timeout:      cfg.Timeout,
		maxRetries:   cfg.MaxRetries,
		retryBase:    cfg.RetryBase,
		maxRetryWait: cfg.MaxRetryWait,
		now:          cfg.Now,
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.retryBase <= 0 {
		c.retryBase = DefaultRetryBase
	}
	if c.maxRetryWait <= 0 {
		c.maxRetryWait = DefaultMaxRetryWait
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Read returns the record of nhs: GET /Patient/{nhs}. 404 gives ErrNotFound;
// 400 with INVALID_RESOURCE_ID (or INVALID_NHS_NUMBER) gives
// ErrInvalidNHSNumber. Version comes from meta.versionId, else the ETag.
func (c *Client) Read(ctx context.Context, nhs nhsnumber.Number) (Patient, error) {
	if nhs.IsZero() {
		return Patient{}, fmt.Errorf("read patient: %w", ErrInvalidNHSNumber)
	}
	res, err := c.do(ctx, c.base+"/Patient/"+nhs.String())
	if err != nil {
		return Patient{}, fmt.Errorf("read patient: %w", err)
	}
	switch {
	case res.status == http.StatusOK:
		p, err := ParsePatient(res.body)
		if err != nil {
			return Patient{}, fmt.Errorf("read patient: %w: %w", ErrUnavailable, err)
		}
		if p.Version == "" {
			p.Version = versionFromETag(res.etag)
		}
		return p, nil
	case res.status == http.StatusNotFound:
		return Patient{}, fmt.Errorf("read patient: %w", ErrNotFound)
	case res.status == http.StatusBadRequest:
		code, _ := outcomeCode(res.body)
		switch code {
		case "INVALID_RESOURCE_ID", "INVALID_NHS_NUMBER":
			return Patient{}, fmt.Errorf("read patient: %w", ErrInvalidNHSNumber)
		}
		return Patient{}, fmt.Errorf("read patient: %w: HTTP 400 %s", ErrUnavailable, code)
	default:
		code, _ := outcomeCode(res.body)
		return Patient{}, fmt.Errorf("read patient: %w: HTTP %d %s", ErrUnavailable, res.status, code)
	}
}

// Search returns the one record matching q: GET /Patient with family,
// given (repeated), gender, birthdate=eqYYYY-MM-DD, address-postalcode,
// _fuzzy-match and _max-results=1. See Query.NHSNumber for confirmation.
func (c *Client) Search(ctx context.Context, q Query) (Patient, error) {
	if err := q.Validate(); err != nil {
		return Patient{}, err
	}
	v := url.Values{}
	v.Set("family", q.Family)
	for _, g := range q.Given {
		v.Add("given", g)
	}
	if q.Gender != "" {
		v.Set("gender", q.Gender)
	}
	v.Set("birthdate", "eq"+q.BirthDate)
	if q.Postcode != "" {
		v.Set("address-postalcode", q.Postcode)
	}
	if q.Fuzzy {
		v.Set("_fuzzy-match", "true")
	}
	v.Set("_max-results", "1")
	res, err := c.do(ctx, c.base+"/Patient?"+v.Encode())
	if err != nil {
		return Patient{}, fmt.Errorf("search patients: %w", err)
	}
	switch res.status {
	case http.StatusOK:
		p, err := ParseSearchset(res.body)
		switch {
		case errors.Is(err, ErrBadResponse):
			return Patient{}, fmt.Errorf("search patients: %w: %w", ErrUnavailable, err)
		case err != nil:
			return Patient{}, fmt.Errorf("search patients: %w", err)
		}
		return q.confirm(p)
	case http.StatusBadRequest:
		code, _ := outcomeCode(res.body)
		return Patient{}, fmt.Errorf("search patients: %w: PDS answered HTTP 400 %s", ErrInvalidQuery, code)
	default:
		code, _ := outcomeCode(res.body)
		return Patient{}, fmt.Errorf("search patients: %w: HTTP %d %s", ErrUnavailable, res.status, code)
	}
}

type response struct {
	status int
	body   []byte
	etag   string
}

// retryable marks an attempt's failure as worth another try, with the wait
// the server asked for (Retry-After), if any.
type retryable struct {
	err        error
	retryAfter time.Duration
	hasAfter   bool
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// do GETs u with retries and returns the final answer whose status is not
// retryable. Errors wrap ErrUnavailable.
func (c *Client) do(ctx context.Context, u string) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		res, err := c.attempt(ctx, u)
		if err == nil {
			return res, nil
		}
		last = err
		var r *retryable
		if !errors.As(err, &r) || attempt >= c.maxRetries {
			break
		}
		wait := c.backoff(attempt)
		if r.hasAfter {
			if r.retryAfter > c.maxRetryWait {
				break
			}
			wait = max(wait, r.retryAfter)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, fmt.Errorf("%w: %w (after %w)", ErrUnavailable, ctx.Err(), last)
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return response{}, fmt.Errorf("%w: %w (after %w)", ErrUnavailable, ctx.Err(), last)
	}
	return response{}, fmt.Errorf("%w: %w", ErrUnavailable, last)
}

// backoff returns RetryBase·2^attempt, capped at MaxRetryWait, scaled by a
// random factor in [0.5, 1).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.retryBase << min(attempt, 20)
	if d <= 0 || d > c.maxRetryWait {
		d = c.maxRetryWait
	}
	return d/2 + mrand.N(d/2+1)
}

// attempt makes one request. Network errors, 429 and 5xx are retryable; a
// 401 drops the cached token and is retryable once the token is renewed.
func (c *Client) attempt(ctx context.Context, u string) (response, error) {
	token, err := c.accessToken(ctx)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return response{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Request-ID", newRequestID())
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, &retryable{err: fmt.Errorf("request: %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRBody+1))
	if err != nil {
		return response{}, &retryable{err: fmt.Errorf("read response: %w", err)}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		c.dropToken(token)
		return response{}, &retryable{err: errors.New("access token refused (HTTP 401)")}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		r := &retryable{err: fmt.Errorf("HTTP %d", resp.StatusCode)}
		r.retryAfter, r.hasAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		return response{}, r
	}
	return response{status: resp.StatusCode, body: body, etag: resp.Header.Get("ETag")}, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// accessToken returns the cached token, or obtains a new one by the
// signed-JWT client-credentials grant (RFC 7523).
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.token != "" && now.Before(c.expires) {
		return c.token, nil
	}
	assertion, err := c.assertion(now)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", &retryable{err: fmt.Errorf("token request: %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", &retryable{err: fmt.Errorf("read token response: %w", err)}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		r := &retryable{err: fmt.Errorf("token endpoint: HTTP %d", resp.StatusCode)}
		r.retryAfter, r.hasAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		return "", r
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return "", fmt.Errorf("token endpoint refused the client: HTTP %d %s %s", resp.StatusCode, e.Error, e.Description)
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", errors.New("token endpoint: malformed response")
	}
	// The API platform sends expires_in as a string ("599"); RFC 6749 as a
	// number. Accept both.
	secs, err := strconv.Atoi(strings.Trim(string(tr.ExpiresIn), `"`))
	if err != nil || secs <= 0 {
		return "", errors.New("token endpoint: malformed expires_in")
	}
	life := time.Duration(secs) * time.Second
	margin := min(tokenMargin, life/10)
	c.token, c.expires = tr.AccessToken, now.Add(life-margin)
	return c.token, nil
}

func (c *Client) dropToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// assertion signs a client assertion: RS512, kid, iss = sub = client id,
// aud = token URL, a fresh jti, expiring within 5 minutes.
func (c *Client) assertion(now time.Time) (string, error) {
	claims := jwt.Claims{
		Issuer:   c.clientID,
		Subject:  c.clientID,
		Audience: jwt.Audience{c.tokenURL},
		ID:       newRequestID(),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(assertionLifetime)),
	}
	s, err := jwt.Signed(c.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// newRequestID returns a random UUID version 4.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
