package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// CodeChallengeS256 is the only PKCE method supported (RFC 7636).
const CodeChallengeS256 = "S256"

// macCode binds the keyed hashes of authorization codes to their use.
const macCode = "oidc-code"

const maxNonceLen = 512

var (
	codeChallengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	codeVerifierPattern  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// Grant is what /authorize decided, handed to IssueCode once the person
// has logged in and consented.
type Grant struct {
	ClientID    string
	RedirectURI string // exactly as in the authorization request
	AccountID   string
	// Scopes are the granted scopes, from ResolveScopes at the vot's level.
	Scopes []string
	Nonce  string
	// VoT is the vector of trust the login met, as written in VTR
	// (trust.Choose's result, e.g. "P9.Cp.Cd").
	VoT string
	// VTR are the vectors requested (after Client.RequestedVectors).
	VTR []trust.Vector
	// AuthTime is when the person authenticated (the session's login).
	AuthTime time.Time
	// Credentials are the components proven in the session.
	Credentials trust.Credentials
	// CodeChallenge and CodeChallengeMethod are PKCE's, empty when the
	// request had none (allowed only for confidential clients).
	CodeChallenge       string
	CodeChallengeMethod string
	// DeviceID names the companion-app device whose credential made the
	// login, if one did: removing the device revokes the grant.
	DeviceID string
}

// ValidateCodeChallenge checks the PKCE parameters of an authorization
// request: method S256 (absent means S256 when a challenge is given;
// plain is refused) and a 43-character base64url challenge. Both empty is
// valid (no PKCE). Errors wrap ErrInvalidRequest.
func ValidateCodeChallenge(challenge, method string) error {
	switch {
	case challenge == "" && method == "":
		return nil
	case challenge == "":
		return fmt.Errorf("%w: code_challenge_method without code_challenge", ErrInvalidRequest)
	case method != CodeChallengeS256:
		return fmt.Errorf("%w: code_challenge_method must be S256", ErrInvalidRequest)
	case !codeChallengePattern.MatchString(challenge):
		return fmt.Errorf("%w: code_challenge must be the base64url SHA-256 of the verifier (43 characters)", ErrInvalidRequest)
	}
	return nil
}

// grantRow is a row of oidc_grants.
type grantRow struct {
	ID                  string     `db:"id"`
	CodeHash            string     `db:"code_hash"`
	ClientID            string     `db:"client_id"`
	AccountID           string     `db:"account_id"`
	Subject             string     `db:"subject"`
	RedirectURI         string     `db:"redirect_uri"`
	Scopes              string     `db:"scopes"`
	Nonce               string     `db:"nonce"`
	VoT                 string     `db:"vot"`
	VTR                 string     `db:"vtr"`
	Credentials         string     `db:"credentials"`
	AuthTime            time.Time  `db:"auth_time"`
	CodeChallenge       string     `db:"code_challenge"`
	CodeChallengeMethod string     `db:"code_challenge_method"`
	CodeExpiresAt       time.Time  `db:"code_expires_at"`
	CodeUsedAt          *time.Time `db:"code_used_at"`
	RevokedAt           *time.Time `db:"revoked_at"`
	CreatedAt           time.Time  `db:"created_at"`
	ExpiresAt           time.Time  `db:"expires_at"`
	DeviceID            *string    `db:"device_id"`
}

func (g *grantRow) scopes() []string { return strings.Fields(g.Scopes) }

// level is the proofing level of the grant's vot.
func (g *grantRow) level() trust.Level {
	v, err := trust.ParseVector(g.VoT)
	if err != nil {
		return trust.P0 // stored values were validated by IssueCode
	}
	return v.Level
}

// IssueCode stores a grant and returns its authorization code: random,
// single use, valid for the code lifetime, bound to the client, the
// redirect URI and the PKCE challenge. Only a keyed hash of the code is
// stored. It checks the grant against the client's registration (errors
// wrap ErrClientNotFound, ErrInvalidScope or ErrInvalidRequest) and that
// the account may have tokens (ErrNoPerson, ErrAccountBlocked).
func (s *Server) IssueCode(ctx context.Context, g Grant) (string, error) {
	client, err := s.clients.Get(ctx, g.ClientID)
	if err != nil {
		return "", err
	}
	now := s.now()
	vot, err := checkGrant(client, g, now)
	if err != nil {
		return "", err
	}
	p, err := s.person(ctx, g.AccountID)
	if err != nil {
		return "", err
	}
	if p.ProofingLevel < vot.Level {
		return "", fmt.Errorf("%w: vot %s is above the account's proofing level %s", ErrInvalidRequest, g.VoT, p.ProofingLevel)
	}
	sub, err := s.SubjectFor(ctx, g.AccountID)
	if err != nil {
		return "", err
	}
	code := secrets.NewToken()
	expires := now.Add(s.cfg.CodeLifetime)
	var deviceID *string
	if g.DeviceID != "" {
		deviceID = &g.DeviceID
	}
	err = s.store.insertGrant(ctx, &grantRow{
		ID:                  secrets.NewID(),
		CodeHash:            s.keyring.MAC(macCode, code),
		ClientID:            client.ID,
		AccountID:           g.AccountID,
		Subject:             sub,
		RedirectURI:         g.RedirectURI,
		Scopes:              strings.Join(g.Scopes, " "),
		Nonce:               g.Nonce,
		VoT:                 g.VoT,
		VTR:                 trust.FormatVTR(g.VTR),
		Credentials:         strings.Join(credStrings(trust.Credentials(nil).With(g.Credentials...)), " "),
		AuthTime:            g.AuthTime.UTC().Truncate(time.Second),
		CodeChallenge:       g.CodeChallenge,
		CodeChallengeMethod: g.CodeChallengeMethod,
		CodeExpiresAt:       expires,
		CreatedAt:           now,
		// Long enough for anything issued from the code, so that
		// redeeming it changes no index.
		ExpiresAt: expires.Add(s.grantLifetime(client)),
		DeviceID:  deviceID,
	})
	if err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return code, nil
}

// checkGrant checks what a code would grant against the client's
// registration: its redirect URI, vectors, scopes and PKCE, and that the
// chosen vot is requested and met by the credentials proven. It returns
// the vot.
func checkGrant(client *Client, g Grant, now time.Time) (*trust.Vector, error) {
	if !client.HasRedirectURI(g.RedirectURI) {
		return nil, fmt.Errorf("%w: redirect_uri is not registered for the client", ErrInvalidRequest)
	}
	if g.AccountID == "" {
		return nil, fmt.Errorf("%w: no account", ErrInvalidRequest)
	}
	if len(g.Nonce) > maxNonceLen {
		return nil, fmt.Errorf("%w: nonce is longer than %d bytes", ErrInvalidRequest, maxNonceLen)
	}
	if len(g.VTR) == 0 {
		return nil, fmt.Errorf("%w: no requested vectors", ErrInvalidRequest)
	}
	var vot *trust.Vector
	for i, v := range g.VTR {
		if !client.allowsVector(v) {
			return nil, fmt.Errorf("%w: %s", ErrVectorNotAllowed, v)
		}
		if v.String() == g.VoT {
			vot = &g.VTR[i]
		}
	}
	if vot == nil {
		return nil, fmt.Errorf("%w: vot %q is not one of the requested vectors", ErrInvalidRequest, g.VoT)
	}
	if !vot.MetBy(vot.Level, trust.Credentials(nil).With(g.Credentials...)) {
		return nil, fmt.Errorf("%w: vot %s needs credentials not proven (proven: %v)", ErrInvalidRequest, g.VoT, g.Credentials)
	}
	if g.AuthTime.IsZero() || g.AuthTime.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("%w: auth_time missing or in the future", ErrInvalidRequest)
	}
	if err := checkGrantedScopes(client, g.Scopes, vot.Level); err != nil {
		return nil, err
	}
	if g.CodeChallenge == "" && client.Public {
		return nil, fmt.Errorf("%w: PKCE is required for public clients", ErrInvalidRequest)
	}
	if err := ValidateCodeChallenge(g.CodeChallenge, g.CodeChallengeMethod); err != nil {
		return nil, err
	}
	return vot, nil
}

