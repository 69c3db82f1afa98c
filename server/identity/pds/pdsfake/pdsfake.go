// Package pdsfake is a fake PDS FHIR R4 API for tests of pds.Client: an
// http.Handler (mount it with httptest.NewServer) serving a pds.Sandbox
// through the same JSON API, with an OAuth 2.0 token endpoint for the
// signed-JWT client-credentials grant.
//
// Routes: POST /oauth2/token, GET /Patient/{id}, GET /Patient?…. Patient
// routes need a bearer token from the token endpoint and an X-Request-ID.
// Knobs inject failures (FailNext), slow answers (SetDelay) and report what
// was seen (RequestIDs, TokensIssued).
package pdsfake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
)

// TokenPath is the path of the token endpoint.
const TokenPath = "/oauth2/token"

// Config configures a Server.
type Config struct {
	// ClientID is the API key client assertions must name as iss and sub.
	ClientID string
	// PublicKey verifies client assertions (RS512).
	PublicKey *rsa.PublicKey
	// Directory answers reads and searches; a fresh pds.NewSandbox() when nil.
	Directory *pds.Sandbox
	// TokenLifetime is the expires_in of issued tokens; 599 s when zero.
	TokenLifetime time.Duration
	// Now is the clock for assertion and token expiry; time.Now when nil.
	Now func() time.Time
}

// Server is the fake API. It is safe for concurrent use.
type Server struct {
	cfg Config
	dir *pds.Sandbox

	mu         sync.Mutex
	tokens     map[string]time.Time
	jtis       map[string]bool
	issued     int
	requestIDs []string
	failN      int
	failStatus int
	retryAfter string
	delay      time.Duration
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, dir: cfg.Directory, tokens: map[string]time.Time{}, jtis: map[string]bool{}}
	if s.dir == nil {
		s.dir = pds.NewSandbox()
	}
	if s.cfg.TokenLifetime == 0 {
		s.cfg.TokenLifetime = 599 * time.Second
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	return s
}

// Sandbox returns the directory the server answers from, to change records
// during a test.
func (s *Server) Sandbox() *pds.Sandbox { return s.dir }

// FailNext makes the next n Patient requests fail with status (429, 503…),
// with a Retry-After header when retryAfter is not empty.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus, s.retryAfter = n, status, retryAfter
}

// SetDelay makes every Patient request wait d (or until the client gives up)
// before answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// RequestIDs returns the X-Request-ID of every Patient request so far.
func (s *Server) RequestIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requestIDs...)
}

// TokensIssued returns how many access tokens the token endpoint issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == TokenPath && r.Method == http.MethodPost:
		s.token(w, r)
	case r.URL.Path == "/Patient" && r.Method == http.MethodGet:
		if s.admit(w, r) {
			s.search(w, r)
		}
	case strings.HasPrefix(r.URL.Path, "/Patient/") && r.Method == http.MethodGet:
		if s.admit(w, r) {
			s.read(w, r, strings.TrimPrefix(r.URL.Path, "/Patient/"))
		}
	default:
		outcome(w, http.StatusNotFound, "not-found", "RESOURCE_NOT_FOUND")
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "malformed form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" ||
		r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		oauthError(w, "invalid_request", "unsupported grant or assertion type")
		return
	}
	if err := s.checkAssertion(r, r.PostForm.Get("client_assertion")); err != nil {
		oauthError(w, "invalid_request", err.Error())
		return
	}
	tok := randomHex(16)
	s.mu.Lock()
	s.tokens[tok] = s.cfg.Now().Add(s.cfg.TokenLifetime)
	s.issued++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok,
		"expires_in":   strconv.Itoa(int(s.cfg.TokenLifetime / time.Second)),
		"token_type":   "Bearer",
		"issued_at":    strconv.FormatInt(s.cfg.Now().UnixMilli(), 10),
	})
}

func (s *Server) checkAssertion(r *http.Request, raw string) error {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS512})
	if err != nil {
		return errors.New("malformed client assertion")
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return errors.New("missing kid header")
	}
	var c jwt.Claims
	if err := tok.Claims(s.cfg.PublicKey, &c); err != nil {
		return errors.New("invalid signature")
	}
	now := s.cfg.Now()
	aud := "http://" + r.Host + TokenPath
	switch {
	case c.Issuer != s.cfg.ClientID || c.Subject != s.cfg.ClientID:
		return errors.New("iss and sub must be the client id")
	case !c.Audience.Contains(aud):
		return fmt.Errorf("aud must be %s", aud)
	case c.ID == "":
		return errors.New("missing jti")
	case c.Expiry == nil || !now.Before(c.Expiry.Time()):
		return errors.New("expired or no exp")
	case c.Expiry.Time().After(now.Add(5*time.Minute + 10*time.Second)):
		return errors.New("exp more than 5 minutes ahead")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[c.ID] {
		return errors.New("jti reused")
	}
	s.jtis[c.ID] = true
	return nil
}

