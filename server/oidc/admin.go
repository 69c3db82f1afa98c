package oidc

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
)

// maxAdminBody bounds admin API request bodies.
const maxAdminBody = 64 << 10

// Stable error codes of the admin API (documented in docs/api/admin.yaml).
const (
	adminUnauthorized          = "unauthorized"
	adminDisabled              = "admin_api_disabled"
	adminInvalidRequest        = "invalid_request"
	adminInvalidRedirectURI    = "invalid_redirect_uri"
	adminInvalidClientMetadata = "invalid_client_metadata"
	adminClientNotFound        = "client_not_found"
	adminClientExists          = "client_exists"
	adminServerError           = "server_error"
)

// AdminAPI is the JSON API for registering clients, protected by a bearer
// admin token (compared in constant time). Mount it with Register under a
// group of the caller's choosing.
type AdminAPI struct {
	clients *Clients
	token   string
	audit   *audit.Log
	log     *slog.Logger
}

// Register mounts the client routes on r:
// GET/POST /clients, GET/PATCH/DELETE /clients/:id.
func (a *AdminAPI) Register(r fiber.Router) {
	r.Get("/clients", a.authorize, a.list)
	r.Post("/clients", a.authorize, a.create)
	r.Get("/clients/:id", a.authorize, a.get)
	r.Patch("/clients/:id", a.authorize, a.update)
	r.Delete("/clients/:id", a.authorize, a.delete)
}

func adminError(c fiber.Ctx, status int, code, desc string) error {
	return c.Status(status).JSON(errorBody{Error: code, Description: desc})
}

