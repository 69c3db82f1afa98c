package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// Scopes of the NHS login interface.
const (
	ScopeOpenID                   = "openid"
	ScopeProfile                  = "profile"
	ScopeBasicDemographics        = "basic_demographics"
	ScopeProfileExtended          = "profile_extended"
	ScopeEmail                    = "email"
	ScopePhone                    = "phone"
	ScopeLandline                 = "landline"
	ScopeGPRegistrationDetails    = "gp_registration_details"
	ScopeGPIntegrationCredentials = "gp_integration_credentials"
	ScopeClientMetadata           = "client_metadata"
	// ScopeDeviceEnrolment is idlink's own scope (not NHS login's): an
	// access token carrying it lets the companion app register itself as a
	// device of the person (POST /app/v1/devices). It releases no claims
	// and only the companion app's client is approved for it.
	ScopeDeviceEnrolment = "device_enrolment"
)

// maxScopeParam bounds the scope parameter.
const maxScopeParam = 1024

// SupportedScopes returns every scope the provider knows, in the order of
// the NHS login specification.
func SupportedScopes() []string {
	return []string{
		ScopeOpenID, ScopeProfile, ScopeBasicDemographics, ScopeProfileExtended, ScopeEmail, ScopePhone,
		ScopeLandline, ScopeGPRegistrationDetails, ScopeGPIntegrationCredentials, ScopeClientMetadata,
	}
}

// scopeMinLevel returns the lowest proofing level (the P of the vot) at
// which a scope's claims are released, and whether the scope is known.
func scopeMinLevel(scope string) (trust.Level, bool) {
	switch scope {
	case ScopeOpenID, ScopeEmail, ScopePhone, ScopeLandline, ScopeClientMetadata, ScopeDeviceEnrolment:
		return trust.P0, true
	case ScopeProfile, ScopeBasicDemographics, ScopeProfileExtended, ScopeGPRegistrationDetails:
		return trust.P5, true
	case ScopeGPIntegrationCredentials:
		return trust.P9, true
	}
	return 0, false
}

// supportedClaims lists the claims the provider can release.
func supportedClaims() []string {
	return []string{
		"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "jti", "vot", "vtm",
		"nhs_number", "family_name", "given_name", "birthdate", "identity_proofing_level",
		"email", "email_verified", "phone_number", "phone_number_verified", "phone_number_pds_matched",
		"landline_number", "landline_number_verified", "gp_registration_details",
		"gp_integration_credentials", "client_user_metadata",
	}
}

// ResolveScopes applies the scope rules of /authorize to the scope
// parameter: openid is required; unknown scopes are ignored; a known
// scope the client is not approved for, or profile together with
// basic_demographics, is an error wrapping ErrInvalidScope. Scopes whose
// claims need a higher proofing level than level (the P of the vot) are
// left out of the grant. The result keeps the request's order.
func ResolveScopes(client *Client, requested string, level trust.Level) ([]string, error) {
	if len(requested) > maxScopeParam {
		return nil, fmt.Errorf("%w: scope parameter longer than %d bytes", ErrInvalidScope, maxScopeParam)
	}
	var known []string
	for _, s := range strings.Fields(requested) {
		if _, ok := scopeMinLevel(s); !ok || slices.Contains(known, s) {
			continue
		}
		if !client.AllowsScope(s) {
			return nil, fmt.Errorf("%w: the client is not approved for scope %q", ErrInvalidScope, s)
		}
		known = append(known, s)
	}
	if !slices.Contains(known, ScopeOpenID) {
		return nil, fmt.Errorf("%w: scope must include openid", ErrInvalidScope)
	}
	if slices.Contains(known, ScopeProfile) && slices.Contains(known, ScopeBasicDemographics) {
		return nil, fmt.Errorf("%w: profile and basic_demographics cannot be requested together", ErrInvalidScope)
	}
	granted := known[:0]
	for _, s := range known {
		if minLvl, _ := scopeMinLevel(s); minLvl <= level {
			granted = append(granted, s)
		}
	}
	return granted, nil
}

// checkGrantedScopes verifies a scope list already resolved (by the caller
// of IssueCode): every scope known, approved for the client and allowed
// at level, openid present, no profile with basic_demographics.
func checkGrantedScopes(client *Client, scopes []string, level trust.Level) error {
	if !slices.Contains(scopes, ScopeOpenID) {
		return fmt.Errorf("%w: scope must include openid", ErrInvalidScope)
	}
	if slices.Contains(scopes, ScopeProfile) && slices.Contains(scopes, ScopeBasicDemographics) {
		return fmt.Errorf("%w: profile and basic_demographics cannot be granted together", ErrInvalidScope)
	}
	for i, s := range scopes {
		minLvl, ok := scopeMinLevel(s)
		switch {
		case !ok:
			return fmt.Errorf("%w: unknown scope %q", ErrInvalidScope, s)
		case !client.AllowsScope(s):
			return fmt.Errorf("%w: the client is not approved for scope %q", ErrInvalidScope, s)
		case minLvl > level:
			return fmt.Errorf("%w: scope %q needs %s, the login met %s", ErrInvalidScope, s, minLvl, level)
		case slices.Contains(scopes[:i], s):
			return fmt.Errorf("%w: scope %q repeated", ErrInvalidScope, s)
		}
	}
	return nil
}