// admit checks the bearer token and X-Request-ID and applies the failure
// and delay knobs. It reports whether to go on.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	id := r.Header.Get("X-Request-ID")
	s.mu.Lock()
	s.requestIDs = append(s.requestIDs, id)
	exp, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	fail, status, after := s.failN > 0, s.failStatus, s.retryAfter
	if fail {
		s.failN--
	}
	delay := s.delay
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	if fail {
		if after != "" {
			w.Header().Set("Retry-After", after)
		}
		outcome(w, status, "transient", "SERVICE_UNAVAILABLE")
		return false
	}
	if !ok || !s.cfg.Now().Before(exp) {
		outcome(w, http.StatusUnauthorized, "forbidden", "ACCESS_DENIED")
		return false
	}
	if !isUUID(id) {
		outcome(w, http.StatusBadRequest, "value", "MISSING_VALUE")
		return false
	}
	return true
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, id string) {
	nhs, err := nhsnumber.Parse(id)
	if err != nil || len(id) != 10 {
		outcome(w, http.StatusBadRequest, "value", "INVALID_RESOURCE_ID")
		return
	}
	p, err := s.dir.Read(r.Context(), nhs)
	if errors.Is(err, pds.ErrNotFound) {
		outcome(w, http.StatusNotFound, "not-found", "RESOURCE_NOT_FOUND")
		return
	}
	if err != nil {
		outcome(w, http.StatusInternalServerError, "exception", "UNKNOWN_ERROR")
		return
	}
	body, err := p.MarshalFHIR()
	if err != nil {
		outcome(w, http.StatusInternalServerError, "exception", "UNKNOWN_ERROR")
		return
	}
	w.Header().Set("ETag", `W/"`+p.Version+`"`)
	w.Header().Set("Content-Type", "application/fhir+json")
	_, _ = w.Write(body)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := pds.Query{
		Family:   v.Get("family"),
		Given:    v["given"],
		Gender:   v.Get("gender"),
		Postcode: v.Get("address-postalcode"),
		Fuzzy:    v.Get("_fuzzy-match") == "true",
	}
	bd := v.Get("birthdate")
	if !strings.HasPrefix(bd, "eq") {
		outcome(w, http.StatusBadRequest, "invalid", "INVALID_SEARCH_DATA")
		return
	}
	q.BirthDate = strings.TrimPrefix(bd, "eq")
	p, err := s.dir.Search(r.Context(), q)
	switch {
	case errors.Is(err, pds.ErrInvalidQuery):
		outcome(w, http.StatusBadRequest, "invalid", "INVALID_SEARCH_DATA")
		return
	case errors.Is(err, pds.ErrTooManyMatches):
		outcome(w, http.StatusOK, "multiple-matches", "TOO_MANY_MATCHES")
		return
	case errors.Is(err, pds.ErrNotFound):
		writeJSON(w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "searchset", "total": 0})
		return
	case err != nil:
		outcome(w, http.StatusInternalServerError, "exception", "UNKNOWN_ERROR")
		return
	}
	body, err := p.MarshalFHIR()
	if err != nil {
		outcome(w, http.StatusInternalServerError, "exception", "UNKNOWN_ERROR")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": 1,
		"entry": []map[string]any{{
			"fullUrl":  "http://" + r.Host + "/Patient/" + p.NHSNumber.String(),
			"search":   map[string]any{"score": p.Score},
			"resource": json.RawMessage(body),
		}},
	})
}

// outcome writes a PDS-style OperationOutcome.
func outcome(w http.ResponseWriter, status int, code, spineCode string) {
	writeJSON(w, status, map[string]any{
		"resourceType": "OperationOutcome",
		"issue": []map[string]any{{
			"severity": "error",
			"code":     code,
			"details": map[string]any{"coding": []map[string]string{{
				"system": pds.SystemSpineErrorCode, "version": "1", "code": spineCode,
			}}},
		}},
	})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// isUUID reports whether s has the 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
