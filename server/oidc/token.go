package oidc

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
)

// Grant types accepted at /token.
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
)

const (
	// maxFormBody bounds a /token or /userinfo form body.
	maxFormBody = 16 << 10
	// maxOpaqueParam bounds codes and refresh tokens (ours are 43 bytes).
	maxOpaqueParam = 256
	// macRefresh binds the keyed hashes of refresh tokens to their use.
	macRefresh = "oidc-refresh-token"
)

// form holds the parameters of a form-encoded request body, each at most
// once; parameters sent with an empty value count as absent (RFC 6749
// section 3.1).
type form map[string]string

// parseForm reads an application/x-www-form-urlencoded body, refusing
// other media types, oversized bodies and repeated parameters.
func parseForm(c fiber.Ctx) (form, error) {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationForm {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	if c.Get(fiber.HeaderContentEncoding) != "" {
		return nil, invalidRequest("content encodings are not accepted")
	}
	if len(c.Request().Body()) > maxFormBody {
		return nil, invalidRequest("the body is larger than %d bytes", maxFormBody)
	}
	f := form{}
	seen := map[string]bool{}
	for k, v := range c.Request().PostArgs().All() {
		key := string(k)
		if seen[key] {
			return nil, invalidRequest("parameter %s is repeated", key)
		}
		seen[key] = true
		if len(v) > 0 {
			f[key] = string(v)
		}
	}
	return f, nil
}

// handleToken serves POST /token: authorization_code and refresh_token
// grants for clients authenticated by private_key_jwt (public clients by
// client_id, with PKCE).
func (s *Server) handleToken(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	resp, err := s.token(c)
	if err != nil {
		return s.writeOAuthError(c, err)
	}
	return c.JSON(resp)
}

func (s *Server) token(c fiber.Ctx) (*tokenSet, error) {
	f, err := parseForm(c)
	if err != nil {
		return nil, err
	}
	grantType := f["grant_type"]
	switch grantType {
	case "":
		return nil, invalidRequest("grant_type is required")
	case GrantTypeAuthorizationCode, GrantTypeRefreshToken, GrantTypeClientCredentials:
	default:
		return nil, newOAuthError(http.StatusBadRequest, codeUnsupportedGrantType, "grant_type must be authorization_code, refresh_token or client_credentials")
	}
	ctx := c.Context()
	ac, err := s.authenticateClient(ctx, c, f)
	if err != nil {
		return nil, err
	}
	var out *tokenSet
	switch grantType {
	case GrantTypeAuthorizationCode:
		out, err = s.exchangeCode(ctx, actor(c), ac, f)
	case GrantTypeClientCredentials:
		out, err = s.exchangeClientCredentials(ctx, actor(c), ac, f)
	default:
		out, err = s.exchangeRefresh(ctx, actor(c), ac, f)
	}
	if err != nil && ac.jti != "" && !ac.spent {
		// The success path records the assertion's jti in its transaction;
		// a failed request uses the assertion up all the same.
		if _, jerr := s.useJTI(ctx, nil, jtiClientAssertion, ac.client.ID, ac.jti, ac.jtiExp); jerr != nil {
			s.log.Error("oidc: record client assertion jti", "err", jerr)
		}
	}
	return out, err
}

// authenticated is the client of a /token request. A client that sent an
// assertion has its jti recorded as used in the request's transaction
// (spent once that commits).
type authenticated struct {
	client *Client
	jti    string
	jtiExp time.Time
	spent  bool
}

// spendAssertion records the assertion's jti as used within tx; a replay
// is invalid_client.
func (s *Server) spendAssertion(ctx context.Context, tx *sqlx.Tx, ac *authenticated) error {
	if ac.jti == "" {
		return nil
	}
	fresh, err := s.useJTI(ctx, tx, jtiClientAssertion, ac.client.ID, ac.jti, ac.jtiExp)
	if err != nil {
		return err
	}
	if !fresh {
		ac.spent = true // by an earlier request
		return invalidClient("client assertion rejected: jti already used")
	}
	return nil
}

// commit commits tx, which recorded ac's jti.
func commit(tx *sqlx.Tx, ac *authenticated, what string) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ac.spent = true
	return nil
}