// authorize checks the bearer admin token.
func (a *AdminAPI) authorize(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	if a.token == "" {
		return adminError(c, http.StatusForbidden, adminDisabled, "the admin API is disabled: no admin token is configured")
	}
	scheme, tok, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	// Hashing both sides first makes the comparison constant-time in the
	// token's length too.
	got, want := sha256.Sum256([]byte(strings.TrimSpace(tok))), sha256.Sum256([]byte(a.token))
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="idlink-admin"`)
		return adminError(c, http.StatusUnauthorized, adminUnauthorized, "a valid admin token is required (Authorization: Bearer <token>)")
	}
	return c.Next()
}

// clientRequest is the body of create and update requests. On update,
// absent members keep their value.
type clientRequest struct {
	ClientID      *string   `json:"client_id"`
	Name          *string   `json:"name"`
	RedirectURIs  *[]string `json:"redirect_uris"`
	Scopes        *[]string `json:"scopes"`
	VTR           *[]string `json:"vtr"`
	DefaultVTR    *[]string `json:"default_vtr"`
	PublicKeyPEM  *string   `json:"public_key_pem"`
	AuthAlgs      *[]string `json:"token_endpoint_auth_signing_algs"`
	RefreshTokens *bool     `json:"refresh_tokens"`
	Public        *bool     `json:"public"`
	IDTokenClaims *string   `json:"id_token_claims"`
	OAEPHash      *string   `json:"client_metadata_oaep_hash"`
}

// parseClientRequest decodes a create or update body strictly: one JSON
// object, known members only, within the size limit.
func parseClientRequest(body []byte) (clientRequest, error) {
	var req clientRequest
	if len(body) > maxAdminBody {
		return req, errors.New("the body is too large")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, errors.New("the body must be a JSON object of client fields: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("unexpected data after the JSON object")
	}
	return req, nil
}

// apply copies the members present in r onto c.
func (r *clientRequest) apply(c *Client) {
	set := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = *src
		}
	}
	if r.ClientID != nil {
		c.ID = *r.ClientID
	}
	if r.Name != nil {
		c.Name = *r.Name
	}
	set(&c.RedirectURIs, r.RedirectURIs)
	set(&c.Scopes, r.Scopes)
	set(&c.VTR, r.VTR)
	set(&c.DefaultVTR, r.DefaultVTR)
	set(&c.AuthAlgs, r.AuthAlgs)
	if r.PublicKeyPEM != nil {
		c.PublicKeyPEM = *r.PublicKeyPEM
	}
	if r.RefreshTokens != nil {
		c.RefreshTokens = *r.RefreshTokens
	}
	if r.Public != nil {
		c.Public = *r.Public
	}
	if r.IDTokenClaims != nil {
		c.IDTokenClaims = *r.IDTokenClaims
	}
	if r.OAEPHash != nil {
		c.MetadataOAEPHash = *r.OAEPHash
	}
}

// storeError answers a Clients error with its stable code.
func (a *AdminAPI) storeError(c fiber.Ctx, err error) error {
	var fe *ClientFieldError
	switch {
	case errors.As(err, &fe) && fe.Field == "redirect_uris":
		return adminError(c, http.StatusBadRequest, adminInvalidRedirectURI, fe.Error())
	case errors.As(err, &fe):
		return adminError(c, http.StatusBadRequest, adminInvalidClientMetadata, fe.Error())
	case errors.Is(err, ErrClientNotFound):
		return adminError(c, http.StatusNotFound, adminClientNotFound, err.Error())
	case errors.Is(err, ErrClientExists):
		return adminError(c, http.StatusConflict, adminClientExists, err.Error())
	}
	a.log.Error("oidc admin", "path", c.Path(), "err", err)
	return adminError(c, http.StatusInternalServerError, adminServerError, "the server could not complete the request")
}

func (a *AdminAPI) list(c fiber.Ctx) error {
	cs, err := a.clients.List(c.Context())
	if err != nil {
		return a.storeError(c, err)
	}
	return c.JSON(fiber.Map{"clients": cs})
}

func (a *AdminAPI) get(c fiber.Ctx) error {
	cl, err := a.clients.Get(c.Context(), c.Params("id"))
	if err != nil {
		return a.storeError(c, err)
	}
	return c.JSON(cl)
}

func (a *AdminAPI) create(c fiber.Ctx) error {
	req, err := parseClientRequest(c.Request().Body())
	if err != nil {
		return adminError(c, http.StatusBadRequest, adminInvalidRequest, err.Error())
	}
	var cl Client
	req.apply(&cl)
	created, err := a.clients.Create(c.Context(), cl)
	if err != nil {
		return a.storeError(c, err)
	}
	a.recordChange(c, "oidc.client_create", created.ID)
	return c.Status(http.StatusCreated).JSON(created)
}

func (a *AdminAPI) update(c fiber.Ctx) error {
	req, err := parseClientRequest(c.Request().Body())
	if err != nil {
		return adminError(c, http.StatusBadRequest, adminInvalidRequest, err.Error())
	}
	id := c.Params("id")
	if req.ClientID != nil && *req.ClientID != id {
		return adminError(c, http.StatusBadRequest, adminInvalidClientMetadata, "client_id cannot be changed")
	}
	cl, err := a.clients.Get(c.Context(), id)
	if err != nil {
		return a.storeError(c, err)
	}
	req.apply(cl)
	updated, err := a.clients.Update(c.Context(), *cl)
	if err != nil {
		return a.storeError(c, err)
	}
	a.recordChange(c, "oidc.client_update", updated.ID)
	return c.JSON(updated)
}

func (a *AdminAPI) delete(c fiber.Ctx) error {
	id := c.Params("id")
	if err := a.clients.Delete(c.Context(), id); err != nil {
		return a.storeError(c, err)
	}
	a.recordChange(c, "oidc.client_delete", id)
	return c.SendStatus(http.StatusNoContent)
}

func (a *AdminAPI) recordChange(c fiber.Ctx, typ, clientID string) {
	if err := a.audit.Record(c.Context(), actor(c), typ, audit.Success, "", map[string]any{"client_id": clientID}); err != nil {
		a.log.Error("oidc audit", "type", typ, "err", err)
	}
}
