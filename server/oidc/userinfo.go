package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // OAEP with SHA-1 is what NHS login's relying parties decrypt; it stays sound for OAEP
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/migrations"
)

const (
	// MaxClientUserMetadata is the longest client_user_metadata a client
	// may set, in characters.
	MaxClientUserMetadata = 1024
	// maxPatchBody bounds PATCH /userinfo bodies.
	maxPatchBody = 8 << 10
	// metadataAuto asks PATCH /userinfo to generate a new random value.
	metadataAuto = "auto"
)

// bearerError is an RFC 6750 error answered with WWW-Authenticate.
type bearerError struct {
	status      int
	code        string // empty: no error code (request had no token)
	description string
	scope       string // for insufficient_scope
}

func (e *bearerError) Error() string { return e.code + ": " + e.description }

func bearerInvalidRequest(format string, args ...any) *bearerError {
	return &bearerError{status: http.StatusBadRequest, code: codeInvalidRequest, description: fmt.Sprintf(format, args...)}
}

func bearerInvalidToken(desc string) *bearerError {
	return &bearerError{status: http.StatusUnauthorized, code: codeInvalidToken, description: desc}
}

// writeBearerError answers err with its status, a WWW-Authenticate
// challenge and a JSON body; anything but a *bearerError is a
// server_error.
func (s *Server) writeBearerError(c fiber.Ctx, err error) error {
	var be *bearerError
	if !errors.As(err, &be) {
		s.log.Error("oidc userinfo", "err", err)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(http.StatusInternalServerError).JSON(errorBody{Error: codeServerError, Description: "the server could not complete the request"})
	}
	challenge := `Bearer realm="` + quoteSafe(s.issuer) + `"`
	if be.code != "" {
		challenge += `, error="` + be.code + `", error_description="` + quoteSafe(be.description) + `"`
	}
	if be.scope != "" {
		challenge += `, scope="` + be.scope + `"`
	}
	c.Set(fiber.HeaderWWWAuthenticate, challenge)
	c.Set(fiber.HeaderCacheControl, "no-store")
	if be.code == "" {
		c.Status(be.status)
		return nil
	}
	return c.Status(be.status).JSON(errorBody{Error: be.code, Description: be.description})
}

// quoteSafe keeps only the characters RFC 6750 allows in a quoted
// error_description (printable ASCII but '"' and '\').
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}

// bearerToken finds the access token: in the Authorization header, or
// (POST only) the access_token form parameter; never in the query, and
// never in two places at once.
func bearerToken(c fiber.Ctx, allowForm bool) (string, error) {
	if c.Request().URI().QueryArgs().Has("access_token") {
		return "", bearerInvalidRequest("access tokens are not accepted in the query string")
	}
	var fromHeader, fromForm string
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", bearerInvalidRequest("the Authorization header must be: Bearer <access token>")
		}
		fromHeader = tok
	}
	if mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); allowForm && c.Method() == fiber.MethodPost && mt == fiber.MIMEApplicationForm {
		f, err := parseForm(c)
		if err != nil {
			var oe *oauthError
			if errors.As(err, &oe) {
				return "", bearerInvalidRequest("%s", oe.description)
			}
			return "", err
		}
		fromForm = f["access_token"]
	}
	switch {
	case fromHeader != "" && fromForm != "":
		return "", bearerInvalidRequest("the access token was sent in more than one way")
	case fromHeader != "":
		return fromHeader, nil
	case fromForm != "":
		return fromForm, nil
	}
	return "", &bearerError{status: http.StatusUnauthorized}
}