// authenticateClient authenticates the client of a /token request:
// private_key_jwt, or client_id alone for a public client. The assertion's
// jti is checked for replay when the request's transaction records it.
func (s *Server) authenticateClient(ctx context.Context, c fiber.Ctx, f form) (*authenticated, error) {
	if c.Get(fiber.HeaderAuthorization) != "" || f["client_secret"] != "" {
		return nil, invalidClient("only private_key_jwt client authentication is supported")
	}
	clientID, assertion, assertionType := f["client_id"], f["client_assertion"], f["client_assertion_type"]
	if assertion == "" && assertionType == "" {
		if clientID == "" {
			return nil, invalidClient("client authentication is required (private_key_jwt)")
		}
		if len(clientID) > maxOpaqueParam {
			return nil, invalidClient("unknown client")
		}
		client, err := s.clients.Get(ctx, clientID)
		if errors.Is(err, ErrClientNotFound) {
			return nil, invalidClient("unknown client")
		}
		if err != nil {
			return nil, err
		}
		if !client.Public {
			return nil, invalidClient("this client must authenticate with private_key_jwt")
		}
		return &authenticated{client: client}, nil
	}
	if assertionType != ClientAssertionType {
		return nil, invalidClient("client_assertion_type must be %s", ClientAssertionType)
	}
	if assertion == "" {
		return nil, invalidClient("client_assertion is required")
	}
	client, claims, err := s.verifier.verifyClientAssertion(ctx, assertion, clientID)
	var rj *rejection
	if errors.As(err, &rj) {
		return nil, invalidClient("client assertion rejected: %s", rj.reason)
	}
	if err != nil {
		return nil, err
	}
	return &authenticated{client: client, jti: claims.ID, jtiExp: claims.Expiry.Time()}, nil
}