// grantLifetime is how long a redeemed grant's revocation record must
// outlive its redemption: as long as anything issued from it.
func (s *Server) grantLifetime(client *Client) time.Duration {
	d := max(s.cfg.IDTokenLifetime, s.cfg.AccessTokenLifetime)
	if client.RefreshTokens {
		d = max(d, s.cfg.RefreshTokenLifetime)
	}
	return d
}

// redeemCodeTx uses up client's authorization code (by its keyed hash)
// within tx. It returns nil when the code cannot be redeemed: unknown,
// expired, used, revoked or another client's (codeRefused says which).
// Only the columns the token response needs are read back.
func (s *Server) redeemCodeTx(ctx context.Context, tx *sqlx.Tx, client *Client, hash string, now time.Time) (*grantRow, error) {
	return s.store.redeemCode(ctx, tx, client.ID, hash, now)
}

// checkCodeBindings verifies that the token request matches the
// authorization request: the same redirect_uri, and the PKCE verifier of
// its challenge (a verifier without a challenge is refused too, against
// PKCE downgrade). Failures are invalid_grant.
func checkCodeBindings(g *grantRow, redirectURI, verifier string) error {
	if g.RedirectURI != redirectURI {
		return invalidGrant("redirect_uri does not match the authorization request")
	}
	switch {
	case g.CodeChallenge != "" && verifier == "":
		return invalidGrant("code_verifier is required: the authorization request had a code_challenge")
	case g.CodeChallenge == "" && verifier != "":
		return invalidGrant("code_verifier given, but the authorization request had no code_challenge")
	case g.CodeChallenge != "" && !pkceMatches(g.CodeChallenge, verifier):
		return invalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

// codeRefused explains why a code could not be redeemed, revoking its
// grant when the code had been used before.
func (s *Server) codeRefused(ctx context.Context, a audit.Actor, client *Client, hash string, now time.Time) error {
	g, err := s.store.grantByCodeHash(ctx, hash)
	if migrations.IsNoRows(err) {
		return invalidGrant("unknown or expired authorization code")
	}
	if err != nil {
		return fmt.Errorf("look up code: %w", err)
	}
	switch {
	case g.CodeUsedAt != nil:
		if err := s.revokeGrant(ctx, g.ID); err != nil {
			return err
		}
		s.record(ctx, a, "oidc.code_replay", audit.Failure, g.AccountID,
			map[string]any{"client_id": g.ClientID, "presented_by": client.ID, "grant_id": g.ID})
		return invalidGrant("authorization code already used; the tokens issued with it are revoked")
	case g.ClientID != client.ID:
		return invalidGrant("authorization code was issued to another client")
	case g.RevokedAt != nil:
		return invalidGrant("authorization code revoked")
	case !now.Before(g.CodeExpiresAt):
		return invalidGrant("authorization code expired")
	}
	return invalidGrant("authorization code cannot be used")
}

// revokeGrant revokes a grant: its refresh tokens are refused and its
// access tokens are rejected at /userinfo.
func (s *Server) revokeGrant(ctx context.Context, grantID string) error {
	if err := s.store.revokeGrant(ctx, grantID, s.now()); err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	return nil
}

// Grants revokes what relying parties hold for an account. It needs only
// the database, so capabilities that revoke (identity) are built before
// the provider, which needs them for its claims.
type Grants struct {
	store *store
	now   func() time.Time
}

// NewGrants returns the grant revoker over db (now defaults to time.Now).
func NewGrants(db *sqlx.DB, now func() time.Time) *Grants {
	if now == nil {
		now = time.Now
	}
	return &Grants{store: newStore(db), now: now}
}

// RevokeAccount revokes every grant of an account (a person PDS marks as
// deceased): their refresh tokens are refused and their access tokens
// rejected. It returns how many grants it revoked.
func (s *Server) RevokeAccount(ctx context.Context, accountID string) (int64, error) {
	return (&Grants{store: s.store, now: s.now}).RevokeAccount(ctx, accountID)
}

// RevokeAccount is Server.RevokeAccount.
func (g *Grants) RevokeAccount(ctx context.Context, accountID string) (int64, error) {
	n, err := g.store.revokeAccount(ctx, accountID, g.now())
	if err != nil {
		return 0, fmt.Errorf("revoke account grants: %w", err)
	}
	return n, nil
}

// RevokeDevice revokes every grant that came from a login made with the
// companion-app device deviceID (its refresh tokens are refused, its
// access tokens rejected): call it when the device is removed. It
// returns how many grants it revoked.
func (s *Server) RevokeDevice(ctx context.Context, deviceID string) (int64, error) {
	n, err := s.store.revokeDevice(ctx, deviceID, s.now())
	if err != nil {
		return 0, fmt.Errorf("revoke device grants: %w", err)
	}
	return n, nil
}

// RevokeGrant revokes one grant (an enrolment token once it has enrolled
// a device). It reports whether this call revoked it: false when it was
// revoked already, so of two concurrent callers exactly one gets true.
func (s *Server) RevokeGrant(ctx context.Context, grantID string) (bool, error) {
	res, err := s.store.revokeGrantByID(ctx, grantID, s.now())
	if err != nil {
		return false, fmt.Errorf("revoke grant: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// pkceMatches checks an S256 code_verifier against its challenge.
func pkceMatches(challenge, verifier string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}
