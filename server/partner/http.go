package partner

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/web"
)

// apiError is an error answered to the partner with a stable code.
type apiError struct {
	status      int
	code        string
	description string
	retryAfter  time.Duration
}

func (e *apiError) Error() string { return e.code + ": " + e.description }

func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, description: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON body of every error.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// Register mounts the APIs on r.
func (a *API) Register(r fiber.Router) {
	r.Get(PathUsers, a.handleUsers)
	r.Post(PathProvisioning, a.handleProvision)
	r.Get(PathProvisioning+"/:id", a.handleProvisioningStatus)
}

// answer writes err as JSON: an *apiError as itself, anything else as
// server_error (logged, not shown).
func (a *API) answer(c fiber.Ctx, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		a.d.Logger.Error("partner api", "path", c.Path(), "err", err, "request_id", web.RequestID(c))
		ae = fail(http.StatusInternalServerError, CodeServerError, "the server could not complete the request")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	switch ae.code {
	case CodeInvalidToken:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
	case CodeInsufficientScope:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="insufficient_scope"`)
	}
	if ae.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(ae.retryAfter/time.Second)))
	}
	return c.Status(ae.status).JSON(errorBody{Error: ae.code, Description: ae.description})
}

// actor is the audit actor of a request.
func actor(c fiber.Ctx) audit.Actor {
	return audit.Actor{IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent), RequestID: web.RequestID(c)}
}

// authorize checks the request's bearer token for scope and takes one of
// the client's calls of kind; refusals are audited.
func (a *API) authorize(c fiber.Ctx, scope, kind string, perMinute int) (oidc.ClientToken, error) {
	ctx := c.Context()
	h := c.Get(fiber.HeaderAuthorization)
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		a.record(ctx, actor(c), "partner.refused", false, "", map[string]any{"api": kind, "reason": "no_token"})
		return oidc.ClientToken{}, fail(http.StatusUnauthorized, CodeInvalidToken, "a bearer access token from the client_credentials grant is required")
	}
	tok, err := a.d.Tokens.VerifyClientToken(ctx, strings.TrimSpace(raw))
	if errors.Is(err, oidc.ErrInvalidToken) {
		a.record(ctx, actor(c), "partner.refused", false, "", map[string]any{"api": kind, "reason": "invalid_token"})
		return oidc.ClientToken{}, fail(http.StatusUnauthorized, CodeInvalidToken, "%s", err.Error())
	}
	if err != nil {
		return oidc.ClientToken{}, err
	}
	if !tok.HasScope(scope) {
		a.record(ctx, actor(c), "partner.refused", false, "", map[string]any{"api": kind, "reason": "insufficient_scope", "client_id": tok.ClientID})
		return oidc.ClientToken{}, fail(http.StatusForbidden, CodeInsufficientScope, "the access token lacks the %s scope", scope)
	}
	allowed, err := a.d.Limiter.Take(ctx, "partner-"+kind+":"+tok.ClientID, perMinute, time.Minute)
	if err != nil {
		return oidc.ClientToken{}, fmt.Errorf("partner rate limit: %w", err)
	}
	if !allowed {
		a.record(ctx, actor(c), "partner.refused", false, "", map[string]any{"api": kind, "reason": "rate_limited", "client_id": tok.ClientID})
		e := fail(http.StatusTooManyRequests, CodeRateLimited, "at most %d calls a minute", perMinute)
		e.retryAfter = time.Minute
		return oidc.ClientToken{}, e
	}
	return tok, nil
}