// exchangeCode redeems an authorization code for tokens. One transaction
// records the assertion's jti, uses up the code and stores the refresh
// token and the ID token's jti; a failure changes nothing but the jti.
func (s *Server) exchangeCode(ctx context.Context, a audit.Actor, ac *authenticated, f form) (*tokenSet, error) {
	client := ac.client
	code, redirectURI, verifier := f["code"], f["redirect_uri"], f["code_verifier"]
	switch {
	case code == "":
		return nil, invalidRequest("code is required")
	case redirectURI == "":
		return nil, invalidRequest("redirect_uri is required")
	case len(code) > maxOpaqueParam:
		return nil, invalidGrant("unknown or expired authorization code")
	case verifier != "" && !codeVerifierPattern.MatchString(verifier):
		return nil, invalidRequest("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	hash := s.keyring.MAC(macCode, code)
	now := s.now()

	tx, err := s.store.begin(ctx, qUseJTI, qRedeemCode, qInsertRefresh, qInsertIDToken)
	if err != nil {
		return nil, fmt.Errorf("exchange code: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := s.spendAssertion(ctx, tx, ac); err != nil {
		return nil, err
	}
	g, err := s.redeemCodeTx(ctx, tx, client, hash, now)
	if err != nil {
		return nil, err
	}
	if g == nil {
		if err := commit(tx, ac, "exchange code"); err != nil {
			return nil, err
		}
		return nil, s.codeRefused(ctx, a, client, hash, now)
	}
	if err := checkCodeBindings(g, redirectURI, verifier); err != nil {
		return nil, err
	}
	scopes := g.scopes()
	refresh, idJTI, err := s.storeIssued(ctx, tx, g, client, scopes, true, now)
	if err != nil {
		return nil, err
	}
	if err := commit(tx, ac, "exchange code"); err != nil {
		return nil, err
	}
	p, err := s.person(ctx, g.AccountID)
	if err != nil {
		return nil, s.personRefused(ctx, g, err)
	}
	return s.mint(ctx, g, client, scopes, p, idJTI, refresh, now)
}

// personRefused turns a People failure into invalid_grant for a missing or
// blocked account (revoking the grant), or passes a server error on.
func (s *Server) personRefused(ctx context.Context, g *grantRow, err error) error {
	if !errors.Is(err, ErrNoPerson) && !errors.Is(err, ErrAccountBlocked) {
		return err
	}
	if rerr := s.revokeGrant(ctx, g.ID); rerr != nil {
		return rerr
	}
	return invalidGrant("the account cannot receive tokens")
}

// storeIssued records within tx what a token response will carry: a new
// refresh token when the client uses them, and the ID token's jti (for
// asserted_login_identity) when idToken is set and openid is among scopes.
func (s *Server) storeIssued(ctx context.Context, tx *sqlx.Tx, g *grantRow, client *Client, scopes []string, idToken bool, now time.Time) (refresh, idJTI string, err error) {
	// The grant (the revocation record) must outlive what it issues; it
	// usually does already, and then nothing is written.
	if until := now.Add(s.grantLifetime(client)); g.ExpiresAt.Before(until) {
		if err := s.store.extendGrant(ctx, tx, g.ID, until); err != nil {
			return "", "", fmt.Errorf("extend grant: %w", err)
		}
	}
	// No refresh token ever carries device_enrolment: enrolling a device
	// needs a fresh login (server/companion), not a long-lived token.
	if client.RefreshTokens && !slices.Contains(scopes, ScopeDeviceEnrolment) {
		refresh = secrets.NewToken()
		if err := s.store.insertRefresh(ctx, tx, s.keyring.MAC(macRefresh, refresh), g.ID, client.ID, now, now.Add(s.cfg.RefreshTokenLifetime)); err != nil {
			return "", "", fmt.Errorf("store refresh token: %w", err)
		}
	}
	if idToken && slices.Contains(scopes, ScopeOpenID) {
		idJTI = secrets.NewID()
		if err := s.store.insertIDToken(ctx, tx, idJTI, g.ID, client.ID, g.AccountID, now.Add(s.cfg.IDTokenLifetime)); err != nil {
			return "", "", fmt.Errorf("record ID token: %w", err)
		}
	}
	return refresh, idJTI, nil
}

// exchangeRefresh rotates a refresh token: the presented one is used up
// and a new one issued with a fresh access token (no ID token, as NHS
// login), in one transaction
// with the assertion's jti. Presenting a used refresh token again revokes
// the whole family (the grant).
func (s *Server) exchangeRefresh(ctx context.Context, a audit.Actor, ac *authenticated, f form) (*tokenSet, error) {
	client := ac.client
	token := f["refresh_token"]
	if token == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	if !client.RefreshTokens {
		return nil, newOAuthError(http.StatusBadRequest, codeUnauthorizedClient, "refresh tokens are not enabled for this client")
	}
	if len(token) > maxOpaqueParam {
		return nil, invalidGrant("unknown refresh token")
	}
	hash := s.keyring.MAC(macRefresh, token)
	now := s.now()

	tx, err := s.store.begin(ctx, qUseJTI, qUseRefresh, qInsertRefresh, qInsertIDToken)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := s.spendAssertion(ctx, tx, ac); err != nil {
		return nil, err
	}
	grantID, err := s.store.useRefresh(ctx, tx, hash, client.ID, now)
	if migrations.IsNoRows(err) {
		if err := commit(tx, ac, "refresh"); err != nil {
			return nil, err
		}
		return nil, s.refreshRefused(ctx, a, client, hash, now)
	}
	if err != nil {
		return nil, fmt.Errorf("use refresh token: %w", err)
	}
	g, err := s.store.grantByID(ctx, tx, grantID)
	if err != nil {
		return nil, fmt.Errorf("load grant: %w", err)
	}
	if g.RevokedAt != nil {
		return nil, invalidGrant("the refresh token has been revoked")
	}
	// A refresh token issued before enrolment grants stopped carrying
	// refresh tokens still never renews device_enrolment.
	granted := slices.DeleteFunc(g.scopes(), func(sc string) bool { return sc == ScopeDeviceEnrolment })
	scopes, err := narrowScopes(granted, f["scope"])
	if err != nil {
		return nil, err
	}
	// NHS login issues an ID token for authorization_code only.
	refresh, idJTI, err := s.storeIssued(ctx, tx, &g, client, scopes, false, now)
	if err != nil {
		return nil, err
	}
	if err := commit(tx, ac, "refresh"); err != nil {
		return nil, err
	}
	p, err := s.person(ctx, g.AccountID)
	if err != nil {
		return nil, s.personRefused(ctx, &g, err)
	}
	return s.mint(ctx, &g, client, scopes, p, idJTI, refresh, now)
}

// refreshRefused explains why a refresh token was refused; a token used
// before revokes its family.
func (s *Server) refreshRefused(ctx context.Context, a audit.Actor, client *Client, hash string, now time.Time) error {
	row, err := s.store.refreshByHash(ctx, hash)
	if migrations.IsNoRows(err) {
		return invalidGrant("unknown or expired refresh token")
	}
	if err != nil {
		return fmt.Errorf("look up refresh token: %w", err)
	}
	switch {
	case row.UsedAt != nil:
		if err := s.revokeGrant(ctx, row.GrantID); err != nil {
			return err
		}
		s.record(ctx, a, "oidc.refresh_reuse", audit.Failure, row.AccountID,
			map[string]any{"client_id": row.ClientID, "presented_by": client.ID, "grant_id": row.GrantID})
		return invalidGrant("refresh token already used; every token of this grant is revoked")
	case row.ClientID != client.ID:
		return invalidGrant("refresh token was issued to another client")
	case !now.Before(row.ExpiresAt):
		return invalidGrant("refresh token expired")
	}
	return invalidGrant("refresh token cannot be used")
}

// narrowScopes applies a refresh request's optional scope parameter: a
// subset of the granted scopes (invalid_scope otherwise).
func narrowScopes(granted []string, requested string) ([]string, error) {
	if requested == "" {
		return granted, nil
	}
	if len(requested) > maxScopeParam {
		return nil, newOAuthError(http.StatusBadRequest, codeInvalidScope, "scope longer than %d bytes", maxScopeParam)
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if !slices.Contains(granted, sc) {
			return nil, newOAuthError(http.StatusBadRequest, codeInvalidScope, "scope %q was not granted", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}