// People gives the claims about an account. The account capability
// implements it.
type People interface {
	// Person returns what is known about the account; an error wrapping
	// ErrNoPerson when it does not exist.
	Person(ctx context.Context, accountID string) (Person, error)
}

// Person is what a relying party may learn about an account, subject to
// scopes and the vector of trust. Empty fields are left out of tokens.
type Person struct {
	Email         string
	EmailVerified bool
	// PhoneNumber is the login mobile number in E.164 form.
	PhoneNumber         string
	PhoneNumberVerified bool
	// PhoneNumberPDSMatched is true once the login phone matched a PDS
	// number; it is never set back to false.
	PhoneNumberPDSMatched  bool
	LandlineNumber         string
	LandlineNumberVerified bool
	// ProofingLevel is the highest level the person has reached (it may
	// be above the vot of a given login).
	ProofingLevel trust.Level
	NHSNumber     string // ten digits
	FamilyName    string
	GivenName     string
	BirthDate     string // YYYY-MM-DD
	// GPODSCode is the ODS code of the person's GP surgery.
	GPODSCode     string
	GPIntegration *GPIntegrationCredentials
	// Blocked accounts (suspended, deceased in PDS, closed) get no tokens.
	Blocked bool
}

// GPIntegrationCredentials are GP online-services registration details
// (IM1 linkage), released with gp_integration_credentials at P9.
type GPIntegrationCredentials struct {
	GPUserID     string `json:"gp_user_id,omitempty"`
	GPLinkageKey string `json:"gp_linkage_key,omitempty"`
	GPODSCode    string `json:"gp_ods_code,omitempty"`
}

// person fetches the account's claims and refuses blocked or missing
// accounts with an invalid_grant-style error.
func (s *Server) person(ctx context.Context, accountID string) (Person, error) {
	p, err := s.people.Person(ctx, accountID)
	if errors.Is(err, ErrNoPerson) {
		return Person{}, fmt.Errorf("%w: account %s", ErrNoPerson, accountID)
	}
	if err != nil {
		return Person{}, fmt.Errorf("look up person: %w", err)
	}
	if p.Blocked {
		return Person{}, fmt.Errorf("%w: account %s", ErrAccountBlocked, accountID)
	}
	return p, nil
}

// scopeClaims returns the claims for scopes, each released only when
// level (the P of the vot) reaches the scope's minimum; absent values are
// omitted. metadata is client_user_metadata ("" leaves it out).
func scopeClaims(p Person, scopes []string, level trust.Level, metadata string) map[string]any {
	out := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	for _, sc := range scopes {
		if minLvl, ok := scopeMinLevel(sc); !ok || minLvl > level {
			continue
		}
		switch sc {
		case ScopeProfile:
			put("nhs_number", p.NHSNumber)
			put("family_name", p.FamilyName)
			put("birthdate", p.BirthDate)
			put("identity_proofing_level", p.ProofingLevel.String())
		case ScopeBasicDemographics:
			put("family_name", p.FamilyName)
			put("birthdate", p.BirthDate)
			put("identity_proofing_level", p.ProofingLevel.String())
		case ScopeProfileExtended:
			put("given_name", p.GivenName)
		case ScopeEmail:
			if p.Email != "" {
				out["email"] = p.Email
				out["email_verified"] = p.EmailVerified
			}
		case ScopePhone:
			if p.PhoneNumber != "" {
				out["phone_number"] = p.PhoneNumber
				out["phone_number_verified"] = p.PhoneNumberVerified
				out["phone_number_pds_matched"] = p.PhoneNumberPDSMatched
			}
		case ScopeLandline:
			if p.LandlineNumber != "" {
				out["landline_number"] = p.LandlineNumber
				out["landline_number_verified"] = p.LandlineNumberVerified
			}
		case ScopeGPRegistrationDetails:
			if p.GPODSCode != "" {
				out["gp_registration_details"] = map[string]string{"gp_ods_code": p.GPODSCode}
			}
		case ScopeGPIntegrationCredentials:
			if g := p.GPIntegration; g != nil && (g.GPUserID != "" || g.GPLinkageKey != "" || g.GPODSCode != "") {
				out["gp_integration_credentials"] = *g
			}
		case ScopeClientMetadata:
			put("client_user_metadata", metadata)
		}
	}
	return out
}

// SubjectFor returns the account's subject identifier (the sub claim),
// creating it on first use: random, stable, and neither the account id nor
// anything derived from it.
func (s *Server) SubjectFor(ctx context.Context, accountID string) (string, error) {
	if accountID == "" {
		return "", fmt.Errorf("%w: empty account id", ErrInvalidRequest)
	}
	return s.store.subject(ctx, accountID, secrets.NewID(), s.now())
}
