package oidc

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v3"
)

// discoveryDoc is the OpenID Provider Metadata served at
// /.well-known/openid-configuration, with NHS login's vectors-of-trust
// extensions.
type discoveryDoc struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	UserinfoEndpoint              string   `json:"userinfo_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	ScopesSupported               []string `json:"scopes_supported"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	ResponseModesSupported        []string `json:"response_modes_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	SubjectTypesSupported         []string `json:"subject_types_supported"`
	IDTokenSigningAlgs            []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs  []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ClaimsSupported               []string `json:"claims_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	DisplayValuesSupported        []string `json:"display_values_supported"`
	PromptValuesSupported         []string `json:"prompt_values_supported"`
	ClaimsParameterSupported      bool     `json:"claims_parameter_supported"`
	RequestParameterSupported     bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported  bool     `json:"request_uri_parameter_supported"`
	VTRValuesSupported            []string `json:"vtr_values_supported"`
	VTM                           string   `json:"vtm"`
	// FIDOAuthenticationEndpoint is where the companion app begins a
	// biometric login (the assertion then goes to /authorize as
	// fido_auth_response).
	FIDOAuthenticationEndpoint string `json:"fido_authentication_endpoint"`
}

// FIDOAuthenticationPath is the path, under the issuer, of the endpoint
// that begins a biometric login; discovery advertises it.
const FIDOAuthenticationPath = "/fido/authenticate/begin"

func (s *Server) buildDiscovery() ([]byte, error) {
	algs := clientAuthAlgs()
	doc := discoveryDoc{
		Issuer:                        s.issuer,
		AuthorizationEndpoint:         s.endpoint("/authorize"),
		TokenEndpoint:                 s.endpoint("/token"),
		UserinfoEndpoint:              s.endpoint("/userinfo"),
		JWKSURI:                       s.endpoint("/.well-known/jwks.json"),
		ScopesSupported:               append(SupportedScopes(), ScopeDeviceEnrolment),
		ResponseTypesSupported:        []string{"code"},
		ResponseModesSupported:        []string{"query"},
		GrantTypesSupported:           []string{GrantTypeAuthorizationCode, GrantTypeRefreshToken, GrantTypeClientCredentials},
		SubjectTypesSupported:         []string{"public"},
		IDTokenSigningAlgs:            []string{string(signingAlg)},
		TokenEndpointAuthMethods:      []string{"private_key_jwt"},
		TokenEndpointAuthSigningAlgs:  algs,
		ClaimsSupported:               supportedClaims(),
		CodeChallengeMethodsSupported: []string{CodeChallengeS256},
		DisplayValuesSupported:        []string{"page", "touch"},
		PromptValuesSupported:         []string{"none", "login"},
		VTRValuesSupported:            NHSProfileVectors(),
		VTM:                           s.vtm(),
		FIDOAuthenticationEndpoint:    s.endpoint(FIDOAuthenticationPath),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("oidc: encode discovery document: %w", err)
	}
	return b, nil
}

// handleDiscovery serves /.well-known/openid-configuration.
func (s *Server) handleDiscovery(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.discovery)
}

// trustmarkDoc is the RFC 8485 trustmark: which vector components this
// provider can assert.
type trustmarkDoc struct {
	IDP               string   `json:"idp"`
	TrustmarkProvider string   `json:"trustmark_provider"`
	P                 []string `json:"P"`
	C                 []string `json:"C"`
}

func (s *Server) buildTrustmark() ([]byte, error) {
	b, err := json.Marshal(trustmarkDoc{
		IDP:               s.issuer,
		TrustmarkProvider: s.issuer,
		P:                 []string{"P0", "P5", "P9"},
		// Ck (a shared key in a device) is not offered, as in NHS login.
		C: []string{"Cp", "Cd", "Cm"},
	})
	if err != nil {
		return nil, fmt.Errorf("oidc: encode trustmark: %w", err)
	}
	return b, nil
}

// handleTrustmark serves /trustmark/{host}: the trustmark of this
// issuer's host (404 for any other host).
func (s *Server) handleTrustmark(c fiber.Ctx) error {
	if c.Params("host") != s.issuerURL.Host {
		return c.Status(http.StatusNotFound).JSON(errorBody{Error: "not_found", Description: "no trustmark for this host"})
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.trustmark)
}