// authorizeBearer verifies the request's access token and that it carries
// scope.
func (s *Server) authorizeBearer(c fiber.Ctx, allowForm bool, scope string) (*verifiedAccess, error) {
	raw, err := bearerToken(c, allowForm)
	if err != nil {
		return nil, err
	}
	v, err := s.verifyAccessToken(c.Context(), raw)
	var rj *rejection
	if errors.As(err, &rj) {
		return nil, bearerInvalidToken(rj.reason)
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(v.scopes, scope) {
		return nil, &bearerError{status: http.StatusForbidden, code: codeInsufficientScope,
			description: "the access token lacks the " + scope + " scope", scope: scope}
	}
	return v, nil
}

// handleUserinfo serves GET and POST /userinfo: the claims of the access
// token's scopes, as plain JSON, with sub, iss and aud.
func (s *Server) handleUserinfo(c fiber.Ctx) error {
	v, err := s.authorizeBearer(c, true, ScopeOpenID)
	if err != nil {
		return s.writeBearerError(c, err)
	}
	ctx := c.Context()
	p, err := s.person(ctx, v.grant.AccountID)
	if errors.Is(err, ErrNoPerson) || errors.Is(err, ErrAccountBlocked) {
		return s.writeBearerError(c, bearerInvalidToken("the account cannot use this token"))
	}
	if err != nil {
		return s.writeBearerError(c, err)
	}
	var metadata string
	if slices.Contains(v.scopes, ScopeClientMetadata) {
		if metadata, err = s.clientMetadata(ctx, v.grant.AccountID, v.client); err != nil {
			return s.writeBearerError(c, err)
		}
	}
	out := scopeClaims(p, v.scopes, v.level, metadata)
	out["sub"] = v.claims.Subject
	out["iss"] = s.issuer
	out["aud"] = v.client.ID
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(out)
}

// handleUserinfoPatch serves PATCH /userinfo: the client sets its
// client_user_metadata for the person ("" clears it, "auto" generates a
// new random value). It needs the client_metadata scope.
func (s *Server) handleUserinfoPatch(c fiber.Ctx) error {
	v, err := s.authorizeBearer(c, false, ScopeClientMetadata)
	if err != nil {
		return s.writeBearerError(c, err)
	}
	value, err := parseMetadataPatch(c.Get(fiber.HeaderContentType), c.Request().Body())
	if err != nil {
		return s.writeBearerError(c, err)
	}
	if value == metadataAuto {
		if value, err = newClientMetadata(v.client); err != nil {
			return s.writeBearerError(c, err)
		}
	}
	if err := s.setClientMetadata(c.Context(), v.grant.AccountID, v.client.ID, value); err != nil {
		return s.writeBearerError(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendStatus(http.StatusNoContent)
}

// parseMetadataPatch reads {"client_user_metadata": "..."}: JSON, that one
// member, a string of at most MaxClientUserMetadata characters.
func parseMetadataPatch(contentType string, body []byte) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return "", bearerInvalidRequest("the body must be application/json")
	}
	if len(body) > maxPatchBody {
		return "", bearerInvalidRequest("the body is larger than %d bytes", maxPatchBody)
	}
	var req struct {
		Metadata *string `json:"client_user_metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", bearerInvalidRequest("the body must be a JSON object with client_user_metadata only")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", bearerInvalidRequest("unexpected data after the JSON object")
	}
	if req.Metadata == nil {
		return "", bearerInvalidRequest("client_user_metadata is required")
	}
	if !utf8.ValidString(*req.Metadata) || utf8.RuneCountInString(*req.Metadata) > MaxClientUserMetadata {
		return "", bearerInvalidRequest("client_user_metadata must be at most %d characters", MaxClientUserMetadata)
	}
	return *req.Metadata, nil
}

// clientMetadata returns the person's client_user_metadata for client,
// generating and storing the default (a random value encrypted to the
// client's key) the first time. "" means cleared, or no key to encrypt to.
func (s *Server) clientMetadata(ctx context.Context, accountID string, client *Client) (string, error) {
	v, err := s.store.clientMetadata(ctx, accountID, client.ID)
	if err == nil {
		return v, nil
	}
	if !migrations.IsNoRows(err) {
		return "", fmt.Errorf("read client metadata: %w", err)
	}
	if client.publicKey == nil {
		return "", nil
	}
	gen, err := newClientMetadata(client)
	if err != nil {
		return "", err
	}
	if err := s.store.addClientMetadata(ctx, accountID, client.ID, gen, s.now()); err != nil {
		return "", fmt.Errorf("store client metadata: %w", err)
	}
	if v, err = s.store.clientMetadata(ctx, accountID, client.ID); err != nil {
		return "", fmt.Errorf("read client metadata: %w", err)
	}
	return v, nil
}

func (s *Server) setClientMetadata(ctx context.Context, accountID, clientID, value string) error {
	if err := s.store.setClientMetadata(ctx, accountID, clientID, value, s.now()); err != nil {
		return fmt.Errorf("store client metadata: %w", err)
	}
	return nil
}

// newClientMetadata makes the default client_user_metadata: 32 random
// bytes encrypted with RSA-OAEP (SHA-1, or SHA-256 when the client asks
// for it; MGF1 with the same hash, no label) to the client's public key,
// base64url without padding.
func newClientMetadata(client *Client) (string, error) {
	if client.publicKey == nil {
		return "", bearerInvalidRequest("the client has no public key to encrypt a generated value to")
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	h := sha1.New() // NHS login's examples decrypt with PKCS#1 OAEP defaults
	if client.MetadataOAEPHash == OAEPSHA256 {
		h = sha256.New()
	}
	ct, err := rsa.EncryptOAEP(h, rand.Reader, client.publicKey, secret[:], nil)
	if err != nil {
		return "", fmt.Errorf("encrypt client metadata: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(ct), nil
}
