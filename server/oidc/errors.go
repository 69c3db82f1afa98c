package oidc

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v3"
)

// Sentinel errors callers branch on. Errors returned by this package wrap
// them with a message saying what was wrong.
var (
	// ErrInvalidClient is wrapped by every client-registration validation
	// error (see ClientFieldError).
	ErrInvalidClient = errors.New("invalid client registration")
	// ErrClientExists means Create was given a client_id already in use.
	ErrClientExists = errors.New("client_id already registered")
	// ErrClientNotFound means no client has the given client_id.
	ErrClientNotFound = errors.New("client not found")
	// ErrInvalidScope means a requested scope is not approved for the
	// client, openid is missing, or profile and basic_demographics were
	// requested together (OAuth error invalid_scope).
	ErrInvalidScope = errors.New("invalid scope")
	// ErrVectorNotAllowed means a requested vector of trust is not
	// registered for the client (OAuth error invalid_request).
	ErrVectorNotAllowed = errors.New("vector of trust not registered for this client")
	// ErrInvalidRequest means an authorization request (or a Grant given
	// to IssueCode) breaks a protocol rule (OAuth error invalid_request).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrAccountBlocked means the account must not receive tokens.
	ErrAccountBlocked = errors.New("account blocked")
	// ErrNoPerson is what People implementations wrap when the account
	// does not exist.
	ErrNoPerson = errors.New("no such person")
	// ErrAssertedLoginIdentity is wrapped by every rejection of an
	// asserted_login_identity.
	ErrAssertedLoginIdentity = errors.New("invalid asserted_login_identity")
	// ErrNotDevelopment means a development-only operation was called on
	// a server not in development mode.
	ErrNotDevelopment = errors.New("only available in development mode")
	// ErrInvalidToken is wrapped by every refusal of VerifyAccessToken:
	// the access token is malformed, not ours, expired or revoked.
	ErrInvalidToken = errors.New("invalid access token")
)

// OAuth 2.0 error codes (RFC 6749 section 5.2, RFC 6750 section 3.1).
const (
	codeInvalidRequest       = "invalid_request"
	codeInvalidClient        = "invalid_client"
	codeInvalidGrant         = "invalid_grant"
	codeUnauthorizedClient   = "unauthorized_client"
	codeUnsupportedGrantType = "unsupported_grant_type"
	codeInvalidScope         = "invalid_scope"
	codeServerError          = "server_error"
	codeInvalidToken         = "invalid_token"
	codeInsufficientScope    = "insufficient_scope"
)

// oauthError is a protocol error answered to the client.
type oauthError struct {
	status      int
	code        string
	description string
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func newOAuthError(status int, code, format string, args ...any) *oauthError {
	return &oauthError{status: status, code: code, description: fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, codeInvalidRequest, format, args...)
}

func invalidGrant(format string, args ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, codeInvalidGrant, format, args...)
}

// invalidClient is answered with 400, as NHS login's error table says: a
// client authenticating with private_key_jwt sent no Authorization header,
// so RFC 6749's 401 with WWW-Authenticate does not apply.
func invalidClient(format string, args ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, codeInvalidClient, format, args...)
}

// errorBody is the JSON body of an OAuth error.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeOAuthError answers err: an *oauthError as itself, anything else as
// server_error (logged, not shown).
func (s *Server) writeOAuthError(c fiber.Ctx, err error) error {
	var oe *oauthError
	if !errors.As(err, &oe) {
		s.log.Error("oidc", "path", c.Path(), "err", err)
		oe = newOAuthError(http.StatusInternalServerError, codeServerError, "the server could not complete the request")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.Status(oe.status).JSON(errorBody{Error: oe.code, Description: oe.description})
}
